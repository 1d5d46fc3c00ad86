"""Parity of ``skcce.SoftmaxClassifier`` with scikit-learn's ``LogisticRegression``.

SoftmaxClassifier minimises exactly the objective of
``LogisticRegression(solver="lbfgs")`` on multiclass data (K >= 3):

    f(W, b) = (1/sum s) sum_i s_i CE_i + ||W||_F^2 / (2 C sum s)

so at tight tolerance both estimators must reach the same solution.  For binary
problems the full 2-class softmax with L2 on both rows equals
``LogisticRegression(C=2*C)`` with ``coef_ = LR.coef_ / 2``.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from skcce import SoftmaxClassifier
from _reference import numpy_loss_gradient
from _reference import sklearn_at_least
import inspect

TIGHT = dict(tol=1e-10, max_iter=10000)
PROBA_ATOL = 1e-6
COEF_RTOL = 1e-4
COEF_ATOL_FACTOR = 1e-6
# Relative objective suboptimality allowed w.r.t. the exact optimum.  L-BFGS with
# ftol=64*eps stops once the relative decrease stalls at ~1e-14..1e-11; a wrong
# objective (penalty scaling, weights, intercept handling) is off by >> 1e-9.
OBJ_RTOL = 1e-9
# The achievable accuracy of an L-BFGS solution (stopped by ftol=64*eps) in
# coef/proba depends on the conditioning (e.g. on iris at C=100 sklearn's own
# lbfgs at tol=1e-10 is ~1e-6 away from the exact optimum in predict_proba and
# on digits ~4e-3 relative in some small coef entries).  The tolerances below are
# the spec's (1e-6 / 1e-4) plus this factor times the *measured* distance of
# sklearn's lbfgs solution to the exact optimum on the same problem; for
# well-conditioned problems that extra term is negligible.  The objective-value
# check (OBJ_RTOL) is the conditioning-independent correctness criterion.
# Where an L-BFGS run stops along a flat valley also depends on rounding: on
# iris made imbalanced, class_weight="balanced", C=1, sklearn's lbfgs stops
# 2.0e-7 from the exact probabilities and skcce's (same settings, same
# objective to ~1e-16, different summation order) 4.8e-6, both at relative
# objective decreases below 64 eps. Hence a factor of 30.
LBFGS_SLACK = 30.0


def _load(name):
    if name == "iris":
        return load_iris(return_X_y=True)
    if name == "wine":
        X, y = load_wine(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y
    if name.startswith("mc"):
        K = int(name[2:])
        X, y = make_classification(
            n_samples=1000 if K >= 20 else 600, n_features=20, n_informative=10,
            n_redundant=2, n_classes=K, random_state=K,
        )
        return X, y
    if name == "noisy":
        # heavily label-noised, overlapping classes: not separable, so the
        # unpenalised (C=inf) optimum exists and is unique on the sum-zero subspace
        X, y = make_classification(
            n_samples=800, n_features=6, n_informative=4, n_redundant=0,
            n_classes=4, n_clusters_per_class=1, flip_y=0.4, class_sep=0.5,
            random_state=0,
        )
        return X, y
    raise ValueError(name)


_CACHE = {}


def load(name):
    if name not in _CACHE:
        _CACHE[name] = _load(name)
    X, y = _CACHE[name]
    return X.copy(), y.copy()


class Fitted:
    """SoftmaxClassifier + the two scikit-learn references for one problem."""

    def __init__(self, X, y, sample_weight=None, lr_C=None, lr_params=None, **params):
        C = params.pop("C", 1.0)
        lr_params = params if lr_params is None else lr_params
        self.X, self.y, self.sample_weight, self.C, self.params = (
            X, y, sample_weight, C, params)
        self.binary = len(np.unique(y)) == 2
        self.sm = SoftmaxClassifier(C=C, **TIGHT, **params).fit(
            X, y, sample_weight=sample_weight)
        lr_C = C if lr_C is None else lr_C
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # C=np.inf deprecations, if any
            # what the spec names: LogisticRegression(lbfgs) at the same tight tol
            self.lr = LogisticRegression(C=lr_C, **TIGHT, **lr_params).fit(
                X, y, sample_weight=sample_weight)
            # the exact optimum of the same objective (Newton-CG to ~machine
            # precision), to separate optimizer stopping error from real errors
            # (newton-cg may emit harmless line-search warnings at ~eps)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.exact = LogisticRegression(
                C=lr_C, solver="newton-cg", tol=1e-14, max_iter=1000, **lr_params
            ).fit(X, y, sample_weight=sample_weight)
        # coef_/intercept_ of the LR models in SoftmaxClassifier's parametrisation
        self.f = 0.5 if self.binary else 1.0

    def objective(self, coef, intercept):
        """The SoftmaxClassifier objective, computed with plain NumPy."""
        X, y = self.X, self.y
        classes, yi = np.unique(y, return_inverse=True)
        if self.binary:  # full 2-class softmax: rows [-v, v]
            coef = np.vstack([-coef, coef])
            intercept = np.concatenate([-intercept, intercept])
        sw = (np.ones(len(y)) if self.sample_weight is None
              else np.asarray(self.sample_weight, float).copy())
        cw = self.params.get("class_weight")
        if cw is not None:
            weighted = {} if self.sample_weight is None else {
                "sample_weight": self.sample_weight}
            sw = sw * compute_class_weight(cw, classes=classes, y=y, **weighted)[yi]
        l2 = 0.0 if np.isinf(self.C) else 1.0 / (self.C * sw.sum())
        full = np.column_stack([coef, intercept])
        return numpy_loss_gradient(full, X, yi, sw, l2, fit_intercept=True)

    def check(self, center_coef=False):
        sm, lr, ex, X, f = self.sm, self.lr, self.exact, self.X, self.f
        np.testing.assert_array_equal(sm.classes_, lr.classes_)
        assert sm.coef_.shape == lr.coef_.shape
        assert sm.intercept_.shape == lr.intercept_.shape
        if not self.params.get("fit_intercept", True):
            assert_allclose(sm.intercept_, 0.0, atol=0)

        # 0. the reference optimum really is optimal (validates the reference)
        f_ex, g_ex = self.objective(f * ex.coef_, f * ex.intercept_)
        if not self.params.get("fit_intercept", True):
            g_ex = g_ex[:, :-1]
        assert np.abs(g_ex).max() < 1e-9

        # 1. skcce reaches the optimum of the (same) objective
        f_sm, _ = self.objective(sm.coef_, sm.intercept_)
        assert f_sm <= f_ex + OBJ_RTOL * abs(f_ex), (f_sm, f_ex)

        # 2. predict_proba: within 1e-6 of the optimum, widened only by the
        #    (measured) stopping error of sklearn's own lbfgs on this problem
        P_ex, P_lr, P_sm = ex.predict_proba(X), lr.predict_proba(X), sm.predict_proba(X)
        lbfgs_err = np.abs(P_lr - P_ex).max()
        assert_allclose(P_sm, P_ex, rtol=0, atol=PROBA_ATOL + LBFGS_SLACK * lbfgs_err)
        # and directly against LogisticRegression(lbfgs)
        assert_allclose(P_sm, P_lr, rtol=0,
                        atol=PROBA_ATOL + (LBFGS_SLACK + 1) * lbfgs_err)

        # 3. coef_ / intercept_ (intercepts centred: only identified up to a shift)
        c_sm, c_lr, c_ex = sm.coef_, f * lr.coef_, f * ex.coef_
        if center_coef:
            c_sm, c_lr, c_ex = _center(c_sm), _center(c_lr), _center(c_ex)
        i_sm, i_lr, i_ex = (sm.intercept_, f * lr.intercept_, f * ex.intercept_)
        if not self.binary:
            i_sm, i_lr, i_ex = _center(i_sm), _center(i_lr), _center(i_ex)
        scale = max(np.abs(c_ex).max(), np.abs(i_ex).max())
        coef_err = max(np.abs(c_lr - c_ex).max(), np.abs(i_lr - i_ex).max())
        atol = COEF_ATOL_FACTOR * scale + LBFGS_SLACK * coef_err
        assert_allclose(c_sm, c_ex, rtol=COEF_RTOL, atol=atol)
        assert_allclose(i_sm, i_ex, rtol=COEF_RTOL, atol=atol)
        assert_allclose(c_sm, c_lr, rtol=COEF_RTOL, atol=atol + coef_err)
        assert_allclose(i_sm, i_lr, rtol=COEF_RTOL, atol=atol + coef_err)

        # 4. predictions equal wherever the reference probabilities are not tied
        top2 = np.sort(P_ex, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-4
        np.testing.assert_array_equal(sm.predict(X)[clear], ex.predict(X)[clear])
        return self


def _center(a, axis=0):
    # Intercepts of a softmax model are only identified up to a common constant
    # (adding c to every class's intercept changes nothing); compare centred values.
    return a - a.mean(axis=axis, keepdims=True)


@pytest.mark.parametrize(
    "name, C",
    [
        ("iris", 0.01), ("iris", 1.0), ("iris", 100.0),
        ("wine", 0.01), ("wine", 1.0), ("wine", 100.0),
        ("digits", 0.01), ("digits", 1.0),
        ("mc3", 0.01), ("mc3", 1.0), ("mc3", 100.0),
        ("mc5", 1.0), ("mc5", 100.0),
        ("mc10", 0.01), ("mc10", 1.0),
        ("mc20", 1.0), ("mc20", 100.0),
    ],
)
def test_parity_multiclass(name, C):
    """Default options: same solution as LogisticRegression."""
    X, y = load(name)
    Fitted(X, y, C=C).check()


@pytest.mark.parametrize("name", ["iris", "wine", "mc5", "mc20"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_parity_sample_weight(name, C):
    """Random positive sample weights (normalised objective)."""
    X, y = load(name)
    sw = np.random.default_rng(0).uniform(0.1, 5.0, size=len(y))
    Fitted(X, y, sample_weight=sw, C=C).check()


@pytest.mark.parametrize("name", ["iris", "wine", "digits", "mc10"])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_parity_no_intercept(name, C):
    """fit_intercept=False (intercept_ must be exactly zero)."""
    X, y = load(name)
    Fitted(X, y, C=C, fit_intercept=False).check()


def _imbalanced(name, seed=0):
    X, y = load(name)
    rng = np.random.default_rng(seed)
    # drop a random 70% of the samples of class 0 to make the problem imbalanced
    keep = (y != 0) | (rng.uniform(size=len(y)) < 0.3)
    return X[keep], y[keep]


@pytest.mark.parametrize("name", ["iris", "wine", "mc5"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_parity_class_weight_balanced(name, C):
    """class_weight="balanced" on an imbalanced problem."""
    X, y = _imbalanced(name)
    Fitted(X, y, C=C, class_weight="balanced").check()


@pytest.mark.skipif(
    "sample_weight" not in inspect.signature(compute_class_weight).parameters,
    reason="this scikit-learn balances class weights without sample_weight")
@pytest.mark.parametrize("name", ["iris", "mc5"])
def test_parity_class_weight_balanced_with_sample_weight(name):
    """class_weight="balanced" combined with sample_weight: sklearn computes the
    balanced weights from the *weighted* class counts and multiplies them in."""
    X, y = _imbalanced(name, seed=1)
    sw = np.random.default_rng(1).uniform(0.1, 5.0, size=len(y))
    Fitted(X, y, sample_weight=sw, class_weight="balanced").check()


@pytest.mark.parametrize("name", ["iris", "mc5"])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_parity_class_weight_dict(name, C):
    """class_weight dict equals LogisticRegression with the same dict ..."""
    X, y = load(name)
    classes = np.unique(y)
    cw = {c: w for c, w in zip(classes, np.linspace(0.3, 3.0, len(classes)))}
    Fitted(X, y, C=C, class_weight=cw).check()


def test_class_weight_dict_equals_sample_weight():
    """... and equals LogisticRegression fitted with sample_weight = class_weight[y]
    (class weights are multiplied into the sample weights, normalisation included)."""
    X, y = load("mc5")
    classes = np.unique(y)
    cw = {c: w for c, w in zip(classes, np.linspace(0.3, 3.0, len(classes)))}
    sw = np.array([cw[c] for c in y])
    sm = SoftmaxClassifier(class_weight=cw, **TIGHT).fit(X, y)
    ref = LogisticRegression(solver="newton-cg", tol=1e-14, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # newton-cg line search at ~eps
        warnings.simplefilter("ignore", RuntimeWarning)
        ref.fit(X, y, sample_weight=sw)
    assert_allclose(sm.predict_proba(X), ref.predict_proba(X), rtol=0, atol=PROBA_ATOL)
    scale = np.abs(ref.coef_).max()
    assert_allclose(sm.coef_, ref.coef_, rtol=COEF_RTOL, atol=1e-5 * scale)


def test_balanced_equals_explicit_weights():
    """"balanced" is the same as sklearn's explicit balanced weights as a dict."""
    X, y = _imbalanced("wine", seed=2)
    classes = np.unique(y)
    w = compute_class_weight("balanced", classes=classes, y=y)
    Fitted(X, y, class_weight="balanced",
           lr_params=dict(class_weight=dict(zip(classes, w)))).check()


