"""Tests of the public loss/gradient function ``skcce.crossentropy_loss_gradient``
and of the compiled kernel module.

Every numerical result is compared against an independent reference: scikit-learn's
``LinearModelLoss(HalfMultinomialLoss)`` (the spec's semantic reference), a plain NumPy
implementation based on ``scipy.special.log_softmax``, or central finite differences.
"""

import importlib.machinery
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

import skcce
from skcce._kernels import dense, reductions
from skcce._threads import effective_n_threads
from _reference import (
    _targets_matrix,
    assert_grad_close,
    kernel_loss_gradient,
    make_loss_problem,
    numpy_loss_gradient,
    sklearn_loss_gradient,
)

# Tolerances from the spec.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
ATOL_FACTOR = {np.float64: 1e-12, np.float32: 1e-5}


# ---------------------------------------------------------------------------
# Compiled extension
# ---------------------------------------------------------------------------


KERNEL_MODULES = ("dense", "sparse", "reductions", "predict")


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernels_are_compiled_extensions(name):
    """The kernels are compiled extension modules, not Python shims."""
    module = importlib.import_module(f"skcce._kernels.{name}")
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader)


def test_import_fails_without_compiled_kernel():
    """If the compiled kernel cannot be imported, ``import skcce`` must fail rather
    than silently fall back to a pure-Python implementation (run in a fresh
    interpreter with the extension module blocked)."""
    import subprocess

    code = (
        "import sys\n"
        "sys.modules['skcce._kernels.dense'] = None  # makes the import fail\n"
        "try:\n"
        "    import skcce\n"
        "    skcce.crossentropy_loss_gradient\n"
        "except ImportError:\n"
        "    print('IMPORT-FAILED')\n"
        "else:\n"
        "    print('IMPORTED')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "IMPORT-FAILED" in res.stdout, (res.stdout, res.stderr)


def test_unbuilt_source_tree_says_so(tmp_path):
    """Importing a copy of the sources without the extensions explains itself,
    instead of a 'partially initialized module' circular-import error."""
    import shutil
    import subprocess
    from pathlib import Path

    package = Path(skcce.__file__).parent
    shutil.copytree(package, tmp_path / "skcce",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    # -S: no site packages, so no installed (or editable) skcce shadows the copy.
    res = subprocess.run([sys.executable, "-S", "-c", "import skcce"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "has not been built" in res.stderr, res.stderr
    assert "partially initialized" not in res.stderr


def test_thread_counts_follow_the_build_flavour():
    """A serial build runs one thread whatever n_jobs; an OpenMP build honours it."""
    expected = 3 if reductions.openmp_enabled() else 1
    assert effective_n_threads(3) == expected


# ---------------------------------------------------------------------------
# Agreement with scikit-learn and a plain NumPy reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_jobs", [1, 2, 4])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize(
    "n, d, K",
    [(1, 4, 3), (7, 5, 2), (7, 3, 10), (5000, 13, 3), (5000, 6, 10), (3001, 9, 2)],
)
def test_matches_sklearn_and_numpy(n, d, K, fit_intercept, weighted, n_jobs, dtype):
    """Loss and gradient equal sklearn's LinearModelLoss and a NumPy reference.

    Sizes include n=1 and n=7 (smaller than any row block) and several thousand
    rows (spanning many row blocks / thread chunks).  float32 X is compared with
    the float64 reference computed on the very same (exactly representable) values.
    """
    coef, X, y, sw = make_loss_problem(
        n, d, K, dtype=dtype, fit_intercept=fit_intercept, weighted=weighted,
        seed=n * 31 + K,
    )
    l2 = 0.37
    loss, grad = skcce.crossentropy_loss_gradient(
        coef, X, y, sample_weight=sw, l2_reg_strength=l2,
        fit_intercept=fit_intercept, n_jobs=n_jobs,
    )
    assert np.isscalar(loss) or np.ndim(loss) == 0
    grad = np.asarray(grad)
    assert grad.shape == coef.shape
    assert grad.dtype == np.float64

    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, l2, fit_intercept)
    np_loss, np_grad = numpy_loss_gradient(coef, X, y, sw, l2, fit_intercept)
    # sanity of the two references against each other
    assert_allclose(np_loss, ref_loss, rtol=1e-12)
    assert_grad_close(np_grad, ref_grad, rtol=1e-11, atol_factor=1e-12)

    rtol, atol_f = RTOL[dtype], ATOL_FACTOR[dtype]
    assert_allclose(float(loss), ref_loss, rtol=rtol)
    assert_grad_close(grad, ref_grad, rtol=rtol, atol_factor=atol_f)
    assert_allclose(float(loss), np_loss, rtol=rtol)
    assert_grad_close(grad, np_grad, rtol=rtol, atol_factor=atol_f)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [2, 4, 5, 8, 9, 12, 13, 16, 17, 24, 31, 32, 33, 47, 71, 200,
                               201])
@pytest.mark.parametrize("d", [1, 3, 9, 70, 300])
def test_matches_numpy_across_class_and_feature_counts(K, d, dtype):
    """Every tile shape of the dense products: classes padded to the vector
    width in tiles of up to 32 (float64) or 64 (float32) columns and their
    remainders, feature tiles of 2 to 8 with their remainders, blocks of 128
    features and a partial one, the BLAS path above 200 classes, and a row
    count that is not a multiple of the logits tile's rows."""
    coef, X, y, sw = make_loss_problem(
        1003, d, K, dtype=dtype, fit_intercept=True, weighted=True, seed=K * 100 + d,
    )
    loss, grad = skcce.crossentropy_loss_gradient(
        coef, X, y, sample_weight=sw, l2_reg_strength=0.1, n_jobs=2,
    )
    np_loss, np_grad = numpy_loss_gradient(coef, X, y, sw, 0.1, True)
    assert_allclose(float(loss), np_loss, rtol=RTOL[dtype])
    assert_grad_close(grad, np_grad, rtol=RTOL[dtype], atol_factor=ATOL_FACTOR[dtype])


def _assert_reference_and_reproducible(n, d, K, dtype, seed):
    """The public function on a weighted problem: equal to the NumPy reference,
    and bitwise the same for n_jobs 1, 2 and 3."""
    coef, X, y, sw = make_loss_problem(n, d, K, dtype=dtype, fit_intercept=True,
                                       weighted=True, seed=seed)
    results = [skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                                l2_reg_strength=0.1, n_jobs=n_jobs)
               for n_jobs in (1, 2, 3)]
    np_loss, np_grad = numpy_loss_gradient(coef, X, y, sw, 0.1, True)
    loss, grad = results[0]
    assert_allclose(float(loss), np_loss, rtol=RTOL[dtype])
    assert_grad_close(grad, np_grad, rtol=RTOL[dtype], atol_factor=ATOL_FACTOR[dtype])
    for other_loss, other_grad in results[1:]:
        assert float(other_loss) == float(loss)
        assert np.array_equal(other_grad, grad)


