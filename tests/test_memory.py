"""Memory: peaks of fit and predict_proba on large problems, and no growth.

A fit computes loss and gradient chunk by chunk and never holds an
n_samples x n_classes array; LogisticRegression holds several (logits,
per-sample gradient, targets). The bounds below are written from the problem's
numbers, with the measured peaks in each docstring; ``pytest -s`` prints the
peaks of a run.

tracemalloc counts allocations made through Python's and NumPy's allocators
(every NumPy array, including scipy's L-BFGS workspace) and the kernels' own
scratch buffers (allocated with ``PyMem_RawMalloc``): threads x chunk_rows x K
values, plus the dense kernel's group gradients (4 slots per thread of
n_features x K, padded to the vector width) and for the sparse kernel, per
thread, chunk_rows x (2K + 1) values and 12 bytes per non-zero of one chunk
(for 9 to 32 classes, the K logits per row rounded up to a multiple of 4;
with class slices, K > 32: chunk_rows x K rounded up to 8 logits, the
softmax's scratch for 65,536 // K rows, and one n_features x K copy of the
coefficients).

Each test warms up (imports, the BLAS controller) with a fit on a small slice
first, so that import-time allocations are not counted. The fits use
n_jobs=1: only the kernels' per-thread scratch above depends on the thread
count, and on a machine whose cores are busy with other processes two-thread
fits of this size took 5 to 10 times longer.

No growth: resident memory, read from /proc/self/statm after a warm-up and
gc.collect(), does not grow over many fits or kernel calls. Allocator noise is
a few hundred KiB; a leak of one small array per call would add megabytes over
these loops (e.g. 200 fits x 2,000 x 4 doubles = 12 MiB for a leaked n x K
array, 2,000 calls x 21 x 4 doubles = 1.3 MiB for a leaked gradient).
"""

import gc
import os
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

import skcce
from skcce import SoftmaxClassifier
from _memory import traced_peak
from _reference import LARGE_SLOT_SHAPE

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs Linux /proc")

MiB = 2**20


def _labels(scores, rng):
    """argmax of scores plus Gumbel noise: labels sampled from softmax(scores),
    so the classes overlap (the problem is not separable)."""
    scores += rng.gumbel(size=scores.shape)
    return np.argmax(scores, axis=1)


def _assert_fit_peaks(X, y, bound, n_by_k, label):
    """A 3-iteration fit peaks below ``bound``; LogisticRegression's 2-iteration
    fit holds more than two n x K float64 arrays, and more than ours."""
    ours, clf = traced_peak(lambda: SoftmaxClassifier(max_iter=3, n_jobs=1).fit(X, y))
    theirs, _ = traced_peak(lambda: LogisticRegression(max_iter=2).fit(X, y))
    print(f"\n{label} fit peaks: SoftmaxClassifier {ours / MiB:.1f} MiB "
          f"(bound {bound / MiB:.1f}), LogisticRegression {theirs / MiB:.1f} MiB "
          f"(n x K x 8 = {n_by_k / MiB:.1f} MiB)")
    assert clf.n_iter_[0] == 3
    assert ours < bound, f"peak {ours / MiB:.1f} MiB"
    assert theirs > 2 * n_by_k, f"LogisticRegression peak {theirs / MiB:.1f} MiB"
    assert ours < theirs


def test_dense_fit_peak_memory():
    """Dense 200,000 x 100 float64 (X: 153 MiB), K = 50, a few L-BFGS iterations.

    Measured: SoftmaxClassifier(max_iter=3) 7.8 MiB (label encoding: a few
    n-sized integer arrays; the L-BFGS state is ~40 (d + 1) K doubles
    = 1.5 MiB); LogisticRegression(max_iter=2) 157 MiB, i.e. more than two
    n x K float64 arrays (2 x 76 MiB). Bound for SoftmaxClassifier:
    0.10 X.nbytes + 2 MiB = 17.3 MiB, which no n x K float64 array (76 MiB)
    fits in. Memory does not grow with the number of iterations beyond the
    L-BFGS history, which the bound includes.
    """
    n, d, K = 200_000, 100, 50
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    y = _labels(X @ rng.normal(scale=0.3, size=(d, K)), rng)
    assert len(np.unique(y)) == K
    SoftmaxClassifier(max_iter=2, n_jobs=1).fit(X[:2000], y[:2000])  # warm-up
    LogisticRegression(max_iter=2).fit(X[:2000], y[:2000])

    _assert_fit_peaks(X, y, bound=0.10 * X.nbytes + 2 * MiB, n_by_k=n * K * 8,
                      label="dense")


