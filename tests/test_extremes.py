"""Inputs at the limits of floating point: a finite model, or a ValueError naming the problem.

Never a silent NaN model. References are independent of skcce: scikit-learn's
``LogisticRegression``, ``log_loss`` and ``LinearModelLoss``, NumPy formulas,
and the optimum of a problem on extreme columns computed on the same columns
scaled back by exact powers of two (``_reference.scaled_columns_optimum``).
Every case runs on dense, CSR and Dask data (synchronous scheduler) and, where
it applies, in ``SoftmaxClassifierCV``.
"""

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.special import log_softmax
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

from _reference import (
    REFERENCE_SKLEARN,
    scaled_columns_optimum,
    sklearn_at_least,
    sklearn_loss_gradient,
)
from skcce import (
    SoftmaxClassifier,
    SoftmaxClassifierCV,
    categorical_crossentropy,
    crossentropy_loss_gradient,
)
from skcce._columns import column_sums
from skcce._precondition import plan_rescaling

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

KINDS = ["dense", "csr", "dask"]
TIGHT = dict(tol=1e-10, max_iter=3000)
# The messages of the ValueErrors that name a problem of the input.
INPUT_PROBLEMS = r"too small|sum to infinity|overflows"


def as_kind(X, kind):
    if kind == "csr":
        return sp.csr_matrix(X)
    if kind == "dask":
        return da.from_array(X, chunks=(max(1, X.shape[0] // 3), -1))
    return X


def weights_as_kind(sample_weight, kind):
    if sample_weight is None or kind != "dask":
        return sample_weight
    return da.from_array(sample_weight, chunks=max(1, sample_weight.shape[0] // 3))


def fit(estimator, X, y, kind="dense", sample_weight=None):
    """``estimator.fit`` on X as ``kind``; Dask with the synchronous scheduler."""
    with dask.config.set(scheduler="sync"):
        return estimator.fit(as_kind(X, kind), y,
                             sample_weight=weights_as_kind(sample_weight, kind))


def noisy_problem(n_samples=300):
    """Three classes that no hyperplane separates (C = inf has a finite optimum),
    columns divided by powers of two so that their largest |x| lies in [0.5, 1)."""
    X, y = make_classification(n_samples=n_samples, n_features=4, n_informative=3,
                               n_redundant=0, n_classes=3, n_clusters_per_class=1,
                               flip_y=0.2, class_sep=0.5, random_state=0)
    _, exponent = np.frexp(np.abs(X).max(axis=0))
    return np.ldexp(X, -exponent), y


def assert_finite_model(clf, X):
    assert np.all(np.isfinite(clf.coef_)) and np.all(np.isfinite(clf.intercept_))
    with dask.config.set(scheduler="sync"):
        proba = np.asarray(clf.predict_proba(X))
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    return proba


def state(estimator):
    return copy.deepcopy(estimator.__dict__)


def assert_same_state(before, estimator):
    after = estimator.__dict__
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[name])
        elif name not in ("loss_curve_",):
            assert value == after[name] or (value != value and after[name] != after[name])


# ---------------------------------------------------------------------------
# Ordinary data: the rescaling stays off, and the fit is LogisticRegression's.


def _rescaling(X, C=1.0, fit_intercept=True, sample_weight=None):
    S = X.shape[0] if sample_weight is None else np.sum(sample_weight)
    return plan_rescaling(column_sums(X, sample_weight).statistics(), fit_intercept,
                          1.0 / (C * S), X.dtype)


@pytest.mark.parametrize("C", [1000.0, 1e6])
@pytest.mark.parametrize("column", [0.0, 1e-3, 7.0, 1e4])
def test_zero_and_constant_columns_do_not_turn_on_the_rescaling(C, column):
    """All-zero and (with an intercept) constant columns have no curvature of
    their own; at large C their penalty-only curvature is ~1e6 below the other
    columns', which turned the rescaling on."""
    X, _ = load_iris(return_X_y=True)
    X = np.hstack([X, np.full((X.shape[0], 1), column)])
    assert _rescaling(X, C=C) is None
    assert _rescaling(sp.csr_matrix(X), C=C) is None
    # Without an intercept a constant column is the offset: its curvature counts.
    if C == 1e6 and column in (1e-3, 1e4):
        assert _rescaling(X, C=C, fit_intercept=False) is not None
    # Badly scaled data still are rescaled.
    X[:, 0] *= 1e5
    assert _rescaling(X, C=C) is not None


@pytest.mark.parametrize("kind", KINDS)
def test_iris_with_zero_column_reaches_logistic_regression_optimum(kind):
    """tol is met by the true gradient (computed by scikit-learn's loss) at the
    solution, which final_gradient_norm_ reports; the objective is as far
    above its minimum as LogisticRegression's."""
    X, y = load_iris(return_X_y=True)
    X = np.hstack([X, np.zeros((150, 1))])
    C = 1000.0
    lam = 1.0 / (C * X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = fit(SoftmaxClassifier(C=C), X, y, kind)
    ref = LogisticRegression(C=C).fit(X, y)
    coef = np.column_stack([ours.coef_, ours.intercept_])
    loss, grad = sklearn_loss_gradient(coef, X, y, l2_reg_strength=lam)
    ref_loss, _ = sklearn_loss_gradient(np.column_stack([ref.coef_, ref.intercept_]), X, y,
                                        l2_reg_strength=lam)
    assert np.max(np.abs(grad)) <= ours.tol
    assert_allclose(ours.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6)
    # Both stop at max|grad| <= 1e-4 on a flat objective, ~0.6% above its
    # minimum (where exactly depends on the path, hence on the rounding of
    # the instruction set in use: 0.98-1.03x LogisticRegression's gap); the
    # rescaled stopping test had stopped 2.7% above LogisticRegression's
    # objective, 5x its gap.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        best = LogisticRegression(C=C, tol=1e-14, max_iter=10_000).fit(X, y)
    min_loss, _ = sklearn_loss_gradient(np.column_stack([best.coef_, best.intercept_]), X, y,
                                        l2_reg_strength=lam)
    assert 0.0 < ref_loss - min_loss < 0.01 * min_loss
    assert loss - min_loss <= 1.1 * (ref_loss - min_loss)
    assert np.all(ours.coef_[:, -1] == 0.0)
    assert abs(int(ours.n_iter_[0]) - int(ref.n_iter_[0])) <= 2


def test_cv_with_zero_column_refits_to_the_tolerance():
    """Along the path and in the refit, the zero column leaves the coordinates
    alone: the refit's true gradient is below tol and reported."""
    X, y = load_iris(return_X_y=True)
    X = np.hstack([X, np.zeros((150, 1))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = SoftmaxClassifierCV(Cs=[10.0, 1000.0], scoring="neg_log_loss",
                                   max_iter=1000).fit(X, y)
    _, grad = sklearn_loss_gradient(np.column_stack([ours.coef_, ours.intercept_]), X, y,
                                    l2_reg_strength=1.0 / (ours.C_ * X.shape[0]))
    assert_allclose(ours.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6)
    assert ours.final_gradient_norm_ <= ours.tol
    assert np.all(ours.coefs_paths_[:, :, :, -2] == 0.0)


def test_digits_follows_logistic_regression_path():
    """Digits has constant-zero pixel columns: the fit is LogisticRegression's,
    iteration for iteration."""
    X, y = load_digits(return_X_y=True)
    ours = SoftmaxClassifier(C=100.0).fit(X, y)
    ref = LogisticRegression(C=100.0).fit(X, y)
    assert ours.n_iter_[0] == ref.n_iter_[0]
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-6)
    loss, grad = sklearn_loss_gradient(np.column_stack([ours.coef_, ours.intercept_]), X, y,
                                       l2_reg_strength=1.0 / (100.0 * X.shape[0]))
    assert_allclose(ours.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_rescaled_fit_tests_tol_on_the_model_gradient(kind):
    """With the rescaling on, final_gradient_norm_ is the gradient with respect
    to coef_ and intercept_, and a converged fit has it below tol."""
    X, y = load_iris(return_X_y=True)
    X = X * np.array([1e3, 1.0, 1e-3, 1.0])
    assert _rescaling(X) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = fit(SoftmaxClassifier(C=1.0, max_iter=1000), X, y, kind)
    _, grad = sklearn_loss_gradient(np.column_stack([ours.coef_, ours.intercept_]), X, y,
                                    l2_reg_strength=1.0 / X.shape[0])
    assert_allclose(ours.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6)
    assert ours.final_gradient_norm_ <= ours.tol


# ---------------------------------------------------------------------------
# Extreme column scales: the optimum of the scaled-back problem.


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exponents", [(900, -900, 0, 1022), (500, -1000, 10, -60),
                                       (-400, 400, -1, 1)])
def test_extreme_columns_reach_the_unpenalized_optimum(kind, exponents):
    """Columns from ~1e-301 to ~1e307, C = inf: the model of the columns scaled
    back (LogisticRegression without penalty), to ~1e-6."""
    Xn, y = noisy_problem()
    e = np.array(exponents)
    X = np.ldexp(Xn, e)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(Xn, y)
    ours = fit(SoftmaxClassifier(C=np.inf, **TIGHT), X, y, kind)
    proba = assert_finite_model(ours, X)
    assert_allclose(proba, ref.predict_proba(Xn), rtol=0, atol=1e-5)
    assert_allclose(np.ldexp(ours.coef_, e), ref.coef_, rtol=0,
                    atol=1e-4 * np.abs(ref.coef_).max())


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_extreme_float32_columns(kind):
    Xn, y = noisy_problem()
    e = np.array([60, -60, 0, 40])
    X = np.ldexp(Xn, e).astype(np.float32)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(Xn, y)
    ours = fit(SoftmaxClassifier(C=np.inf, tol=1e-6, max_iter=3000), X, y, kind)
    assert ours.coef_.dtype == np.float32
    proba = assert_finite_model(ours, X)
    assert_allclose(proba, ref.predict_proba(Xn), rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exponent", [-1040, -1074])
def test_column_too_small_for_any_coefficient_is_ignored(kind, exponent):
    """No finite coefficient lets a column of ~1e-313 (or the smallest subnormal)
    change a logit: the model is the optimum without it."""
    Xn, y = noisy_problem()
    X = Xn.copy()
    X[:, 0] = np.ldexp(Xn[:, 0], exponent)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(Xn[:, 1:], y)
    ours = fit(SoftmaxClassifier(C=np.inf, **TIGHT), X, y, kind)
    proba = assert_finite_model(ours, X)
    assert_allclose(proba, ref.predict_proba(Xn[:, 1:]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("C", [1.0, 1e-3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_extreme_columns_with_penalty(kind, C, fit_intercept):
    """Finite C: a column of ~1e200 is practically unpenalized, one of ~1e-200
    practically frozen at 0 (its penalty weight is 1e400 times larger)."""
    Xn, y = noisy_problem()
    e = np.array([664, -664, 3, 0])
    X = np.ldexp(Xn, e)
    ref_proba, ref_objective = scaled_columns_optimum(Xn, y, e, 3, C=C,
                                                      fit_intercept=fit_intercept)
    ours = fit(SoftmaxClassifier(C=C, fit_intercept=fit_intercept, **TIGHT), X, y, kind)
    proba = assert_finite_model(ours, X)
    assert_allclose(proba, ref_proba, rtol=0, atol=1e-5)
    assert_allclose(ours.loss_curve_[-1], ref_objective, rtol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_huge_column_of_the_report(kind):
    """|x| ~ 1e160: the column mean square overflowed and the model was NaN.
    LogisticRegression returns zeros (status=2); skcce the optimum."""
    X = np.array([[1e160, 0.0], [2e160, 1.0], [-1e160, 0.5], [-3e160, 2.0]])
    y = np.array([0, 1, 0, 1])
    ours = fit(SoftmaxClassifier(**TIGHT), X, y, kind)
    proba = assert_finite_model(ours, X)
    e = np.array([531, 0])  # 1e160 ~ 2**531.5
    # The full two-class softmax, both rows penalized: skcce's binary model.
    ref_proba, _ = scaled_columns_optimum(np.ldexp(X, -e), y, e, 2, C=1.0)
    assert_allclose(proba, ref_proba, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_columns_unpenalized_of_the_report(kind):
    """X * 1e-320 at C = inf: a column of ~1e-160 and a subnormal one."""
    X = np.array([[1e160, 0.0], [2e160, 1.0], [-1e160, 0.5], [-3e160, 2.0]]) * 1e-320
    y = np.array([0, 1, 0, 1])
    ours = fit(SoftmaxClassifier(C=np.inf, max_iter=200), X, y, kind)
    proba = assert_finite_model(ours, X)
    # No worse than the intercept-only model (log 2), where LogisticRegression stops.
    assert -np.mean(np.log(proba[np.arange(4), y])) <= np.log(2.0)


# ---------------------------------------------------------------------------
# C and sample weights.


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("C, sample_weight, match", [
    (1e-320, None, "too small"),
    (1.0, 1e-320, "too small"),
    (1.0, 1e308, "sum to infinity"),
    (np.inf, 1e308, "sum to infinity"),
])
def test_C_and_weights_whose_penalty_is_not_finite_raise(kind, C, sample_weight, match):
    """LogisticRegression returns zeros with a warning; skcce says why, and a
    failed fit leaves the fitted estimator as it was."""
    X, y = load_iris(return_X_y=True)
    clf = fit(SoftmaxClassifier(), X, y, kind)
    before = state(clf)
    clf.set_params(C=C)
    before["C"] = C
    weights = None if sample_weight is None else np.full(X.shape[0], sample_weight)
    with pytest.raises(ValueError, match=match):
        fit(clf, X, y, kind, sample_weight=weights)
    assert_same_state(before, clf)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exponent", [1000, -1000, -1070])
def test_scaling_the_weights_is_scaling_C(kind, exponent):
    """Weights of any finite magnitude (down to subnormal), with C divided by
    their scale: the model of LogisticRegression with the unscaled weights."""
    Xn, y = noisy_problem()
    weights = np.ldexp(np.random.default_rng(0).uniform(0.5, 2.0, size=y.shape[0]), exponent)
    # Subnormal weights keep only a few bits: the reference gets those bits.
    ref_weights = np.ldexp(weights, -exponent)
    C = 0.5
    with np.errstate(over="ignore"):
        C_scaled = float(np.ldexp(C, -exponent))  # inf: the penalty is below 1e-308
    ref = LogisticRegression(C=C if np.isfinite(C_scaled) else np.inf, tol=1e-12,
                             max_iter=10000).fit(Xn, y, sample_weight=ref_weights)
    ours = fit(SoftmaxClassifier(C=C_scaled, **TIGHT), Xn, y, kind, sample_weight=weights)
    proba = assert_finite_model(ours, Xn)
    assert_allclose(proba, ref.predict_proba(Xn), rtol=0, atol=1e-6)
    assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-5)


def test_C_times_weight_sum_overflowing_means_no_penalty():
    """1 / (C * S) below the smallest double: the unpenalized model."""
    Xn, y = noisy_problem()
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(Xn, y)
    ours = SoftmaxClassifier(C=1e308, **TIGHT).fit(Xn, y, sample_weight=np.full(300, 10.0))
    assert_allclose(ours.predict_proba(Xn), ref.predict_proba(Xn), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("exponent", [1020, -1063, -1074])
def test_loss_gradient_with_weights_of_any_scale(kind, exponent):
    """The weighted mean does not depend on the weights' scale (whose sum
    overflowed, or whose products underflowed, to NaN): scikit-learn's loss with
    the unscaled weights."""
    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(1)
    coef = rng.normal(size=(3, 5))
    w = rng.uniform(0.5, 1.5, size=150) if exponent > -1074 else np.ones(150)
    weights = np.ldexp(w, exponent)
    loss, grad = crossentropy_loss_gradient(coef, as_kind(X, kind), y,
                                            sample_weight=weights, l2_reg_strength=0.1)
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, np.ldexp(weights, -exponent),
                                               l2_reg_strength=0.1)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_loss_gradient_overflow_raises():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="not finite"):
        crossentropy_loss_gradient(np.full((3, 5), 1e300), X * 1e10, y)
    with pytest.raises(ValueError, match="l2_reg_strength"):
        crossentropy_loss_gradient(np.zeros((3, 5)), X, y, l2_reg_strength=np.inf)


# ---------------------------------------------------------------------------
# Class weights.


@pytest.mark.parametrize("kind", KINDS + ["cv"])
@pytest.mark.parametrize("class_weight, match", [
    ({0: np.inf, 1: 1.0, 2: 1.0}, "finite, non-negative"),
    ({0: np.nan, 1: 1.0, 2: 1.0}, "finite, non-negative"),
    ({0: -1.0, 1: 1.0, 2: 1.0}, "finite, non-negative"),
    ({0: 0.0, 1: 0.0, 2: 0.0}, "every class a weight of zero"),
    ({0: 1e308, 1: 1.0, 2: 1.0}, "sum to infinity"),
])
def test_invalid_class_weights_raise(kind, class_weight, match):
    """LogisticRegression ignores the class (inf, NaN), fits garbage (-1) or
    raises ZeroDivisionError (all zero)."""
    X, y = load_iris(return_X_y=True)
    if kind == "cv":
        clf = SoftmaxClassifierCV(Cs=2, class_weight=class_weight)
        with pytest.raises(ValueError, match=match):
            clf.fit(X, y)
        return
    with pytest.raises(ValueError, match=match):
        fit(SoftmaxClassifier(class_weight=class_weight), X, y, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_class_weights_times_sample_weights_all_zero_raise(kind):
    X, y = load_iris(return_X_y=True)
    w = np.where(y == 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="zero for every sample"):
        fit(SoftmaxClassifier(class_weight={0: 0.0}), X, y, kind, sample_weight=w)


@pytest.mark.parametrize("kind", KINDS)
def test_balanced_weight_of_a_zero_mass_class_is_zero(kind):
    """The one case where an infinite weight becomes 0: "balanced" for a class
    whose samples all have zero weight (it carries no weight either way)."""
    X, y = load_iris(return_X_y=True)
    w = np.where(y == 2, 0.0, 1.0)
    ours = fit(SoftmaxClassifier(class_weight="balanced", **TIGHT), X, y, kind,
               sample_weight=w)
    proba = assert_finite_model(ours, X)
    # "balanced": 100 / (3 * 50) for classes 0 and 1. Class 2 has no weight and
    # its probability goes to 0; compare the odds of classes 0 and 1.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(class_weight={0: 2 / 3, 1: 2 / 3, 2: 0.0}, tol=1e-12,
                                 max_iter=10000).fit(X, y, sample_weight=w)
    ref_proba = ref.predict_proba(X)
    assert_allclose(proba[:, 0] / proba[:, :2].sum(axis=1),
                    ref_proba[:, 0] / ref_proba[:, :2].sum(axis=1), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------
# SoftmaxClassifierCV.


@pytest.mark.parametrize("scoring", [None, "neg_log_loss"])
def test_cv_C_that_cannot_be_fitted_is_reported_others_unaffected(scoring):
    """Cs = [1e-320, 1]: the first is scored NaN with a FitFailedWarning naming
    it; C = 1 is fitted from the prior, not from a NaN solution, and selected."""
    X, y = load_iris(return_X_y=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with pytest.warns(FitFailedWarning, match=r"at C in \[1e-320\]; the first, fold 0 at "
                                              r"C=1e-320: C \* sum\(sample_weight\)"):
        ours = SoftmaxClassifierCV([1e-320, 1.0], cv=cv, scoring=scoring, **TIGHT).fit(X, y)
    assert np.all(np.isnan(ours.scores_[:, 0])) and np.all(np.isfinite(ours.scores_[:, 1]))
    assert np.all(np.isnan(ours.coefs_paths_[:, 0]))
    assert np.all(np.isfinite(ours.coefs_paths_[:, 1]))
    assert ours.C_ == 1.0
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, y)
    # On unscaled iris both L-BFGS runs end on the relative-decrease rule
    # (64 eps) with objectives ~1e-12 above the optimum, anywhere in a flat
    # valley where probabilities still differ by up to ~2e-6.
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=2e-6)
    # The fold scores at C = 1 are those of LogisticRegression on the folds.
    for i, (train, test) in enumerate(cv.split(X, y)):
        fold = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X[train], y[train])
        expected = (fold.score(X[test], y[test]) if scoring is None
                    else -log_loss(y[test], fold.predict_proba(X[test])))
        assert_allclose(ours.scores_[i, 1], expected, atol=1e-6)


def test_cv_every_C_failing_raises_and_keeps_state():
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifierCV(Cs=2).fit(X, y)
    before = state(clf)
    clf.set_params(Cs=[1e-320, 1e-321])
    before["Cs"] = [1e-320, 1e-321]
    with pytest.raises(ValueError, match="All the 10 regularization-path fits"):
        clf.fit(X, y)
    assert_same_state(before, clf)


@pytest.mark.parametrize("refit", [True, False])
def test_cv_huge_column(refit):
    """A column of ~1e200 poisoned every C; now every fold's path is finite and
    the refit is the optimum of the scaled-back problem at the chosen C."""
    Xn, y = noisy_problem()
    e = np.array([664, 0, 0, 0])
    X = np.ldexp(Xn, e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = SoftmaxClassifierCV(Cs=[1e-2, 1.0, 100.0], scoring="neg_log_loss", refit=refit,
                                   tol=1e-8, max_iter=1000).fit(X, y)
    assert np.all(np.isfinite(ours.scores_)) and np.all(np.isfinite(ours.coefs_paths_))
    proba = assert_finite_model(ours, X)
    if refit:
        ref_proba, _ = scaled_columns_optimum(Xn, y, e, 3, C=ours.C_)
        assert_allclose(proba, ref_proba, rtol=0, atol=1e-5)


def test_cv_weight_sum_overflow_raises():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="sum to infinity"):
        SoftmaxClassifierCV(Cs=2).fit(X, y, sample_weight=np.full(150, 1e308))


# ---------------------------------------------------------------------------
# The metric, scoring soft targets, float16 soft targets.


@pytest.mark.parametrize("y_true", [[-1, -1], [1, 1], [0, 0], ["a", "a"], [True, True]])
@pytest.mark.parametrize("y_pred", [[[0.9, 0.1], [0.8, 0.2]], [0.1, 0.2]])
def test_metric_raises_like_log_loss_for_a_single_label(y_true, y_pred):
    """One label and no labels=: no column can be chosen without guessing."""
    with pytest.raises(ValueError) as expected:
        log_loss(y_true, y_pred)
    with pytest.raises(ValueError) as got:
        categorical_crossentropy(y_true, y_pred)
    if sklearn_at_least(REFERENCE_SKLEARN):  # log_loss's wording of that release
        assert str(got.value) == str(expected.value)
    labels = sorted({y_true[0], not y_true[0]} if isinstance(y_true[0], bool)
                    else {y_true[0], "b" if isinstance(y_true[0], str) else 5})
    assert_allclose(categorical_crossentropy(y_true, y_pred, labels=labels),
                    log_loss(y_true, y_pred, labels=labels), rtol=1e-12)
    with pytest.raises(ValueError) as expected:
        log_loss(y_true, y_pred, labels=[y_true[0]])
    with pytest.raises(ValueError) as got:
        categorical_crossentropy(y_true, y_pred, labels=[y_true[0]])
    if sklearn_at_least(REFERENCE_SKLEARN):
        assert str(got.value) == str(expected.value)


def _soft_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    logits = X @ rng.normal(size=(3, 4))
    P = np.exp(log_softmax(logits + rng.gumbel(size=logits.shape), axis=1))
    return X, 0.5 * P + 0.5 * rng.dirichlet(np.ones(4), size=240)


def test_score_of_soft_targets_is_minus_the_crossentropy():
    X, P = _soft_problem()
    clf = SoftmaxClassifier().fit(X, P)
    proba = clf.predict_proba(X)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=X.shape[0])
    expected = np.mean(np.sum(P * np.log(proba), axis=1))
    assert_allclose(clf.score(X, P), expected, rtol=1e-12)
    expected_w = np.sum(w * np.sum(P * np.log(proba), axis=1)) / w.sum()
    assert_allclose(clf.score(X, P, sample_weight=w), expected_w, rtol=1e-12)
    # labels: accuracy, as before
    y = P.argmax(axis=1)
    assert clf.score(X, y) == np.mean(clf.predict(X) == y)


def test_cross_val_score_of_soft_targets():
    """The default scoring works; the folds' scores are minus the NumPy crossentropy."""
    X, P = _soft_problem()
    cv = KFold(4)
    scores = cross_val_score(SoftmaxClassifier(), X, P, cv=cv)
    for score, (train, test) in zip(scores, cv.split(X)):
        proba = SoftmaxClassifier().fit(X[train], P[train]).predict_proba(X[test])
        assert_allclose(score, np.mean(np.sum(P[test] * np.log(proba), axis=1)), rtol=1e-12)


def test_cv_named_scoring_of_soft_targets_says_what_to_use():
    X, P = _soft_problem()
    with pytest.raises(ValueError, match=r"scoring='neg_log_loss' needs class labels.*"
                                         r"scoring=None"):
        SoftmaxClassifierCV(Cs=2, scoring="neg_log_loss").fit(X, P)
    fitted = SoftmaxClassifierCV(Cs=2).fit(X, P.argmax(axis=1))
    fitted.set_params(scoring="neg_log_loss")
    with pytest.raises(ValueError, match="needs class labels"):
        fitted.score(X, P)


@pytest.mark.parametrize("kind", KINDS + ["cv"])
def test_float16_soft_targets(kind):
    """Rounding each probability to float16 moves a row's sum by up to 4.9e-4."""
    X, P = _soft_problem()
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(10), size=X.shape[0])
    P16 = P.astype(np.float16)
    assert np.max(np.abs(P16.astype(np.float64).sum(axis=1) - 1.0)) > 1e-4
    if kind == "cv":
        clf = SoftmaxClassifierCV(Cs=2).fit(X, P16)
    else:
        clf = fit(SoftmaxClassifier(), X, P16, kind)
    assert_finite_model(clf, X)
    # A row that is not a distribution is still refused, with its true sum.
    bad = P16.copy()
    bad[100] = np.float16(0.09375)
    with pytest.raises(ValueError, match=r"row 100 sums to 0\.9375"):
        if kind == "cv":
            SoftmaxClassifierCV(Cs=2).fit(X, bad)
        else:
            fit(SoftmaxClassifier(), X, bad, kind)


# ---------------------------------------------------------------------------
# The general guard.


@pytest.mark.parametrize("kind", KINDS + ["cv"])
def test_a_non_finite_solution_raises_and_keeps_the_model(kind, monkeypatch):
    """Whatever makes the solution non-finite, it is not returned, and a
    previously fitted model survives."""
    import skcce._precondition as precondition

    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifierCV(Cs=2) if kind == "cv" else SoftmaxClassifier()
    fit(clf, X, y, "dense" if kind == "cv" else kind)
    before = state(clf)

    def poisoned(internal):
        return np.full_like(internal, np.nan)

    monkeypatch.setattr(precondition.IdentityRescaling, "from_internal",
                        staticmethod(poisoned))
    with pytest.raises(ValueError, match="non-finite model"):
        fit(clf, X, y, "dense" if kind == "cv" else kind)
    assert_same_state(before, clf)


# ---------------------------------------------------------------------------
# Property: any finite X, weights and C give a finite model or a ValueError
# naming the problem.


def _check_outcome(make_estimator, X, y, kind, sample_weight):
    try:
        clf = fit(make_estimator(), X, y, kind, sample_weight=sample_weight)
    except ValueError as error:
        assert any(word in str(error) for word in INPUT_PROBLEMS.split("|")), str(error)
        return
    assert_finite_model(clf, X)


_exponents = st.lists(st.integers(-1000, 1000), min_size=1, max_size=4)
_weight_exponent = st.none() | st.integers(-1074, 1020)
_C = st.sampled_from([np.inf, 1.0]) | st.integers(-1074, 1020).map(lambda e: 2.0**e)


def _property_problem(exponents, weight_exponent, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    n, K = 12, 3
    e = np.array(exponents)
    if dtype == np.float32:
        e = np.clip(e, -140, 120)  # float32's range, subnormals included
    X = np.ldexp(rng.uniform(-1.0, 1.0, size=(n, e.shape[0])), e).astype(dtype)
    y = np.arange(n) % K
    weights = None
    if weight_exponent is not None:
        weights = np.ldexp(rng.uniform(0.5, 1.0, size=n), weight_exponent)
    return X, y, weights


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(exponents=_exponents, weight_exponent=_weight_exponent, C=_C,
       fit_intercept=st.booleans(), kind=st.sampled_from(["dense", "csr", "float32"]),
       seed=st.integers(0, 2**16))
@example(exponents=[531, 0], weight_exponent=None, C=1.0, fit_intercept=True,
         kind="dense", seed=0)
@example(exponents=[-533, -1063], weight_exponent=None, C=np.inf, fit_intercept=True,
         kind="csr", seed=0)
@example(exponents=[0, 0, 0], weight_exponent=None, C=2.0**-1063, fit_intercept=True,
         kind="dense", seed=0)
@example(exponents=[0, 3], weight_exponent=-1063, C=1.0, fit_intercept=True,
         kind="csr", seed=0)
@example(exponents=[0, 3], weight_exponent=1023, C=1.0, fit_intercept=True,
         kind="dense", seed=0)
@example(exponents=[120, -140, 0], weight_exponent=-1000, C=2.0**1000,
         fit_intercept=False, kind="float32", seed=0)
def test_property_finite_model_or_named_error(exponents, weight_exponent, C, fit_intercept,
                                             kind, seed):
    """Column scales across 1e-300 .. 1e300 (float32: its whole range), weight
    scales across the double range, subnormal to huge C: a finite model whose
    probabilities sum to 1, or a ValueError naming the input's problem."""
    dtype = np.float32 if kind == "float32" else np.float64
    X, y, weights = _property_problem(exponents, weight_exponent, seed, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _check_outcome(lambda: SoftmaxClassifier(C=C, fit_intercept=fit_intercept,
                                                 max_iter=30),
                       X, y, "csr" if kind == "csr" else "dense", weights)


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(exponents=_exponents, weight_exponent=_weight_exponent, C=_C,
       seed=st.integers(0, 2**16))
@example(exponents=[531, 0], weight_exponent=None, C=2.0**-1063, seed=0)
def test_property_dask_and_cv(exponents, weight_exponent, C, seed):
    """The same property on Dask blocks, and along a CV path with C and 1."""
    X, y, weights = _property_problem(exponents, weight_exponent, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FitFailedWarning)
        _check_outcome(lambda: SoftmaxClassifier(C=C, max_iter=30), X, y, "dask", weights)
        _check_outcome(lambda: SoftmaxClassifierCV(Cs=[C, 1.0], cv=KFold(2), max_iter=30),
                       X, y, "dense", weights)
