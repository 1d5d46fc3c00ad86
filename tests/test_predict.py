"""Prediction: decision_function, predict_proba, predict_log_proba and predict.

References are independent of skcce: plain NumPy/SciPy (``X @ coef_.T +
intercept_`` in float64, ``scipy.special.softmax``/``log_softmax``) and
scikit-learn's ``LogisticRegression`` with the same ``coef_`` and
``intercept_`` assigned. Models are mostly built by assigning random
coefficients (prediction does not care how they were fitted), so the tests
can use many shapes and dtypes quickly.
"""

import multiprocessing
import queue
import re
import sys
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import log_softmax, softmax
from sklearn import config_context
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from skcce import SoftmaxClassifier, SoftmaxClassifierCV, _prediction
from skcce._kernels import predict as predict_kernel
from _reference import exact_csr_row_logits
from skcce._kernels import reductions

MiB = 2**20
METHODS = ("decision_function", "predict_proba", "predict_log_proba")
# A size spanning several dense chunks, not a multiple of the chunk size.
N_FEATURES = 20


def _chunk_rows(dtype=np.float64, n_features=N_FEATURES, n_classes=None):
    """Rows per dense chunk, to place sizes around chunk boundaries: those of
    the micro-kernel path, or the larger of both paths' given ``n_classes``."""
    rows = predict_kernel.dense_chunk_rows(n_features, np.dtype(dtype).itemsize)
    if n_classes is None:
        return rows
    return max(rows, predict_kernel.gemm_chunk_rows(n_classes, np.dtype(dtype).itemsize))


def _coefs(n_features, n_classes, dtype=np.float64, seed=0):
    """Random coefficients (K, d) and intercepts (K,) giving logits of order 1."""
    rng = np.random.default_rng(seed)
    coef = (0.3 * rng.standard_normal((n_classes, n_features))).astype(dtype)
    intercept = rng.standard_normal(n_classes).astype(dtype)
    return coef, intercept


def _model(coef, intercept, n_jobs=None, estimator=SoftmaxClassifier):
    """A fitted-looking estimator with the given coefficients (two classes: the
    class-1 row)."""
    clf = estimator(n_jobs=n_jobs)
    n_classes = max(coef.shape[0], 2)
    clf.classes_ = np.arange(n_classes)
    clf.coef_, clf.intercept_ = coef, intercept
    clf.n_features_in_ = coef.shape[1]
    return clf


def _sklearn_model(coef, intercept):
    """LogisticRegression with the same multiclass coefficients assigned."""
    lr = LogisticRegression()
    lr.classes_ = np.arange(coef.shape[0])
    lr.coef_, lr.intercept_ = coef, intercept
    lr.n_features_in_ = coef.shape[1]
    return lr


def _reference(X, coef, intercept):
    """Logits, probabilities, log-probabilities in float64 with NumPy/SciPy."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    z = X.astype(np.float64) @ coef.astype(np.float64).T + intercept.astype(np.float64)
    return {"decision_function": z, "predict_proba": softmax(z, axis=1),
            "predict_log_proba": log_softmax(z, axis=1)}


def _tolerance(dtype):
    """assert_allclose tolerances for a result of this dtype."""
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else \
        {"rtol": 1e-12, "atol": 1e-12}


def _data(n, n_features=N_FEATURES, dtype=np.float64, seed=1):
    """Standard normal X of shape (n, n_features)."""
    return np.random.default_rng(seed).standard_normal((n, n_features)).astype(dtype)


def _assert_matches(clf, X, coef, intercept, dtype):
    """Every method of ``clf`` on X against the NumPy reference, and predict."""
    ref = _reference(X, coef, intercept)
    for method in METHODS:
        got = getattr(clf, method)(X)
        assert got.dtype == dtype, method
        assert got.flags.c_contiguous
        assert_allclose(got, ref[method], **_tolerance(dtype), err_msg=method)
    assert_array_equal(clf.predict(X), clf.classes_[np.argmax(ref["decision_function"], 1)])


@pytest.mark.parametrize("X_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model_dtype", [np.float64, np.float32])
def test_dense_matches_numpy_and_sklearn(X_dtype, model_dtype):
    """Every method against NumPy/SciPy and LogisticRegression, on several chunks."""
    n = 3 * _chunk_rows(X_dtype) + 37
    X = _data(n, dtype=X_dtype)
    coef, intercept = _coefs(N_FEATURES, 5, model_dtype)
    clf, lr = _model(coef, intercept), _sklearn_model(coef, intercept)
    out_dtype = np.result_type(X_dtype, model_dtype)
    _assert_matches(clf, X, coef, intercept, out_dtype)
    for method in METHODS:
        expected = getattr(lr, method)(X)
        got = getattr(clf, method)(X)
        assert got.dtype == expected.dtype, method
        assert_allclose(got, expected, **_tolerance(out_dtype), err_msg=method)
    assert_array_equal(clf.predict(X), lr.predict(X))
    proba = clf.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12 if out_dtype == np.float64
                    else 1e-6)


@pytest.mark.parametrize("n_features", [37, 300])
@pytest.mark.parametrize("n_classes", [3, 9, 33, 100, 200, 201, 700])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_class_counts_and_layouts(dtype, n_classes, n_features):
    """C-ordered X in the model's dtype takes the loss's micro-kernels where
    the loss does (up to 200 classes; BLAS above, from 33 with vectors of 32
    bytes or less on long enough rows, and for Fortran-ordered X, with chunks
    sized by the classes): every method against NumPy/SciPy on several
    chunks, for both layouts."""
    n = 2 * _chunk_rows(dtype, n_features, n_classes) + 5
    X = _data(n, n_features, dtype=dtype, seed=3)
    coef, intercept = _coefs(n_features, n_classes, dtype, seed=4)
    clf = _model(coef, intercept)
    _assert_matches(clf, X, coef, intercept, dtype)
    _assert_matches(clf, np.asfortranarray(X), coef, intercept, dtype)


def test_probabilities_far_below_the_largest():
    """Rows whose logits span more than 708 (where the vectorized exp of the
    softmax gives 0): the tiny probabilities still match SciPy's softmax
    relative to their size, and the log-probabilities too."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((500, 4))
    coef = np.array([[0.0, 0.0, 0.0, 0.0], [300.0, 0.0, 0.0, 0.0],
                     [-300.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, 0.5]])
    intercept = np.array([0.0, 1.0, -1.0, 0.0])
    clf = _model(coef, intercept)
    z = X @ coef.T + intercept
    assert np.ptp(z, axis=1).max() > 1000
    proba = clf.predict_proba(X)
    expected = softmax(z, axis=1)
    normal = expected > np.finfo(np.float64).tiny
    assert (expected[normal] < 1e-300).any()
    assert_allclose(proba[normal], expected[normal], rtol=1e-12, atol=0)
    assert_allclose(clf.predict_log_proba(X), log_softmax(z, axis=1), rtol=1e-12)