def test_wide_float32_fit_peak_memory():
    """Dense float32 20,000 x 784 (X: 60 MiB), K = 10: the fit's temporaries
    stay small. No float64 copy of X: the per-column statistics that decide
    whether to rescale the optimizer's coordinates read float32 X in place.

    Measured 2.9 MiB with n_jobs=1 (3.3 MiB with 2 threads); the dense
    kernel's group gradients (d x 16 padded float64 columns each) take 4
    slots per thread, not one buffer per group (61 groups: 5.8 MiB, which
    made the peak 8.4 MiB). Bound: 0.10 X.nbytes + 2 MiB = 8.0 MiB; a
    float64 copy of X would be 120 MiB."""
    n, d, K = 20_000, 784, 10
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = _labels(X @ rng.normal(scale=0.1, size=(d, K)).astype(np.float32), rng)
    SoftmaxClassifier(max_iter=2, n_jobs=1).fit(X[:500], y[:500])  # warm-up
    ours, _ = traced_peak(lambda: SoftmaxClassifier(max_iter=3, n_jobs=1).fit(X, y))
    assert ours < 0.10 * X.nbytes + 2 * MiB, f"peak {ours / MiB:.1f} MiB"


def _random_csr(n, d, nnz_per_row, rng):
    """CSR with ~nnz_per_row uniformly placed Gaussian non-zeros per row (the
    rare repeated columns are summed), int32 indices."""
    rows = np.repeat(np.arange(n, dtype=np.int32), nnz_per_row)
    cols = rng.integers(0, d, size=n * nnz_per_row, dtype=np.int32)
    X = sp.csr_matrix((rng.standard_normal(rows.size), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    return X


def test_sparse_fit_peak_memory():
    """CSR 200,000 x 10,000, ~20 non-zeros per row (data + indices + indptr:
    47 MiB), K = 50: P = K (d + 1) = 500,050 parameters.

    The bound is the fit's sorted copy of X (12 bytes per non-zero: 46 MiB)
    + 0.10 (data + indices + indptr bytes) + 2 MiB + 42 P doubles:

    - with P >= 100,000 L-BFGS is skcce._lbfgs: its m = 10 pairs take 2m P
      doubles (allocated at the first pair), plus the iterate, gradient,
      trial point and direction; with the fit's gradient, the recorder's copy
      of the last iterate, the penalty's temporaries and the fitted model,
      28 P measured in total (108 MiB beside the tiles);
    - the bound keeps 42 P (160 MiB) + 6.7 MiB, what scipy's L-BFGS-B (scipy
      1.17) needed here: (2m + 5) P doubles of workspace, 3P int32, its bound
      arrays and its ScalarFunction's copies, 40.2 P measured with the fit;
    - the fit sorts X into the sparse kernel's tiles once and keeps them
      (4-byte key + 8-byte value per non-zero), so that no evaluation sorts;
    - the sparse kernel has no per-thread gradient copies; its chunk
      buffers (with class slices of 32: 2,048 rows x 56 logits and 1,310 rows
      x (K + 3) of softmax scratch, 1.4 MiB on one thread) and its copy of the
      coefficients (P doubles) are not held at the peak, which falls inside
      the optimizer's step.

    LogisticRegression(max_iter=2) measured 307 MiB: its own L-BFGS state plus
    n x K float64 arrays (76 MiB each).
    """
    n, d, K = 200_000, 10_000, 50
    rng = np.random.default_rng(1)
    X = _random_csr(n, d, 20, rng)
    y = _labels(np.asarray(X @ rng.normal(size=(d, K))), rng)
    assert len(np.unique(y)) == K
    X_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    n_params = K * (d + 1)
    SoftmaxClassifier(max_iter=2, n_jobs=1).fit(X[:2000], y[:2000])  # warm-up
    LogisticRegression(max_iter=2).fit(X[:2000], y[:2000])

    tiles = X.nnz * (4 + 8)
    _assert_fit_peaks(X, y, bound=tiles + 0.10 * X_bytes + 2 * MiB + 42 * n_params * 8,
                      n_by_k=n * K * 8, label="sparse")


def test_dense_predict_proba_peak_memory():
    """predict_proba on dense 200,000 x 100 float64 with K = 50 allocates the
    result (76.3 MiB) and little else: measured 76.3 MiB, asserted at most the
    result's nbytes + 2 MiB (no n x K logits next to the probabilities, no
    copy of X). The probabilities are checked against NumPy on a slice."""
    n, d, K = 200_000, 100, 50
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, d))
    y = _labels(X[:5000] @ rng.normal(scale=0.3, size=(d, K)), rng)
    clf = SoftmaxClassifier(max_iter=20, n_jobs=1).fit(X[:5000], y)
    assert len(clf.classes_) == K
    clf.predict_proba(X[:1000])  # warm-up
    peak, proba = traced_peak(lambda: clf.predict_proba(X))
    print(f"\npredict_proba peak {peak / MiB:.1f} MiB, result "
          f"{proba.nbytes / MiB:.1f} MiB")
    assert proba.shape == (n, K) and proba.dtype == np.float64
    assert peak <= proba.nbytes + 2 * MiB, f"peak {peak / MiB:.1f} MiB"
    z = X[-500:] @ clf.coef_.T + clf.intercept_
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba[-500:], expected, rtol=1e-12, atol=1e-15)


