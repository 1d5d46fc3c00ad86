"""Side-by-side demo: SoftmaxClassifier vs scikit-learn's LogisticRegression.

Run it with ``skcce-demo`` (installed console script) or ``python -m skcce.demo``.
Both models are fitted to the digits dataset (1,797 images of 8x8 pixels, 10
classes) with the same regularization and tolerance; the table shows that they
find the same model and how long each takes.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier


def _median_fit_time(estimator, X, y, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(C=1.0, tol=1e-8, max_iter=1000, repeats=5):
    """Fit both models on digits and return one row of results per model.

    Parameters
    ----------
    C, tol, max_iter : float, float, int
        Shared by both models.
    repeats : int
        Fits per model; the median fit time is reported.

    Returns
    -------
    rows : list of dict
        Keys: model, fit_time_s, n_iter, accuracy, log_loss, max_abs_dproba.
    """
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    models = {
        "skcce.SoftmaxClassifier": SoftmaxClassifier(C=C, tol=tol, max_iter=max_iter),
        "sklearn LogisticRegression": LogisticRegression(C=C, tol=tol, max_iter=max_iter),
    }
    rows, probas = [], {}
    for name, model in models.items():
        fit_time = _median_fit_time(model, X_train, y_train, repeats)
        probas[name] = model.predict_proba(X_test)
        rows.append({
            "model": name,
            "fit_time_s": fit_time,
            "n_iter": int(np.ravel(model.n_iter_)[0]),
            "accuracy": accuracy_score(y_test, model.predict(X_test)),
            "log_loss": log_loss(y_test, probas[name], labels=model.classes_),
        })
    reference = probas["sklearn LogisticRegression"]
    for row in rows:
        row["max_abs_dproba"] = float(np.max(np.abs(probas[row["model"]] - reference)))
    return rows


def format_table(rows):
    """Render result rows as a Markdown table."""
    lines = [
        "| model | fit time (s) | iterations | accuracy | log-loss | max abs d(predict_proba) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['fit_time_s']:.4f} | {r['n_iter']} | "
            f"{r['accuracy']:.4f} | {r['log_loss']:.6f} | {r['max_abs_dproba']:.2e} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("Digits (1,347 train / 450 test, 64 features, 10 classes), standardized; "
          f"C={args.C}, tol={args.tol}, median of {args.repeats} fits.\n")
    print(format_table(run(args.C, args.tol, args.max_iter, args.repeats)))


if __name__ == "__main__":
    main()
