"""Behavioural tests of ``skcce.SoftmaxClassifier``: prediction API consistency,
parameter validation, convergence warnings, verbose output, warm start,
transactional fit, numerical robustness and float32 support.

References are independent formulas (softmax via scipy, accuracy_score) or
scikit-learn's LogisticRegression; only the transactional and warm-start tests
compare skcce with its own earlier state, which is the point of those tests.
"""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax, softmax
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.utils.validation import check_is_fitted

from skcce import SoftmaxClassifier

# Several tests deliberately use the default max_iter=100 on unscaled data.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def mc5():
    return make_classification(
        n_samples=400, n_features=10, n_informative=6, n_classes=5, random_state=0
    )


# ---------------------------------------------------------------------------
# Prediction API
# ---------------------------------------------------------------------------


def test_fitted_attributes(iris):
    """Shapes and types of the fitted attributes (multiclass)."""
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.coef_.shape == (3, 4)
    assert clf.intercept_.shape == (3,)
    assert isinstance(clf.n_iter_, np.ndarray) and clf.n_iter_.shape == (1,)
    assert 1 <= clf.n_iter_[0] <= clf.max_iter
    assert clf.n_features_in_ == 4
    assert not hasattr(clf, "feature_names_in_")  # numpy input has no names


def test_prediction_methods_consistent(mc5):
    """decision_function = X coef_^T + intercept_, predict_proba = softmax of it,
    predict_log_proba = log_softmax, predict = argmax, score = accuracy."""
    X, y = mc5
    clf = SoftmaxClassifier(C=0.5).fit(X, y)
    D = clf.decision_function(X)
    assert D.shape == (X.shape[0], 5)
    assert_allclose(D, X @ clf.coef_.T + clf.intercept_, rtol=1e-12, atol=1e-12)
    P = clf.predict_proba(X)
    assert_allclose(P, softmax(D, axis=1), rtol=1e-12, atol=1e-15)
    assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(clf.predict_log_proba(X), log_softmax(D, axis=1), rtol=1e-12,
                    atol=1e-12)
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, clf.classes_[np.argmax(D, axis=1)])
    assert clf.score(X, y) == pytest.approx(accuracy_score(y, pred))
    # same accuracy as LogisticRegression on this problem (up to a couple of ties)
    ref = LogisticRegression(C=0.5).fit(X, y)
    assert abs(clf.score(X, y) - ref.score(X, y)) <= 0.01


def test_binary_api(iris):
    """Binary: coef_ (1, d), intercept_ (1,), 1-D decision_function, predict =
    classes_[d > 0], predict_proba = softmax([-d, d])."""
    X, y = iris
    keep = y > 0
    X, y = X[keep], np.where(y[keep] == 1, "versicolor", "virginica")
    clf = SoftmaxClassifier().fit(X, y)
    assert clf.coef_.shape == (1, 4) and clf.intercept_.shape == (1,)
    d = clf.decision_function(X)
    assert d.shape == (X.shape[0],)
    assert_allclose(d, X @ clf.coef_[0] + clf.intercept_[0], rtol=1e-12, atol=1e-12)
    P = clf.predict_proba(X)
    assert_allclose(P, softmax(np.column_stack([-d, d]), axis=1), rtol=1e-12,
                    atol=1e-15)
    assert_allclose(clf.predict_log_proba(X), log_softmax(np.column_stack([-d, d]), axis=1),
                    rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(d > 0).astype(int)])
    assert clf.score(X, y) > 0.9


def test_predict_proba_sums_to_one_and_log_proba_finite_for_large_inputs(digits):
    """Large inputs (X * 1e3 after fitting) drive logits to ~1e3-1e4: probabilities
    still sum to one and log-probabilities stay finite (stable log-softmax)."""
    X, y = digits
    clf = SoftmaxClassifier(C=10.0).fit(X, y)
    Xbig = X * 1e3
    P = clf.predict_proba(Xbig)
    assert np.all(np.isfinite(P))
    assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    L = clf.predict_log_proba(Xbig)
    assert np.all(np.isfinite(L))
    # compare against an independent stable reference
    assert_allclose(L, log_softmax(clf.decision_function(Xbig), axis=1),
                    rtol=1e-10, atol=1e-8)
    assert np.min(L) < -100  # really in the regime where naive log(p) = -inf