def _expected_blas(n_features, n_classes, itemsize):
    """Whether the products should run in BLAS: above 200 classes, and where
    the loops' vectors have 32 bytes or less above 32 classes (the baseline's
    from 8 features; AVX2's from 48 where a row of W.T exceeds 256 bytes)."""
    if n_classes > 200:
        return True
    if n_classes <= 32 or dense.vector_bytes() >= 64:
        return False
    if dense.simd_loops() == "base":
        return n_features >= 8
    return n_features >= 48 and n_classes * itemsize > 256


@pytest.mark.parametrize("K", [200, 230])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_classes_and_features_in_long_chunks(dtype, K):
    """Many classes (micro-kernels or BLAS up to 200, BLAS above) with W too
    large to stay in cache (d x K x itemsize above 512 KiB), whose chunks hold
    at least 256 rows whatever their bytes: equal to the NumPy reference, and
    bitwise the same for every thread count, with a row count that leaves
    partial chunks and groups."""
    n, d = 1500, 700
    itemsize = np.dtype(dtype).itemsize
    assert dense.product_kernels(d, K, itemsize) == (
        "blas" if _expected_blas(d, K, itemsize) else "classes")
    assert dense.row_partition(d, K, np.dtype(dtype).itemsize)[0] >= 256
    _assert_reference_and_reproducible(n, d, K, dtype, seed=7)


