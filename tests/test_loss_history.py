"""``SoftmaxClassifier.loss_curve_``, ``final_gradient_norm_`` and warm-start
continuation.

The objective is recomputed independently in NumPy (``ref_objective`` below)
at the fitted coefficients: f = (1/S) sum_i s_i CE_i + ||W||^2 / (2 C S), with
the full symmetric 2-class solution W = [-w, w], b = [-c, c] for binary
models. Warm-start tests compare skcce with a long skcce fit, which is what
the spec asks for, and additionally check both against the NumPy gradient.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import softmax
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier
from _reference import full_coef, ref_objective

TIGHT = dict(tol=1e-10, max_iter=10000)


# ---------------------------------------------------------------------------
# Independent NumPy reference
# ---------------------------------------------------------------------------


def encoded_targets(clf, y):
    y = np.asarray(y)
    return y if y.ndim == 2 else np.searchsorted(clf.classes_, y)


def fitted_objective(clf, X, y, sample_weight=None):
    """NumPy objective and gradient at the fitted model (no class_weight here)."""
    n = X.shape[0]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    l2 = 0.0 if np.isinf(clf.C) else 1.0 / (clf.C * s.sum())
    return ref_objective(full_coef(clf), X, encoded_targets(clf, y), s, l2,
                         clf.fit_intercept, clf.label_smoothing)


def initial_objective(clf, X, y, sample_weight=None):
    """NumPy objective at the documented cold starting point: W = 0 and the
    centered log of the (weighted, smoothed) mean target as intercepts."""
    Q = encoded_targets(clf, y)
    K = len(clf.classes_)
    if Q.ndim == 1:
        Q = np.eye(K)[Q]
    n, d = X.shape
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    eps = clf.label_smoothing
    prior = (1 - eps) * (s @ Q) / s.sum() + eps / K
    coef = np.zeros((K, d + clf.fit_intercept))
    if clf.fit_intercept:
        coef[:, -1] = np.log(prior) - np.log(prior).mean()
    l2 = 1.0 / (clf.C * s.sum())
    return ref_objective(coef, X, Q, s, l2, clf.fit_intercept, eps)[0]


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


def _labels(K, seed, n=300, d=8):
    X, y = make_classification(n_samples=n, n_features=d, n_informative=5,
                               n_redundant=1, n_classes=K, random_state=seed)
    return StandardScaler().fit_transform(X), y, None


def _soft(K, seed, n=250, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Q = softmax(X @ rng.normal(size=(K, d)).T + 0.5 * rng.normal(size=(n, K)), axis=1)
    return X, Q, None


def _weighted(K, seed):
    X, y, _ = _labels(K, seed)
    sw = np.random.default_rng(seed).uniform(0.1, 3.0, size=X.shape[0])
    return X, y, sw


def _strings(K, seed):
    X, y, _ = _labels(K, seed)
    return X, np.array(["d", "c", "b", "a", "e"])[y], None


PROBLEMS = {
    "binary": (lambda: _labels(2, 1), {}),
    "multiclass3": (lambda: _labels(3, 2), {}),
    "multiclass4": (lambda: _labels(4, 0), {}),
    "strings": (lambda: _strings(3, 3), {}),
    "weighted_binary": (lambda: _weighted(2, 4), {}),
    "weighted_multiclass": (lambda: _weighted(3, 5), {}),
    "soft_binary": (lambda: _soft(2, 6), {}),
    "soft_multiclass": (lambda: _soft(4, 7), {}),
    "no_intercept": (lambda: _labels(3, 8), {"fit_intercept": False}),
    "smoothing": (lambda: _labels(3, 9), {"label_smoothing": 0.2}),
    "small_C": (lambda: _labels(3, 10), {"C": 0.01}),
}


def problem(name):
    make, params = PROBLEMS[name]
    X, y, sw = make()
    return X, y, sw, dict(params)


def fit_quiet(clf, X, y, sw):
    """Fit; return the ConvergenceWarnings raised."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X, y, sample_weight=sw)
    return [w for w in record if issubclass(w.category, ConvergenceWarning)]