@pytest.mark.parametrize("weighted", [False, True])
def test_parity_unpenalized(weighted):
    """C=np.inf means no penalty; compared on a non-separable problem with
    LogisticRegression(C=np.inf).  Without a penalty the softmax weights are only
    identified up to a common per-feature shift, so coef_ is compared centred."""
    X, y = load("noisy")
    sw = np.random.default_rng(3).uniform(0.5, 2.0, size=len(y)) if weighted else None
    Fitted(X, y, sample_weight=sw, C=np.inf).check(center_coef=True)


def test_string_and_noncontiguous_labels():
    """Arbitrary class labels are supported and mapped back like sklearn does."""
    X, y = load("iris")
    labels = np.array(["setosa", "versicolor", "virginica"])
    fs = Fitted(X, labels[y], C=1.0).check()
    assert set(fs.sm.predict(X)) <= set(labels)
    y2 = np.array([-7, 3, 42])[y]
    Fitted(X, y2, C=1.0).check()


# ---------------------------------------------------------------------------
# Binary: full 2-class softmax == LogisticRegression(C=2C), coef_ == LR.coef_/2
# ---------------------------------------------------------------------------


def _binary(name):
    if name == "iris":
        X, y = load("iris")
        keep = y > 0  # versicolor vs virginica: not linearly separable
        return X[keep], y[keep]
    if name == "breast":
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    X, y = make_classification(n_samples=500, n_features=8, flip_y=0.1, random_state=5)
    return X, y


