"""Code written for LogisticRegression runs on SoftmaxClassifier, with the same meaning.

Each test runs the same code on LogisticRegression (the reference) and on the
skcce estimator: the arguments copied code passes, sparsify/densify, warm
starts, the HTML repr, and SoftmaxClassifierCV's callbacks and metadata routing.
"""

import warnings
from contextlib import nullcontext

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context, get_config
from sklearn.datasets import load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss, make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.utils import estimator_html_repr
from sklearn.utils._param_validation import InvalidParameterError

from _reference import elastic_net_objective
from skcce import SoftmaxClassifier, SoftmaxClassifierCV

# LogisticRegression deprecated `penalty` in scikit-learn 1.8 (FutureWarning).
LR_PENALTY_DEPRECATED = LogisticRegression().penalty == "deprecated"
# scikit-learn >= 1.7's HTML repr has parameter tooltips.
HTML_TOOLTIPS = "param-doc-description" in estimator_html_repr(LogisticRegression())


def _penalty_warning(Estimator):
    """The FutureWarning an explicit penalty gives (none from older LogisticRegression)."""
    if Estimator is LogisticRegression and not LR_PENALTY_DEPRECATED:
        return nullcontext()
    return pytest.warns(FutureWarning, match="'penalty' .*deprecated in .*1.8")


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=5,
                               n_classes=3, random_state=0)
    return X, y


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# solver, random_state, penalty
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_solver_lbfgs_and_random_state_leave_the_model_unchanged(Estimator, data):
    """solver='lbfgs' and random_state are accepted and change nothing (lbfgs is
    deterministic), for LogisticRegression and skcce alike."""
    X, y = data
    default = Estimator(max_iter=500).fit(X, y)
    copied = Estimator(solver="lbfgs", random_state=0, max_iter=500).fit(X, y)
    assert_array_equal(copied.coef_, default.coef_)
    assert_array_equal(copied.intercept_, default.intercept_)


@pytest.mark.parametrize("solver", ["liblinear", "newton-cg", "newton-cholesky", "sag", "saga"])
def test_other_solvers_raise_a_clear_error(solver, data):
    X, y = data
    LogisticRegression(solver=solver, max_iter=5).get_params()  # valid there
    with pytest.raises(ValueError, match="has one solver, 'lbfgs'"):
        SoftmaxClassifier(solver=solver).fit(X, y)
    with pytest.raises(ValueError, match="has one solver, 'lbfgs'"):
        SoftmaxClassifierCV(Cs=2, solver=solver).fit(X, y)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_unknown_solver_is_a_parameter_error(Estimator, data):
    X, y = data
    with pytest.raises(InvalidParameterError, match="'solver' parameter"):
        Estimator(solver="adam").fit(X, y)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_penalty_l2_warns_as_deprecated_and_is_the_default_model(Estimator, data):
    X, y = data
    default = Estimator(max_iter=500).fit(X, y)
    with _penalty_warning(Estimator):
        l2 = Estimator(penalty="l2", max_iter=500).fit(X, y)
    assert_array_equal(l2.coef_, default.coef_)