# ---------------------------------------------------------------------------
# loss_curve_
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("tol", [1e-4, 1e-10])
def test_loss_curve(name, tol):
    X, y, sw, params = problem(name)
    clf = SoftmaxClassifier(tol=tol, max_iter=10000, **params)
    fit_quiet(clf, X, y, sw)
    curve = clf.loss_curve_
    assert isinstance(curve, list)
    assert all(isinstance(v, float) for v in curve)
    assert len(curve) == clf.n_iter_[0]
    assert len(curve) >= 1
    assert np.all(np.isfinite(curve))
    assert np.all(np.diff(curve) <= 0), np.diff(curve).max()
    loss, _ = fitted_objective(clf, X, y, sw)
    assert_allclose(curve[-1], loss, rtol=1e-10)
    # the first iteration improves on the (independently computed) starting point
    assert curve[0] <= initial_objective(clf, X, y, sw) * (1 + 1e-12)


@pytest.mark.parametrize("name", ["binary", "multiclass4", "soft_multiclass", "smoothing"])
def test_loss_curve_stopped_by_max_iter(name):
    X, y, sw, params = problem(name)
    clf = SoftmaxClassifier(tol=1e-12, max_iter=4, **params)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y, sample_weight=sw)
    assert clf.n_iter_[0] == 4
    assert len(clf.loss_curve_) == 4
    assert np.all(np.diff(clf.loss_curve_) <= 0)
    loss, grad = fitted_objective(clf, X, y, sw)
    assert_allclose(clf.loss_curve_[-1], loss, rtol=1e-10)
    assert_allclose(clf.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6, atol=1e-12)
    assert clf.final_gradient_norm_ > clf.tol


def test_loss_curve_float32():
    X, y, _ = _labels(3, 11)
    X = X.astype(np.float32)
    clf = SoftmaxClassifier(tol=1e-5, max_iter=1000)
    fit_quiet(clf, X, y, None)
    assert clf.coef_.dtype == np.float32
    assert len(clf.loss_curve_) == clf.n_iter_[0]
    assert np.all(np.diff(clf.loss_curve_) <= 0)
    loss, grad = fitted_objective(clf, X.astype(np.float64), y)
    # coef_ is rounded to float32 and the kernel computes logits in float32
    assert_allclose(clf.loss_curve_[-1], loss, rtol=1e-6)
    assert_allclose(clf.final_gradient_norm_, np.max(np.abs(grad)), rtol=0, atol=1e-5)


def test_loss_curve_reset_between_fits():
    X, y, _ = _labels(3, 12)
    clf = SoftmaxClassifier(max_iter=3)
    fit_quiet(clf, X, y, None)
    assert len(clf.loss_curve_) == 3
    clf.set_params(max_iter=1000)
    fit_quiet(clf, X, y, None)
    assert len(clf.loss_curve_) == clf.n_iter_[0] > 3
    assert_allclose(clf.loss_curve_[-1], fitted_objective(clf, X, y)[0], rtol=1e-10)


# ---------------------------------------------------------------------------
# final_gradient_norm_
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-6])
def test_final_gradient_norm(name, tol):
    X, y, sw, params = problem(name)
    clf = SoftmaxClassifier(tol=tol, max_iter=10000, **params)
    caught = fit_quiet(clf, X, y, sw)
    assert isinstance(clf.final_gradient_norm_, float)
    _, grad = fitted_objective(clf, X, y, sw)
    assert_allclose(clf.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6, atol=1e-12)
    assert not caught, [str(w.message) for w in caught]
    assert clf.final_gradient_norm_ <= tol


