"""Memory layouts, read-only inputs and float32 versus float64.

A fit must not depend on how X is stored: Fortran order, strided views,
read-only arrays and memory maps hold the same values as a C-contiguous array
and give bitwise the same model (they are read in place or copied once to C
order, never computed differently). Sparse formats that convert to the same
CSR arrays give bitwise the CSR model. A fit never writes into its inputs.

float32 data are fitted in float32 (no float64 copy of X); the fitted
attributes and predictions have the dtypes scikit-learn's LogisticRegression
gives, and the float32 model is the float64 one up to float32 accuracy,
measured with the float64 objective.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skcce import SoftmaxClassifier, crossentropy_loss_gradient
from _reference import full_coef
from _memory import traced_peak
from _reference import REFERENCE_SKLEARN, sklearn_at_least

MiB = 2**20
FIT = dict(tol=1e-8, max_iter=300, n_jobs=2)


def dense_problem(n=3000, d=12, K=4, dtype=np.float64, seed=0):
    """Gaussian X (values exactly representable in float32) and labels from a
    random linear model plus Gumbel noise (overlapping classes)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32).astype(dtype)
    W = rng.normal(size=(K, d))
    y = np.argmax(X.astype(np.float64) @ W.T + rng.gumbel(size=(n, K)), axis=1)
    sw = rng.uniform(0.2, 3.0, size=n)
    return X, y, sw


def assert_same_model(a, b):
    """Bitwise the same fitted model: coefficients, intercepts, iterations."""
    assert a.coef_.dtype == b.coef_.dtype
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(a.intercept_, b.intercept_)
    assert np.array_equal(a.n_iter_, b.n_iter_)
    assert a.loss_curve_ == b.loss_curve_


def _fortran(X, tmp_path):
    return np.asfortranarray(X)


def _strided_rows(X, tmp_path):
    big = np.zeros((2 * X.shape[0], X.shape[1]), dtype=X.dtype)
    big[::2] = X
    return big[::2]


def _strided_columns(X, tmp_path):
    big = np.zeros((X.shape[0], 3 * X.shape[1]), dtype=X.dtype)
    big[:, 1::3] = X
    return big[:, 1::3]


def _read_only(X, tmp_path):
    X = X.copy()
    X.setflags(write=False)
    return X


def _read_only_fortran(X, tmp_path):
    X = np.asfortranarray(X)
    X.setflags(write=False)
    return X


def _memmap(X, tmp_path):
    path = tmp_path / "X.dat"
    writer = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    writer[:] = X
    writer.flush()
    del writer
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


LAYOUTS = {
    "Fortran order": _fortran,
    "strided rows": _strided_rows,
    "strided columns": _strided_columns,
    "read-only": _read_only,
    "read-only Fortran": _read_only_fortran,
    "memmap mode r": _memmap,
}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_dense_layouts_give_the_c_contiguous_model(layout, dtype, weighted, tmp_path):
    """Every layout gives bitwise the model of the C-contiguous array."""
    X, y, sw = dense_problem(dtype=dtype)
    sw = sw if weighted else None
    reference = SoftmaxClassifier(**FIT).fit(X, y, sample_weight=sw)
    X_layout = LAYOUTS[layout](X, tmp_path)
    assert np.array_equal(X_layout, X)
    if layout != "read-only" and layout != "memmap mode r":
        assert not X_layout.flags.c_contiguous
    clf = SoftmaxClassifier(**FIT).fit(X_layout, y, sample_weight=sw)
    assert_same_model(clf, reference)
    assert reference.n_iter_[0] < FIT["max_iter"]


def test_read_only_targets_and_weights():
    """Read-only y (labels or soft targets) and sample_weight: bitwise the model
    of writable ones."""
    X, y, sw = dense_problem()
    Q = np.random.default_rng(1).dirichlet(np.ones(4), size=y.shape[0])
    for targets in (y, Q):
        reference = SoftmaxClassifier(**FIT).fit(X, targets, sample_weight=sw)
        targets_ro, sw_ro, X_ro = targets.copy(), sw.copy(), X.copy()
        for a in (targets_ro, sw_ro, X_ro):
            a.setflags(write=False)
        assert_same_model(SoftmaxClassifier(**FIT).fit(X_ro, targets_ro,
                                                       sample_weight=sw_ro), reference)
        assert_same_model(SoftmaxClassifier(**FIT).fit(X, targets_ro,
                                                       sample_weight=sw_ro), reference)