@pytest.mark.parametrize("X_dtype", [np.float64, np.float32, np.float16, np.int64,
                                     np.int32, np.uint8, np.bool_])
@pytest.mark.parametrize("model_dtype", [np.float64, np.float32])
def test_output_dtype_follows_scikit_learn(X_dtype, model_dtype):
    """The dtype of each method's result is LogisticRegression's (NumPy's result
    type of X and coef_), and the values agree."""
    X = np.abs(np.round(2 * _data(50))).astype(X_dtype)  # small non-negative values
    coef, intercept = _coefs(N_FEATURES, 4, model_dtype)
    clf, lr = _model(coef, intercept), _sklearn_model(coef, intercept)
    for method in METHODS:
        expected = getattr(lr, method)(X)
        got = getattr(clf, method)(X)
        assert got.dtype == expected.dtype, method
        assert_allclose(got, expected, **_tolerance(got.dtype), err_msg=method)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("data_dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("model_dtype", [np.float64, np.float32])
def test_csr_matches_numpy(monkeypatch, index_dtype, data_dtype, model_dtype):
    """CSR input, int32 and int64 indices, including empty rows, several chunks."""
    n = 2 * predict_kernel.sparse_chunk_rows() + 11
    rng = np.random.default_rng(2)
    X = sp.random(n, N_FEATURES, density=0.2, format="csr", random_state=3,
                  data_rvs=lambda k: rng.integers(-4, 5, k)).astype(data_dtype)
    keep = np.ones(n)
    keep[5] = 0.0  # an empty row
    X = sp.csr_matrix(sp.diags(keep).astype(data_dtype) @ X)
    X.eliminate_zeros()
    assert X[5].nnz == 0
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    coef, intercept = _coefs(N_FEATURES, 6, model_dtype)
    clf = _model(coef, intercept)

    seen = []
    kernel = predict_kernel.csr_predict

    def spy(data, indices, indptr, *args):
        seen.append((data.dtype, indices.dtype, indptr.dtype))
        return kernel(data, indices, indptr, *args)

    monkeypatch.setattr(_prediction.predict, "csr_predict", spy)
    out_dtype = np.result_type(data_dtype, model_dtype)
    _assert_matches(clf, X, coef, intercept, out_dtype)
    assert seen and all(s[1] == index_dtype and s[2] == index_dtype for s in seen)
    lr = _sklearn_model(coef, intercept)
    for method in METHODS:
        assert getattr(clf, method)(X).dtype == getattr(lr, method)(X).dtype


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("data_dtype,model_dtype", [
    (np.float64, np.float64), (np.float32, np.float64),
    (np.float32, np.float32), (np.float64, np.float32)])
def test_csr_logits_every_class_count(index_dtype, data_dtype, model_dtype):
    """The CSR logits, whose sums are held in registers with a loop per class
    count up to 32 and beyond in slices of the classes or in memory, for
    every type of the data, the model and the indices: each K from 1 to 34
    and a few more, against NumPy in float64, the same for 1 and 3 threads.
    Rows of 0 to 40 non-zeros (repeated columns included), over two
    chunks."""
    rng = np.random.default_rng(7)
    n, n_features = predict_kernel.sparse_chunk_rows() + 5, 50
    counts = rng.integers(0, 41, n)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
    indices = rng.integers(0, n_features, indptr[-1]).astype(index_dtype)
    data = rng.standard_normal(indptr[-1]).astype(data_dtype)
    X = sp.csr_matrix((data.astype(np.float64), indices, indptr), shape=(n, n_features))
    for n_classes in [*range(1, 35), 64, 129]:
        coef, intercept = _coefs(n_features, n_classes, model_dtype, seed=n_classes)
        weights_t = np.ascontiguousarray(coef.T)
        expected = X @ coef.T.astype(np.float64) + intercept.astype(np.float64)
        outs = []
        for n_threads in (1, 3):
            out = np.empty((n, n_classes), model_dtype)
            predict_kernel.csr_predict(data, indices, indptr, weights_t, intercept,
                                       predict_kernel.DECISION, n_threads, out)
            outs.append(out)
        assert_array_equal(outs[1], outs[0], err_msg=f"K = {n_classes}")
        assert_allclose(outs[0], expected, **_tolerance(model_dtype),
                        err_msg=f"K = {n_classes}")


@pytest.mark.parametrize("data_dtype,model_dtype", [
    (np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)])
def test_csr_logits_the_same_with_and_without_prefetching(data_dtype, model_dtype):
    """The CSR kernel runs other loops when it prefetches the rows of W.T
    (W.T beyond 1 MiB; here the same W.T padded with rows no index reaches)
    than when W.T fits in the caches (float64 coefficients: 17 to 32 classes
    in vector registers, and more in slices of the classes): for 1 to 34
    classes, both give the same logits to the bit."""
    rng = np.random.default_rng(3)
    n, n_features = predict_kernel.sparse_chunk_rows() + 5, 40
    counts = rng.integers(0, 41, n)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, n_features, indptr[-1]).astype(np.int32)
    data = rng.standard_normal(indptr[-1]).astype(data_dtype)
    itemsize = np.dtype(model_dtype).itemsize
    for n_classes in range(1, 35):
        coef, intercept = _coefs(n_features, n_classes, model_dtype, seed=n_classes)
        small = np.ascontiguousarray(coef.T)
        padded = np.zeros(((1 << 20) // (n_classes * itemsize) + 1, n_classes), model_dtype)
        padded[:n_features] = small
        outs = []
        for weights_t in (small, padded):
            out = np.empty((n, n_classes), model_dtype)
            predict_kernel.csr_predict(data, indices, indptr, weights_t, intercept,
                                       predict_kernel.DECISION, 2, out)
            outs.append(out)
        assert_array_equal(outs[1], outs[0], err_msg=f"K = {n_classes}")


@pytest.mark.parametrize("data_dtype,model_dtype", [
    (np.float64, np.float64), (np.float32, np.float32), (np.float64, np.float32),
    (np.float32, np.float64)])
def test_csr_row_logits_are_exact_sums_in_order(data_dtype, model_dtype):
    """Every CSR loop (vector registers, plain loops, slices of 33 to 512
    classes, with and without prefetching) against sums computed exactly
    in Python, to the bit: each term fused where the loops in use fuse them
    (``csr_terms_fused``), else rounded twice. A row with an unsorted and a
    duplicate column."""
    fused = predict_kernel.csr_terms_fused()
    rng = np.random.default_rng(5)
    columns = rng.integers(0, 30, 13).astype(np.int32)
    columns[3] = columns[7]
    values = rng.standard_normal(13).astype(data_dtype)
    for n_classes in list(range(1, 41)) + [45, 47, 63, 64, 65, 100, 131, 600]:
        coef, intercept = _coefs(30, n_classes, model_dtype, seed=n_classes)
        weights_t = np.ascontiguousarray(coef.T)
        expected = exact_csr_row_logits(values, columns, weights_t, intercept, fused)
        for readable in (0, values.shape[0]):
            z = predict_kernel.csr_row_logits(values, columns, weights_t, intercept, readable)
            assert_array_equal(z, expected, err_msg=f"K = {n_classes}, readable {readable}")


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("bad_column", [-1, 30])
def test_csr_row_logits_rejects_columns_out_of_range(index_dtype, bad_column):
    """The test helper checks its columns before the loops read through them:
    a negative one and one equal to n_features are refused, the last valid
    one is not."""
    coef, intercept = _coefs(30, 5, np.float64, seed=1)
    weights_t = np.ascontiguousarray(coef.T)
    values = np.ones(3)
    columns = np.array([0, 29, bad_column], dtype=index_dtype)
    with pytest.raises(ValueError, match=r"columns must lie in \[0, 30\)"):
        predict_kernel.csr_row_logits(values, columns, weights_t, intercept, 0)
    columns[2] = 29
    z = predict_kernel.csr_row_logits(values, columns, weights_t, intercept, 0)
    assert_allclose(z, intercept + weights_t[0] + 2 * weights_t[29], rtol=1e-14)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype,n_features,n_classes",
                         [(np.float64, 60_000, 3), (np.float64, 20_000, 8),
                          (np.float32, 16_000, 20), (np.float64, 4_500, 33)])
def test_csr_with_coefficients_beyond_the_caches(dtype, n_features, n_classes, index_dtype):
    """W.T larger than 1 MiB, whose rows the CSR kernel prefetches ahead: rows
    of 0, 1, 7, 8, 9 and 300 non-zeros, at and across chunk ends, an indptr
    starting past 0 and data past its end; every mode and the labels against
    NumPy, bitwise the same for 1-3 threads."""
    rng = np.random.default_rng(12)
    chunk = predict_kernel.sparse_chunk_rows()
    counts = rng.choice([0, 1, 7, 8, 9, 300], size=2 * chunk + 19)
    counts[chunk - 1], counts[chunk] = 300, 0
    offset, tail = 5, 7  # stored entries before indptr[0] and after indptr[-1]
    indptr = offset + np.concatenate([[0], np.cumsum(counts)])
    n_stored = indptr[-1] + tail
    indptr = indptr.astype(index_dtype)
    indices = rng.integers(0, n_features, n_stored).astype(index_dtype)
    data = rng.standard_normal(n_stored).astype(dtype)
    coef, intercept = _coefs(n_features, n_classes, dtype, seed=13)
    weights_t = np.ascontiguousarray(coef.T)
    assert weights_t.nbytes > MiB
    rows = [np.zeros(n_features) for _ in counts]
    for i, row in enumerate(rows):
        np.add.at(row, indices[indptr[i]:indptr[i + 1]],
                  data[indptr[i]:indptr[i + 1]].astype(np.float64))
    expected = _reference(np.array(rows), coef, intercept)
    labels_expected = np.argmax(expected["decision_function"], axis=1)
    modes = {"decision_function": predict_kernel.DECISION,
             "predict_proba": predict_kernel.PROBA,
             "predict_log_proba": predict_kernel.LOG_PROBA}
    for method, mode in modes.items():
        outs = []
        for n_threads in (1, 2, 3):
            out = np.empty((len(counts), n_classes), dtype)
            predict_kernel.csr_predict(data, indices, indptr, weights_t, intercept, mode,
                                       n_threads, out)
            outs.append(out)
        for other in outs[1:]:
            assert_array_equal(other, outs[0])
        assert_allclose(outs[0], expected[method], **_tolerance(dtype), err_msg=method)
    for n_threads in (1, 2, 3):
        labels = np.empty(len(counts), np.intp)
        predict_kernel.csr_predict_labels(data, indices, indptr, weights_t, intercept,
                                          n_threads, labels)
        assert_array_equal(labels, labels_expected)


def test_gemm_chunks_are_sized_by_the_logits():
    """GEMM-path chunks hold about 2 MiB of logits, 16 to 512 rows."""
    assert predict_kernel.gemm_chunk_rows(1000, 8) == 262
    assert predict_kernel.gemm_chunk_rows(1000, 4) == 512
    assert predict_kernel.gemm_chunk_rows(2, 8) == 512
    assert predict_kernel.gemm_chunk_rows(10**6, 8) == 16


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok"])
def test_other_sparse_formats(fmt):
    """Other sparse formats are converted to CSR."""
    X = sp.random(300, N_FEATURES, density=0.3, format=fmt, random_state=4)
    coef, intercept = _coefs(N_FEATURES, 3)
    _assert_matches(_model(coef, intercept), X, coef, intercept, np.float64)


def test_non_canonical_csr():
    """Duplicate entries (summed) and unsorted column indices."""
    data = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    indices = np.array([3, 3, 0, 7, 1])
    indptr = np.array([0, 3, 3, 5])
    X = sp.csr_matrix((data, indices, indptr), shape=(3, 8))
    assert not X.has_canonical_format
    coef, intercept = _coefs(8, 4)
    dense = np.zeros((3, 8))
    np.add.at(dense, (np.repeat(np.arange(3), np.diff(indptr)), indices), data)
    ref = _reference(dense, coef, intercept)
    clf = _model(coef, intercept)
    for method in METHODS:
        assert_allclose(getattr(clf, method)(X), ref[method], rtol=1e-12, atol=1e-12)


def _layouts(X, tmp_path):
    """The values of X in several memory layouts, by name."""
    shape = (2 * X.shape[0], 2 * X.shape[1])
    row_sliced = np.zeros(shape, dtype=X.dtype)[::2, : X.shape[1]]
    row_sliced[...] = X
    col_sliced = np.zeros(shape, dtype=X.dtype)[::2, ::2]
    col_sliced[...] = X
    readonly = X.copy()
    readonly.setflags(write=False)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[...] = X
    mm.flush()
    del mm
    return {
        "C": X,
        "F": np.asfortranarray(X),
        "row-sliced": row_sliced,
        "col-sliced": col_sliced,
        "negative-strides": np.ascontiguousarray(X[::-1])[::-1],
        "read-only": readonly,
        "memmap": np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape),
    }


