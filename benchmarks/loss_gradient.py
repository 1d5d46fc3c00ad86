"""Per-evaluation loss+gradient time and fit time: skcce vs scikit-learn.

Usage::

    python benchmarks/loss_gradient.py [--n-samples 200000] [--n-features 100]
                                       [--n-classes 10] [--dtype float64] [--repeats 7]

Times are medians of ``--repeats`` runs after one warm-up, measured side by
side in one process. scikit-learn's ``LinearModelLoss.loss_gradient`` runs with
``n_threads`` = all cores (its own default in LogisticRegression); skcce with
n_jobs=1 and all cores.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss
from threadpoolctl import threadpool_info

from skcce import SoftmaxClassifier, crossentropy_loss_gradient
from skcce._threads import usable_cpu_count


def median_time(func, repeats):
    """Median wall time of ``func()`` over ``repeats`` runs, after a warm-up."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine_summary():
    """One line on cores, BLAS and thread settings."""
    blas = ", ".join(
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
        f"{i['num_threads']} threads)"
        for i in threadpool_info() if i["user_api"] == "blas"
    )
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE") if k in os.environ}
    return (f"{platform.processor() or platform.machine()}, {usable_cpu_count()} usable cores; "
            f"BLAS: {blas}; env: {env}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fit-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    n_cores = usable_cpu_count()
    X, y = make_classification(
        n_samples=args.n_samples, n_features=args.n_features,
        n_informative=args.n_features // 2, n_classes=args.n_classes,
        n_clusters_per_class=1, random_state=0,
    )
    X = X.astype(args.dtype)
    K, d = args.n_classes, args.n_features
    rng = np.random.default_rng(0)
    coef = rng.normal(scale=0.1, size=(K, d + 1))
    l2 = 1.0 / X.shape[0]

    print(f"# dense {X.shape[0]} x {d}, K={K}, {args.dtype}")
    print(f"machine: {machine_summary()}\n")
    rows = []
    for n_jobs in sorted({1, n_cores}):
        t = median_time(lambda: crossentropy_loss_gradient(
            coef, X, y, l2_reg_strength=l2, n_jobs=n_jobs), args.repeats)
        rows.append((f"skcce crossentropy_loss_gradient n_jobs={n_jobs}", t))
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=K), fit_intercept=True)
    y_float = y.astype(X.dtype)
    t_sk = median_time(lambda: loss.loss_gradient(
        coef, X, y_float, None, l2, n_threads=n_cores), args.repeats)
    rows.append((f"sklearn LinearModelLoss.loss_gradient n_threads={n_cores}", t_sk))
    print("| per evaluation | median ms | speedup vs sklearn |\n|---|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t * 1e3:.1f} | {t_sk / t:.2f}x |")

    print("\n| fit (default tol=1e-4, max_iter=100) | median s | n_iter | speedup vs sklearn |")
    print("|---|---:|---:|---:|")
    fits = [
        ("skcce SoftmaxClassifier n_jobs=1", lambda: SoftmaxClassifier(n_jobs=1)),
        (f"skcce SoftmaxClassifier n_jobs={n_cores}", lambda: SoftmaxClassifier(n_jobs=n_cores)),
        ("sklearn LogisticRegression", lambda: LogisticRegression()),
    ]
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, make in fits:
            models = []
            t = median_time(lambda: models.append(make().fit(X, y)), args.fit_repeats)
            results.append((name, t, int(models[-1].n_iter_[0])))
    t_lr = results[-1][1]
    for name, t, n_iter in results:
        print(f"| {name} | {t:.3f} | {n_iter} | {t_lr / t:.2f}x |")


if __name__ == "__main__":
    main()
