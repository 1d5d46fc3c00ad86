"""Time to select C by cross-validation: SoftmaxClassifierCV vs GridSearchCV vs LRCV.

Usage::

    python benchmarks/cv_select_C.py [--Cs 10] [--folds 5] [--repeats 3]
                                     [--grid-search-repeats 3]
                                     [--problems 200000x100 60000x784] [--n-classes 10]

Each problem is dense synthetic data from ``make_classification`` (float64,
``n_classes`` classes). The three contenders search the same grid
``np.logspace(-4, 4, Cs)`` over the same ``StratifiedKFold(folds)`` splits with
``scoring="neg_log_loss"``, default ``tol`` and ``max_iter``, and refit on all
data at the selected C:

- ``SoftmaxClassifierCV(n_jobs=None)``: all cores, folds in threads;
- ``GridSearchCV(SoftmaxClassifier(n_jobs=1), n_jobs=<all cores>)``: one
  process per core, each fit single-threaded (no oversubscription);
- ``LogisticRegressionCV(n_jobs=<all cores>)`` (lbfgs, one process per fold).

Times are medians of ``--repeats`` runs (``--grid-search-repeats`` for
GridSearchCV, by far the slowest, default: the same), measured side by side
in one process after a small warm-up of every contender (it starts joblib's
worker processes). A Markdown table with the speedups of SoftmaxClassifierCV is
printed; the selected C values are printed too (they should agree).
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcce import SoftmaxClassifier, SoftmaxClassifierCV
from skcce._threads import usable_cpu_count

from suite.machine import machine_summary


def contenders(Cs, cv, n_cores):
    """name -> (factory of an unfitted searcher, function giving its selected C)."""
    return {
        "SoftmaxClassifierCV": (
            lambda: SoftmaxClassifierCV(Cs=Cs, cv=cv, scoring="neg_log_loss"),
            lambda est: est.C_,
        ),
        f"GridSearchCV(SoftmaxClassifier, n_jobs={n_cores})": (
            lambda: GridSearchCV(SoftmaxClassifier(n_jobs=1), {"C": Cs}, cv=cv,
                                 scoring="neg_log_loss", n_jobs=n_cores),
            lambda est: est.best_params_["C"],
        ),
        f"LogisticRegressionCV(n_jobs={n_cores})": (
            lambda: LogisticRegressionCV(Cs=Cs, cv=cv, scoring="neg_log_loss",
                                         l1_ratios=(0.0,), use_legacy_attributes=False,
                                         n_jobs=n_cores),
            lambda est: est.C_,
        ),
    }


def time_fit(factory, X, y):
    """Wall time of one fit, and the fitted estimator."""
    estimator = factory()
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start, estimator


def parse_problem(text):
    n_samples, n_features = (int(v) for v in text.lower().split("x"))
    return n_samples, n_features


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--Cs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid-search-repeats", type=int, default=None)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--problems", nargs="+", default=["200000x100", "60000x784"])
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)  # default max_iter on purpose
    warnings.simplefilter("ignore", FutureWarning)

    n_cores = usable_cpu_count()
    Cs = np.logspace(-4, 4, args.Cs)
    cv = StratifiedKFold(args.folds)
    print(f"Machine: {machine_summary()}")
    gs_repeats = args.grid_search_repeats or args.repeats
    print(f"Grid: np.logspace(-4, 4, {args.Cs}); cv: StratifiedKFold({args.folds}); "
          f"scoring: neg_log_loss; medians of {args.repeats} runs "
          f"({gs_repeats} for GridSearchCV)\n")

    searchers = contenders(Cs, cv, n_cores)
    X_small, y_small = make_classification(500, 10, n_informative=5,
                                           n_classes=args.n_classes, random_state=0)
    for factory, _ in searchers.values():  # warm-up: joblib workers, thread pools
        time_fit(factory, X_small, y_small)

    rows = []
    for problem in args.problems:
        n_samples, n_features = parse_problem(problem)
        X, y = make_classification(n_samples, n_features,
                                   n_informative=min(n_features // 2, 50),
                                   n_classes=args.n_classes, random_state=0)
        medians, selected = {}, {}
        for name, (factory, best_C) in searchers.items():
            times = []
            repeats = args.repeats
            if name.startswith("GridSearchCV") and args.grid_search_repeats is not None:
                repeats = args.grid_search_repeats
            for _ in range(repeats):
                elapsed, estimator = time_fit(factory, X, y)
                times.append(elapsed)
            medians[name] = float(np.median(times))
            selected[name] = float(best_C(estimator))
            print(f"  {problem} {name}: {', '.join(f'{t:.1f}' for t in times)} s; "
                  f"C = {selected[name]:.4g}", flush=True)
        rows.append((problem, medians, selected))

    names = list(searchers)
    ours = names[0]
    print()
    print("| problem (n x d, K=%d) | " % args.n_classes
          + " | ".join(f"{name} (s)" for name in names)
          + " | " + " | ".join(f"speedup vs {name.split('(')[0]}" for name in names[1:])
          + " | selected C (ours / GS / LRCV) |")
    print("|" + "---|" * (1 + len(names) + len(names) - 1 + 1))
    for problem, medians, selected in rows:
        cells = [f"{medians[name]:.1f}" for name in names]
        speedups = [f"{medians[name] / medians[ours]:.1f}x" for name in names[1:]]
        chosen = " / ".join(f"{selected[name]:.3g}" for name in names)
        print(f"| {problem} | " + " | ".join(cells + speedups) + f" | {chosen} |")


if __name__ == "__main__":
    main()