def test_penalty_none_means_no_penalty_as_logistic_regression(data):
    """penalty=None is C=inf (bitwise, in skcce), and the unpenalized model
    matches LogisticRegression(penalty=None)'s."""
    X, y = data
    with _penalty_warning(LogisticRegression):
        lr = LogisticRegression(penalty=None, max_iter=2000, tol=1e-10).fit(X, y)
    with pytest.warns(FutureWarning):
        clf = SoftmaxClassifier(penalty=None, max_iter=2000, tol=1e-10).fit(X, y)
    unpenalized = SoftmaxClassifier(C=np.inf, max_iter=2000, tol=1e-10).fit(X, y)
    assert_array_equal(clf.coef_, unpenalized.coef_)
    assert_allclose(clf.predict_proba(X), lr.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_penalty_none_with_C_warns_that_C_is_ignored(Estimator, data):
    X, y = data
    with _penalty_warning(Estimator), pytest.warns(UserWarning, match="ignore the C"):
        model = Estimator(penalty=None, C=0.01, max_iter=2000).fit(X, y)
    # C is ignored: far from the strongly penalized model.
    assert np.abs(model.coef_).max() > 1.0


@pytest.mark.parametrize("penalty, l1_ratio", [("l1", 1.0), ("elasticnet", 0.5)])
def test_l1_penalties_fit_the_model_saga_fits(penalty, l1_ratio, data):
    """penalty="l1" means l1_ratio=1 and "elasticnet" the given l1_ratio, as in
    LogisticRegression (fitted there by saga): same objective at the optimum."""
    X, y = data
    with _penalty_warning(LogisticRegression), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(penalty=penalty, l1_ratio=l1_ratio, solver="saga",
                                 tol=1e-10, max_iter=100_000).fit(X, y)
    with pytest.warns(FutureWarning, match="'penalty'"):
        model = SoftmaxClassifier(penalty=penalty, l1_ratio=l1_ratio if penalty ==
                                  "elasticnet" else 0.0, tol=1e-10, max_iter=10_000).fit(X, y)
    n = X.shape[0]
    l1, l2 = l1_ratio / n, (1 - l1_ratio) / n

    def objective(est):
        coef = np.hstack([est.coef_, est.intercept_[:, None]])
        return elastic_net_objective(coef, X, y, l1, l2)

    assert abs(objective(model) - objective(ref)) <= 1e-8 * objective(ref)
    assert np.any(model.coef_ == 0) == np.any(ref.coef_ == 0)


def test_cv_accepts_the_logistic_regression_cv_arguments(data):
    X, y = data
    default = SoftmaxClassifierCV(Cs=3, max_iter=500).fit(X, y)
    with pytest.warns(FutureWarning):
        copied = SoftmaxClassifierCV(Cs=3, max_iter=500, penalty="l2", solver="lbfgs",
                                     random_state=0).fit(X, y)
    assert_array_equal(copied.coef_, default.coef_)
    # As LogisticRegressionCV, no penalty=None: C is what is chosen.
    for Estimator in (LogisticRegressionCV, SoftmaxClassifierCV):
        with pytest.raises(InvalidParameterError, match="'penalty' parameter"):
            Estimator(penalty=None).fit(X, y)


def test_grid_over_penalty_runs_as_for_logistic_regression():
    """A grid over penalty (copied code) selects the same candidate for both."""
    X, y = load_iris(return_X_y=True)
    grid = {"penalty": ["l2", None], "C": [0.01, 1.0]}
    results = {}
    for Estimator in (LogisticRegression, SoftmaxClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = GridSearchCV(Estimator(max_iter=1000), grid, cv=3).fit(X, y)
        results[Estimator] = search
    lr, sk = results[LogisticRegression], results[SoftmaxClassifier]
    assert sk.best_params_ == lr.best_params_
    assert_allclose(sk.cv_results_["mean_test_score"], lr.cv_results_["mean_test_score"],
                    atol=0.02)


# ---------------------------------------------------------------------------
# sparsify / densify
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_sparsify_keeps_the_predictions(Estimator, data):
    X, y = data
    model = Estimator(max_iter=500).fit(X, y)
    coef, intercept = model.coef_.copy(), model.intercept_.copy()
    expected = _softmax(X @ coef.T + intercept)  # NumPy reference
    assert model.sparsify() is model
    assert sp.issparse(model.coef_) and model.coef_.format == "csr"
    for X_in in (X, sp.csr_matrix(X)):
        assert_allclose(model.predict_proba(X_in), expected, rtol=1e-10)
        assert_allclose(model.decision_function(X_in), X @ coef.T + intercept, rtol=1e-10)
        assert_array_equal(model.predict(X_in), model.classes_[expected.argmax(axis=1)])
    assert model.densify() is model
    assert isinstance(model.coef_, np.ndarray)
    assert_array_equal(model.coef_, coef)


def test_sparsify_type_follows_logistic_regression(data):
    X, y = data
    lr = LogisticRegression(max_iter=500).fit(X, y).sparsify()
    clf = SoftmaxClassifier(max_iter=500).fit(X, y).sparsify()
    assert type(clf.coef_) is type(lr.coef_)
    if "sparse_interface" not in get_config():
        return  # scikit-learn < 1.9 has no sparse_interface setting
    with config_context(sparse_interface="sparray"):
        lr = LogisticRegression(max_iter=500).fit(X, y).sparsify()
        clf = SoftmaxClassifier(max_iter=500).fit(X, y).sparsify()
    assert type(clf.coef_) is type(lr.coef_)


def test_sparsify_binary_and_cv(data):
    X, y = data
    binary = SoftmaxClassifier().fit(X, y == 0)
    decision = X @ binary.coef_[0] + binary.intercept_[0]
    binary.sparsify()
    assert_allclose(binary.decision_function(X), decision, rtol=1e-10)
    cv = SoftmaxClassifierCV(Cs=2, cv=3).fit(X, y)
    proba = _softmax(X @ cv.coef_.T + cv.intercept_)
    assert_allclose(cv.sparsify().predict_proba(X), proba, rtol=1e-10)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_sparsify_before_fit_raises(Estimator):
    with pytest.raises(NotFittedError, match="must be fitted before sparsifying"):
        Estimator().sparsify()
    with pytest.raises(NotFittedError, match="must be fitted before densifying"):
        Estimator().densify()


def test_warm_start_from_a_sparsified_model(data):
    """A sparse coef_ is a valid start: the refit is that of the dense one."""
    X, y = data
    dense = SoftmaxClassifier(warm_start=True, max_iter=3).fit(X, y)
    sparse = SoftmaxClassifier(warm_start=True, max_iter=3).fit(X, y).sparsify()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged after 3 iterations
        dense.fit(X, y)
        sparse.fit(X, y)
    assert_array_equal(sparse.coef_, dense.coef_)


# ---------------------------------------------------------------------------
# Warm start that cannot reuse the previous fit
# ---------------------------------------------------------------------------

def test_warm_start_with_other_features_warns_and_starts_from_zeros(data):
    """LogisticRegression raises a ValueError; skcce warns and fits from zeros."""
    X, y = data
    lr = LogisticRegression(warm_start=True, max_iter=500).fit(X, y)
    with pytest.raises(ValueError, match="Initialization coef"):
        lr.fit(X[:, :5], y)
    clf = SoftmaxClassifier(warm_start=True, max_iter=500).fit(X, y)
    with pytest.warns(UserWarning, match="number of features changed .*8.* 5"):
        clf.fit(X[:, :5], y)
    cold = SoftmaxClassifier(max_iter=500).fit(X[:, :5], y)
    assert_array_equal(clf.coef_, cold.coef_)


def test_warm_start_with_other_classes_warns_and_starts_from_zeros(data):
    """LogisticRegression silently reuses a model of other labels; skcce says so."""
    X, y = data
    clf = SoftmaxClassifier(warm_start=True, max_iter=500).fit(X, y)
    with pytest.warns(UserWarning, match="classes changed"):
        clf.fit(X, y + 10)
    cold = SoftmaxClassifier(max_iter=500).fit(X, y + 10)
    assert_array_equal(clf.coef_, cold.coef_)
    with pytest.warns(UserWarning, match="classes changed"):
        clf.fit(X[y < 2], y[y < 2])


def test_compatible_warm_start_does_not_warn(data):
    X, y = data
    clf = SoftmaxClassifier(warm_start=True, max_iter=500).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
    assert clf.n_iter_[0] <= 2  # started at the solution


# ---------------------------------------------------------------------------
# HTML repr
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator, link", [
    (LogisticRegression, "sklearn.linear_model.LogisticRegression.html"),
    (SoftmaxClassifier, "generated/skcce.SoftmaxClassifier.html"),
    (SoftmaxClassifierCV, "generated/skcce.SoftmaxClassifierCV.html"),
])
def test_html_repr_has_documentation_link_and_parameter_tooltips(Estimator, link):
    html = estimator_html_repr(Estimator(C=2.0) if Estimator is not SoftmaxClassifierCV
                               else Estimator(Cs=3))
    assert link in html
    if not HTML_TOOLTIPS:
        return  # this scikit-learn's repr shows no parameter table
    # A tooltip per documented parameter, with its docstring text.
    assert "param-doc-description" in html
    assert html.count('class="param-doc-link"') == len(Estimator().get_params())
    assert "fit_intercept: bool, default=True" in html


