"""Save, or compare, the outputs of a fixed panel of fits and public calls.

A refactor that must not change results is checked by running this script
with a build of the old code (``--save old.pkl``) and with the new build
(``--compare old.pkl``): every array must be bitwise equal.

    python benchmarks/bitwise_panel.py --save /tmp/panel-old.pkl
    python benchmarks/bitwise_panel.py --compare /tmp/panel-old.pkl
"""

import argparse
import pickle
import sys
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import make_classification

import skcce
from skcce import (SoftmaxClassifier, SoftmaxClassifierCV, categorical_crossentropy,
                   crossentropy_loss_gradient)


def _problems():
    X, y = make_classification(n_samples=600, n_features=12, n_informative=6,
                               n_classes=4, random_state=0)
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=X.shape[0])
    weights = rng.uniform(0.1, 3.0, size=X.shape[0])
    Xs = X.copy()
    Xs[rng.random(Xs.shape) < 0.6] = 0.0
    X_csr = sp.csr_matrix(Xs)
    X_bad = X * np.logspace(-4, 6, X.shape[1])  # triggers the rescaling
    Xb, yb = make_classification(n_samples=300, n_features=6, random_state=1)
    return dict(X=X, y=y, proba=proba, weights=weights, X_csr=X_csr, X_bad=X_bad,
                Xb=Xb, yb=yb)


def _model(est, X):
    out = {}
    for name in ("coef_", "intercept_", "n_iter_", "loss_curve_", "final_gradient_norm_",
                 "C_", "scores_", "coefs_paths_", "classes_"):
        if hasattr(est, name):
            out[name] = np.asarray(getattr(est, name))
    out["predict_proba"] = est.predict_proba(X)
    out["decision_function"] = est.decision_function(X)
    out["predict"] = est.predict(X)
    return out