def sparse_problem(n=3000, d=40, K=4, density=0.2, dtype=np.float64,
                   index_dtype=np.int32, seed=0):
    """Canonical CSR (sorted indices, no duplicates) and labels."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed,
                  data_rvs=lambda size: rng.standard_normal(size).astype(np.float32))
    X = sp.csr_matrix(X, dtype=dtype)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    W = rng.normal(size=(K, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    sw = rng.uniform(0.2, 3.0, size=n)
    assert X.has_canonical_format
    return X, y, sw


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_read_only_sparse_arrays(dtype, index_dtype, weighted):
    """CSR whose data, indices and indptr are read-only: bitwise the model of the
    writable CSR matrix (and of a read-only csr_array)."""
    X, y, sw = sparse_problem(dtype=dtype, index_dtype=index_dtype)
    sw = sw if weighted else None
    reference = SoftmaxClassifier(**FIT).fit(X, y, sample_weight=sw)
    X_ro = X.copy()
    for a in (X_ro.data, X_ro.indices, X_ro.indptr):
        a.setflags(write=False)
    assert_same_model(SoftmaxClassifier(**FIT).fit(X_ro, y, sample_weight=sw), reference)
    A_ro = sp.csr_array(X_ro)
    for a in (A_ro.data, A_ro.indices, A_ro.indptr):
        a.setflags(write=False)
    assert_same_model(SoftmaxClassifier(**FIT).fit(A_ro, y, sample_weight=sw), reference)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fmt", ["csc_matrix", "coo_matrix", "csc_array", "coo_array"])
def test_csc_and_coo_give_the_csr_model(fmt, dtype):
    """CSC and COO convert to the CSR arrays of a CSR matrix with sorted
    indices: bitwise the same model (with and without sample weights)."""
    X, y, sw = sparse_problem(dtype=dtype)
    other = getattr(sp, fmt)(X)
    for weights in (None, sw):
        reference = SoftmaxClassifier(**FIT).fit(X, y, sample_weight=weights)
        assert_same_model(SoftmaxClassifier(**FIT).fit(other, y, sample_weight=weights),
                          reference)


def _sparse_arrays(obj):
    if obj.format == "coo":
        return (obj.data, obj.row, obj.col)
    return (obj.data, obj.indices, obj.indptr)


def _snapshot(obj):
    if sp.issparse(obj):
        return (obj.format, obj.shape, [a.copy() for a in _sparse_arrays(obj)],
                obj.has_canonical_format)
    return (obj.copy(order="K"), obj.flags.c_contiguous, obj.flags.f_contiguous)


def _unchanged(obj, snapshot):
    if sp.issparse(obj):
        fmt, shape, arrays, canonical = snapshot
        return (obj.format == fmt and obj.shape == shape
                and obj.has_canonical_format == canonical
                and all(a.dtype == b.dtype and np.array_equal(a, b)
                        for a, b in zip(_sparse_arrays(obj), arrays)))
    values, c_contiguous, f_contiguous = snapshot
    return (obj.dtype == values.dtype and np.array_equal(obj, values)
            and obj.flags.c_contiguous == c_contiguous
            and obj.flags.f_contiguous == f_contiguous)


def _non_canonical_csr():
    """CSR with unsorted indices and duplicate entries (scipy sums them)."""
    X, _, _ = sparse_problem(n=3000, d=40, seed=3)
    rng = np.random.default_rng(3)
    data, indices = X.data.copy(), X.indices.copy()
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        if hi - lo >= 2:
            indices[lo] = indices[hi - 1]  # a duplicate column, first in the row
            perm = rng.permutation(hi - lo)
            indices[lo:hi], data[lo:hi] = indices[lo:hi][perm], data[lo:hi][perm]
    Xn = sp.csr_matrix((data, indices, X.indptr.copy()), shape=X.shape)
    assert not Xn.has_canonical_format
    return Xn


INPUTS = {
    "C float64": lambda: dense_problem()[0],
    "Fortran float64": lambda: np.asfortranarray(dense_problem()[0]),
    "C float32": lambda: dense_problem(dtype=np.float32)[0],
    "Fortran float32": lambda: np.asfortranarray(dense_problem(dtype=np.float32)[0]),
    "CSR": lambda: sparse_problem()[0],
    "CSR float32 int64": lambda: sparse_problem(dtype=np.float32, index_dtype=np.int64)[0],
    "non-canonical CSR": _non_canonical_csr,
    "CSC": lambda: sparse_problem()[0].tocsc(),
    "COO": lambda: sparse_problem()[0].tocoo(),
}


@pytest.mark.parametrize("targets", ["labels", "soft targets"])
@pytest.mark.parametrize("kind", list(INPUTS), ids=list(INPUTS))
def test_fit_does_not_modify_inputs(kind, targets):
    """X (values, layout, sparse structure and canonical flag), y and
    sample_weight are unchanged by a fit with class weights and label
    smoothing."""
    X = INPUTS[kind]()
    n = X.shape[0]
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, size=n) if targets == "labels" else rng.dirichlet(
        np.ones(4), size=n)
    sw = rng.uniform(0.2, 3.0, size=n)
    before = [_snapshot(a) for a in (X, y, sw)]
    SoftmaxClassifier(class_weight="balanced", label_smoothing=0.1, **FIT).fit(
        X, y, sample_weight=sw)
    for a, snapshot in zip((X, y, sw), before):
        assert _unchanged(a, snapshot)


# ---------------------------------------------------------------------------
# float32 versus float64
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_float32_dtypes_follow_logistic_regression(kind, n_classes):
    """float32 X: the dtypes of coef_, intercept_ and every prediction are those
    of LogisticRegression(solver="lbfgs") (scikit-learn 1.9: float32 for
    float32 X; float64 predictions for float64 X on a float32 model)."""
    if not sklearn_at_least(REFERENCE_SKLEARN):
        pytest.skip("older LogisticRegression fits float32 data in float64")
    X64, y, _ = dense_problem(n=500, d=6, K=n_classes)
    if kind == "sparse":
        X64 = sp.csr_matrix(np.where(np.abs(X64) > 0.5, X64, 0.0))
    X32 = X64.astype(np.float32)
    ours = SoftmaxClassifier(max_iter=200).fit(X32, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(max_iter=200).fit(X32, y)

    def dtypes(model):
        return {
            "coef_": model.coef_.dtype,
            "intercept_": model.intercept_.dtype,
            "predict_proba(X32)": model.predict_proba(X32).dtype,
            "predict_log_proba(X32)": model.predict_log_proba(X32).dtype,
            "decision_function(X32)": model.decision_function(X32).dtype,
            "predict_proba(X64)": model.predict_proba(X64).dtype,
            "decision_function(X64)": model.decision_function(X64).dtype,
        }

    assert dtypes(ours) == dtypes(ref)
    expected = {k: np.dtype(np.float64 if k.endswith("(X64)") else np.float32)
                for k in dtypes(ref)}
    assert dtypes(ours) == expected
    float64_model = SoftmaxClassifier(max_iter=200).fit(X64, y)
    assert float64_model.coef_.dtype == float64_model.intercept_.dtype == np.float64
    assert float64_model.predict_proba(X32).dtype == np.float64


def _objective(model, X64, y, C):
    """The estimator's objective at a model, in float64 on float64 data."""
    l2 = 1.0 / (C * X64.shape[0])
    return crossentropy_loss_gradient(full_coef(model), X64, y, l2_reg_strength=l2)[0]