def test_predict_proba_binary_large_inputs(iris):
    X, y = iris
    keep = y > 0
    clf = SoftmaxClassifier().fit(X[keep], y[keep])
    Xbig = X[keep] * 1e3
    P = clf.predict_proba(Xbig)
    assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    L = clf.predict_log_proba(Xbig)
    assert np.all(np.isfinite(L))
    d = clf.decision_function(Xbig)
    assert_allclose(L, log_softmax(np.column_stack([-d, d]), axis=1), rtol=1e-10, atol=1e-8)


def test_predict_n_features_mismatch(iris):
    """Predicting with the wrong number of features raises ValueError."""
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    with pytest.raises(ValueError):
        clf.predict(X[:, :3])


def test_unfitted_raises(iris):
    X, _ = iris
    clf = SoftmaxClassifier()
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(X)


def test_feature_names_in_():
    """feature_names_in_ is set when fitting on a DataFrame with string columns."""
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True)
    cols = ["a", "b", "c", "d"]
    df = pd.DataFrame(X, columns=cols)
    clf = SoftmaxClassifier().fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, cols)
    ref = LogisticRegression(tol=1e-8, max_iter=1000).fit(X, y)
    clf = SoftmaxClassifier(tol=1e-8, max_iter=1000).fit(df, y)
    assert_allclose(clf.predict_proba(df), ref.predict_proba(X), atol=1e-4)


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_float32_close_to_float64(digits, C):
    """float32 X fits and predicts, and the model is close to the float64 one
    (data differs only by float32 rounding, relative 6e-8)."""
    X, y = digits
    X32 = X.astype(np.float32)
    params = dict(C=C, tol=1e-8, max_iter=2000)
    m64 = SoftmaxClassifier(**params).fit(X, y)
    m32 = SoftmaxClassifier(**params).fit(X32, y)
    # reference on the same float32-rounded values, computed in float64 by sklearn
    ref = LogisticRegression(**params).fit(X32.astype(np.float64), y)
    P_ref = ref.predict_proba(X32.astype(np.float64))
    # float64 model: tight
    assert_allclose(m64.predict_proba(X), P_ref, atol=1e-4)
    # float32 model: the loss is only accurate to ~1e-8 relative (spec: rtol 1e-5),
    # so L-BFGS cannot resolve the optimum much better than sqrt(1e-8) ~ 1e-4..1e-3
    # in the probabilities (observed ~3e-4..6e-4); "close" means within 2e-3.
    P32 = m32.predict_proba(X32)
    assert P32.shape == (X.shape[0], 10)
    assert np.all(np.isfinite(P32))
    assert_allclose(P32.sum(axis=1), 1.0, atol=1e-5)
    assert_allclose(P32, P_ref, atol=2e-3)
    assert_allclose(m32.predict_proba(X), m64.predict_proba(X), atol=2e-3)
    scale = np.abs(m64.coef_).max()
    assert_allclose(m32.coef_, m64.coef_, rtol=0, atol=2e-2 * scale)
    assert (m32.predict(X32) == ref.predict(X32.astype(np.float64))).mean() > 0.99


# ---------------------------------------------------------------------------
# Parameter validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(C=0.0), dict(C=-1.0), dict(tol=-1e-3), dict(max_iter=-1),
        dict(n_jobs=0), dict(n_jobs=1.5), dict(class_weight="unbalanced"),
        dict(C="1"),
    ],
    ids=lambda p: repr(p),
)
def test_invalid_params_rejected_at_fit(iris, params):
    """Invalid hyper-parameters raise ValueError (sklearn's InvalidParameterError)
    at fit time, and the constructor does not validate (sklearn convention)."""
    X, y = iris
    clf = SoftmaxClassifier(**params)  # must not raise
    for k, v in params.items():
        assert getattr(clf, k) is v  # constructor stores params unchanged
    with pytest.raises(ValueError):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