def panel():
    p = _problems()
    X, y, proba, w = p["X"], p["y"], p["proba"], p["weights"]
    results = {}
    for n_jobs in (1, 2, 3):
        def fit(key, X_, y_, sample_weight=None, **params):
            est = SoftmaxClassifier(n_jobs=n_jobs, **params).fit(
                X_, y_, sample_weight=sample_weight)
            results[f"{key}/n_jobs={n_jobs}"] = _model(est, X_)

        fit("dense", X, y)
        fit("dense_C10_tight", X, y, C=10.0, tol=1e-8, max_iter=500)
        fit("csr", p["X_csr"], y)
        fit("float32", X.astype(np.float32), y)
        fit("csr_float32", p["X_csr"].astype(np.float32), y)
        fit("soft", X, proba)
        fit("smoothing", X, y, label_smoothing=0.1)
        fit("soft_smoothing_f32", X.astype(np.float32), proba, label_smoothing=0.2)
        fit("sample_weight", X, y, sample_weight=w)
        fit("sample_weight_f32", X.astype(np.float32), y, sample_weight=w)
        fit("class_weight", X, y, class_weight="balanced")
        fit("class_weight_dict", X, y, sample_weight=w, class_weight={0: 2.0, 3: 0.5})
        fit("soft_class_weight", X, proba, class_weight="balanced")
        fit("no_intercept", X, y, fit_intercept=False)
        fit("binary", p["Xb"], p["yb"])
        fit("binary_no_intercept_csr", sp.csr_matrix(p["Xb"]), p["yb"], fit_intercept=False)
        fit("badly_scaled", p["X_bad"], y)
        fit("C_inf", X, y, C=np.inf, max_iter=30)

        warm = SoftmaxClassifier(n_jobs=n_jobs, warm_start=True, max_iter=5).fit(X, y)
        warm.set_params(C=3.0, max_iter=50).fit(X, y)
        results[f"warm_start/n_jobs={n_jobs}"] = _model(warm, X)

        for key, params in (("cv", {}), ("cv_log_loss", dict(scoring="neg_log_loss")),
                            ("cv_norefit", dict(refit=False)),
                            ("cv_balanced", dict(class_weight="balanced"))):
            cv = SoftmaxClassifierCV(Cs=4, n_jobs=n_jobs, **params).fit(X, y, sample_weight=w)
            results[f"{key}/n_jobs={n_jobs}"] = _model(cv, X)
        cv = SoftmaxClassifierCV(Cs=3, n_jobs=n_jobs).fit(p["X_csr"], proba)
        results[f"cv_soft_csr/n_jobs={n_jobs}"] = _model(cv, p["X_csr"])
        cv = SoftmaxClassifierCV(Cs=3, n_jobs=n_jobs).fit(p["Xb"], p["yb"])
        results[f"cv_binary/n_jobs={n_jobs}"] = _model(cv, p["Xb"])

        try:
            import dask
            import dask.array as da
        except ImportError:
            pass
        else:
            with dask.config.set(scheduler="sync"):
                Xd = da.from_array(X, chunks=(150, -1))
                yd = da.from_array(y, chunks=150)
                wd = da.from_array(w, chunks=150)
                for key, kw in (("dask", {}), ("dask_weighted", dict(sample_weight=wd)),
                                ("dask_balanced", dict(class_weight="balanced")),
                                ("dask_one_block", dict(chunks=None))):
                    params = ({"class_weight": kw.pop("class_weight")}
                              if "class_weight" in kw else {})
                    if kw.pop("chunks", 1) is None:
                        Xk, yk = da.from_array(X, chunks=-1), da.from_array(y, chunks=-1)
                    else:
                        Xk, yk = Xd, yd
                    est = SoftmaxClassifier(n_jobs=n_jobs, **params).fit(Xk, yk, **kw)
                    results[f"{key}/n_jobs={n_jobs}"] = _model(est, X)
                est = SoftmaxClassifier(n_jobs=n_jobs).fit(
                    da.from_array(X, chunks=(200, -1)), da.from_array(proba, chunks=(200, -1)))
                results[f"dask_soft/n_jobs={n_jobs}"] = _model(est, X)

        coef = np.random.default_rng(2).normal(size=(4, X.shape[1] + 1))
        for key, X_ in (("dense", X), ("csr", p["X_csr"]), ("f32", X.astype(np.float32))):
            for ls in (0.0, 0.1):
                loss, grad = crossentropy_loss_gradient(
                    coef, X_, y, sample_weight=w, l2_reg_strength=0.01,
                    label_smoothing=ls, n_jobs=n_jobs)
                results[f"loss_gradient/{key}/ls={ls}/n_jobs={n_jobs}"] = {
                    "loss": np.float64(loss), "grad": grad}
            loss, grad = crossentropy_loss_gradient(coef, X_, proba, n_jobs=n_jobs)
            results[f"loss_gradient_soft/{key}/n_jobs={n_jobs}"] = {
                "loss": np.float64(loss), "grad": grad}
        results.update(_kernel_cases(n_jobs))
        P = SoftmaxClassifier().fit(X, y).predict_proba(X)
        results[f"metric/n_jobs={n_jobs}"] = {
            "labels": np.float64(categorical_crossentropy(y, P)),
            "weighted": np.float64(categorical_crossentropy(y, P, sample_weight=w)),
            "soft": np.float64(categorical_crossentropy(proba, P)),
        }
    return results