def _check_binary_extras(fs):
    """Binary-specific facts: 1-D decision_function, proba = softmax([-d, d]),
    decision_function == LR(C=2C).decision_function / 2."""
    sm, lr, X = fs.sm, fs.lr, fs.X
    assert sm.coef_.shape == (1, X.shape[1])
    assert sm.intercept_.shape == (1,)
    d = sm.decision_function(X)
    assert d.shape == (X.shape[0],)
    P = sm.predict_proba(X)
    # softmax([-d, d]) computed independently: p1 = 1 / (1 + exp(-2 d))
    p1 = 1.0 / (1.0 + np.exp(-2.0 * d))
    assert_allclose(P[:, 1], p1, rtol=1e-12, atol=1e-15)
    assert_allclose(P[:, 0], 1.0 - p1, rtol=1e-10, atol=1e-15)
    # decision_function is half of LR(C=2C)'s, up to the optimizer stopping error
    d_lr, d_ex = lr.decision_function(X), fs.exact.decision_function(X)
    err = np.abs(d_lr - d_ex).max() / 2
    assert_allclose(d, d_lr / 2, rtol=COEF_RTOL,
                    atol=1e-6 * np.abs(d_ex).max() + (2 * LBFGS_SLACK + 1) * err)
    assert_allclose(d, d_ex / 2, rtol=COEF_RTOL,
                    atol=1e-6 * np.abs(d_ex).max() + 2 * LBFGS_SLACK * err)