def _assert_traced_scratch(kernel, call, expected):
    """The traced peak of ``call()`` (after a warm-up call) is the expected
    scratch size, within 1 MiB of bookkeeping."""
    call()
    peak, _ = traced_peak(call)
    print(f"\n{kernel} kernel scratch {peak / MiB:.2f} MiB (expected {expected / MiB:.2f})")
    assert expected <= peak <= expected + MiB, (kernel, peak / MiB, expected / MiB)
    # Released and untracked on return: nothing of it is still traced.
    tracemalloc.start()
    try:
        call()
        still_traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert still_traced < 64 * 1024, (kernel, still_traced)


def test_kernel_scratch_is_traced_and_bounded():
    """The kernels' scratch buffers are visible to tracemalloc, and of the
    size their design says.

    Sparse, 2 threads: CSR 20,000 x 5,000 with 50 non-zeros per row, K = 20:
    chunks of 65,536 // K = 3,276 rows (163,800 non-zeros); per thread a tile
    of 12 bytes per non-zero and 2K + 1 float64 per row (2.9 MiB), one
    allocation for all threads; K = 17, the logits' rows padded to 20. Dense:
    20,000 x 300, K = 100: one float64 gradient of d x K per slot, 4 slots
    per thread for the 47 groups of rows (1.8 MiB; one buffer per group, as
    before the slots, was 10.8 MiB); with 2,000 features and 1,000 classes,
    one slot of 16 MB per thread. Outputs are preallocated, so the peak is
    the scratch plus small bookkeeping (chunk bounds, block offsets)."""
    from skcce._kernels import dense, sparse

    rng = np.random.default_rng(3)
    n, d, T = 20_000, 5_000, 2
    X = _random_csr(n, d, 50, rng)
    # K = 17: the logits' rows padded to 20 values (whole 32-byte vectors).
    for K, z_stride in ((20, 20), (17, 20)):
        y = rng.integers(0, K, size=n).astype(np.int32)
        weights_t = rng.normal(size=(d, K))
        grad_t = np.empty((d + 1, K))
        chunk_rows = sparse.sparse_chunk_rows(K)
        largest_nnz = np.diff(X.indptr[np.r_[0:n:chunk_rows, n]]).max()
        expected = T * (largest_nnz * 12 + chunk_rows * (z_stride + K + 1) * 8)
        call = lambda: sparse.csr_loss_gradient(  # noqa: E731
            X.data, X.indices, X.indptr, d, y, None, 0.0, None, weights_t, np.zeros(K), T,
            grad_t)
        _assert_traced_scratch("sparse", call, expected)

    # Class slices (K = 100 > 32, 50 non-zeros per feature): chunks of
    # 65,536 // 32 = 2,048 rows, logits padded to 104 values per row, the
    # softmax scratch for 655 rows, and one copy of W.T (d x K, 0.4 MiB).
    n, d, K = 20_000, 500, 100
    X = _random_csr(n, d, 25, rng)
    y = rng.integers(0, K, size=n).astype(np.int32)
    weights_t = rng.normal(size=(d, K))
    grad_t = np.empty((d + 1, K))
    n_slices, width = sparse.sparse_class_slices(K, X.nnz, d)
    assert (n_slices, width) == (4, 32)
    chunk_rows = sparse.sparse_chunk_rows(K, width)
    softmax_rows = sparse.sparse_chunk_rows(K)
    largest_nnz = np.diff(X.indptr[np.r_[0:n:chunk_rows, n]]).max()
    expected = (T * (largest_nnz * 12 + chunk_rows * 104 * 8 + softmax_rows * (K + 3) * 8)
                + d * K * 8)
    call = lambda: sparse.csr_loss_gradient(  # noqa: E731
        X.data, X.indices, X.indptr, d, y, None, 0.0, None, weights_t, np.zeros(K), T,
        grad_t)
    _assert_traced_scratch("sparse, class slices", call, expected)

    n, d, K = 20_000, 300, 100
    X = rng.standard_normal((n, d))
    y = rng.integers(0, K, size=n).astype(np.int32)
    weights_t = rng.normal(size=(d, K))
    grad_t = np.empty((d + 1, K))
    _, _, n_groups = dense.dense_partition(n, d, K, 8)
    slot_bytes = d * dense.microkernel_width(K, 8) * 8
    n_slots = dense.dense_merge_slots(n_groups, T, slot_bytes)
    assert n_slots == 4 * T < n_groups
    expected = n_slots * slot_bytes
    call = lambda: dense.dense_loss_gradient(  # noqa: E731
        X, y, None, 0.0, None, weights_t, np.zeros(K), T, grad_t)
    _assert_traced_scratch("dense", call, expected)

    # Slots of 16 MB (2,000 features, 1,000 classes): one per thread, not 4.
    # float32 on BLAS adds a float32 gradient per thread, logits and softmax
    # scratch per chunk of rows.
    n, d, K = LARGE_SLOT_SHAPE
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, K, size=n).astype(np.int32)
    weights_t = rng.normal(scale=0.01, size=(d, K)).astype(np.float32)
    grad_t = np.empty((d + 1, K))
    chunk_rows, _, n_groups = dense.dense_partition(n, d, K, 4)
    slot_bytes = d * K * 8
    assert dense.dense_merge_slots(n_groups, T, slot_bytes) == T < n_groups
    expected = T * (slot_bytes + d * K * 4 + chunk_rows * K * 4 + chunk_rows * (K + 3) * 8)
    call = lambda: dense.dense_loss_gradient(  # noqa: E731
        X, y, None, 0.0, None, weights_t, np.zeros(K), T, grad_t)
    _assert_traced_scratch("dense, large slots", call, expected)