# ---------------------------------------------------------------------------
# SoftmaxClassifierCV: callbacks
# ---------------------------------------------------------------------------

def test_cv_callbacks_see_every_path_fit_and_the_refit(data):
    callback = pytest.importorskip("sklearn.callback",
                                   reason="scikit-learn < 1.9 has no callbacks")
    X, y = data
    monitor = callback.ScoringMonitor(scoring="neg_log_loss")
    Cs = [0.01, 1.0, 100.0]
    cv = SoftmaxClassifierCV(Cs=Cs, cv=3, max_iter=300).set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    path_rows = [r for r in rows if r["task_name"] == "path-C"]
    assert len(path_rows) == 3 * len(Cs)
    # Each path fit is scored on its training fold with the fold model at that C
    # (coefs_paths_, scored here by NumPy and scikit-learn's log_loss).
    for fold, (train, _) in enumerate(StratifiedKFold(3).split(X, y)):
        fold_rows = sorted((r for r in path_rows if r["task_id_path"][1] == fold),
                           key=lambda r: r["task_id_path"][2])
        assert len(fold_rows) == len(Cs)
        for j, row in enumerate(fold_rows):  # path order: increasing C
            coef = cv.coefs_paths_[fold, j]
            proba = _softmax(X[train] @ coef[:, :-1].T + coef[:, -1])
            assert_allclose(row["neg_log_loss"], -log_loss(y[train], proba), rtol=1e-10)
    iterations = [r for r in rows if r["task_name"] == "lbfgs-iter"]
    assert len(iterations) == len(cv.loss_curve_)
    (fit_row,) = [r for r in rows if r["task_name"] == "fit"]
    assert_allclose(fit_row["neg_log_loss"], -log_loss(y, cv.predict_proba(X)), rtol=1e-12)
    assert not hasattr(cv, "_callback_fit_ctx")