@pytest.mark.parametrize("n_features, n_classes", [(3000, 5), (3000, 20), (6000, 10)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_rows_in_chunks_of_many_rows(dtype, n_features, n_classes):
    """Rows of thousands of features: chunks of up to 64 rows within 768 KiB
    of X, more than 128 KiB of X would hold: equal to the NumPy reference,
    and bitwise the same for every thread count, with partial chunks."""
    row_bytes = n_features * np.dtype(dtype).itemsize
    chunk_rows = dense.row_partition(n_features, n_classes, np.dtype(dtype).itemsize)[0]
    assert chunk_rows == min(64, 786432 // row_bytes) > max(8, 131072 // row_bytes)
    _assert_reference_and_reproducible(3 * chunk_rows + 5, n_features, n_classes, dtype,
                                       seed=11)


@pytest.mark.parametrize("n_classes", [33, 47, 64, 65, 100, 200])
@pytest.mark.parametrize("n_features", [4, 8, 20, 48, 301])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blas_up_to_200_classes_with_narrow_vectors(dtype, n_features, n_classes):
    """Where the loops' vectors hold 32 bytes or less, BLAS takes 33 to 200
    classes from the rule's feature counts and row bytes (64-byte vectors keep
    the micro-kernels); either way: equal to the NumPy reference, and bitwise
    the same for every thread count."""
    itemsize = np.dtype(dtype).itemsize
    assert dense.product_kernels(n_features, n_classes, itemsize) == (
        "blas" if _expected_blas(n_features, n_classes, itemsize) else "classes")
    _assert_reference_and_reproducible(1203, n_features, n_classes, dtype, seed=17)


@pytest.mark.parametrize("n_classes", [2, 5, 33, 200])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blas_products_for_any_class_count(dtype, n_classes):
    """products="blas" forced for any class count (its logits and W.T unpadded):
    equal to the NumPy reference, as the class-vectorized kernels are."""
    rng = np.random.default_rng(n_classes)
    n, d = 700, 37
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, n_classes, n).astype(np.int32)
    weights_t = (0.3 * rng.normal(size=(d, n_classes))).astype(dtype)
    intercept = rng.normal(size=n_classes)
    ref_loss, ref_grad = kernel_loss_gradient(X, y, weights_t, intercept)
    rtol = RTOL[dtype]
    for products in ("blas", "classes"):
        grad = np.empty((d + 1, n_classes))
        loss = dense.dense_loss_gradient(X, y, None, 0.0, None, weights_t, intercept, 2,
                                         grad, products=products)
        assert_allclose(loss, ref_loss, rtol=rtol)
        assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * np.abs(ref_grad).max())


@pytest.mark.parametrize("n_features, n_classes, long_chunks",
                         [(54, 300, True), (100, 1000, True), (20, 1000, False)])
def test_float32_blas_chunk_rows(n_features, n_classes, long_chunks):
    """float32 on the BLAS path adds each chunk's float32 gradient to the
    float64 one: chunks hold at least 256 rows where their logits and scratch
    still fit 1 MiB (K = 300) or the gradient exceeds 256 KiB (d = 100,
    K = 1,000), else as many as the scratch bound allows. Either way: equal
    to the NumPy reference, and bitwise the same for every thread count."""
    chunk_rows = dense.row_partition(n_features, n_classes, 4)[0]
    scratch_row_bytes = n_classes * 4 + (n_classes + 3) * 8
    if long_chunks:
        assert chunk_rows >= 256
    else:
        assert chunk_rows < 256 and chunk_rows * scratch_row_bytes <= 262144
    _assert_reference_and_reproducible(1203, n_features, n_classes, np.float32, seed=5)


@pytest.mark.parametrize("n_classes", [20, 100, 1000])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_few_features_many_classes_in_short_chunks(dtype, n_classes):
    """With 8 features a chunk's logits and residual scratch, not its rows of X,
    bound its length (both kernel paths), and a block's flops its rows: equal to
    the NumPy reference, and bitwise the same for every thread count, with
    partial chunks and groups."""
    # Two or more groups of 1 MiB of X (16,384 float64 rows), fewer rows for
    # the largest K to bound the reference's memory.
    n, d = (33_013 if n_classes < 1000 else 17_013), 8
    itemsize = np.dtype(dtype).itemsize
    chunk_rows = dense.row_partition(d, n_classes, itemsize)[0]
    scratch_row_bytes = dense.microkernel_width(n_classes, itemsize) * itemsize \
        + (n_classes + 3) * 8
    assert chunk_rows * d * itemsize < 131072  # shorter than X alone would allow
    # (float32 on the BLAS path: chunks of at least 256 rows only where their
    # scratch fits 1 MiB or the gradient exceeds 256 KiB; neither here)
    assert chunk_rows * scratch_row_bytes <= 262144
    if n_classes == 1000:
        # Blocks of 64 MFLOP, not 1 MiB of X (16,384 rows): groups for many threads.
        assert dense.dense_partition(n, d, n_classes, itemsize)[2] >= 8
    _assert_reference_and_reproducible(n, d, n_classes, dtype, seed=11)


@pytest.mark.parametrize("n_classes", [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
@pytest.mark.parametrize("n_features", [32, 40, 64, 100, 128, 301, 1000])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_long_rows_few_classes(dtype, n_features, n_classes):
    """Rows of at least 32 features take the kernels vectorized over
    features where class padding would leave half the lanes empty (float32
    with K <= 4, float64 with K = 2), or rows of at least 64 features in the
    baseline build; rows of 8 vectors where, under AVX-512, the class tile
    is one 32-byte vector and a quarter or more of it padding (float32 with
    K = 5 or 6, float64 with K = 3); and rows of at least 64 such vectors
    where it is one (float64 with K = 4, float32 with K = 7 or 8) or where
    it is one 64-byte vector with 37% padding or more (float64 with K = 5,
    float32 with K = 9 or 10);
    other shapes keep the class-vectorized ones. Either way: equal to the
    NumPy reference, bitwise the same for every thread count, with partial
    chunks, tiles and vectors."""
    # (A build without vector kernels pads nothing and keeps the class layout.)
    vector_build = dense.microkernel_width(1, 4) > 1
    wide = dense.vector_bytes() >= 64
    f32, f64 = dtype is np.float32, dtype is np.float64
    eight_vectors = n_features >= (64 if f32 else 32)
    half_padded = n_features >= (64 if dense.simd_loops() == "base" else 32) and (
        f32 and n_classes <= 4 or f64 and n_classes == 2)
    by_features = half_padded or (
        # (float64 with K = 2: also from 32 features where the baseline's
        # rule alone would wait for 64, in a baseline built with 64-byte vectors)
        wide and (eight_vectors and (f32 and n_classes <= 6 or f64 and n_classes <= 3)
                  or f64 and n_classes <= 5 and n_features >= 256
                  or f32 and n_classes <= 10 and n_features >= 512))
    expected = "features" if by_features and vector_build else "classes"
    assert dense.product_kernels(n_features, n_classes, np.dtype(dtype).itemsize) == expected
    _assert_reference_and_reproducible(3001, n_features, n_classes, dtype, seed=13)


@pytest.mark.parametrize("n_classes", [2, 3, 5, 8, 13, 17, 32])
@pytest.mark.parametrize("n_features", [1, 7, 9, 15, 33, 63, 130])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_micro_kernel_layouts(dtype, n_features, n_classes):
    """The kernels vectorized over classes and those vectorized over features,
    whichever the shape selects, on soft targets with label smoothing and
    weights: each equal to the NumPy reference in float64, and bitwise the
    same for every thread count (with 130 features the rows make several
    groups, so the threads share them)."""
    rng = np.random.default_rng(n_features * 100 + n_classes)
    n = 4099
    if n_features == 130:
        assert dense.dense_partition(n, n_features, n_classes, np.dtype(dtype).itemsize)[2] > 2
    X = rng.normal(size=(n, n_features)).astype(dtype)
    Q = rng.dirichlet(np.ones(n_classes), size=n)
    sw = rng.uniform(0.5, 2.0, n)
    weights_t = (rng.normal(size=(n_features, n_classes)) * 0.3).astype(dtype)
    intercept = rng.normal(size=n_classes)
    smoothing = 0.1
    targets = _targets_matrix(Q, n_classes, smoothing)
    ref_loss, ref_grad = kernel_loss_gradient(X, targets, weights_t, intercept, sw)
    rtol = RTOL[dtype]
    for products in ("classes", "features"):
        results = []
        for n_threads in (1, 2, 3):
            grad = np.empty((n_features + 1, n_classes))
            loss = dense.dense_loss_gradient(X, None, Q, smoothing, sw, weights_t, intercept,
                                             n_threads, grad, products=products)
            results.append((loss, grad))
        loss, grad = results[0]
        assert_allclose(loss, ref_loss, rtol=rtol)
        assert_grad_close(grad, ref_grad, rtol=rtol, atol_factor=ATOL_FACTOR[dtype])
        for other_loss, other_grad in results[1:]:
            assert other_loss == loss and np.array_equal(other_grad, grad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect via libc")
@pytest.mark.parametrize("n_features", [15, 63, 100])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_products_read_nothing_past_x(dtype, n_features):
    """X's last row ends where an unreadable page starts: both product
    layouts (the feature-vectorized ones load each row's last, partial
    vector with masks) read nothing past it, and equal the NumPy
    reference."""
    import ctypes
    import mmap

    n, K = 301, 3
    itemsize = np.dtype(dtype).itemsize
    page = mmap.PAGESIZE
    data_pages = -(-n * n_features * itemsize // page)
    buffer = mmap.mmap(-1, (data_pages + 1) * page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(start + data_pages * page, page, 0) == 0  # PROT_NONE
    try:
        offset = data_pages * page - n * n_features * itemsize
        X = np.frombuffer(buffer, dtype=dtype, count=n * n_features, offset=offset)
        X = X.reshape(n, n_features)
        rng = np.random.default_rng(n_features)
        X[:] = rng.normal(size=(n, n_features))
        y = rng.integers(0, K, n).astype(np.int32)
        weights_t = (rng.normal(size=(n_features, K)) * 0.3).astype(dtype)
        ref_loss, ref_grad = kernel_loss_gradient(X, y, weights_t, np.zeros(K))
        for products in ("classes", "features"):
            grad = np.empty((n_features + 1, K))
            loss = dense.dense_loss_gradient(X, y, None, 0.0, None, weights_t, np.zeros(K),
                                             2, grad, products=products)
            assert_allclose(loss, ref_loss, rtol=RTOL[dtype])
            assert_grad_close(grad, ref_grad, rtol=RTOL[dtype], atol_factor=ATOL_FACTOR[dtype])
    finally:
        # Readable again before the mapping is freed with its last view.
        libc.mprotect(start + data_pages * page, page, 3)  # PROT_READ | PROT_WRITE


@pytest.mark.parametrize("n_classes, products", [(240, "features"), (240, "classes"),
                                                  (201, "classes"), (5, "gemm")])
@pytest.mark.parametrize("n_samples", [4, 0])
def test_product_kernels_choice_is_checked(n_classes, products, n_samples):
    X = np.ones((n_samples, 3))
    grad = np.empty((4, n_classes))
    with pytest.raises(ValueError, match=f"not available for {n_classes} classes"):
        dense.dense_loss_gradient(X, np.zeros(n_samples, np.int32), None, 0.0, None,
                                  np.ones((3, n_classes)), np.zeros(n_classes), 1, grad,
                                  products=products)


def test_feature_layout_with_read_only_coefficients():
    """The class-major copy of W.T the feature layout makes is its own, so
    read-only coefficients (one feature: .T is already contiguous) work; both
    layouts equal the NumPy reference."""
    rng = np.random.default_rng(5)
    n, K = 50, 3
    X = rng.normal(size=(n, 1))
    y = rng.integers(0, K, n).astype(np.int32)
    weights_t = rng.normal(size=(1, K))
    weights_t.flags.writeable = False
    ref_loss, ref_grad = kernel_loss_gradient(X, y, weights_t, np.zeros(K))
    for products in ("classes", "features"):
        grad = np.empty((2, K))
        loss = dense.dense_loss_gradient(X, y, None, 0.0, None, weights_t, np.zeros(K), 1,
                                         grad, products=products)
        assert_allclose(loss, ref_loss, rtol=1e-12)
        assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_defaults_match_sklearn(fit_intercept):
    """Default arguments: no sample_weight, no penalty, intercept per argument."""
    coef, X, y, _ = make_loss_problem(50, 4, 3, fit_intercept=fit_intercept, seed=3)
    loss, grad = skcce.crossentropy_loss_gradient(
        coef, X, y, fit_intercept=fit_intercept
    )
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, None, 0.0, fit_intercept)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-12, atol_factor=1e-12)


def test_default_fit_intercept_is_true():
    """fit_intercept defaults to True: coef has an extra (intercept) column."""
    coef, X, y, _ = make_loss_problem(40, 3, 4, fit_intercept=True, seed=4)
    loss, grad = skcce.crossentropy_loss_gradient(coef, X, y)
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, None, 0.0, True)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-12, atol_factor=1e-12)


@pytest.mark.parametrize("y_dtype", [np.int32, np.int64, np.intp, np.float64, np.float32])
def test_label_dtypes(y_dtype):
    """y may be given as any integer dtype or as floats holding integers."""
    coef, X, y, sw = make_loss_problem(300, 5, 4, weighted=True, seed=5)
    loss, grad = skcce.crossentropy_loss_gradient(
        coef, X, y.astype(y_dtype), sample_weight=sw, l2_reg_strength=0.1
    )
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, 0.1, True)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-12, atol_factor=1e-12)


