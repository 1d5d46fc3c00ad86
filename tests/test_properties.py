"""Property-based tests of ``skcce.crossentropy_loss_gradient`` and ``SoftmaxClassifier``.

Hypothesis draws shapes, dtypes, sparsity patterns, sample weights, targets and
coefficients. Each property is checked against an independent reference (the
float64 NumPy formulas of ``_reference``, central finite differences) or, for
the reproducibility and invariance properties, between two runs that must agree
by construction.

Drawn shapes: ``n_samples`` in 1..300, ``n_features`` in 1..40 and
``n_classes`` in 2..40 and 63, 65, with extra weight on the class counts around
the dense micro-kernels' vector widths (4, 8 and 16 lanes) and tiles of
classes (32 float64 or 64 float32 lanes). (The switch to BLAS is tested in
``test_loss``.) ``n_features = 0`` is not drawn: both the
public loss function and ``fit`` reject it with scikit-learn's
``ValueError`` (``check_array(..., ensure_min_features=1)``), which
:func:`test_zero_features_rejected` checks.

Tolerances against the NumPy reference are not fixed numbers: they are a
first-order bound on the rounding errors of the example at hand, computed by
:func:`rounding_error_bound` from the magnitudes of the terms that are summed.
That keeps them tight (a few hundred float64 ulps of those magnitudes) where a
fixed relative tolerance would be either too loose for small problems or
meaningless for entries that cancel.

Every test is bounded (``max_examples``), derandomized (the same examples on
every run) and keeps no example database; together they run in well under a
minute on two cores.
"""

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import log_softmax

from _reference import central_differences, full_coef, ref_objective
from skcce import SoftmaxClassifier, crossentropy_loss_gradient

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # scikit-learn's remark on small samples with many classes (a valid input)
    pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning"),
]

#: Unit roundoffs.
U64 = np.finfo(np.float64).eps / 2
U32 = np.finfo(np.float32).eps / 2
#: Smallest normal numbers.
TINY64 = np.finfo(np.float64).tiny
TINY32 = float(np.finfo(np.float32).tiny)

#: Factor applied to the first-order rounding error bounds, for the
#: second-order terms they leave out.
SAFETY = 4.0

#: Dense vs CSR (float64): agreement relative to the magnitudes of the terms.
DENSE_CSR_RTOL = 1e-12