def test_cv_callbacks_inside_a_grid_search(data):
    """Callbacks set on the estimator run in each of GridSearchCV's fits, one
    'fit' task per fit, as LogisticRegression's."""
    callback = pytest.importorskip("sklearn.callback",
                                   reason="scikit-learn < 1.9 has no callbacks")
    X, y = data
    counts = {}
    for estimator in (LogisticRegression(max_iter=300), SoftmaxClassifierCV(Cs=2, cv=2)):
        monitor = callback.ScoringMonitor(scoring="accuracy")
        GridSearchCV(estimator.set_callbacks(monitor), {"fit_intercept": [True, False]},
                     cv=2).fit(X, y)
        rows = [r for log in monitor.get_logs(select="all") for r in log.data]
        counts[type(estimator)] = rows
    fits = {key: sum(r["task_name"] == "fit" for r in rows) for key, rows in counts.items()}
    assert fits[SoftmaxClassifierCV] == fits[LogisticRegression] == 2 * 2 + 1
    cv_rows = counts[SoftmaxClassifierCV]
    assert sum(r["task_name"] == "path-C" for r in cv_rows) == 5 * 2 * 2  # fits x folds x Cs


# ---------------------------------------------------------------------------
# SoftmaxClassifierCV: metadata routing
# ---------------------------------------------------------------------------

def test_cv_routes_groups_and_score_weights_as_grid_search_does(data):
    """With routing enabled, the splitter gets groups and the scorer the weights it
    requests: every fold score equals GridSearchCV's over SoftmaxClassifier (its
    routing is scikit-learn's), and LogisticRegressionCV accepts the same call."""
    X, y = data
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, size=y.shape[0])
    groups = np.arange(y.shape[0]) % 6
    Cs = [0.1, 10.0]
    with config_context(enable_metadata_routing=True):
        scorer = make_scorer(log_loss, greater_is_better=False,
                             response_method="predict_proba").set_score_request(
                                 sample_weight=True)
        cv = SoftmaxClassifierCV(Cs=Cs, cv=GroupKFold(3), scoring=scorer, tol=1e-10,
                                 max_iter=1000).fit(X, y, sample_weight=weights, groups=groups)
        search = GridSearchCV(
            SoftmaxClassifier(tol=1e-10, max_iter=1000).set_fit_request(sample_weight=True),
            {"C": Cs}, cv=GroupKFold(3), scoring=scorer,
        ).fit(X, y, sample_weight=weights, groups=groups)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            LogisticRegressionCV(Cs=Cs, cv=GroupKFold(3), scoring=scorer,
                                 max_iter=1000).fit(X, y, sample_weight=weights, groups=groups)
        score = cv.score(X, y, sample_weight=weights)
    for k in range(3):
        assert_allclose(cv.scores_[k], search.cv_results_[f"split{k}_test_score"], rtol=1e-6)
    assert_allclose(score, -log_loss(y, cv.predict_proba(X), sample_weight=weights),
                    rtol=1e-12)


def test_cv_scorer_without_request_gets_no_weights(data):
    """A scorer that does not request sample_weight is called without it."""
    X, y = data
    weights = np.where(np.arange(y.shape[0]) % 2 == 0, 10.0, 0.1)
    with config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight=False)
        cv = SoftmaxClassifierCV(Cs=[1.0], cv=3, scoring=scorer).fit(X, y,
                                                                      sample_weight=weights)
    for k, (train, test) in enumerate(StratifiedKFold(3).split(X, y)):
        model = SoftmaxClassifier(C=1.0).fit(X[train], y[train], sample_weight=weights[train])
        assert_allclose(cv.scores_[k, 0], accuracy_score(y[test], model.predict(X[test])),
                        atol=1 / len(test))


@pytest.mark.parametrize("Estimator", [LogisticRegressionCV, SoftmaxClassifierCV])
def test_cv_extra_metadata_without_routing_raises(Estimator, data):
    X, y = data
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            Estimator(Cs=2).fit(X, y, extra=np.ones(y.shape[0]))


def test_cv_routing_of_an_unrequested_metadata_raises(data):
    """Metadata no consumer requests is an error, as in LogisticRegressionCV."""
    X, y = data
    with config_context(enable_metadata_routing=True):
        for Estimator in (LogisticRegressionCV, SoftmaxClassifierCV):
            with pytest.raises((TypeError, ValueError)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    Estimator(Cs=2).fit(X, y, extra=np.ones(y.shape[0]))
