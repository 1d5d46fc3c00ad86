"""Badly scaled features: L-BFGS on rescaled coordinates reaches the true optimum.

LogisticRegression stalls on such data (e.g. a feature scaled by 1e50 stops lbfgs at
iteration 5 with an objective near log(3)); skcce rescales the optimizer's
coordinates per feature, keeping the objective identical.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._linear_loss import LinearModelLoss

from skcce import SoftmaxClassifier
from skcce._columns import column_sums
from skcce._precondition import plan_rescaling


def column_multipliers(X, sample_weight, fit_intercept, l2_reg_strength):
    """The rescaling's multipliers for X (None when it does not rescale)."""
    plan = plan_rescaling(column_sums(X, sample_weight).statistics(), fit_intercept,
                          l2_reg_strength, X.dtype)
    return None if plan is None else np.ldexp(1.0, plan.exponents)


def _reference_optimum(X, y, column_scale, C=1.0):
    """The optimum of the scaled problem, computed on the *unscaled* features.

    Fitting ``X * column_scale`` with coefficients ``W_s`` is fitting ``X`` with
    ``W = W_s * column_scale`` and the penalty ``sum_j w_j ||W[:, j]||^2`` with
    ``w_j = 1 / column_scale_j**2``. We minimize that with scikit-learn's loss and
    SciPy, in coordinates ``W_j = V_j / sqrt(max(1, w_j))`` where every direction
    is well conditioned. Returns the coefficients of the scaled problem and the
    objective value.
    """
    n, d = X.shape
    K = np.unique(y).size
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=K), fit_intercept=True)
    penalty = 1.0 / column_scale**2
    to_w = np.append(1.0 / np.sqrt(np.maximum(1.0, penalty)), 1.0)  # intercept as is
    flat = np.tile(to_w, K)  # coef (K, d+1) raveled in C order
    lam = 1.0 / (C * n)

    def fun(v):
        coef = (v * flat).reshape(K, d + 1)
        f, g = loss.loss_gradient(coef, X, y.astype(float), None, 0.0)
        W = coef[:, :d]
        f += 0.5 * lam * np.sum(penalty * W**2)
        g = g.copy()
        g[:, :d] += lam * penalty * W
        return f, g.ravel() * flat

    result = optimize.minimize(fun, np.zeros(K * (d + 1)), jac=True, method="L-BFGS-B",
                               options={"maxiter": 20000, "gtol": 1e-11, "ftol": 1e-16})
    coef = (result.x * flat).reshape(K, d + 1)
    coef[:, :d] /= column_scale  # back to the scaled problem's coefficients
    return coef, result.fun


@pytest.mark.parametrize("scale", [1e-6, 1e6, 1e50])
def test_badly_scaled_features_reach_the_optimum(scale):
    X, y = load_iris(return_X_y=True)
    column_scale = np.ones(X.shape[1])
    column_scale[0], column_scale[2] = scale, 1.0 / scale
    Xs = X * column_scale
    ref_coef, ref_objective = _reference_optimum(X, y, column_scale)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxClassifier(tol=1e-10, max_iter=10000).fit(Xs, y)
    # the objective value at our solution, computed by scikit-learn's loss
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=3), fit_intercept=True)
    ours = loss.loss(np.column_stack([clf.coef_, clf.intercept_]), Xs, y.astype(float),
                     None, 1.0 / len(y))
    assert_allclose(ours, ref_objective, rtol=1e-8)
    assert_allclose(clf.loss_curve_[-1], ours, rtol=1e-12)
    # and the same probabilities as the reference optimum
    ref_proba = np.exp(
        (Xs @ ref_coef[:, :-1].T + ref_coef[:, -1])
        - np.logaddexp.reduce(Xs @ ref_coef[:, :-1].T + ref_coef[:, -1], axis=1)[:, None]
    )
    assert_allclose(clf.predict_proba(Xs), ref_proba, atol=1e-5)


def test_ordinary_data_are_not_rescaled():
    """Unstandardized but ordinary features keep scikit-learn's coordinates, so
    iteration counts stay comparable with LogisticRegression."""
    X, y = load_iris(return_X_y=True)
    assert column_multipliers(X, None, True, 1.0 / len(y)) is None
    X_big = X.copy()
    X_big[:, 0] *= 1e6
    multipliers = column_multipliers(X_big, None, True, 1.0 / len(y))
    assert multipliers is not None and multipliers[0] < 1e-5 and multipliers[-1] == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [0, 1, 5000, 300_001])
def test_column_square_sums_match_numpy(n, weighted, dtype):
    """The per-column statistics behind the rescaling decision: one pass of
    the kernel over dense X (float32 read as is) equals NumPy's float64
    ``sum_i s_i x_ij^2`` within rounding, with the same bits for every thread
    count; strided X takes the blockwise NumPy path to the same values."""
    from skcce._columns import column_square_sums

    rng = np.random.default_rng(5)
    X = (rng.standard_normal((n, 7)) * np.logspace(-3, 3, 7)).astype(dtype)
    sw = rng.uniform(0.0, 2.0, size=n) if weighted else None
    X64 = X.astype(np.float64)
    expected = np.sum(X64 * X64 * (1.0 if sw is None else sw[:, None]), axis=0)
    results = [column_square_sums(X, sw, n_threads) for n_threads in (1, 2, 3)]
    assert_allclose(results[0], expected, rtol=1e-12)
    for result in results[1:]:
        assert np.array_equal(result, results[0])
    strided = np.asfortranarray(X)
    assert_allclose(column_square_sums(strided, sw), expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "strided", "csr", "blocks"])
@pytest.mark.parametrize("weighted", [False, True])
def test_column_statistics_over_the_whole_double_range(kind, weighted):
    """Root mean squares of columns from the smallest subnormal to the largest
    double, against exact decimal arithmetic; maxima and constant columns."""
    import decimal

    import scipy.sparse as sp

    from skcce._columns import ColumnSums

    rng = np.random.default_rng(3)
    n = 50
    exponents = np.array([-1074, -1040, -600, -1, 0, 300, 700, 1023])
    X = np.ldexp(rng.uniform(-1.0, 1.0, size=(n, exponents.shape[0])), exponents)
    X[:, 3] = 0.0  # all zero
    X[:, 4] = -2.5  # constant
    X[rng.random(X.shape) < 0.3] = 0.0
    X[:, 4] = -2.5
    weights = rng.uniform(0.0, 2.0, size=n) if weighted else None
    if kind == "dense":
        sums = column_sums(X, weights)
    elif kind == "strided":
        sums = column_sums(np.asfortranarray(X), weights)
    elif kind == "csr":
        sums = column_sums(sp.csr_matrix(X), weights)
    else:
        cuts = [0, 7, 30, n]
        sums = ColumnSums.combine(
            column_sums(X[a:b], None if weights is None else weights[a:b])
            for a, b in zip(cuts[:-1], cuts[1:]))
    stats = sums.statistics()

    decimal.getcontext().prec = 60
    w = np.ones(n) if weights is None else weights
    total = sum(decimal.Decimal(float(v)) for v in w)
    for j in range(X.shape[1]):
        mean_square = sum(decimal.Decimal(float(s)) * decimal.Decimal(float(x)) ** 2
                          for s, x in zip(w, X[:, j])) / total
        expected = float(mean_square.sqrt())
        assert_allclose(stats.rms[j], expected, rtol=1e-13, atol=0)
    assert_allclose(stats.max_abs, np.abs(X).max(axis=0), rtol=0)
    np.testing.assert_array_equal(stats.constant, [False] * 3 + [True, True] + [False] * 3)