@pytest.mark.parametrize("name", ["iris", "breast", "mc2"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_equals_logreg_double_C(name, C, fit_intercept):
    """Binary SoftmaxClassifier(C) == LogisticRegression(C=2C):
    predict_proba equal (within 1e-6), coef_ (1, d) == LR.coef_ / 2,
    intercept_ (1,) == LR.intercept_ / 2."""
    X, y = _binary(name)
    fs = Fitted(X, y, C=C, lr_C=2 * C, fit_intercept=fit_intercept).check()
    _check_binary_extras(fs)


def test_binary_sample_weight_and_string_labels():
    """Binary with sample weights and string labels: same facts as above."""
    X, y = _binary("iris")
    labels = np.array(["a", "b", "c"])[y]
    sw = np.random.default_rng(4).uniform(0.2, 3.0, size=len(y))
    fs = Fitted(X, labels, sample_weight=sw, C=0.5, lr_C=1.0).check()
    np.testing.assert_array_equal(fs.sm.classes_, ["b", "c"])
    _check_binary_extras(fs)


def test_binary_class_weight_balanced():
    """Binary + class_weight="balanced" equals LR(C=2C, class_weight="balanced")."""
    X, y = _binary("breast")
    fs = Fitted(X, y, C=0.3, lr_C=0.6, class_weight="balanced").check()
    _check_binary_extras(fs)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_unpenalized(weighted):
    """Binary with C=np.inf (no penalty) on a non-separable problem equals
    LogisticRegression(C=np.inf): coef_ = LR.coef_ / 2."""
    X, y = make_classification(n_samples=600, n_features=5, n_informative=3,
                               flip_y=0.3, class_sep=0.5, random_state=7)
    sw = np.random.default_rng(8).uniform(0.5, 2.0, size=len(y)) if weighted else None
    fs = Fitted(X, y, sample_weight=sw, C=np.inf, lr_C=np.inf).check()
    _check_binary_extras(fs)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_fit_follows_logistic_regression_path(seed):
    """At default settings (tol=1e-4, stopped far from the optimum) the fit
    starts where LogisticRegression starts and runs the same optimizer on the
    same objective, so it stops at the same iterate: same n_iter_, and the
    same coefficients to far better than their distance to the optimum (a
    different starting point would stop elsewhere, ~1e-3 away here)."""
    X, y = make_classification(n_samples=3000, n_features=30, n_informative=20,
                               n_classes=5, n_clusters_per_class=1, random_state=seed)
    X = StandardScaler().fit_transform(X)
    ours = SoftmaxClassifier().fit(X, y)
    theirs = LogisticRegression().fit(X, y)
    optimum = LogisticRegression(tol=1e-10, max_iter=10000).fit(X, y)
    distance_to_optimum = np.max(np.abs(theirs.coef_ - optimum.coef_))
    assert distance_to_optimum > 1e-5  # the default fit is really stopped early
    assert ours.n_iter_[0] == theirs.n_iter_[0]
    assert np.max(np.abs(ours.coef_ - theirs.coef_)) < 1e-3 * distance_to_optimum
    assert np.max(np.abs(ours.intercept_ - theirs.intercept_)) < 1e-3 * distance_to_optimum