def _rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _problem(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, d))
    X[np.arange(n), y % d] += 1.0
    return X, y


@needs_proc
def test_repeated_fits_do_not_grow_resident_memory():
    X, y = _problem(2000, 20, 4)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    configs = [dict(n_jobs=2), dict(n_jobs=1, class_weight="balanced"),
               dict(n_jobs=2, label_smoothing=0.1), dict(n_jobs=2, C=np.inf)]

    def fit(i):
        clf = SoftmaxClassifier(max_iter=30, **configs[i % 4])
        return clf.fit(X, y, sample_weight=sw if i % 3 == 0 else None)

    models = [fit(i) for i in range(20)]  # warm-up: imports, pools, caches
    start = _rss()
    for i in range(200):
        last = fit(i)
    grown = _rss() - start
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 200 fits"
    # the fits were real and deterministic: fit 199 has the arguments of fit
    # 199 % 12 (configs repeat every 4, weights every 3)
    assert np.array_equal(last.coef_, models[199 % 12].coef_)


@needs_proc
def test_repeated_kernel_calls_do_not_grow_resident_memory():
    X, y = _problem(2000, 20, 4)
    X32 = X.astype(np.float32)
    Q = np.random.default_rng(2).dirichlet(np.ones(4), size=len(y))
    coef = np.random.default_rng(3).normal(scale=0.1, size=(4, 21))

    def call(i):
        target = Q if i % 2 else y
        data = X32 if i % 3 == 0 else X
        return skcce.crossentropy_loss_gradient(coef, data, target, n_jobs=2,
                                                l2_reg_strength=1e-3)

    first = [call(i) for i in range(20)]  # warm-up
    start = _rss()
    for i in range(2000):
        last = call(i)
    grown = _rss() - start
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 2000 calls"
    # deterministic: call 1999 has the arguments of call 1999 % 6 (period 6)
    assert last[0] == first[1999 % 6][0]
    assert np.array_equal(last[1], first[1999 % 6][1])


def test_fit_peak_memory_is_small_and_below_logistic_regression():
    """tracemalloc peak of one fit on 100,000 x 50 float64, K = 10.

    Measured on the reference machine (sklearn 1.9.1): SoftmaxClassifier
    ~3.9 MiB (label encoding: a few n-sized int arrays), LogisticRegression
    ~17 MiB (n x K logits, gradient and one-hot targets, float64); n*K*8 is
    7.6 MiB and X is 38 MiB. The bound allows 10% of X plus 2 MiB: no
    n x K float64 array fits in it together with the label encoding.
    """
    n, d, k = 100_000, 50, 10
    X, y = _problem(n, d, k)
    SoftmaxClassifier(max_iter=2).fit(X[:500], y[:500])  # warm-up imports
    LogisticRegression(max_iter=2).fit(X[:500], y[:500])

    ours, _ = traced_peak(lambda: SoftmaxClassifier(max_iter=20).fit(X, y))
    theirs, _ = traced_peak(lambda: LogisticRegression(max_iter=2).fit(X, y))
    n_by_k = n * k * 8
    assert ours < 0.10 * X.nbytes + 2 * MiB, f"peak {ours / MiB:.2f} MiB"
    assert theirs > n_by_k, f"LogisticRegression peak {theirs / MiB:.2f} MiB"
    assert ours < theirs