@pytest.mark.parametrize("X_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "row-sliced", "col-sliced",
                                    "negative-strides", "read-only", "memmap"])
def test_memory_layouts(tmp_path, X_dtype, layout):
    """Fortran, strided, read-only and memory-mapped X give the reference result."""
    X = _data(2 * _chunk_rows(X_dtype) + 5, dtype=X_dtype)
    Xl = _layouts(X, tmp_path)[layout]
    assert_array_equal(Xl, X)
    coef, intercept = _coefs(N_FEATURES, 4)
    _assert_matches(_model(coef, intercept), Xl, coef, intercept, np.float64)


def test_zero_strided_rows():
    """Broadcast (zero-stride, read-only) X is copied, not misread."""
    row = _data(1)[0]
    X = np.broadcast_to(row, (700, N_FEATURES))
    coef, intercept = _coefs(N_FEATURES, 3)
    _assert_matches(_model(coef, intercept), X, coef, intercept, np.float64)


def test_single_column_layouts():
    """One feature: C, Fortran and strided column views."""
    base = _data(600, n_features=3)
    coef, intercept = _coefs(1, 3)
    for X in (base[:, :1], np.asfortranarray(base[:, 1:2]), base[::3, 2:3],
              np.ascontiguousarray(base[:, :1])):
        _assert_matches(_model(coef, intercept), X, coef, intercept, np.float64)