def test_intercept_not_penalized():
    """The L2 term only involves W, never the intercept column."""
    coef, X, y, _ = make_loss_problem(200, 3, 3, seed=6)
    l2 = 2.5
    loss0, grad0 = skcce.crossentropy_loss_gradient(coef, X, y, l2_reg_strength=0.0)
    loss1, grad1 = skcce.crossentropy_loss_gradient(coef, X, y, l2_reg_strength=l2)
    W = coef[:, :-1]
    # independent closed-form expectation for the penalty contribution
    assert_allclose(loss1 - loss0, 0.5 * l2 * np.sum(W**2), rtol=1e-10)
    assert_allclose(grad1[:, :-1] - grad0[:, :-1], l2 * W, rtol=1e-10, atol=1e-14)
    assert_allclose(grad1[:, -1], grad0[:, -1], rtol=0, atol=1e-15)


def test_sample_weight_normalisation():
    """Integer sample weights are equivalent to repeating rows (the loss is
    normalised by sum(sample_weight); checked via sklearn on the repeated data)."""
    coef, X, y, _ = make_loss_problem(60, 4, 3, seed=7)
    rng = np.random.default_rng(7)
    sw = rng.integers(1, 4, size=60).astype(float)
    loss, grad = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw)
    Xr, yr = np.repeat(X, sw.astype(int), axis=0), np.repeat(y, sw.astype(int))
    ref_loss, ref_grad = sklearn_loss_gradient(coef, Xr, yr, None, 0.0, True)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-11, atol_factor=1e-12)