def test_n_jobs_zero_is_invalid_parameter_error(iris):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = iris
    with pytest.raises(InvalidParameterError):
        SoftmaxClassifier(n_jobs=0).fit(X, y)


@pytest.mark.parametrize("n_jobs", [None, -1, 1, 2, 3])
def test_valid_n_jobs(iris, n_jobs):
    """Valid n_jobs values fit and agree with LogisticRegression's predictions."""
    X, y = iris
    clf = SoftmaxClassifier(n_jobs=n_jobs, tol=1e-8, max_iter=1000).fit(X, y)
    ref = LogisticRegression(tol=1e-8, max_iter=1000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_get_set_params():
    clf = SoftmaxClassifier(C=3.0, class_weight="balanced")
    p = clf.get_params()
    assert p == dict(C=3.0, l1_ratio=0.0, fit_intercept=True, tol=1e-4, max_iter=100,
                     class_weight="balanced", label_smoothing=0.0,
                     warm_start=False, n_jobs=None, verbose=0,
                     penalty="deprecated", solver="lbfgs", random_state=None)
    clf.set_params(C=0.5, max_iter=7)
    assert clf.C == 0.5 and clf.max_iter == 7


# ---------------------------------------------------------------------------
# Convergence warning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_iter", [1, 2])
def test_convergence_warning(digits, max_iter):
    """Stopping at max_iter on a real problem warns ConvergenceWarning (text
    contains "failed to converge") and reports n_iter_ == max_iter."""
    X, y = digits
    clf = SoftmaxClassifier(max_iter=max_iter)
    with pytest.warns(ConvergenceWarning, match="failed to converge"):
        clf.fit(X, y)
    assert clf.n_iter_[0] == max_iter
    check_is_fitted(clf)  # the (unconverged) model is still usable
    assert clf.predict(X).shape == y.shape


def test_no_convergence_warning_when_converged(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxClassifier(max_iter=1000).fit(X, y)
    assert clf.n_iter_[0] < 1000


# ---------------------------------------------------------------------------
# verbose
# ---------------------------------------------------------------------------

_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)|[-+]?(?:\d+\.\d*|\.\d+)")


def test_verbose_prints_one_line_per_iteration(iris, capsys):
    """verbose=1 prints (at least) one line per iteration containing numbers
    (iteration, objective, gradient norm, elapsed time)."""
    X, y = iris
    capsys.readouterr()
    clf = SoftmaxClassifier(verbose=1, tol=1e-6, max_iter=500).fit(X, y)
    out = capsys.readouterr()
    text = out.out + out.err
    lines = [ln for ln in text.splitlines() if _FLOAT.search(ln)]
    assert clf.n_iter_[0] > 3
    assert len(lines) >= clf.n_iter_[0], text
    # every numeric token on the counted lines parses as a float
    values = [[float(tok) for tok in _FLOAT.findall(ln)] for ln in lines]
    # lenient monotonicity: the first float on each line is taken to be the
    # objective (the iteration number is an integer and not matched); the last
    # printed value must not exceed the first one (L-BFGS decreases f).
    firsts = [v[0] for v in values if v]
    assert firsts[-1] <= firsts[0], (firsts[0], firsts[-1])


def test_verbose_zero_is_silent(iris, capsys):
    X, y = iris
    capsys.readouterr()
    SoftmaxClassifier(verbose=0).fit(X, y)
    out = capsys.readouterr()
    assert out.out == ""


# ---------------------------------------------------------------------------
# warm start
# ---------------------------------------------------------------------------


def test_warm_start_refit_is_fast(digits):
    """A second fit on the same data starts from the previous solution, so at a
    tight tol it needs (many) fewer iterations and gives the same model."""
    X, y = digits
    clf = SoftmaxClassifier(warm_start=True, tol=1e-8, max_iter=2000)
    clf.fit(X, y)
    n1 = clf.n_iter_[0]
    coef1 = clf.coef_.copy()
    clf.fit(X, y)
    n2 = clf.n_iter_[0]
    assert n1 > 10
    assert n2 < n1 / 2, (n1, n2)
    assert_allclose(clf.coef_, coef1, rtol=1e-3, atol=1e-4 * np.abs(coef1).max())


def test_warm_start_false_restarts(digits):
    """Without warm_start the second fit starts from scratch (same iteration count)."""
    X, y = digits
    clf = SoftmaxClassifier(warm_start=False, tol=1e-6, max_iter=2000)
    n1 = clf.fit(X, y).n_iter_[0]
    n2 = clf.fit(X, y).n_iter_[0]
    assert n1 == n2


def test_warm_start_from_other_C_reaches_correct_optimum(mc5):
    """Warm-starting from the C=0.1 solution and refitting with C=10 converges to
    the same model as LogisticRegression(C=10)."""
    X, y = mc5
    clf = SoftmaxClassifier(C=0.1, warm_start=True, tol=1e-10, max_iter=5000).fit(X, y)
    clf.set_params(C=10.0)
    clf.fit(X, y)
    ref = LogisticRegression(C=10.0, tol=1e-10, max_iter=5000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_warm_start_binary(iris):
    X, y = iris
    keep = y > 0
    X, y = X[keep], y[keep]
    clf = SoftmaxClassifier(warm_start=True, tol=1e-8, max_iter=1000).fit(X, y)
    n1 = clf.n_iter_[0]
    clf.fit(X, y)
    assert clf.n_iter_[0] < n1
    ref = LogisticRegression(C=2.0, tol=1e-10, max_iter=1000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-5)


# ---------------------------------------------------------------------------
# Transactional fit
# ---------------------------------------------------------------------------


def _bad_fits(X, y):
    """(description, X, y, sample_weight) triples each of which must make fit raise."""
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    Xinf = X.copy()
    Xinf[5, 0] = np.inf
    return [
        ("single class", X, np.zeros_like(y), None),
        ("nan in X", Xnan, y, None),
        ("inf in X", Xinf, y, None),
        ("sample_weight wrong length", X, y, np.ones(len(y) - 1)),
        ("y wrong length", X, y[:-1], None),
        ("continuous y", X, np.linspace(0, 1, len(y)), None),
        ("nan in sample_weight", X, y, np.r_[np.nan, np.ones(len(y) - 1)]),
        ("nan in y", X, np.r_[np.nan, y[1:].astype(float)], None),
        ("no samples", X[:0], y[:0], None),
        ("3-D X", X[:, :, None], y, None),
    ]


N_BAD = 10


@pytest.mark.parametrize("case", range(N_BAD))
@pytest.mark.parametrize("warm_start", [False, True])
def test_fit_is_transactional_on_fitted_estimator(iris, case, warm_start):
    """If fit raises, a previously fitted estimator keeps exactly its state."""
    X, y = iris
    clf = SoftmaxClassifier(warm_start=warm_start).fit(X, y)
    before = {k: np.copy(getattr(clf, k)) for k in
              ("coef_", "intercept_", "classes_", "n_iter_", "n_features_in_")}
    proba = clf.predict_proba(X)
    pred = clf.predict(X)
    desc, Xb, yb, swb = _bad_fits(X, y)[case]
    with pytest.raises(ValueError):
        clf.fit(Xb, yb, sample_weight=swb)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(clf, k), v, err_msg=f"{desc}: {k}")
    np.testing.assert_array_equal(clf.predict_proba(X), proba, err_msg=desc)
    np.testing.assert_array_equal(clf.predict(X), pred, err_msg=desc)


def test_fit_is_transactional_different_n_features(iris, mc5):
    """A failing fit on data with a different shape must not alter n_features_in_
    (nor anything else): the old model still predicts on the old data."""
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    coef = clf.coef_.copy()
    X5, _ = mc5
    with pytest.raises(ValueError):
        clf.fit(X5[:150], np.zeros(150))  # single class -> invalid
    assert clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.coef_, coef)
    assert clf.predict(X).shape == (150,)