def test_dense_float32_fit_agrees_with_float64_fit():
    """Dense float32 and float64 fits of the same values agree to float32
    accuracy.

    The dense float32 kernel computes the logits by SGEMM with the
    coefficients rounded to float32, so the objective L-BFGS sees is perturbed
    at ~1e-7 relative and the float32 fit stops where that noise dominates
    (here at max|grad| ~2e-6 against ~7e-9 for float64). Evaluated with the
    float64 objective on the float64 data, the float32 model is worse by
    6.7e-10 relative (seeds 0-5 of this generator: at most 3.9e-9); 1e-7 is
    the float32 resolution of the objective. predict_proba differs by 4.5e-5
    (seeds 0-5: at most 1.1e-4); the tolerance 2e-4 is consistent with that
    objective gap (probability changes of ~sqrt(gap) ~ 1e-4). The float64 fit
    is the better minimizer of the float64 objective.
    """
    C = 1.0
    X64, y, _ = dense_problem(n=3000, d=20, K=5, seed=0)
    X32 = X64.astype(np.float32)
    assert np.array_equal(X32.astype(np.float64), X64)
    params = dict(C=C, tol=1e-12, max_iter=2000, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m32 = SoftmaxClassifier(**params).fit(X32, y)
    m64 = SoftmaxClassifier(**params).fit(X64, y)
    f32, f64 = _objective(m32, X64, y, C), _objective(m64, X64, y, C)
    proba_deviation = np.max(np.abs(m32.predict_proba(X64) - m64.predict_proba(X64)))
    print(f"\ndense float32 vs float64: objective {(f32 - f64) / f64:.2e} relative, "
          f"predict_proba {proba_deviation:.2e}")
    assert f64 <= f32 + 1e-13 * f64
    assert (f32 - f64) / f64 < 1e-7
    assert proba_deviation < 2e-4
    assert_allclose(m32.predict_proba(X32), m64.predict_proba(X64), rtol=0, atol=2e-4)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_float32_fit_is_the_float64_fit(index_dtype):
    """Sparse float32 and float64 fits of the same values: the same fit.

    The sparse kernel converts each value exactly to float64 and computes with
    float64 coefficients, so L-BFGS follows the same iterates for both dtypes
    (same n_iter_ and loss curve) and the float32 model is the float64 model
    rounded to float32, bit for bit. Rounding the coefficients is then the
    only difference: predict_proba on float64 data differs by 8.4e-8
    (asserted 1e-6) and the float64 objective by ~1e-16 relative (asserted
    1e-12).
    """
    C = 1.0
    X64, y, _ = sparse_problem(n=3000, d=20, K=5, density=0.3, index_dtype=index_dtype)
    X32 = X64.astype(np.float32)
    assert np.array_equal(X32.astype(np.float64).toarray(), X64.toarray())
    params = dict(C=C, tol=1e-12, max_iter=2000, n_jobs=2)
    m32 = SoftmaxClassifier(**params).fit(X32, y)
    m64 = SoftmaxClassifier(**params).fit(X64, y)
    assert m32.coef_.dtype == np.float32
    assert np.array_equal(m32.coef_, m64.coef_.astype(np.float32))
    assert np.array_equal(m32.intercept_, m64.intercept_.astype(np.float32))
    assert np.array_equal(m32.n_iter_, m64.n_iter_)
    assert m32.loss_curve_ == m64.loss_curve_
    proba_deviation = np.max(np.abs(m32.predict_proba(X64) - m64.predict_proba(X64)))
    f32, f64 = _objective(m32, X64, y, C), _objective(m64, X64, y, C)
    print(f"\nsparse float32 vs float64: objective {(f32 - f64) / f64:.2e} relative, "
          f"predict_proba {proba_deviation:.2e}")
    assert proba_deviation < 1e-6
    assert abs(f32 - f64) / f64 < 1e-12


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_input_is_never_copied_to_float64():
    """tracemalloc peak of fitting 100,000 x 50 float32 X (19 MiB).

    C order is read in place: measured peak 3.9 MiB (the label encoding,
    ``np.unique(y, return_inverse=True)``; the feature-scale statistics read
    the float32 data in place), asserted below 0.3 X.nbytes; a float64 copy
    of X would be 2 X.nbytes. Fortran order is copied once to C order in
    float32: measured ~X.nbytes + 4 MiB, asserted below 1.5 X.nbytes.
    """
    n, d, K = 100_000, 50, 10
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.integers(0, K, size=n)
    X[np.arange(n), y] += 1.0
    SoftmaxClassifier(max_iter=2).fit(X[:500], y[:500])  # warm-up: imports, BLAS
    peak_c, _ = traced_peak(lambda: SoftmaxClassifier(max_iter=5).fit(X, y))
    X_f = np.asfortranarray(X)
    peak_f, _ = traced_peak(lambda: SoftmaxClassifier(max_iter=5).fit(X_f, y))
    print(f"\nfloat32 fit peaks: C order {peak_c / MiB:.1f} MiB, Fortran "
          f"{peak_f / MiB:.1f} MiB, X {X.nbytes / MiB:.1f} MiB")
    assert peak_c < 0.3 * X.nbytes, f"{peak_c / MiB:.1f} MiB"
    assert peak_f < 1.5 * X.nbytes, f"{peak_f / MiB:.1f} MiB"