def test_fortran_ordered_coef():
    """A Fortran-ordered coef (as produced e.g. by reshaping optimizer vectors)
    gives the reference values (the function handles or converts it)."""
    coef, X, y, sw = make_loss_problem(500, 6, 3, weighted=True, seed=8)
    coef_f = np.asfortranarray(coef)
    loss, grad = skcce.crossentropy_loss_gradient(
        coef_f, X, y, sample_weight=sw, l2_reg_strength=0.2
    )
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, 0.2, True)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-12, atol_factor=1e-12)


# ---------------------------------------------------------------------------
# Numerical robustness
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1e4, -1e4, 700.0, 1e6])
@pytest.mark.parametrize("K", [2, 3, 10])
def test_large_common_logit_offset_float64(offset, K):
    """Adding the same constant to every class's intercept does not change the
    softmax CE; a stable kernel must return the unshifted value, never inf/nan."""
    coef, X, y, sw = make_loss_problem(400, 5, K, weighted=True, seed=K)
    shifted = coef.copy()
    shifted[:, -1] += offset
    loss, grad = skcce.crossentropy_loss_gradient(
        shifted, X, y, sample_weight=sw, l2_reg_strength=0.1
    )
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    ref_loss, ref_grad = numpy_loss_gradient(coef, X, y, sw, 0.1, True)
    # Forming z = Wx + b + offset rounds at |offset| * eps absolute, so compare
    # with a tolerance reflecting that unavoidable representation error.
    tol = 50 * abs(offset) * np.finfo(np.float64).eps
    assert_allclose(loss, ref_loss, rtol=0, atol=tol)
    assert_allclose(grad, ref_grad, rtol=0, atol=tol)