@pytest.mark.parametrize("X_dtype,model_dtype", [(np.float64, np.float64),
                                                 (np.float32, np.float32),
                                                 (np.float32, np.float64)])
def test_chunk_boundaries(X_dtype, model_dtype):
    """n = 1, one less than, equal to and one more than the chunk size."""
    chunk = _chunk_rows(X_dtype)
    coef, intercept = _coefs(N_FEATURES, 5, model_dtype)
    clf = _model(coef, intercept)
    X_all = _data(2 * chunk + 1, dtype=X_dtype)
    for n in (1, 2, chunk - 1, chunk, chunk + 1, 2 * chunk + 1):
        _assert_matches(clf, X_all[:n], coef, intercept, np.result_type(X_dtype, model_dtype))


def test_wide_float32_data_with_float64_model():
    """float32 X converted tile by tile: wider than one conversion tile."""
    n_features = 5000
    X = _data(70, n_features=n_features, dtype=np.float32)
    coef, intercept = _coefs(n_features, 3, np.float64)
    _assert_matches(_model(coef, intercept), X, coef, intercept, np.float64)
    _assert_matches(_model(coef, intercept), np.asfortranarray(X), coef, intercept,
                    np.float64)


@pytest.mark.parametrize("kind", ["f64", "f32", "f32-data-f64-model", "F-order", "csr",
                                  "700-classes"])
def test_bitwise_identical_for_any_n_jobs(kind):
    """n_jobs = 1, 2, 3 give bitwise identical results (and the right ones)."""
    X_dtype = np.float32 if kind.startswith("f32") else np.float64
    model_dtype = np.float32 if kind == "f32" else np.float64
    n_classes = 700 if kind == "700-classes" else 7
    n = 7 * _chunk_rows(X_dtype, n_classes=n_classes) + 3
    X = _data(n, dtype=X_dtype)
    if kind == "F-order":
        X = np.asfortranarray(X)
    if kind == "csr":
        X[np.abs(X) < 1.0] = 0.0
        X = sp.csr_matrix(X)
    coef, intercept = _coefs(N_FEATURES, n_classes, model_dtype)
    for method in METHODS:
        results = [getattr(_model(coef, intercept, n_jobs=n_jobs), method)(X)
                   for n_jobs in (1, 2, 3)]
        for other in results[1:]:
            assert other.dtype == results[0].dtype
            assert_array_equal(other, results[0])
        assert_allclose(results[0], _reference(X, coef, intercept)[method],
                        **_tolerance(results[0].dtype))


def test_concurrent_predictions_from_python_threads():
    """Several Python threads predicting at once (each with OpenMP threads and
    the shared BLAS limit) all get the reference result."""
    X = _data(5 * _chunk_rows() + 1)
    coef, intercept = _coefs(N_FEATURES, 6)
    clf = _model(coef, intercept, n_jobs=2)
    expected = _reference(X, coef, intercept)["predict_proba"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X), range(16)))
    for proba in results:
        assert_allclose(proba, expected, rtol=1e-12, atol=1e-15)


def _child_predict(result_queue, clf, X):
    """Run in a forked child: predict and send the result back."""
    result_queue.put(clf.predict_proba(X))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method on Linux")
@pytest.mark.parametrize("sparse", [False, True])
def test_forked_child_after_multithreaded_prediction(sparse):
    """A child forked after a multithreaded prediction in the parent (OpenMP
    pool alive) predicts without hanging and gets the reference result."""
    X = _data(5 * _chunk_rows() + 1)
    if sparse:
        X = sp.csr_matrix(X)
    coef, intercept = _coefs(N_FEATURES, 4)
    clf = _model(coef, intercept, n_jobs=2)
    clf.predict_proba(X)
    ctx = multiprocessing.get_context("fork")
    result_queue = ctx.Queue()
    proc = ctx.Process(target=_child_predict, args=(result_queue, clf, X))
    proc.start()
    try:
        proba = result_queue.get(timeout=120)
    except queue.Empty:
        proba = None
    proc.join(timeout=120)
    if proc.is_alive():
        proc.kill()
        proc.join()
        pytest.fail("forked child hung")
    assert proba is not None and proc.exitcode == 0
    assert_allclose(proba, _reference(X, coef, intercept)["predict_proba"], rtol=1e-12,
                    atol=1e-15)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary(sparse, dtype):
    """Two classes: decision_function is the 1-D d = X @ w + c; predict_proba and
    predict_log_proba are (log_)softmax([-d, d]), equal to LogisticRegression's
    binary model with coefficients 2w, 2c."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2 * _chunk_rows(dtype) + 9, N_FEATURES)).astype(dtype)
    y = (X[:, 0] + 0.5 * rng.standard_normal(X.shape[0]) > 0).astype(int)
    labels = np.array(["no", "yes"])[y]
    clf = SoftmaxClassifier().fit(X, labels)
    assert clf.coef_.shape == (1, N_FEATURES)
    Xp = sp.csr_matrix(X) if sparse else X
    w, c = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    d = X.astype(np.float64) @ w + c
    tol = _tolerance(dtype)
    decision = clf.decision_function(Xp)
    assert decision.shape == (X.shape[0],) and decision.dtype == dtype
    assert_allclose(decision, d, **tol)
    both = np.column_stack([-d, d])
    assert_allclose(clf.predict_proba(Xp), softmax(both, axis=1), **tol)
    assert_allclose(clf.predict_log_proba(Xp), log_softmax(both, axis=1), **tol)
    assert_array_equal(clf.predict(Xp), np.where(d > 0, "yes", "no"))

    lr = LogisticRegression()
    lr.classes_ = clf.classes_
    lr.coef_, lr.intercept_ = 2 * clf.coef_, 2 * clf.intercept_
    lr.n_features_in_ = N_FEATURES
    assert_allclose(clf.predict_proba(Xp), lr.predict_proba(Xp), **tol)
    if dtype == np.float64:
        # LogisticRegression takes log(1 - sigmoid(.)), which loses digits when
        # the probability is close to 1 (in float32, up to the second digit):
        # compare with an absolute tolerance, and in float64 only.
        assert_allclose(clf.predict_log_proba(Xp), lr.predict_log_proba(Xp), rtol=0,
                        atol=1e-9)
    assert_array_equal(clf.predict(Xp), lr.predict(Xp))


def test_fitted_models_match_sklearn_predictions():
    """A fitted SoftmaxClassifier and SoftmaxClassifierCV predict like
    LogisticRegression with their coefficients, dense and sparse."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((400, 8))
    y = np.argmax(X[:, :4] + 0.5 * rng.standard_normal((400, 4)), axis=1)
    for clf in (SoftmaxClassifier().fit(X, y),
                SoftmaxClassifierCV(Cs=3, cv=3, n_jobs=2).fit(X, y)):
        lr = _sklearn_model(clf.coef_, clf.intercept_)
        for Xp in (X, sp.csr_matrix(X)):
            for method in METHODS:
                assert_allclose(getattr(clf, method)(Xp), getattr(lr, method)(Xp),
                                rtol=1e-12, atol=1e-12)
            assert_array_equal(clf.predict(Xp), lr.predict(Xp))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("scale", [1e100, 1e300])