def _kernel_cases(n_jobs):
    """Shapes that reach every path of the kernels: many row groups, the
    feature-vectorized products (float32 with 2 and 3 classes, float64 with
    2 where the loops have vectors; under AVX-512 also float64 with 3,
    float32 with 6 in one tile, and float32 with 9 at 784 features, a tile
    of 8 then one of 1), BLAS GEMM (more than 200 classes), many sparse
    chunks and feature blocks, sparse class slices (more than 32 classes)."""
    rng = np.random.default_rng(7)
    results = {}
    for key, (n, d, K) in (("micro", (60_000, 30, 7)), ("features", (8_000, 300, 3)),
                           ("features2", (8_000, 100, 2)), ("features6", (8_000, 300, 6)),
                           ("features9", (4_000, 784, 9)), ("blas", (12_000, 40, 230))):
        X = rng.normal(size=(n, d))
        y = rng.integers(0, K, size=n)
        w = rng.uniform(0.5, 2.0, size=n)
        coef = rng.normal(scale=0.2, size=(K, d + 1))
        for dtype in (np.float64, np.float32):
            Xd = X.astype(dtype)
            loss, grad = crossentropy_loss_gradient(coef, Xd, y, sample_weight=w,
                                                    l2_reg_strength=0.01, n_jobs=n_jobs)
            est = SoftmaxClassifier(max_iter=4, n_jobs=n_jobs).fit(Xd, y)
            results[f"kernel/{key}/{np.dtype(dtype).name}/n_jobs={n_jobs}"] = {
                "loss": np.float64(loss), "grad": grad, "coef_": est.coef_,
                "proba": est.predict_proba(Xd[:2000]),
                "log_proba": est.predict_log_proba(Xd[:2000])}
    n, d, K = 40_000, 300_000, 20
    nnz_per_row = 12
    cols = rng.zipf(1.3, size=n * nnz_per_row) % d
    X = sp.csr_matrix((rng.normal(size=n * nnz_per_row),
                       (np.repeat(np.arange(n), nnz_per_row), cols)), shape=(n, d))
    y = rng.integers(0, K, size=n)
    Q = rng.dirichlet(np.ones(K), size=n)
    coef = rng.normal(scale=0.2, size=(K, d + 1))
    for dtype in (np.float64, np.float32):
        for index in (np.int32, np.int64):
            Xs = X.astype(dtype)
            Xs.indices = Xs.indices.astype(index)
            Xs.indptr = Xs.indptr.astype(index)
            loss, grad = crossentropy_loss_gradient(coef, Xs, Q, label_smoothing=0.1,
                                                    n_jobs=n_jobs)
            est = SoftmaxClassifier(max_iter=3, n_jobs=n_jobs).fit(Xs, y)
            results[f"kernel/csr/{np.dtype(dtype).name}/{np.dtype(index).name}"
                    f"/n_jobs={n_jobs}"] = {
                "loss": np.float64(loss), "grad": grad, "coef_": est.coef_,
                "proba": est.predict_proba(Xs[:2000])}
    # More than 32 classes and many non-zeros per feature: the sparse
    # gather's class slices.
    rng = np.random.default_rng(8)
    n, d, nnz_per_row = 12_000, 2_000, 30
    X = sp.csr_matrix((rng.normal(size=n * nnz_per_row),
                       (np.repeat(np.arange(n), nnz_per_row),
                        rng.integers(0, d, size=n * nnz_per_row))), shape=(n, d))
    for K in (45, 100):
        y = rng.integers(0, K, size=n)
        coef = rng.normal(scale=0.2, size=(K, d + 1))
        for dtype in (np.float64, np.float32):
            Xs = X.astype(dtype)
            loss, grad = crossentropy_loss_gradient(coef, Xs, y, l2_reg_strength=0.01,
                                                    n_jobs=n_jobs)
            est = SoftmaxClassifier(max_iter=3, n_jobs=n_jobs).fit(Xs, y)
            results[f"kernel/csr_slices/K={K}/{np.dtype(dtype).name}/n_jobs={n_jobs}"] = {
                "loss": np.float64(loss), "grad": grad, "coef_": est.coef_,
                "proba": est.predict_proba(Xs[:2000])}
    return results


def compare(old, new):
    problems = []
    for key in sorted(set(old) | set(new)):
        if key not in old or key not in new:
            problems.append(f"{key}: only in {'old' if key in old else 'new'}")
            continue
        for name in sorted(set(old[key]) | set(new[key])):
            a, b = old[key].get(name), new[key].get(name)
            if a is None or b is None:
                problems.append(f"{key}.{name}: missing on one side")
            elif a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                problems.append(f"{key}.{name}: differs")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save")
    group.add_argument("--compare")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = panel()
    n_arrays = sum(len(v) for v in results.values())
    print(f"skcce from {skcce.__file__}: {len(results)} cases, {n_arrays} arrays")
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(results, f)
        return 0
    with open(args.compare, "rb") as f:
        old = pickle.load(f)
    problems = compare(old, results)
    for line in problems:
        print(line)
    print("bitwise identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