@pytest.mark.parametrize("case", range(N_BAD))
def test_failed_fit_leaves_fresh_estimator_unfitted(iris, case):
    """A fresh estimator whose first fit fails stays unfitted."""
    X, y = iris
    clf = SoftmaxClassifier()
    desc, Xb, yb, swb = _bad_fits(X, y)[case]
    with pytest.raises(ValueError):
        clf.fit(Xb, yb, sample_weight=swb)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize("warm_start", [False, True])
def test_failed_fit_unknown_class_weight_key_keeps_state(iris, warm_start):
    """class_weight with an unknown label while some classes are missing from the
    dict is rejected (as LogisticRegression does), a late failure (after the labels were encoded): the old model is untouched;
    a fresh estimator stays unfitted."""
    X, y = iris
    clf = SoftmaxClassifier(warm_start=warm_start).fit(X[y > 0], y[y > 0])
    state = {k: np.copy(getattr(clf, k)) for k in ("coef_", "intercept_", "classes_")}
    clf.set_params(class_weight={0: 1.0, 1: 2.0, 99: 3.0})
    with pytest.raises(ValueError):
        clf.fit(X, y)
    for k, v in state.items():
        np.testing.assert_array_equal(getattr(clf, k), v, err_msg=k)
    assert clf.coef_.shape == (1, 4)  # still the old binary model
    fresh = SoftmaxClassifier(class_weight={0: 1.0, 99: 3.0})
    with pytest.raises(ValueError):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)