@pytest.mark.parametrize("name", ["binary", "multiclass4", "soft_multiclass", "smoothing"])
@pytest.mark.parametrize("tol", [1e-8, 1e-10])
def test_final_gradient_norm_tight_tol(name, tol):
    """At tight tol, L-BFGS may also stop (silently, as scikit-learn's does) on
    its relative-decrease rule ftol = 64 eps before max|grad| <= tol; the
    reported norm must still be the true one, and the solution very accurate."""
    X, y, sw, params = problem(name)
    clf = SoftmaxClassifier(tol=tol, max_iter=10000, **params)
    caught = fit_quiet(clf, X, y, sw)
    _, grad = fitted_objective(clf, X, y, sw)
    assert_allclose(clf.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6, atol=1e-12)
    # whatever the stopping reason (gtol or ftol), the solution is a very accurate
    # optimum and the fit did not warn
    assert np.max(np.abs(grad)) < 1e-6
    assert not caught


# ---------------------------------------------------------------------------
# warm_start
# ---------------------------------------------------------------------------


WARM_PROBLEMS = ["binary", "multiclass3", "multiclass4", "weighted_multiclass",
                 "soft_binary", "soft_multiclass", "smoothing", "no_intercept"]


@pytest.mark.parametrize("name", WARM_PROBLEMS)
def test_warm_start_continues_to_same_optimum(name):
    X, y, sw, params = problem(name)
    long = SoftmaxClassifier(**TIGHT, **params)
    fit_quiet(long, X, y, sw)

    clf = SoftmaxClassifier(max_iter=5, **params)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y, sample_weight=sw)
    assert clf.n_iter_[0] == 5
    # a 5-iteration model is not the optimum yet
    _, grad_short = fitted_objective(clf, X, y, sw)
    assert np.max(np.abs(grad_short)) > 1e-6
    clf.set_params(warm_start=True, **TIGHT)
    fit_quiet(clf, X, y, sw)

    # both are the optimum of the NumPy objective
    for model in (long, clf):
        _, grad = fitted_objective(model, X, y, sw)
        assert np.max(np.abs(grad)) < 1e-6
    # and agree: each stops (by gtol or ftol = 64 eps) within ~1e-7 of the optimum
    # in predict_proba, so they agree within 1e-6
    assert_allclose(clf.predict_proba(X), long.predict_proba(X), rtol=0, atol=1e-6)
    assert_allclose(clf.coef_, long.coef_, rtol=1e-5,
                    atol=1e-5 * np.max(np.abs(long.coef_)))
    assert_allclose(clf.intercept_, long.intercept_, rtol=1e-5,
                    atol=1e-5 * max(np.max(np.abs(long.intercept_)), 1e-300))


@pytest.mark.parametrize("name", WARM_PROBLEMS)
@pytest.mark.parametrize("tol", [1e-4, 1e-10])
def test_warm_start_refit_of_converged_model_is_short(name, tol):
    X, y, sw, params = problem(name)
    clf = SoftmaxClassifier(tol=tol, max_iter=10000, warm_start=True, **params)
    fit_quiet(clf, X, y, sw)
    first = clf.n_iter_[0]
    fit_quiet(clf, X, y, sw)
    assert clf.n_iter_[0] <= 2, (first, clf.n_iter_[0])
    assert clf.n_iter_[0] < first
    assert len(clf.loss_curve_) == clf.n_iter_[0]
    _, grad = fitted_objective(clf, X, y, sw)
    assert_allclose(clf.final_gradient_norm_, np.max(np.abs(grad)), rtol=1e-6, atol=1e-12)
    assert np.max(np.abs(grad)) <= max(tol, 1e-6)


def test_cold_refit_does_not_warm_start():
    """Without warm_start a refit starts from scratch: the same number of
    iterations as the first fit (independent of the previous solution)."""
    X, y, _ = _labels(3, 13)
    clf = SoftmaxClassifier(max_iter=1000)
    fit_quiet(clf, X, y, None)
    n1, curve1 = clf.n_iter_[0], list(clf.loss_curve_)
    fit_quiet(clf, X, y, None)
    assert clf.n_iter_[0] == n1 > 2
    assert clf.loss_curve_ == curve1
    assert curve1[0] <= initial_objective(clf, X, y) * (1 + 1e-12)