def test_huge_inputs_no_warnings(sparse, scale):
    """X scaled up to 1e300: probabilities sum to 1, log-probabilities are finite
    and match the stable reference, and nothing warns."""
    X = _data(600) * scale
    coef, intercept = _coefs(N_FEATURES, 5)
    ref = _reference(X, coef, intercept)  # logits up to ~1e301: finite
    assert np.all(np.isfinite(ref["decision_function"]))
    clf = _model(coef, intercept)
    Xp = sp.csr_matrix(X) if sparse else X
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decision = clf.decision_function(Xp)
        proba = clf.predict_proba(Xp)
        log_proba = clf.predict_log_proba(Xp)
        labels = clf.predict(Xp)
    assert_allclose(decision, ref["decision_function"], rtol=1e-12)
    assert np.all(np.isfinite(proba)) and np.all(np.isfinite(log_proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(proba, ref["predict_proba"], rtol=1e-12, atol=1e-12)
    assert_allclose(log_proba, ref["predict_log_proba"], rtol=1e-12)
    assert_array_equal(labels, np.argmax(ref["decision_function"], axis=1))


@pytest.mark.parametrize("sparse", [False, True])
def test_overflowing_logits(sparse):
    """Logits beyond the float64 range (and inf - inf inside the dot products):
    decision_function has no NaN, the probabilities are finite, sum to 1 and put
    all the mass on the class with the largest exact logit."""
    coef = np.array([[2.0, -2.0], [1.0, 1.0], [-3.0, 0.5]])
    intercept = np.array([0.0, 1.0, -1.0])
    X = np.array([[1.5e308, 1.4e308], [1e308, -1e308], [-1.7e308, 1.7e308],
                  [1e308, 1e308], [1.0, 2.0]])
    # Exact logits / 2**1000, computed without overflow.
    s = 2.0**1000
    scaled = (X / s) @ coef.T + intercept / s
    with np.errstate(over="ignore"):
        expected_decision = scaled * s
    clf = _model(coef, intercept)
    Xp = sp.csr_matrix(X) if sparse else X
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decision = clf.decision_function(Xp)
        proba = clf.predict_proba(Xp)
        log_proba = clf.predict_log_proba(Xp)
    assert not np.any(np.isnan(decision))
    # Up to rounding relative to the terms of the dot products (~1e308); the
    # infinities must match exactly.
    assert_allclose(decision[:4], expected_decision[:4], rtol=1e-14, atol=1e294)
    assert_allclose(decision[4], expected_decision[4], rtol=1e-14)
    assert np.all(np.isfinite(proba)) and np.all(np.isfinite(log_proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    huge = slice(0, 4)
    expected = np.zeros((4, 3))
    expected[np.arange(4), np.argmax(scaled[huge], axis=1)] = 1.0
    assert_array_equal(proba[huge], expected)
    assert_array_equal(log_proba[huge] == 0.0, expected == 1.0)
    assert np.all(log_proba[huge][expected == 0.0] == -np.finfo(np.float64).max)
    assert_allclose(proba[4], softmax(scaled[4] * s), rtol=1e-12)
    assert_array_equal(clf.predict(Xp), np.argmax(scaled, axis=1))


def test_overflowing_float32_logits():
    """float32 data and model: logits beyond the float32 range."""
    coef = np.array([[2.0, -2.0], [1.0, 1.0], [-3.0, 0.5]], dtype=np.float32)
    intercept = np.zeros(3, dtype=np.float32)
    X = np.array([[3e38, 2.9e38], [1e38, -1e38], [-3.4e38, 3.4e38]], dtype=np.float32)
    exact = X.astype(np.float64) @ coef.T.astype(np.float64)
    clf = _model(coef, intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = clf.predict_proba(X)
        log_proba = clf.predict_log_proba(X)
        decision = clf.decision_function(X)
    assert proba.dtype == log_proba.dtype == np.float32
    expected = np.zeros((3, 3), dtype=np.float32)
    expected[np.arange(3), np.argmax(exact, axis=1)] = 1.0
    assert_array_equal(proba, expected)
    assert np.all(np.isfinite(log_proba))
    assert not np.any(np.isnan(decision))
    assert_allclose(decision[0, 0], exact[0, 0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_probabilities_of_extreme_rows_in_blocks(dtype):
    """CSR (log-)probabilities, computed eight rows at a time: rows whose
    logits overflow the dtype (float64) or whose log-probabilities fall below
    its most negative value (float32, summed in float64), a row with a NaN
    and an empty row, scattered over full blocks, two chunks and a partial
    last block. Against NumPy's (log-)softmax of the exact logits (shifted by
    their maximum without overflow), and bitwise the same for 1 and 3
    threads."""
    rng = np.random.default_rng(21)
    n, n_features, n_classes = predict_kernel.sparse_chunk_rows() + 45, 30, 7
    X = sp.random(n, n_features, density=0.3, format="lil", random_state=rng,
                  dtype=np.float64)
    for i in range(3, n, 11):  # every 11th row huge: several per block and chunk
        X[i, i % n_features] = np.finfo(dtype).max / 2
    X[17, :] = 0.0  # an empty row
    X = sp.csr_matrix(X, dtype=dtype)
    nan_row = 40
    X.data[X.indptr[nan_row]] = np.nan
    coef, intercept = _coefs(n_features, n_classes, dtype, seed=22)
    coef *= 10
    weights_t = np.ascontiguousarray(coef.T)
    s = 2.0**600  # exact logits / s, without overflow
    scaled = ((X.toarray().astype(np.float64) / s) @ coef.T.astype(np.float64)
              + intercept.astype(np.float64) / s)
    rows = np.isfinite(scaled).all(axis=1)
    assert (~rows).sum() == 1
    with np.errstate(over="ignore"):
        shifted = (scaled[rows] - scaled[rows].max(axis=1, keepdims=True)) * s
    total = np.exp(shifted).sum(axis=1, keepdims=True)
    lowest = np.finfo(dtype).min
    references = {predict_kernel.PROBA: np.exp(shifted) / total,
                  predict_kernel.LOG_PROBA: np.maximum(shifted - np.log(total), lowest)}
    saturated = references[predict_kernel.LOG_PROBA] == lowest
    assert saturated.sum() > 10
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else \
        {"rtol": 1e-12, "atol": 1e-15}
    for mode, expected in references.items():
        outs = []
        for n_threads in (1, 3):
            out = np.empty((n, n_classes), dtype)
            predict_kernel.csr_predict(X.data, X.indices, X.indptr, weights_t, intercept,
                                       mode, n_threads, out)
            outs.append(out)
        assert_array_equal(outs[1], outs[0])
        assert np.isnan(outs[0][nan_row]).all()
        assert_allclose(outs[0][rows], expected, **tol)
        if mode == predict_kernel.LOG_PROBA:
            assert (outs[0][rows][saturated] == lowest).all()


@pytest.mark.parametrize("method", ["predict_proba", "predict"])
def test_prediction_peak_memory_is_the_result(method):
    """predict_proba and predict on 200,000 x 100 with K = 50 (C, Fortran,
    float32 data with a float64 model, CSR) allocate their result and little
    else: no copy of X, and no n x K logits (76 MiB; predict's result is the
    class indices and the labels, n values each). Results against NumPy."""
    n, d, K = 200_000, 100, 50
    rng = np.random.default_rng(7)
    X64 = rng.standard_normal((n, d))
    coef, intercept = _coefs(d, K)
    clf = _model(coef, intercept, n_jobs=2)
    inputs = {
        "C float64": X64,
        "F float64": np.asfortranarray(X64),
        "float32 data, float64 model": X64.astype(np.float32),
        "CSR": sp.csr_matrix(np.where(np.abs(X64) > 1.5, X64, 0.0)),
    }
    getattr(clf, method)(X64[:1000])  # warm-up: imports, BLAS controller
    for name, X in inputs.items():
        tracemalloc.start()
        try:
            got = getattr(clf, method)(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        result = n * K * 8 if method == "predict_proba" else 2 * n * 8
        assert peak <= result + 2 * MiB, (
            f"{name}: peak {peak / MiB:.1f} MiB for a {result / MiB:.1f} MiB result")
        # float32 data: its own values; CSR: its dense values.
        values = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        if method == "predict_proba":
            assert got.shape == (n, K)
            assert_allclose(got[:500], _reference(values[:500], coef, intercept)[method],
                            rtol=1e-12, atol=1e-15)
        else:
            assert_array_equal(got, clf.classes_[np.argmax(values @ coef.T + intercept,
                                                           axis=1)])
        del got


@pytest.mark.parametrize("n_classes", [60, 5000])
def test_predict_proba_scratch_is_small_for_few_rows(n_classes):
    """A few rows with many classes: the (log-)softmax scratch is a few blocks
    of 8,192 doubles per thread, not a chunk's rows x K; the micro-kernel's
    logits buffer has at most n rows. Peak at most the result, the model's
    transposed (and padded) copies and 1 MiB; values against NumPy."""
    n, d = 3, 20
    coef, intercept = _coefs(d, n_classes, seed=8)
    clf = _model(coef, intercept, n_jobs=2)
    X = _data(n, d, seed=9)
    clf.predict_proba(X)  # warm-up
    for method in ("predict_proba", "predict_log_proba"):
        tracemalloc.start()
        try:
            got = getattr(clf, method)(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        model_copies = 2 * d * (n_classes + 8) * 8
        assert peak <= got.nbytes + model_copies + MiB, (method, peak / MiB)
        assert_allclose(got, _reference(X, coef, intercept)[method], rtol=1e-12, atol=1e-12)


def test_validation_messages_are_scikit_learn_s():
    """Not fitted, wrong number of features, NaN: scikit-learn's errors."""
    coef, intercept = _coefs(4, 3)
    with pytest.raises(NotFittedError):
        SoftmaxClassifier().predict_proba(np.zeros((2, 4)))
    clf, lr = _model(coef, intercept), _sklearn_model(coef, intercept)
    bad_inputs = [np.zeros((2, 3)), sp.csr_matrix(np.zeros((2, 5))),
                  np.array([[0.0, np.nan, 1.0, 2.0]]), np.zeros((0, 4)), np.zeros(4)]
    for X in bad_inputs:
        with pytest.raises(ValueError) as expected:
            lr.predict_proba(X)
        message = str(expected.value).replace("LogisticRegression", "SoftmaxClassifier")
        for method in (*METHODS, "predict"):
            with pytest.raises(ValueError, match=re.escape(message)):
                getattr(clf, method)(X)


def test_kernel_rejects_malformed_csr():
    """A CSR structure pointing outside the matrix is an error, not a crash."""
    weights_t = np.ones((3, 2))
    intercept = np.zeros(2)
    out = np.empty((2, 2))
    data = np.ones(2)
    columns = predict_kernel.ColumnIndexError
    indptr_message = re.escape("Malformed CSR matrix: indptr must be non-decreasing")
    for indices, indptr, message in [([0, 3], [0, 1, 2], columns),
                                     ([0, -1], [0, 1, 2], columns),
                                     ([0, 1], [0, 2, 1], indptr_message),
                                     ([0, 1], [0, 1, 5], indptr_message),
                                     ([0, 1], [-1, 1, 2], indptr_message)]:
        expected = (pytest.raises(columns, match=re.escape("outside [0, 3)"))
                    if message is columns else pytest.raises(ValueError, match=message))
        with expected:
            predict_kernel.csr_predict(data, np.array(indices, dtype=np.int32),
                                 np.array(indptr, dtype=np.int32), weights_t,
                                 intercept, predict_kernel.PROBA, 2, out)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_kernel_finds_a_bad_column_index_in_any_chunk(index_dtype, n_threads):
    """Each chunk of rows checks its own column indices: one index out of
    range (too large, negative, or beyond int32 with int64 indices) in the
    first, a middle or the last chunk, or in the last row, is found in every
    mode and for any thread count; the same structure with that index in
    range is accepted and gives SciPy's product."""
    chunk = predict_kernel.sparse_chunk_rows()
    n, d, K = 3 * chunk + 17, 40, 5
    rng = np.random.default_rng(7)
    X = sp.random(n, d, density=0.2, format="csr", random_state=rng, dtype=np.float64)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    weights_t = rng.standard_normal((d, K))
    intercept = rng.standard_normal(K)
    out = np.empty((n, K))
    labels = np.empty(n, dtype=np.intp)
    bad_values = [d, -1] + ([2**40] if index_dtype == np.int64 else [])
    bound = re.escape(f"outside [0, {d})")
    # The first stored value of the first row, of a row inside the second
    # chunk and of the third chunk's first row; the last of the first chunk
    # and of the matrix.
    positions = [X.indptr[0], X.indptr[chunk + 3], X.indptr[2 * chunk],
                 X.indptr[chunk] - 1, X.indptr[n] - 1]
    assert all(X.indptr[row + 1] > X.indptr[row] for row in (0, chunk + 3, 2 * chunk))
    assert X.indptr[chunk] > X.indptr[chunk - 1] and X.indptr[n] > X.indptr[n - 1]
    for position in positions:
        for bad in bad_values:
            indices = X.indices.copy()
            indices[position] = bad
            for mode in (predict_kernel.DECISION, predict_kernel.PROBA,
                         predict_kernel.LOG_PROBA):
                with pytest.raises(predict_kernel.ColumnIndexError, match=bound):
                    predict_kernel.csr_predict(X.data, indices, X.indptr, weights_t,
                                               intercept, mode, n_threads, out)
            with pytest.raises(predict_kernel.ColumnIndexError, match=bound):
                predict_kernel.csr_predict_labels(X.data, indices, X.indptr, weights_t,
                                                  intercept, n_threads, labels)
    assert predict_kernel.csr_predict(X.data, X.indices, X.indptr, weights_t, intercept,
                                      predict_kernel.DECISION, n_threads, out) is True
    assert_allclose(out, X @ weights_t + intercept, rtol=1e-12, atol=1e-12)


_FINITE_BLOCK = reductions.BLOCK_VALUES


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 7, 8, 9, _FINITE_BLOCK - 1, _FINITE_BLOCK, 3 * _FINITE_BLOCK + 5])
def test_all_finite_matches_numpy(dtype, n):
    """The threaded finiteness check against np.isfinite: extreme finite values
    (the largest, subnormals, signed zeros) pass; a NaN, +inf or -inf at the
    first, last or a block's first or last position fails, for 1-3 threads."""
    finfo = np.finfo(dtype)
    values = np.random.default_rng(n).standard_normal(n).astype(dtype)
    values[::5] = finfo.max
    values[1::7] = -finfo.max
    values[2::11] = finfo.smallest_subnormal
    values[3::13] = -0.0
    for n_threads in (1, 2, 3):
        assert reductions.all_finite(values, n_threads) is True
    positions = {0, n - 1, min(_FINITE_BLOCK, n - 1), min(_FINITE_BLOCK - 1, n - 1)}
    for position in positions:
        for bad in (np.nan, np.inf, -np.inf):
            spoiled = values.copy()
            spoiled[position] = bad
            assert not np.isfinite(spoiled).all()
            for n_threads in (1, 2, 3):
                assert reductions.all_finite(spoiled, n_threads) is False
    assert reductions.all_finite(np.zeros(0, dtype=dtype), 2) is True


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [1, 2, 4, 5, 8, 9, 16, 17, 33, 64, 65, 130, 230])
def test_kernel_labels_match_numpy(dtype, n_classes):
    """predict's labels from the kernel against NumPy's on exact logits
    (small integers: many ties, which go to the first largest), for one
    column ``logit > 0``; C, Fortran and CSR X (micro-kernels and BLAS) over
    several chunks, 1-3 threads; rows of X with a NaN get 0 (the argmax of
    their NaN logits, as LogisticRegression's under assume_finite), and so
    do rows with an infinity. The class counts cover the row-by-row vector
    labels' partial vectors and their scans of 64 classes at a time."""
    rng = np.random.default_rng(n_classes)
    n, d = 1500, 6
    X = rng.integers(-2, 3, size=(n, d)).astype(dtype)
    X[::7] = 0.0  # all logits equal to the intercepts
    coef = rng.integers(-1, 2, size=(n_classes, d)).astype(dtype)
    intercept = rng.integers(-1, 2, size=n_classes).astype(dtype)
    bad = X.copy()
    bad[[3, 600, n - 1], [0, 5, 2]] = np.nan
    # Infinite rows of X (some logits infinite, some NaN) get 0 too; with one
    # column, ``logit > 0`` of their logit.
    infinite = X.copy()
    infinite[[5, 700, n - 2], [1, 4, 0]] = [np.inf, -np.inf, np.inf]
    weights_t = np.ascontiguousarray(coef.T)
    for values, finite in ((X, True), (bad, False), (infinite, False)):
        with np.errstate(invalid="ignore"):
            logits = values.astype(np.float64) @ coef.T.astype(np.float64) + intercept
        expected = (logits[:, 0] > 0).astype(np.intp) if n_classes == 1 \
            else logits.argmax(axis=1)
        if n_classes > 1:
            expected[~np.isfinite(values).all(axis=1)] = 0
        assert len(np.unique(expected)) > 1
        for n_threads in (1, 2, 3):
            for data in (values, np.asfortranarray(values), sp.csr_matrix(values)):
                labels = np.full(n, -1, dtype=np.intp)
                if sp.issparse(data):
                    verdict = predict_kernel.csr_predict_labels(
                        data.data, data.indices, data.indptr, weights_t, intercept,
                        n_threads, labels)
                else:
                    verdict = predict_kernel.dense_predict_labels(
                        data, weights_t, intercept, n_threads, labels)
                assert_array_equal(labels, expected)
                assert verdict is not False if finite else verdict is False


def test_predict_matches_logistic_regression_on_nan_rows():
    """Under assume_finite, rows of X with a NaN get LogisticRegression's label."""
    coef, intercept = _coefs(4, 5)
    X = _data(40, 4, seed=3)
    X[[2, 17], [1, 3]] = np.nan
    with config_context(assume_finite=True):
        assert_array_equal(_model(coef, intercept).predict(X),
                           _sklearn_model(coef, intercept).predict(X))


def _layouts_and_formats(X, tmp_path):
    """``_layouts`` of X, and X as float32 and as CSR."""
    return {**_layouts(X, tmp_path), "float32": X.astype(np.float32), "csr": sp.csr_matrix(X)}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_in_prediction_raises_like_logistic_regression(bad, tmp_path):
    """Every prediction method, on every layout, rejects a NaN or infinite
    value of X with LogisticRegression's error and message."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = np.arange(40) % 3
    ours = SoftmaxClassifier().fit(X, y)
    theirs = LogisticRegression().fit(X, y)
    X_bad = X.copy()
    X_bad[17, 3] = bad
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    good_layouts = _layouts_and_formats(X, tmp_path / "good")
    for name, X_layout in _layouts_and_formats(X_bad, tmp_path / "bad").items():
        for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
            with pytest.raises(ValueError) as expected:
                getattr(theirs, method)(X_layout)
            message = str(expected.value).replace("LogisticRegression", "SoftmaxClassifier")
            with pytest.raises(ValueError, match=re.escape(message)):
                getattr(ours, method)(X_layout)
        # The same data without the bad value predicts as before.
        assert_allclose(ours.predict_proba(good_layouts[name]), ours.predict_proba(X),
                        rtol=1e-6)


def _kernel_prediction(X, coef, intercept, mode, n_threads):
    """The prediction kernel's output and its finiteness verdict on X."""
    weights_t = np.ascontiguousarray(coef.T)
    out = np.empty((X.shape[0], coef.shape[0]), dtype=coef.dtype)
    if sp.issparse(X):
        X_finite = predict_kernel.csr_predict(X.data, X.indices, X.indptr, weights_t,
                                              intercept, mode, n_threads, out)
    else:
        X_finite = predict_kernel.dense_predict(X, weights_t, intercept, mode, n_threads,
                                                out)
    return out, X_finite


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 5, 17])
def test_kernel_sees_non_finite_X_against_numpy(dtype, n_classes):
    """The kernel's verdict on C-ordered X in the model's dtype and on CSR
    against np.isfinite: a NaN or infinity at the first, last or a chunk's
    edge rows, also where every coefficient of its feature is 0 (inf * 0 is
    NaN), is found by every mode and thread count. Finite rows are unchanged."""
    chunk = _chunk_rows(dtype)
    X = _data(2 * chunk + 3, dtype=dtype)
    coef, intercept = _coefs(N_FEATURES, n_classes, dtype)
    coef[:, 7] = 0.0
    modes = (predict_kernel.DECISION, predict_kernel.PROBA, predict_kernel.LOG_PROBA)
    forms = {"dense": lambda A: A, "csr": sp.csr_matrix}
    clean = {(form, mode): _kernel_prediction(to_form(X), coef, intercept, mode, 2)
             for form, to_form in forms.items() for mode in modes}
    assert all(X_finite is True for _, X_finite in clean.values())
    for row in (0, chunk - 1, chunk, X.shape[0] - 1):
        for column in (0, 7, N_FEATURES - 1):
            for bad in (np.nan, np.inf, -np.inf):
                X_bad = X.copy()
                X_bad[row, column] = bad
                assert not np.isfinite(X_bad).all()
                for form, to_form in forms.items():
                    for mode in modes:
                        for n_threads in (1, 3):
                            out, X_finite = _kernel_prediction(
                                to_form(X_bad), coef, intercept, mode, n_threads)
                            assert X_finite is False
                            others = np.arange(X.shape[0]) != row
                            assert_array_equal(out[others],
                                               clean[form, mode][0][others])
                            if mode != predict_kernel.DECISION:
                                assert np.isnan(out[row]).all()


@pytest.mark.parametrize("case", ["fortran", "many-classes"])
def test_blas_path_flags_non_finite_rows(case):
    """On the BLAS path too, a row of X with a NaN or infinity gets NaN
    (log-)probabilities, the kernel does not report X as finite, and the
    other rows are unchanged."""
    n_classes = 201 if case == "many-classes" else 4
    X = _data(300)
    coef, intercept = _coefs(N_FEATURES, n_classes)
    to_form = np.asfortranarray if case == "fortran" else np.ascontiguousarray
    for mode in (predict_kernel.PROBA, predict_kernel.LOG_PROBA):
        clean, _ = _kernel_prediction(to_form(X), coef, intercept, mode, 2)
        for bad in (np.nan, np.inf):
            X_bad = X.copy()
            X_bad[123, 4] = bad
            out, X_finite = _kernel_prediction(to_form(X_bad), coef, intercept, mode, 2)
            assert X_finite is not True
            assert np.isnan(out[123]).all()
            assert_array_equal(np.delete(out, 123, axis=0), np.delete(clean, 123, axis=0))


def test_estimator_checks_X_when_the_kernel_cannot_tell(monkeypatch):
    """A kernel verdict of None (as from a BLAS that skips multiplications by
    zero) makes the estimator check X itself, with LogisticRegression's error."""
    kernel = predict_kernel.dense_predict

    def unsure(*args):
        kernel(*args)
        return None

    monkeypatch.setattr(_prediction.predict, "dense_predict", unsure)
    coef, intercept = _coefs(N_FEATURES, 3)
    clf, lr = _model(coef, intercept), _sklearn_model(coef, intercept)
    X = np.asfortranarray(_data(50))
    assert_allclose(clf.predict_proba(X), lr.predict_proba(X), rtol=1e-12)
    X[10, 3] = np.inf
    with pytest.raises(ValueError) as expected:
        lr.predict_proba(X)
    message = str(expected.value).replace("LogisticRegression", "SoftmaxClassifier")
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.predict_proba(X)


def test_kernel_cannot_tell_without_reading_every_value():
    """Where the kernel does not multiply every value of X itself (X read by
    BLAS; CSR values outside indptr's range), it says so for finite X (the
    estimator then checks X on its own: see the layouts' test above)."""
    X = _data(300)
    coef, intercept = _coefs(N_FEATURES, 4)
    assert _kernel_prediction(np.asfortranarray(X), coef, intercept,
                              predict_kernel.PROBA, 2)[1] is None
    many_coef, many_intercept = _coefs(N_FEATURES, 201)  # more classes than the micro-kernels
    assert _kernel_prediction(X, many_coef, many_intercept, predict_kernel.PROBA, 2)[1] is None
    weights_t = np.ascontiguousarray(coef.T)
    out = np.empty((X.shape[0], 4))
    assert predict_kernel.dense_predict(X.astype(np.float32), weights_t, intercept,
                                        predict_kernel.PROBA, 2, out) is None
    csr = sp.csr_matrix(X)
    assert _kernel_prediction(csr, coef, intercept, predict_kernel.PROBA, 2)[1] is True
    padded = csr.copy()  # a NaN stored past indptr[-1]
    padded.data = np.append(csr.data, np.nan)
    padded.indices = np.append(csr.indices, np.zeros(1, csr.indices.dtype))
    assert padded.data.size > padded.indptr[-1]
    assert _kernel_prediction(padded, coef, intercept, predict_kernel.PROBA, 2)[1] is None


def test_assume_finite_skips_the_finiteness_check_like_logistic_regression():
    """Under ``assume_finite=True`` a NaN in X is not looked for: no error, as
    with LogisticRegression, and the row's predictions are NaN like its own."""
    import sklearn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = np.arange(40) % 3
    ours = SoftmaxClassifier().fit(X, y)
    theirs = LogisticRegression().fit(X, y)
    X[17, 3] = np.nan
    with sklearn.config_context(assume_finite=True):
        decision = ours.decision_function(X)
        assert np.isnan(theirs.decision_function(X)[17]).all()
    assert np.isnan(decision[17]).all()
    assert np.isfinite(np.delete(decision, 17, axis=0)).all()
    with sklearn.config_context(assume_finite=True):
        for method in ("predict_proba", "predict_log_proba"):
            assert_array_equal(np.isnan(getattr(ours, method)(X)),
                               np.isnan(getattr(theirs, method)(X)), err_msg=method)


def test_values_near_the_float64_limit_predict_without_warnings(tmp_path):
    """Finite values near the largest double: scikit-learn's check would overflow
    summing them (and warn); no layout warns, and values beyond float64 in
    object data are rejected with scikit-learn's error alone."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = np.arange(40) % 3
    clf = SoftmaxClassifier().fit(X, y)
    huge = np.full((40, 5), np.finfo(np.float64).max / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for X_layout in _layouts(huge, tmp_path).values():
            assert np.isfinite(clf.predict_proba(X_layout)).all()
        beyond = X.astype(object)
        beyond[0, 0] = np.longdouble("1e400")
        with pytest.raises(ValueError, match="Input X contains infinity"):
            clf.predict_proba(beyond)