@pytest.mark.parametrize("offset", [1e4, -1e4])
def test_large_common_logit_offset_float32_X(offset):
    """float32 X with a large common offset in the (float64) intercept: the result
    must still match the float64 reference within the float32 tolerance."""
    coef, X, y, sw = make_loss_problem(400, 5, 3, dtype=np.float32, weighted=True, seed=11)
    coef[:, -1] += offset
    loss, grad = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, 0.0, True)
    assert_allclose(loss, ref_loss, rtol=1e-5)
    assert_grad_close(grad, ref_grad, rtol=1e-5, atol_factor=1e-5)


def test_large_logit_spread_is_finite():
    """Huge logit differences (probabilities underflow to 0) give finite loss and
    gradient equal to the NumPy log_softmax reference."""
    coef, X, y, _ = make_loss_problem(300, 4, 5, seed=12, scale=300.0)
    loss, grad = skcce.crossentropy_loss_gradient(coef, X, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    ref_loss, ref_grad = numpy_loss_gradient(coef, X, y)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_grad_close(grad, ref_grad, rtol=1e-11, atol_factor=1e-12)


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_finite_differences(fit_intercept, weighted):
    """Central differences of the returned loss agree with the returned gradient."""
    coef, X, y, sw = make_loss_problem(
        800, 6, 4, fit_intercept=fit_intercept, weighted=weighted, seed=13
    )
    l2 = 0.3
    rng = np.random.default_rng(14)

    def f(c):
        return skcce.crossentropy_loss_gradient(
            c, X, y, sample_weight=sw, l2_reg_strength=l2, fit_intercept=fit_intercept
        )[0]

    _, grad = skcce.crossentropy_loss_gradient(
        coef, X, y, sample_weight=sw, l2_reg_strength=l2, fit_intercept=fit_intercept
    )
    h = 1e-5
    n_checked = 0
    for _ in range(8):
        k = rng.integers(coef.shape[0])
        j = rng.integers(coef.shape[1])
        cp, cm = coef.copy(), coef.copy()
        cp[k, j] += h
        cm[k, j] -= h
        fd = (f(cp) - f(cm)) / (2 * h)
        assert_allclose(grad[k, j], fd, rtol=1e-6, atol=1e-9)
        n_checked += 1
    # also the intercept column explicitly
    if fit_intercept:
        cp, cm = coef.copy(), coef.copy()
        cp[1, -1] += h
        cm[1, -1] -= h
        assert_allclose(grad[1, -1], (f(cp) - f(cm)) / (2 * h), rtol=1e-6, atol=1e-9)
        n_checked += 1
    assert n_checked >= 8


# ---------------------------------------------------------------------------
# Threads: bitwise reproducibility of the public function
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_bitwise_identical_across_n_jobs(dtype, weighted, fit_intercept):
    """Loss and gradient are bitwise identical for every n_jobs value."""
    coef, X, y, sw = make_loss_problem(
        9000, 11, 5, dtype=dtype, fit_intercept=fit_intercept, weighted=weighted,
        seed=21,
    )
    results = {}
    for n_jobs in (1, 2, 3, 4, None, -1):
        results[n_jobs] = skcce.crossentropy_loss_gradient(
            coef, X, y, sample_weight=sw, l2_reg_strength=0.05,
            fit_intercept=fit_intercept, n_jobs=n_jobs,
        )
    loss1, grad1 = results[1]
    for n_jobs, (loss, grad) in results.items():
        assert float(loss) == float(loss1), n_jobs
        assert np.array_equal(grad, grad1), n_jobs
    # and the common value is the correct one (independent reference)
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, 0.05, fit_intercept)
    assert_allclose(loss1, ref_loss, rtol=RTOL[dtype])
    assert_grad_close(grad1, ref_grad, RTOL[dtype], ATOL_FACTOR[dtype])


