"""Two builds of the loss kernels, side by side in one process.

Times one loss-and-gradient evaluation of this process's skcce kernels
("this") and of another build's ("other": another commit, another compiler)
on the benchmark suite's problems, interleaved round by round so that machine
noise hits both alike, and prints the medians and their ratio. The other
build's compiled modules are loaded from its site-packages (or build) folder
by file path; both builds get the same inputs, and the script checks that
their results agree (bitwise when they should be identical, ``--bitwise``).

    python benchmarks/ab_kernels.py --other /tmp/venv-clang/lib/python3.11/site-packages
    python benchmarks/ab_kernels.py --other OLD_SITE --problems dense-200k --threads 1,2

Sparse problems use the fit's cached tiles, as a fit's evaluations do.
Builds from before the kernels moved to ``skcce/_kernels`` (one module,
``skcce/_kernel``) are found too.
"""

import argparse
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from suite.problems import make_data, select_problems, with_dtype  # noqa: E402

from skcce._kernels import dense, sparse  # noqa: E402
from skcce._sparse import kernel_csr  # noqa: E402


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extension(folder, name):
    """The compiled module ``name`` in ``folder``, or None."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, name + suffix)
        if os.path.exists(path):
            return path
    return None


def other_kernels(site):
    """(dense module, sparse module) of the build installed in ``site``."""
    merged = _extension(os.path.join(site, "skcce"), "_kernel")
    if merged:
        module = _load(merged, "skcce._kernel")
        return module, module
    paths = [_extension(os.path.join(site, "skcce", "_kernels"), name)
             for name in ("dense", "sparse")]
    if not all(paths):
        raise SystemExit(f"no skcce kernels under {site}")
    return (_load(paths[0], "skcce._kernels.dense"),
            _load(paths[1], "skcce._kernels.sparse"))


def evaluation(module, sparse_module, problem, X, y, coef, n_threads):
    """A no-argument call of one evaluation with ``module``'s kernel."""
    K, d = problem.n_classes, problem.n_features
    coef_t = np.asfortranarray(coef).ravel(order="F").reshape(d + 1, K)
    intercept = coef_t[d].copy()
    if problem.is_sparse:
        weights = np.ascontiguousarray(coef_t[:d])
        tiles = sparse_module.csr_tile_cache(X.data, X.indices, X.indptr, d, K, n_threads)

        def call():
            grad = np.empty((d + 1, K))
            return sparse_module.csr_loss_gradient(
                X.data, X.indices, X.indptr, d, y, None, 0.0, None, weights, intercept,
                n_threads, grad, tiles), grad
    else:
        weights = np.ascontiguousarray(coef_t[:d], dtype=X.dtype)

        def call():
            grad = np.empty((d + 1, K))
            return module.dense_loss_gradient(X, y, None, 0.0, None, weights, intercept,
                                              n_threads, grad), grad
    return call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True,
                        help="site-packages (or build) folder of the other build")
    parser.add_argument("--problems", default=None, help="comma-separated suite problems")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bitwise", action="store_true",
                        help="require bitwise-identical results")
    args = parser.parse_args(argv)
    other_dense, other_sparse = other_kernels(args.other)
    names = args.problems.split(",") if args.problems else None
    print(f"this: {dense.__file__} ({dense.simd_loops()})\nother: {other_dense.__file__}")
    print(f"{'problem':12s} {'dtype':8s} {'threads':>7s} {'this (ms)':>10s} "
          f"{'other (ms)':>10s} {'this/other':>10s}")
    for problem in select_problems(names):
        X64, y = make_data(problem)
        y = np.ascontiguousarray(y, dtype=np.int32)
        coef = np.random.default_rng(1).normal(
            scale=0.1, size=(problem.n_classes, problem.n_features + 1))
        for dtype in args.dtypes.split(","):
            X = with_dtype(X64, np.dtype(dtype))
            if problem.is_sparse:
                X = kernel_csr(X)
            for n_threads in (int(t) for t in args.threads.split(",")):
                calls = {
                    "this": evaluation(dense, sparse, problem, X, y, coef, n_threads),
                    "other": evaluation(other_dense, other_sparse, problem, X, y, coef,
                                        n_threads),
                }
                (loss_a, grad_a), (loss_b, grad_b) = calls["this"](), calls["other"]()
                if args.bitwise:
                    assert loss_a == loss_b and np.array_equal(grad_a, grad_b), "differ"
                else:
                    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
                times = {key: [] for key in calls}
                with threadpool_limits(1, "blas"):
                    for r in range(args.rounds):
                        for key in (("this", "other") if r % 2 == 0 else ("other", "this")):
                            start = time.perf_counter()
                            calls[key]()
                            times[key].append(time.perf_counter() - start)
                this, other = (1e3 * statistics.median(times[k]) for k in ("this", "other"))
                print(f"{problem.name:12s} {dtype:8s} {n_threads:7d} {this:10.2f} "
                      f"{other:10.2f} {this / other:10.3f}", flush=True)


if __name__ == "__main__":
    main()