def test_failed_fit_invalid_param_keeps_state(iris):
    """An invalid parameter set after fitting: fit raises, old model untouched."""
    X, y = iris
    clf = SoftmaxClassifier().fit(X, y)
    coef, inter = clf.coef_.copy(), clf.intercept_.copy()
    clf.set_params(C=-1.0)
    with pytest.raises(ValueError):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.coef_, coef)
    np.testing.assert_array_equal(clf.intercept_, inter)


def test_zero_sample_weight_equals_dropping_rows(mc5):
    """Samples with zero weight do not influence the model (sklearn semantics):
    same solution as LogisticRegression on the remaining rows."""
    X, y = mc5
    sw = np.ones(len(y))
    sw[::3] = 0.0
    keep = sw > 0
    clf = SoftmaxClassifier(tol=1e-10, max_iter=5000).fit(X, y, sample_weight=sw)
    ref = LogisticRegression(solver="newton-cg", tol=1e-12, max_iter=1000)
    ref.fit(X[keep], y[keep])
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert_allclose(clf.coef_, ref.coef_, rtol=1e-4, atol=1e-6 * np.abs(ref.coef_).max())


@pytest.mark.parametrize("c", [0.3, 7.5])
def test_constant_sample_weight_equals_scaling_C(mc5, c):
    """With f = (1/sum s) sum s_i CE_i + ||W||^2 / (2 C sum s), sample weights act
    as repetition counts: a constant weight c is the same as C -> c*C without
    weights (compared with unweighted sklearn at C=c)."""
    X, y = mc5
    clf = SoftmaxClassifier(C=1.0, tol=1e-10, max_iter=5000).fit(
        X, y, sample_weight=np.full(len(y), c))
    ref = LogisticRegression(C=c, solver="newton-cg", tol=1e-12, max_iter=1000)
    ref.fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert_allclose(clf.coef_, ref.coef_, rtol=1e-4, atol=1e-6 * np.abs(ref.coef_).max())


def test_input_arrays_not_modified(mc5):
    X, y = mc5
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    Xc, yc, swc = X.copy(), y.copy(), sw.copy()
    clf = SoftmaxClassifier(class_weight="balanced").fit(X, y, sample_weight=sw)
    clf.predict_proba(X)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(sw, swc)


def test_fortran_and_noncontiguous_X(mc5):
    """Fortran-ordered and strided X are accepted and give the same model as
    LogisticRegression on the same values."""
    X, y = mc5
    ref = LogisticRegression(tol=1e-10, max_iter=5000).fit(X, y)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    strided = wide[:, ::2]  # same values as X, non-contiguous view
    assert not strided.flags.c_contiguous and np.array_equal(strided, X)
    for Xv in (np.asfortranarray(X), strided, X[::-1][::-1]):
        clf = SoftmaxClassifier(tol=1e-10, max_iter=5000).fit(Xv, y)
        assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-5)