def test_inputs_not_modified():
    """The function must not write into its inputs."""
    coef, X, y, sw = make_loss_problem(500, 4, 3, weighted=True, seed=31)
    copies = [a.copy() for a in (coef, X, y, sw)]
    skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw, l2_reg_strength=1.0)
    for a, c in zip((coef, X, y, sw), copies):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (7, 3), (100_000, 20), (3, 70_000)])
def test_objective_helpers_match_numpy_for_any_thread_count(shape):
    """The multithreaded passes that finish the objective (division by the
    weight sum; penalty gradient and sum of squares) give NumPy's element-wise
    results bitwise, a sum of squares within rounding of NumPy's, and the same
    bits for every thread count (their row blocks are fixed)."""
    rng = np.random.default_rng(3)
    grad = rng.normal(size=shape)
    weights = rng.normal(size=shape)
    results = []
    for n_threads in (1, 2, 3):
        divided = grad.copy()
        reductions.divide_inplace(divided, 7.0, n_threads)
        assert np.array_equal(divided, grad / 7.0)
        updated = grad.copy()
        sum_squares = reductions.add_penalty_gradient(updated, weights, 0.3, n_threads)
        assert np.array_equal(updated, grad + 0.3 * weights)
        assert_allclose(sum_squares, np.sum(weights * weights), rtol=1e-12)
        results.append(sum_squares)
    assert results[1] == results[0] and results[2] == results[0]