def bounded(max_examples):
    """Hypothesis settings shared by every test of this module.

    Parameters
    ----------
    max_examples : int
        Number of examples drawn.

    Returns
    -------
    settings : hypothesis.settings
        Derandomized, without deadline, without an example database.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------
# Strategies and problem construction
# ---------------------------------------------------------------------------

#: Class counts on both sides of 4, 8, 12, 16, 32 and 64 (vector widths and
#: tiles of classes).
TILE_CLASSES = [2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 34, 40, 63, 65]
n_classes_strategy = st.one_of(st.sampled_from(TILE_CLASSES), st.integers(2, 40))


@dataclass
class LossProblem:
    """One evaluation of the loss: arguments and the same values in float64.

    Attributes
    ----------
    coef : ndarray of shape (K, d + fit_intercept), float64
    X : ndarray or CSR matrix of shape (n, d)
        As passed to the function (float32 or float64, dense or CSR).
    X64 : ndarray of shape (n, d), float64
        The same values, dense.
    y : ndarray of shape (n,) or (n, K)
        Class indices or soft targets.
    sample_weight : ndarray of shape (n,) or None
    l2 : float
    fit_intercept : bool
    smoothing : float
    dtype : type
        dtype of ``X``.
    layout : {"dense", "csr"}
    spec : dict
        The drawn parameters (shown by Hypothesis; they rebuild the example).
    """

    coef: np.ndarray
    X: object
    X64: np.ndarray
    y: np.ndarray
    sample_weight: object
    l2: float
    fit_intercept: bool
    smoothing: float
    dtype: type
    layout: str
    spec: dict

    def __repr__(self):
        return f"LossProblem({self.spec})"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))

    def kwargs(self, **overrides):
        """Keyword arguments of ``crossentropy_loss_gradient`` (after coef, X, y)."""
        kwargs = dict(sample_weight=self.sample_weight, l2_reg_strength=self.l2,
                      fit_intercept=self.fit_intercept,
                      label_smoothing=self.smoothing)
        kwargs.update(overrides)
        return kwargs

    def evaluate(self, X=None, coef=None, **overrides):
        """``crossentropy_loss_gradient`` on this problem (optionally other X/coef)."""
        return crossentropy_loss_gradient(
            self.coef if coef is None else coef, self.X if X is None else X,
            self.y, **self.kwargs(**overrides))

    def reference(self):
        """The float64 NumPy reference ``_reference.ref_objective``."""
        return ref_objective(self.coef, self.X64, self.y, self.sample_weight,
                             l2=self.l2, fit_intercept=self.fit_intercept,
                             label_smoothing=self.smoothing)


def to_csr(X, index_dtype):
    """CSR matrix of the non-zeros of dense ``X`` with the given index dtype."""
    X_csr = sp.csr_matrix(X)
    X_csr.indices = X_csr.indices.astype(index_dtype)
    X_csr.indptr = X_csr.indptr.astype(index_dtype)
    return X_csr


def random_design(rng, n, d, dtype, density, empty_fraction):
    """Normal data with a random sparsity mask and some all-zero rows.

    Returns
    -------
    X : ndarray of shape (n, d), ``dtype``, C order
    """
    X = rng.normal(size=(n, d))
    mask = rng.random((n, d)) < density
    mask[rng.random(n) < empty_fraction] = False
    return np.ascontiguousarray(np.where(mask, X, 0.0), dtype=dtype)


def random_weights(rng, n, kind):
    """None, positive weights, or positive weights with some zeros (not all)."""
    if kind == "none":
        return None
    sw = rng.uniform(0.1, 3.0, size=n)
    if kind == "zeros":
        sw[rng.random(n) < 0.3] = 0.0
        if not np.any(sw > 0):
            sw[rng.integers(n)] = 1.0
    return sw


def random_targets(rng, n, K, kind):
    """Class indices, or soft targets (Dirichlet rows, some one-hot, some zeros)."""
    labels = rng.integers(0, K, size=n)
    if kind == "labels":
        return labels
    alpha = 10.0 ** rng.uniform(-1.0, 1.0)
    Q = rng.dirichlet(np.full(K, alpha), size=n)
    Q[rng.random((n, K)) < 0.2] = 0.0
    one_hot = rng.random(n) < 0.3
    Q[one_hot] = np.eye(K)[labels[one_hot]]
    empty = Q.sum(axis=1) == 0
    Q[empty] = np.eye(K)[labels[empty]]
    return Q / Q.sum(axis=1, keepdims=True)


#: Fraction of stored entries: mostly random in (0, 1], sometimes all or none.
sparsity_densities = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.02, 1.0),
                               st.floats(0.02, 1.0))


@st.composite
def loss_problems(draw, dtypes=(np.float64, np.float32), layouts=("dense", "csr"),
                  n_samples=st.integers(1, 300), n_features=st.integers(1, 40),
                  weight_kinds=("none", "positive", "zeros"),
                  weight_scales=(1.0, 1.0, 1e-3, 1e3)):
    """A random :class:`LossProblem`.

    Parameters
    ----------
    dtypes, layouts : sequence
        Allowed dtypes of X and layouts ("dense", "csr").
    n_samples, n_features : strategy
        Sizes; ``n_samples`` may be a function of ``(n_features, dtype)``
        returning a strategy.
    weight_kinds : sequence of {"none", "positive", "zeros"}
        Sample weights: None, positive, or positive with some zeros.
    weight_scales : sequence of float
        Factors applied to all sample weights (the loss does not depend on
        them).

    Returns
    -------
    problem : LossProblem
    """
    d = draw(n_features)
    K = draw(n_classes_strategy)
    dtype = draw(st.sampled_from(dtypes))
    n = draw(n_samples(d, dtype) if callable(n_samples) else n_samples)
    layout = draw(st.sampled_from(layouts))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    density = draw(sparsity_densities)
    empty_fraction = draw(st.sampled_from([0.0, 0.1, 0.5]))
    fit_intercept = draw(st.booleans())
    weights = draw(st.sampled_from(weight_kinds))
    targets = draw(st.sampled_from(["labels", "soft"]))
    smoothing = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)))
    l2 = draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0)))
    coef_scale = draw(st.one_of(st.just(0.0), st.floats(0.1, 3.0), st.floats(0.1, 3.0),
                                st.floats(3.0, 300.0)))
    weight_scale = draw(st.sampled_from(weight_scales))
    seed = draw(st.integers(0, 2**32 - 1))
    return build_loss_problem(
        n=n, d=d, K=K, dtype=np.dtype(dtype).name, layout=layout,
        index_dtype=np.dtype(index_dtype).name, density=density,
        empty_fraction=empty_fraction, fit_intercept=fit_intercept, weights=weights,
        targets=targets, smoothing=smoothing, l2=l2, coef_scale=coef_scale,
        weight_scale=weight_scale, seed=seed)


def build_loss_problem(*, n, d, K, dtype, layout, index_dtype, density, empty_fraction,
                       fit_intercept, weights, targets, smoothing, l2, coef_scale,
                       weight_scale, seed):
    """The :class:`LossProblem` of drawn parameters (what Hypothesis reports)."""
    spec = dict(n=n, d=d, K=K, dtype=dtype, layout=layout, index_dtype=index_dtype,
                density=density, empty_fraction=empty_fraction,
                fit_intercept=fit_intercept, weights=weights, targets=targets,
                smoothing=smoothing, l2=l2, coef_scale=coef_scale,
                weight_scale=weight_scale, seed=seed)
    rng = np.random.default_rng(seed)
    X = random_design(rng, n, d, dtype, density, empty_fraction)
    coef = coef_scale * rng.normal(size=(K, d + int(fit_intercept)))
    sample_weight = random_weights(rng, n, weights)
    if sample_weight is not None:
        sample_weight *= weight_scale
    return LossProblem(
        coef=coef,
        X=to_csr(X, index_dtype) if layout == "csr" else X,
        X64=X.astype(np.float64),
        y=random_targets(rng, n, K, targets),
        sample_weight=sample_weight,
        l2=l2, fit_intercept=fit_intercept, smoothing=smoothing,
        dtype=np.dtype(dtype).type, layout=layout, spec=spec,
    )


# ---------------------------------------------------------------------------
# Rounding error bounds
# ---------------------------------------------------------------------------


def _exact_terms(p):
    """float64 quantities of the exact objective at ``p`` (see rounding_error_bound)."""
    X, coef = p.X64, np.asarray(p.coef, dtype=np.float64)
    n, d = X.shape
    K = coef.shape[0]
    W = coef[:, :d]
    b = coef[:, d] if p.fit_intercept else np.zeros(K)
    y = np.asarray(p.y)
    Q = np.eye(K)[y] if y.ndim == 1 else np.asarray(y, dtype=np.float64)
    Q = (1.0 - p.smoothing) * Q + p.smoothing / K
    s = np.ones(n) if p.sample_weight is None else np.asarray(p.sample_weight, float)
    A = np.abs(X)
    logp = log_softmax(X @ W.T + b, axis=1)
    return dict(
        n=n, d=d, K=K, W=W, A=A, Q=Q, P=np.exp(logp), w=s / s.sum(),
        mag=(A @ np.abs(W).T + np.abs(b)).max(axis=1),
        ce=-np.sum(Q * logp, axis=1),
        penalty=0.5 * p.l2 * np.sum(W * W),
    )


def rounding_error_bound(p, u_products):
    """First-order bound on the rounding errors of one evaluation of the loss.

    With ``mag_i = max_k sum_j |x_ij w_kj| + |b_k|`` the size of the terms of
    the logits of row i, products computed with unit roundoff ``u`` (float32
    for dense float32 data, whose coefficients are also rounded to float32;
    float64 otherwise) give logits within ``delta_i = (d + 2) u mag_i``. The
    crossentropy is 1-Lipschitz per logit in the sense
    ``|dCE_i| <= ||p_i - q_i||_1 max_k |dz_ik| <= 2 delta_i``, and the
    softmax moves by ``|dp_ik| <= 2 p_ik delta_i``. The remaining float64
    operations (exp, the sums over K classes and over n rows, the penalty) add
    a few units of ``U64`` times the magnitudes they touch; residuals
    ``s_i (p_ik - q_ik)`` stored in the product dtype add ``u (p_ik + q_ik)``,
    and the gradient product over at most n rows ``(n + 4) u`` times its
    absolute sum. Underflow (exponentials and residuals below the smallest
    normal number, possibly flushed to zero) adds an absolute error of that
    number per term of each sum, in the units of the result.

    Parameters
    ----------
    p : LossProblem
    u_products : float
        Unit roundoff of the matrix products.

    Returns
    -------
    loss_bound : float
    grad_bound : ndarray shaped like ``p.coef``
    """
    t = _exact_terms(p)
    n, d, K, w, P, Q, A = t["n"], t["d"], t["K"], t["w"], t["P"], t["Q"], t["A"]
    tiny = TINY32 + TINY64 if u_products == U32 else 2 * TINY64
    delta = (d + 2) * u_products * t["mag"]
    loss = (w @ (2 * delta + U64 * (2 * K * t["mag"] + K + 2))
            + U64 * (n + 2) * (w @ np.abs(t["ce"]))
            + U64 * (d * K + 2) * t["penalty"]
            + 4 * tiny * (n + K))
    PQ = P + Q
    moved = 2 * P * delta[:, None]
    grad_w = ((w[:, None] * (moved + (u_products * (n + 4) + U64 * (K + 4)) * PQ)).T @ A
              + 4 * U64 * ((w[:, None] * PQ).T @ A + p.l2 * np.abs(t["W"]))
              + tiny * A.sum(axis=0))
    columns = [grad_w]
    if p.fit_intercept:
        columns.append((w @ (moved + U64 * (n + K + 8) * PQ) + tiny * n)[:, None])
    return float(loss), np.hstack(columns)


def term_magnitudes(p):
    """Sums of absolute values of the terms of the loss and of each gradient entry.

    The loss sums ``s_i CE_i``, each computed from logits of size ``mag_i``;
    gradient entry (k, j) sums ``s_i (p_ik - q_ik) x_ij``, sensitive to the
    logits through ``p``. Relative agreement is measured against these, not
    against the (possibly cancelling) results.

    Returns
    -------
    loss_scale : float
    grad_scale : ndarray shaped like ``p.coef``
    """
    t = _exact_terms(p)
    w, PQ, mag = t["w"], t["P"] + t["Q"], t["mag"]
    weighted = w[:, None] * PQ * (1.0 + mag)[:, None]
    columns = [weighted.T @ t["A"] + p.l2 * np.abs(t["W"])]
    if p.fit_intercept:
        columns.append(weighted.sum(axis=0)[:, None])
    loss_scale = w @ (1.0 + mag + np.abs(t["ce"])) + t["penalty"]
    return float(loss_scale), np.hstack(columns)


def product_roundoff(p):
    """Unit roundoff of the products for ``p.X``: float32 only for dense float32."""
    return U32 if (p.dtype == np.float32 and p.layout == "dense") else U64


def assert_within(actual, desired, bound, what):
    """``|actual - desired| <= bound`` element-wise, with a readable failure."""
    actual = np.asarray(actual, float)
    desired = np.broadcast_to(np.asarray(desired, float), actual.shape)
    excess = np.abs(actual - desired) - bound
    if np.any(excess > 0) or not np.all(np.isfinite(actual)):
        worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.ndim else ()
        raise AssertionError(
            f"{what}: |difference| exceeds its bound at {worst}: "
            f"actual={actual[worst]!r}, desired={desired[worst]!r}, "
            f"bound={np.broadcast_to(bound, excess.shape)[worst]!r}"
        )


# ---------------------------------------------------------------------------
# 1. Loss and gradient against NumPy; dense vs CSR; float32 vs float64
# ---------------------------------------------------------------------------


@bounded(60)
@given(loss_problems())
def test_loss_gradient_matches_numpy_reference(p):
    """Loss and gradient equal the float64 NumPy reference within rounding bounds.

    Covers dense and CSR data (int32/int64 indices, density 0..1, empty rows),
    float32 and float64, labels and soft targets, label smoothing, sample
    weights with zeros and the L2 penalty. The tolerance is the bound of
    :func:`rounding_error_bound` for the function (float32 products for dense
    float32 data) plus the same bound in float64 for the reference.
    """
    loss, grad = p.evaluate()
    ref_loss, ref_grad = p.reference()
    assert grad.dtype == np.float64 and grad.shape == p.coef.shape
    loss_bound, grad_bound = rounding_error_bound(p, product_roundoff(p))
    loss_ref_bound, grad_ref_bound = rounding_error_bound(p, U64)
    assert_within(loss, ref_loss, SAFETY * (loss_bound + loss_ref_bound), "loss")
    assert_within(grad, ref_grad, SAFETY * (grad_bound + grad_ref_bound), "gradient")


@bounded(60)
@given(loss_problems(dtypes=(np.float64,), layouts=("dense",)))
def test_dense_and_csr_agree_in_float64(p):
    """Dense and CSR input holding the same float64 values agree to 1e-12.

    Relative to the magnitudes of the summed terms (:func:`term_magnitudes`):
    both are float64 computations whose rounding errors are at most a few
    hundred ulps of those magnitudes for these sizes, far below 1e-12.
    Checked for int32 and int64 indices.
    """
    loss_scale, grad_scale = term_magnitudes(p)
    dense = p.evaluate()
    for index_dtype in (np.int32, np.int64):
        sparse_loss, sparse_grad = p.evaluate(X=to_csr(p.X, index_dtype))
        assert_within(sparse_loss, dense[0], DENSE_CSR_RTOL * loss_scale, "loss")
        assert_within(sparse_grad, dense[1], DENSE_CSR_RTOL * grad_scale, "gradient")


@bounded(60)
@given(loss_problems(dtypes=(np.float32,)))
def test_float32_agrees_with_float64_of_the_same_values(p):
    """float32 data agrees with the same values in float64, within dtype bounds.

    Dense float32 runs its products in float32 with the coefficients rounded
    to float32, so the tolerance is the float32-product bound of
    :func:`rounding_error_bound` (logits within ``(d + 2) u32 mag``,
    residuals stored and summed in float32) plus the float64 bound of the other
    run. Sparse float32 data is read into float64 arithmetic with float64
    coefficients: there the bound is the float64 one.
    """
    loss32, grad32 = p.evaluate()
    X64 = to_csr(p.X64, p.X.indices.dtype) if p.layout == "csr" else p.X64
    loss64, grad64 = p.evaluate(X=X64)
    loss_bound, grad_bound = rounding_error_bound(p, product_roundoff(p))
    loss_bound64, grad_bound64 = rounding_error_bound(p, U64)
    assert_within(loss32, loss64, SAFETY * (loss_bound + loss_bound64), "loss")
    assert_within(grad32, grad64, SAFETY * (grad_bound + grad_bound64), "gradient")


@pytest.mark.parametrize("dtype, layout", [
    (np.float64, "dense"),
    (np.float64, "csr"),
    (np.float32, "csr"),
    (np.float32, "dense"),
])
@bounded(30)
@given(data=st.data())
def test_extreme_weight_scales_match_numpy_reference(dtype, layout, data):
    """Sample weights scaled by 1e-150 or 1e150 give the reference loss and gradient.

    The objective divides by the weight sum, so it does not depend on the
    weights' scale; the tolerances are those of
    :func:`test_loss_gradient_matches_numpy_reference`.
    """
    p = data.draw(loss_problems(dtypes=(dtype,), layouts=(layout,),
                                weight_kinds=("positive", "zeros"),
                                weight_scales=(1e-150, 1e150)), label="problem")
    loss, grad = p.evaluate()
    ref_loss, ref_grad = p.reference()
    loss_bound, grad_bound = rounding_error_bound(p, product_roundoff(p))
    loss_ref_bound, grad_ref_bound = rounding_error_bound(p, U64)
    assert_within(loss, ref_loss, SAFETY * (loss_bound + loss_ref_bound), "loss")
    assert_within(grad, ref_grad, SAFETY * (grad_bound + grad_ref_bound), "gradient")


def test_zero_features_rejected():
    """``n_features = 0`` is rejected by the loss function and by fit.

    Both validate X with scikit-learn's ``check_array`` (at least one
    feature), which is why the property tests draw ``n_features >= 1``.
    """
    X = np.zeros((5, 0))
    y = np.array([0, 1, 2, 0, 1])
    for X_in in (X, sp.csr_matrix(X)):
        with pytest.raises(ValueError, match="0 feature"):
            crossentropy_loss_gradient(np.zeros((3, 1)), X_in, y)
        with pytest.raises(ValueError, match="0 feature"):
            SoftmaxClassifier().fit(X_in, y)


# ---------------------------------------------------------------------------
# 2. Gradient against central finite differences
# ---------------------------------------------------------------------------


def _third_derivative_bound(p, V):
    """Bound on ``|f'''(t)|`` of the loss along ``coef + t V``.

    Along the line the logits of row i move by ``a_i = V_W x_i + V_b``; the
    third derivative of ``logsumexp`` along ``a_i`` is the third central
    moment of ``a_i`` under the softmax, at most ``range(a_i)^3``. The target
    and penalty terms are at most quadratic.
    """
    t = _exact_terms(p)
    d = t["d"]
    a = p.X64 @ V[:, :d].T
    if p.fit_intercept:
        a = a + V[:, d]
    spread = a.max(axis=1) - a.min(axis=1)
    return float(t["w"] @ spread**3)


@bounded(60)
@given(loss_problems(), st.integers(0, 2**32 - 1))
def test_gradient_matches_central_differences(p, seed):
    """Directional derivatives equal central finite differences of the loss.

    Three directions per example: a random one and two coordinate directions.
    With ``eps_f`` the bound on the rounding error of one loss value and
    ``M3`` a bound on the third derivative along the direction, the step
    ``h = (3 eps_f / M3)^(1/3)`` gives a central difference within
    ``h^2 M3 / 6 + eps_f / h`` of the exact derivative; the gradient's own
    rounding bound is added.
    """
    rng = np.random.default_rng(seed)
    loss_bound, grad_bound = rounding_error_bound(p, product_roundoff(p))
    eps_f = SAFETY * loss_bound
    _, grad = p.evaluate()
    directions = [rng.normal(size=p.coef.shape)]
    for _ in range(2):
        E = np.zeros_like(p.coef)
        E[rng.integers(p.coef.shape[0]), rng.integers(p.coef.shape[1])] = 1.0
        directions.append(E)
    for V in directions:
        M3 = _third_derivative_bound(p, V)
        h = float(np.clip((3 * eps_f / M3) ** (1 / 3) if M3 > 0 else 0.1, 1e-7, 0.1))

        def loss_along(t, V=V):
            return p.evaluate(coef=p.coef + t[0] * V)[0]

        fd = central_differences(loss_along, np.zeros(1), h=h)[0]
        tol = 2 * (h**2 * M3 / 6 + eps_f / h + SAFETY * np.sum(grad_bound * np.abs(V)))
        assert_within(np.vdot(grad, V), fd, tol, f"directional derivative (h={h:.3g})")


# ---------------------------------------------------------------------------
# 3. Bitwise reproducibility across thread counts
# ---------------------------------------------------------------------------


def _rows_up_to_three_blocks(d, dtype):
    """n_samples in 1..300, or spanning one to three 1 MiB row blocks of the dense kernel."""
    block_rows = (1 << 20) // (d * np.dtype(dtype).itemsize)
    several_blocks = st.builds(lambda m, r: m * block_rows + r,
                               st.integers(1, 2), st.integers(0, block_rows))
    return st.one_of(st.integers(1, 300), several_blocks)


@bounded(40)
@given(loss_problems(n_samples=_rows_up_to_three_blocks, n_features=st.integers(8, 40)))
def test_loss_gradient_bitwise_identical_across_n_jobs(p):
    """Loss and gradient are bitwise identical for n_jobs in {1, 2, 3}.

    Sizes reach several row blocks of the dense kernel, so that the threads
    do split the work; CSR data is split across threads within a chunk.
    ``n_features >= 8`` keeps those sizes below about 100000 rows.
    """
    results = [p.evaluate(n_jobs=n_jobs) for n_jobs in (1, 2, 3)]
    loss1, grad1 = results[0]
    for loss, grad in results[1:]:
        assert np.float64(loss).tobytes() == np.float64(loss1).tobytes()
        assert grad.tobytes() == grad1.tobytes()


# ---------------------------------------------------------------------------
# Classifier problems
# ---------------------------------------------------------------------------


@dataclass
class FitProblem:
    """Training data for SoftmaxClassifier, and fresh test data.

    Attributes
    ----------
    X, X_test : ndarray or CSR matrix
    X64, X_test64 : ndarray, float64, dense (the same values)
    y : ndarray of shape (n,)
        Labels; every class 0..K-1 (or its name) occurs.
    sample_weight : ndarray or None
    dtype : type
    layout : str
    classes : ndarray of shape (K,)
        Label names.
    spec : dict
        The drawn parameters (shown by Hypothesis; they rebuild the example).
    """

    X: object
    X64: np.ndarray
    y: np.ndarray
    sample_weight: object
    X_test: object
    X_test64: np.ndarray
    dtype: type
    layout: str
    classes: np.ndarray
    spec: dict

    def __repr__(self):
        return f"FitProblem({self.spec})"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


@st.composite
def fit_problems(draw, max_n=300, max_d=40, n_classes=n_classes_strategy,
                 dtypes=(np.float64, np.float32), layouts=("dense", "csr"),
                 weights=("none", "positive", "zeros"), label_kinds=("int", "str")):
    """A random :class:`FitProblem` whose classes all carry positive weight.

    Rows of class k are centered at a random mean, so that the fitted model
    has non-trivial coefficients.
    """
    K = draw(n_classes)
    n = draw(st.integers(max(K, 2), max(max_n, K)))
    d = draw(st.integers(1, max_d))
    dtype = draw(st.sampled_from(dtypes))
    layout = draw(st.sampled_from(layouts))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    density = draw(st.floats(0.2, 1.0))
    weight_kind = draw(st.sampled_from(weights))
    label_kind = draw(st.sampled_from(label_kinds))
    n_test = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    return build_fit_problem(
        n=n, d=d, K=K, dtype=np.dtype(dtype).name, layout=layout,
        index_dtype=np.dtype(index_dtype).name, density=density, weights=weight_kind,
        labels=label_kind, n_test=n_test, seed=seed)


def build_fit_problem(*, n, d, K, dtype, layout, index_dtype, density, weights, labels,
                      n_test, seed):
    """The :class:`FitProblem` of drawn parameters (what Hypothesis reports)."""
    spec = dict(n=n, d=d, K=K, dtype=dtype, layout=layout, index_dtype=index_dtype,
                density=density, weights=weights, labels=labels, n_test=n_test,
                seed=seed)
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.arange(n) % K)
    means = rng.normal(size=(K, d))

    def design(codes):
        X = random_design(rng, len(codes), d, np.float64, density, 0.1)
        X = np.where(X != 0, X + means[codes], 0.0)
        return np.ascontiguousarray(X, dtype=dtype)

    X, X_test = design(codes), design(rng.integers(0, K, n_test))
    sw = random_weights(rng, n, weights)
    if sw is not None:
        for k in range(K):  # every class keeps some weight
            rows = np.flatnonzero(codes == k)
            if not np.any(sw[rows] > 0):
                sw[rows[0]] = 1.0
    classes = (np.arange(K) * 3 - 5 if labels == "int"
               else np.array([f"class {k:02d}" for k in range(K)]))

    def as_layout(X):
        return to_csr(X, index_dtype) if layout == "csr" else X

    return FitProblem(
        X=as_layout(X), X64=X.astype(np.float64), y=classes[codes], sample_weight=sw,
        X_test=as_layout(X_test), X_test64=X_test.astype(np.float64),
        dtype=np.dtype(dtype).type, layout=layout, classes=classes, spec=spec,
    )


def fit(problem, **params):
    """SoftmaxClassifier(**params) fitted to ``problem``."""
    return SoftmaxClassifier(**params).fit(problem.X, problem.y,
                                           sample_weight=problem.sample_weight)


def logit_magnitude(X64, clf):
    """``|X| @ |coef_|.T + |intercept_|`` (float64): size of the logits' terms."""
    W = np.asarray(clf.coef_, dtype=np.float64)
    return np.abs(X64) @ np.abs(W).T + np.abs(np.asarray(clf.intercept_, float))


def output_roundoff(proba):
    """Unit roundoff of a prediction output's dtype."""
    return U32 if proba.dtype == np.float32 else U64


def assert_predictions_consistent(clf, X, X64, magnitude):
    """predict_proba, predict_log_proba and predict agree with each other.

    - probabilities in [0, 1], rows summing to 1 within ``1e-12`` (float64
      output) or ``2 eps32`` (float32 output: each probability rounded once,
      relative error ``u32``; the float64 sum adds ``K u64``);
    - log-probabilities finite and, where the probability is a normal number
      above 1e-300, equal to its log: both derive from logits within
      ``delta = (d + 2) u mag`` of the exact ones, each moves by at most
      ``2 delta``, plus a few roundings of ``log``, ``exp`` and the output
      (``u (1 + |log p|)`` each);
    - ``predict`` is ``classes_[argmax proba]`` (on exact ties of the largest
      probabilities, any of the tied classes).

    Parameters
    ----------
    magnitude : ndarray of shape (n,)
        ``max_k |x_i| . |w_k| + |b_k|`` for the rows of X (finite).
    """
    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)
    labels = clf.predict(X)
    K = len(clf.classes_)
    u = output_roundoff(proba)
    assert proba.shape == log_proba.shape == (X64.shape[0], K)
    assert np.all((proba >= 0) & (proba <= 1))
    row_sum_tol = 1e-12 if proba.dtype == np.float64 else 2 * np.finfo(np.float32).eps
    assert_within(proba.sum(axis=1, dtype=np.float64), 1.0, row_sum_tol, "row sums")
    assert np.all(np.isfinite(log_proba))
    tiny = max(1e-300, np.finfo(proba.dtype).tiny)
    where = proba > tiny
    delta = (X64.shape[1] + 2) * u * magnitude
    with np.errstate(divide="ignore"):
        log_of_proba = np.log(proba.astype(np.float64))
    tol = np.broadcast_to((4 * delta)[:, None], proba.shape) + 8 * u * (
        1 + np.abs(log_of_proba))
    assert_within(np.where(where, log_proba, 0.0), np.where(where, log_of_proba, 0.0),
                  SAFETY * np.where(where, tol, 0.0), "log_proba vs log(proba)")
    index = np.searchsorted(clf.classes_, labels)
    assert np.array_equal(clf.classes_[index], labels)
    chosen = proba[np.arange(len(labels)), index]
    assert np.array_equal(chosen, proba.max(axis=1))
    return proba, labels


# ---------------------------------------------------------------------------
# 4. Predictions of a fitted SoftmaxClassifier
# ---------------------------------------------------------------------------


@bounded(60)
@given(fit_problems())
def test_predictions_consistent_with_numpy(problem):
    """proba, log_proba, predict and decision_function of a fitted model.

    Besides :func:`assert_predictions_consistent`, ``decision_function``
    equals NumPy's ``X @ coef_.T + intercept_`` in float64 within
    ``(d + 2) (u_out + u64) mag`` (the kernel's products in the output dtype,
    NumPy's in float64).
    """
    clf = fit(problem, max_iter=30)
    X, X64 = problem.X_test, problem.X_test64
    magnitude = logit_magnitude(X64, clf)
    assert_predictions_consistent(clf, X, X64, magnitude.max(axis=1))

    decision = clf.decision_function(X)
    expected = X64 @ clf.coef_.astype(np.float64).T + clf.intercept_.astype(np.float64)
    if len(clf.classes_) == 2:
        expected, magnitude = expected.ravel(), magnitude.ravel()
    assert decision.shape == expected.shape
    u = output_roundoff(decision)
    bound = SAFETY * (X64.shape[1] + 2) * (u + U64) * magnitude
    assert_within(decision, expected, bound, "decision_function")


def check_predictions_of_scaled_rows(problem, fractions, float32_limit="data"):
    """Predictions on rows scaled up to the top of the data's dtype.

    Row i is multiplied by ``f_i = fmax_i ** fractions[i]`` with ``fmax_i``
    1e300 for float64 data. For float32 data, ``fmax_i`` is half the largest
    float32 divided by the row's largest entry (``float32_limit="data"``: the
    scaled data stays finite) or by the larger of that entry and the size
    ``max_k |x_i| . |w_k| + |b_k|`` of its logits (``"logits"``: the float32
    logits stay finite too). The
    model is fitted on the unscaled data. predict_proba, predict_log_proba
    and predict must raise no warning (warnings are errors), stay consistent
    with each other (:func:`assert_predictions_consistent`), and ``predict``
    must be the class of the largest exact logit wherever it beats the
    second largest by more than the logits' rounding bound. The exact logits
    divided by ``f_i`` are computed in float64 NumPy from the scaled data
    divided by ``f_i``, which cannot overflow.
    """
    clf = fit(problem, max_iter=30)
    X64 = problem.X_test64
    if problem.dtype == np.float64:
        log_fmax = np.full(X64.shape[0], 300.0)
    else:
        size = np.abs(X64).max(axis=1)
        if float32_limit == "logits":
            size = np.maximum(size, logit_magnitude(X64, clf).max(axis=1))
        limit = 0.5 * float(np.finfo(np.float32).max)
        log_fmax = np.log10(limit / np.where(size > 0, size, 1.0))
    factors = 10.0 ** (fractions * log_fmax)
    X_scaled = np.ascontiguousarray(X64 * factors[:, None], dtype=problem.dtype)
    assert np.all(np.isfinite(X_scaled))
    X_in = to_csr(X_scaled, np.int32) if problem.layout == "csr" else X_scaled
    X_unit = X_scaled.astype(np.float64) / factors[:, None]
    W = clf.coef_.astype(np.float64)
    b = clf.intercept_.astype(np.float64)
    if W.shape[0] == 1:
        W, b = np.vstack([-W, W]), np.concatenate([-b, b])
    z_unit = X_unit @ W.T + b / factors[:, None]
    mag_unit = (np.abs(X_unit) @ np.abs(W).T + np.abs(b) / factors[:, None]).max(axis=1)
    with np.errstate(over="ignore"):  # only a bound: saturate it
        magnitude = np.minimum(mag_unit * factors, np.finfo(float).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, labels = assert_predictions_consistent(clf, X_in, X_scaled.astype(np.float64),
                                                  magnitude)
    order = np.sort(z_unit, axis=1)
    margin = order[:, -1] - order[:, -2]
    u = U32 if problem.dtype == np.float32 else U64
    clear = margin > SAFETY * 2 * (X_unit.shape[1] + 2) * (u + U64) * mag_unit
    expected = clf.classes_[np.argmax(z_unit, axis=1)]
    assert np.array_equal(labels[clear], expected[clear])


#: Per-row exponents in [0, 1] of the largest allowed scale factor (the first
#: n_test are used).
scale_fractions = hnp.arrays(np.float64, 300, elements=st.floats(0.0, 1.0))


@bounded(40)
@given(fit_problems(max_d=20, dtypes=(np.float64,)), scale_fractions)
def test_predictions_of_rows_scaled_up_to_1e300(problem, fractions):
    """float64 rows scaled by factors up to 1e300: see :func:`check_predictions_of_scaled_rows`."""
    check_predictions_of_scaled_rows(problem, fractions[: problem.X_test64.shape[0]])


@bounded(40)
@given(fit_problems(max_d=20, dtypes=(np.float32,)), scale_fractions)
def test_predictions_of_float32_rows_scaled_below_logit_overflow(problem, fractions):
    """float32 rows scaled while the float32 logits stay finite.

    See :func:`check_predictions_of_scaled_rows` (``float32_limit="logits"``).
    """
    check_predictions_of_scaled_rows(problem, fractions[: problem.X_test64.shape[0]],
                                     float32_limit="logits")


@settings(bounded(40), phases=(Phase.explicit, Phase.generate))  # no shrinking
@given(fit_problems(max_d=20, dtypes=(np.float32,)), scale_fractions)
@example(problem=build_fit_problem(
    n=232, d=2, K=33, dtype="float32", layout="dense", index_dtype="int32",
    density=1.0, weights="none", labels="int", n_test=1, seed=1),
    fractions=np.ones(300))
def test_predictions_of_float32_rows_scaled_to_the_float32_limit(problem, fractions):
    """float32 rows scaled up to the float32 range, where the logits may overflow.

    See :func:`check_predictions_of_scaled_rows` (``float32_limit="data"``).
    """
    check_predictions_of_scaled_rows(problem, fractions[: problem.X_test64.shape[0]])


@bounded(15)
@given(fit_problems(max_n=200, max_d=20))
def test_fit_and_predictions_bitwise_identical_across_n_jobs(problem):
    """Fitted model and predictions are bitwise identical for n_jobs in {1, 2, 3}.

    Predictions run on up to 20000 rows so that the row chunks are shared
    between threads.
    """
    models = [fit(problem, max_iter=20, n_jobs=n_jobs) for n_jobs in (1, 2, 3)]
    rng = np.random.default_rng(0)
    rows = rng.integers(0, problem.X_test64.shape[0], size=20000)
    X = problem.X_test[rows]
    runs = []
    for clf in models:
        for n_jobs in (1, 2, 3):
            clf.set_params(n_jobs=n_jobs)
            outputs = (clf.coef_, clf.intercept_, clf.decision_function(X),
                       clf.predict_proba(X), clf.predict_log_proba(X))
            runs.append([a.tobytes() for a in outputs])
    assert all(run == runs[0] for run in runs[1:])


# ---------------------------------------------------------------------------
# 5. Invariances of the fitted model
# ---------------------------------------------------------------------------

#: Invariance fits: tight tolerance, strongly regularized (lambda in [0.05, 1]).
INVARIANCE_TOL = 1e-8
TIGHT = dict(tol=1e-10, max_iter=2000)

#: Smaller problems: each example runs two tight fits. float64 only: a model
#: fitted to float32 data is stored in float32 (relative rounding 6e-8) and
#: its objective is evaluated with float32 products, which resolve the
#: optimum only to about (n + d) u32 / lambda, far above 1e-8.
invariance_problems = fit_problems(
    max_n=150, max_d=10, dtypes=(np.float64,),
    n_classes=st.one_of(st.sampled_from([2, 3, 4, 5, 8, 9, 16, 17, 33]), st.integers(2, 12)),
    label_kinds=("int",),
)
lambdas = st.floats(0.05, 1.0)


def regularization(problem, lam):
    """C giving the penalty factor ``lam = 1 / (C S)``, S the weight sum."""
    S = problem.X64.shape[0] if problem.sample_weight is None else problem.sample_weight.sum()
    return 1.0 / (lam * S)


def centered(coef):
    """Full coefficients with intercepts shifted to sum to 0.

    A common shift of all intercepts leaves every softmax unchanged, so it is
    the one direction in which the model is not determined.
    """
    coef = np.array(coef, dtype=np.float64)
    coef[:, -1] -= coef[:, -1].mean()
    return coef


def strong_convexity(coef, X64, codes, sample_weight, lam):
    """Smallest curvature of the reference objective at ``coef``, shift excluded.

    The Hessian of ``(1/S) sum_i s_i CE_i + lam/2 ||W||^2`` with respect to
    the (K, d + 1) coefficients is
    ``sum_i (s_i/S) (diag p_i - p_i p_i^T) (x) [x_i, 1][x_i, 1]^T`` plus
    ``lam`` on the weights; its null direction (a common intercept shift) is
    moved to the top of the spectrum before taking the smallest eigenvalue.
    """
    n, d = X64.shape
    K = coef.shape[0]
    Xt = np.hstack([X64, np.ones((n, 1))])
    P = np.exp(log_softmax(Xt @ coef.T, axis=1))
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    w = s / s.sum()
    A = w[:, None, None] * (P[:, :, None] * np.eye(K) - P[:, :, None] * P[:, None, :])
    H = np.einsum("ikl,ij,im->kjlm", A, Xt, Xt, optimize=True).reshape(
        K * (d + 1), K * (d + 1))
    penalty = np.zeros((K, d + 1))
    penalty[:, :d] = lam
    H += np.diag(penalty.ravel())
    shift = np.zeros((K, d + 1))
    shift[:, d] = 1.0 / np.sqrt(K)
    shift = shift.ravel()
    H += np.trace(H) * np.outer(shift, shift)
    return float(np.linalg.eigvalsh(H)[0])


def assert_same_minimizer(coef_a, coef_b, X64, codes, sample_weight, lam):
    """Two fitted (full) coefficient matrices are the same minimizer.

    Within ``max(1e-8, 2 (||g_a|| + ||g_b||) / mu)`` (largest entry): for an
    objective with curvature at least ``mu``, a point whose gradient is
    ``g`` lies within ``||g|| / mu`` of the minimizer. The gradients and
    ``mu`` are those of the NumPy reference objective; L-BFGS may stop on
    its relative-decrease test (64 eps, as in scikit-learn) with a gradient
    above ``tol``, which this accounts for.
    """
    coef_a, coef_b = centered(coef_a), centered(coef_b)
    gradients = [ref_objective(c, X64, codes, sample_weight, l2=lam)[1]
                 for c in (coef_a, coef_b)]
    mu = strong_convexity(coef_a, X64, codes, sample_weight, lam)
    assert mu > 0
    tol = max(INVARIANCE_TOL, 2 * sum(np.linalg.norm(g) for g in gradients) / mu)
    np.testing.assert_allclose(coef_a, coef_b, rtol=0, atol=tol)


def class_codes(clf, y):
    """Indices into ``clf.classes_`` of the labels ``y``."""
    return np.searchsorted(clf.classes_, y)


@bounded(30)
@given(invariance_problems, lambdas, st.data())
def test_row_permutation_invariance(problem, lam, data):
    """Permuting the samples (rows, labels and weights together) leaves the model."""
    C = regularization(problem, lam)
    perm = np.asarray(data.draw(st.permutations(range(problem.X64.shape[0])),
                                label="row permutation"))
    a = fit(problem, C=C, **TIGHT)
    sw = None if problem.sample_weight is None else problem.sample_weight[perm]
    b = SoftmaxClassifier(C=C, **TIGHT).fit(problem.X[perm], problem.y[perm],
                                            sample_weight=sw)
    assert np.array_equal(a.classes_, b.classes_)
    assert_same_minimizer(full_coef(a), full_coef(b), problem.X64,
                          class_codes(a, problem.y), problem.sample_weight, lam)


@bounded(30)
@given(invariance_problems, lambdas, st.floats(-3.0, 3.0))
def test_weight_scaling_is_equivalent_to_scaling_C(problem, lam, log_c):
    """Weights times c fit the model of the original weights with C times c.

    The objective is ``(1/S) sum_i s_i CE_i + ||W||^2 / (2 C S)``: scaling
    every weight by c leaves the data term unchanged but divides the penalty
    by c, so the minimizer is unchanged only when C is divided by c, i.e.
    ``fit(c s, C) == fit(s, c C)`` (scikit-learn's convention, where the
    objective is ``C sum_i s_i CE_i + ||W||^2 / 2``). That this is the
    objective minimized is checked independently: the largest entry of the
    NumPy reference gradient with ``l2 = 1 / (C c S)`` at the model fitted
    with weights ``c s`` and C is the ``final_gradient_norm_`` the estimator
    reports, to 1e-12.
    """
    c = 10.0 ** log_c
    sw = np.ones(problem.X64.shape[0]) if problem.sample_weight is None \
        else problem.sample_weight
    C = regularization(problem, lam) / c  # fit(c s, C) has lambda = 1 / (C c S)
    scaled = SoftmaxClassifier(C=C, **TIGHT).fit(problem.X, problem.y,
                                                 sample_weight=c * sw)
    original = SoftmaxClassifier(C=C * c, **TIGHT).fit(problem.X, problem.y,
                                                       sample_weight=sw)
    codes = class_codes(scaled, problem.y)
    assert_same_minimizer(full_coef(scaled), full_coef(original), problem.X64,
                          codes, sw, lam)
    _, grad = ref_objective(full_coef(scaled), problem.X64, codes, c * sw,
                            l2=1.0 / (C * c * sw.sum()))
    assert abs(np.max(np.abs(grad)) - scaled.final_gradient_norm_) <= 1e-12


@bounded(30)
@given(invariance_problems, lambdas, st.data())
def test_relabeling_permutes_coefficient_rows(problem, lam, data):
    """Renaming the classes by a permutation permutes the rows of the model.

    Class k is renamed ``perm[k]`` (classes_ is sorted, so its row moves to
    index ``perm[k]``); two classes expand to the full symmetric model.
    """
    K = len(problem.classes)
    perm = np.asarray(data.draw(st.permutations(range(K)), label="class permutation"))
    C = regularization(problem, lam)
    a = fit(problem, C=C, **TIGHT)
    codes = class_codes(a, problem.y)
    b = SoftmaxClassifier(C=C, **TIGHT).fit(problem.X, perm[codes],
                                            sample_weight=problem.sample_weight)
    assert np.array_equal(b.classes_, np.arange(K))
    assert_same_minimizer(full_coef(a), full_coef(b)[perm], problem.X64, codes,
                          problem.sample_weight, lam)


@bounded(30)
@given(invariance_problems, lambdas, st.data())
def test_integer_weights_equal_repeated_rows(problem, lam, data):
    """Integer sample weights fit the model of the rows repeated that many times.

    Weights 0..3 (0 drops the row); every class keeps a positive weight. The
    weight sum equals the number of repeated rows, so C is the same.
    """
    n = problem.X64.shape[0]
    counts = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 3)),
                       label="integer weights")
    for label in problem.classes:
        rows = np.flatnonzero(problem.y == label)
        if not np.any(counts[rows] > 0):
            counts[rows[0]] = 1
    C = 1.0 / (lam * counts.sum())
    weighted = SoftmaxClassifier(C=C, **TIGHT).fit(problem.X, problem.y,
                                                   sample_weight=counts)
    rows = np.repeat(np.arange(n), counts)
    repeated = SoftmaxClassifier(C=C, **TIGHT).fit(problem.X[rows], problem.y[rows])
    assert np.array_equal(weighted.classes_, repeated.classes_)
    assert_same_minimizer(full_coef(weighted), full_coef(repeated), problem.X64,
                          class_codes(weighted, problem.y), counts, lam)


# ---------------------------------------------------------------------------
# 6. Inputs untouched; failed fits change nothing
# ---------------------------------------------------------------------------


def snapshot(obj):
    """Deep copy of an input (array, CSR matrix or None) for later comparison."""
    return copy.deepcopy(obj)


def assert_identical_input(before, after):
    """Same type, dtype, shape, values (NaN-aware) and, for CSR, the same structure."""
    assert type(before) is type(after)
    if before is None:
        return
    if sp.issparse(before):
        for name in ("data", "indices", "indptr"):
            assert_identical_input(getattr(before, name), getattr(after, name))
        assert before.shape == after.shape
        return
    assert before.dtype == after.dtype and before.shape == after.shape
    assert before.flags["C_CONTIGUOUS"] == after.flags["C_CONTIGUOUS"]
    assert np.array_equal(before, after, equal_nan=before.dtype.kind == "f")


def assert_identical_state(before, after):
    """Two estimator ``__dict__`` snapshots are equal, arrays bitwise."""
    assert before.keys() == after.keys()
    for key in before:
        a, b = before[key], after[key]
        if isinstance(a, np.ndarray):
            assert isinstance(b, np.ndarray) and a.dtype == b.dtype, key
            assert a.tobytes() == b.tobytes() and a.shape == b.shape, key
        else:
            assert type(a) is type(b) and a == b, key


@bounded(40)
@given(fit_problems(max_n=200, max_d=20), st.sampled_from(["C", "F"]),
       st.sampled_from(["labels", "soft"]),
       st.sampled_from([None, "balanced"]))
def test_fit_does_not_modify_inputs(problem, order, targets, class_weight):
    """fit leaves X (dense C/F order or CSR), y and sample_weight untouched."""
    X = problem.X if problem.layout == "csr" else (
        np.asfortranarray(problem.X) if order == "F" else problem.X)
    if targets == "soft":
        codes = np.searchsorted(problem.classes, problem.y)
        K = len(problem.classes)
        y = 0.8 * np.eye(K)[codes] + 0.2 / K
    else:
        y = problem.y
    inputs = (X, y, problem.sample_weight)
    before = [snapshot(a) for a in inputs]
    SoftmaxClassifier(max_iter=15, class_weight=class_weight).fit(
        X, y, sample_weight=problem.sample_weight)
    for a, b in zip(before, inputs):
        assert_identical_input(a, b)


FAILURES = ["one class", "nan in X", "negative weight", "zero weights",
            "soft row not summing to 1", "wrong weight length"]


@bounded(40)
@given(fit_problems(max_n=120, max_d=10), st.sampled_from(FAILURES),
       st.integers(0, 2**32 - 1))
def test_failed_fit_leaves_fitted_estimator_unchanged(problem, failure, seed):
    """A fit that raises leaves a fitted estimator's state and predictions as they were.

    The failing data are drawn at random: a y with a single class, a NaN in X,
    a negative or all-zero sample weights, a soft-target row that does not
    sum to 1, or weights of the wrong length.
    """
    rng = np.random.default_rng(seed)
    clf = fit(problem, max_iter=15)
    state = copy.deepcopy(clf.__dict__)
    proba = clf.predict_proba(problem.X_test)
    n = problem.X64.shape[0]
    X, y = problem.X64.copy(), problem.y
    sw = np.ones(n) if problem.sample_weight is None else problem.sample_weight.copy()
    if failure == "one class":
        y = np.full(n, problem.classes[rng.integers(len(problem.classes))])
    elif failure == "nan in X":
        X[rng.integers(n), rng.integers(X.shape[1])] = np.nan
    elif failure == "negative weight":
        sw[rng.integers(n)] = -rng.uniform(1e-3, 10)
    elif failure == "zero weights":
        sw[:] = 0.0
    elif failure == "soft row not summing to 1":
        K = len(problem.classes)
        y = np.full((n, K), 1.0 / K)
        y[rng.integers(n)] *= rng.choice([0.5, 1.5])
    else:
        sw = sw[: n - 1]
    with pytest.raises(ValueError):
        clf.fit(X, y, sample_weight=sw)
    assert_identical_state(state, clf.__dict__)
    assert clf.predict_proba(problem.X_test).tobytes() == proba.tobytes()
