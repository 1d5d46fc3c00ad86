"""SoftmaxClassifierCV against independent references: GridSearchCV over
SoftmaxClassifier, LogisticRegressionCV, and explicit loops over the folds."""

import threading
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks
from _reference import REFERENCE_SKLEARN, sklearn_at_least

from skcce import SoftmaxClassifier, SoftmaxClassifierCV, categorical_crossentropy
from skcce import _objective

TIGHT = {"tol": 1e-10, "max_iter": 10000}
CS = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def make_problem(n_classes, n_samples=240, n_features=6, seed=0):
    X, y = make_classification(n_samples=n_samples, n_features=n_features,
                               n_informative=4, n_redundant=0, n_classes=n_classes,
                               n_clusters_per_class=1, class_sep=0.6, flip_y=0.1,
                               random_state=seed)
    return X, y


def split_scores(search, n_folds):
    """GridSearchCV's per-fold test scores, shape (n_folds, n_Cs)."""
    return np.array([search.cv_results_[f"split{i}_test_score"] for i in range(n_folds)])


@pytest.mark.parametrize("n_classes", [2, 4])
def test_matches_grid_search_neg_log_loss(n_classes):
    X, y = make_problem(n_classes)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    ours = SoftmaxClassifierCV(CS, cv=cv, scoring="neg_log_loss", **TIGHT).fit(X, y)
    ref = GridSearchCV(SoftmaxClassifier(**TIGHT), {"C": CS}, cv=cv,
                       scoring="neg_log_loss").fit(X, y)
    assert ours.C_ == ref.best_params_["C"]
    np.testing.assert_allclose(ours.scores_, split_scores(ref, 4), rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0,
                               atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_accuracy_selects_same_C_as_grid_search():
    """Default scoring (accuracy) on a clear problem: a strong penalty hurts."""
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3,
                               n_redundant=0, n_classes=3, n_clusters_per_class=1,
                               class_sep=2.0, random_state=1)
    Cs = [1e-4, 1e-3, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ours = SoftmaxClassifierCV(Cs, cv=cv, **TIGHT).fit(X, y)
    ref = GridSearchCV(SoftmaxClassifier(**TIGHT), {"C": Cs}, cv=cv).fit(X, y)
    assert ours.C_ == ref.best_params_["C"] == 1.0
    assert ours.score(X, y) == ref.score(X, y)


@pytest.mark.skipif(not sklearn_at_least(REFERENCE_SKLEARN),
                    reason="written for LogisticRegressionCV's attributes of scikit-learn >= 1.9")
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_parity_with_logistic_regression_cv(class_weight):
    """Same C_, scores and model; "balanced" weights come from all the data."""
    X, y = make_problem(3, n_samples=300, seed=2)
    keep = (y != 2) | (np.arange(y.shape[0]) % 3 == 0)  # unbalanced classes
    X, y = X[keep], y[keep]
    cv = StratifiedKFold(5, shuffle=True, random_state=3)
    ours = SoftmaxClassifierCV(CS, cv=cv, scoring="neg_log_loss", class_weight=class_weight,
                               **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegressionCV(Cs=CS, cv=cv, scoring="neg_log_loss", l1_ratios=(0.0,),
                                   class_weight=class_weight, use_legacy_attributes=False,
                                   **TIGHT).fit(X, y)
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.scores_, ref.scores_[:, 0, :], rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0,
                               atol=1e-5)


@pytest.mark.skipif(not sklearn_at_least(REFERENCE_SKLEARN),
                    reason="written for LogisticRegressionCV's attributes of scikit-learn >= 1.9")
def test_refit_false_averages_like_logistic_regression_cv():
    X, y = make_problem(3, n_samples=300, seed=4)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ours = SoftmaxClassifierCV(CS, cv=cv, scoring="neg_log_loss", refit=False,
                               **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegressionCV(Cs=CS, cv=cv, scoring="neg_log_loss", l1_ratios=(0.0,),
                                   refit=False, use_legacy_attributes=False,
                                   **TIGHT).fit(X, y)
    assert ours.C_ == pytest.approx(ref.C_)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-4)
    assert not hasattr(ours, "loss_curve_")


def fold_loop(X, y, Cs, cv, fit_weight=None, score_weight=None, soft=False):
    """Reference scores: an independent SoftmaxClassifier per (fold, C)."""
    scores = np.empty((cv.get_n_splits(), len(Cs)))
    for i, (train, test) in enumerate(cv.split(X, y)):
        for j, C in enumerate(Cs):
            model = SoftmaxClassifier(C=C, **TIGHT).fit(
                X[train], y[train],
                sample_weight=None if fit_weight is None else fit_weight[train])
            proba = model.predict_proba(X[test])
            weights = None if score_weight is None else score_weight[test]
            if soft:
                scores[i, j] = -categorical_crossentropy(y[test], proba,
                                                         sample_weight=weights)
            else:
                scores[i, j] = -log_loss(y[test], proba, sample_weight=weights)
    return scores


def test_sample_weight_routing():
    """Fit weights go to the training folds, scoring weights to the test folds."""
    X, y = make_problem(3, n_samples=210, seed=5)
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=y.shape[0])
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    Cs = [0.01, 1.0, 100.0]
    ours = SoftmaxClassifierCV(Cs, cv=cv, scoring="neg_log_loss", **TIGHT).fit(
        X, y, sample_weight=weights)
    expected = fold_loop(X, y, Cs, cv, fit_weight=weights, score_weight=weights)
    np.testing.assert_allclose(ours.scores_, expected, rtol=0, atol=1e-7)
    assert ours.C_ == Cs[int(np.argmax(expected.mean(axis=0)))]
    final = SoftmaxClassifier(C=ours.C_, **TIGHT).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(ours.predict_proba(X), final.predict_proba(X), rtol=0,
                               atol=1e-6)


def test_scorer_without_sample_weight_gets_none():
    X, y = make_problem(3, n_samples=150)
    weights = np.linspace(0.5, 2.0, y.shape[0])

    def unweighted_accuracy(estimator, X_test, y_test):
        return float(np.mean(estimator.predict(X_test) == y_test))

    cv = StratifiedKFold(3)
    ours = SoftmaxClassifierCV([0.1, 10.0], cv=cv, scoring=unweighted_accuracy, **TIGHT)
    with pytest.warns(UserWarning, match="does not support sample_weight"):
        ours.fit(X, y, sample_weight=weights)
    ref = GridSearchCV(SoftmaxClassifier(**TIGHT), {"C": [0.1, 10.0]}, cv=cv,
                       scoring=unweighted_accuracy)
    with warnings.catch_warnings():
        # (scikit-learn >= 1.9 warns the same way)
        warnings.simplefilter("ignore", UserWarning)
        ref.fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(ours.scores_, split_scores(ref, 3), atol=1e-12)


def soft_problem(seed=0):
    X, y = make_problem(3, n_samples=180, seed=seed)
    rng = np.random.default_rng(seed)
    Y = 0.7 * np.eye(3)[y] + 0.3 * rng.dirichlet(np.ones(3), size=y.shape[0])
    return X, Y


def test_soft_targets_default_scoring_and_kfold():
    """Soft targets: unstratified KFold and the negative crossentropy by default."""
    X, Y = soft_problem()
    Cs = [0.01, 1.0, 100.0]
    ours = SoftmaxClassifierCV(Cs, cv=4, **TIGHT).fit(X, Y)
    expected = fold_loop(X, Y, Cs, KFold(4), soft=True)
    np.testing.assert_allclose(ours.scores_, expected, rtol=0, atol=1e-7)
    assert ours.C_ == Cs[int(np.argmax(expected.mean(axis=0)))]
    np.testing.assert_array_equal(ours.classes_, np.arange(3))
    final = SoftmaxClassifier(C=ours.C_, **TIGHT).fit(X, Y)
    np.testing.assert_allclose(ours.predict_proba(X), final.predict_proba(X), atol=1e-6)
    assert ours.score(X, Y) == pytest.approx(
        -categorical_crossentropy(Y, ours.predict_proba(X)))


def test_groups_reach_the_splitter():
    X, y = make_problem(3, n_samples=180)
    groups = np.arange(y.shape[0]) % 6
    cv = GroupKFold(3)
    ours = SoftmaxClassifierCV(CS, cv=cv, scoring="neg_log_loss", **TIGHT).fit(
        X, y, groups=groups)
    ref = GridSearchCV(SoftmaxClassifier(**TIGHT), {"C": CS}, cv=cv,
                       scoring="neg_log_loss").fit(X, y, groups=groups)
    np.testing.assert_allclose(ours.scores_, split_scores(ref, 3), rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bitwise_identical_for_any_n_jobs(dtype):
    X, y = make_problem(4, n_samples=2000, n_features=20, seed=7)
    X = X.astype(dtype)
    fits = [SoftmaxClassifierCV(Cs=5, cv=5, scoring="neg_log_loss", n_jobs=n_jobs)
            .fit(X, y) for n_jobs in (1, 2, 3)]
    for other in fits[1:]:
        for name in ("coefs_paths_", "scores_", "n_iter_", "coef_", "intercept_"):
            np.testing.assert_array_equal(getattr(other, name), getattr(fits[0], name))
        assert other.C_ == fits[0].C_
    assert fits[0].coef_.dtype == dtype


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_threads_in_use_never_exceed_n_jobs(monkeypatch, n_jobs):
    """Concurrent folds share the OpenMP threads: their sum stays <= n_jobs."""
    lock = threading.Lock()
    state = {"in_use": 0, "peak": 0, "evaluations": 0}
    evaluate = _objective.CrossEntropyObjective.data_loss_gradient

    def counting_loss_gradient(self, params):
        n_threads = self.n_threads
        with lock:
            state["in_use"] += n_threads
            state["peak"] = max(state["peak"], state["in_use"])
            state["evaluations"] += 1
        try:
            return evaluate(self, params)
        finally:
            with lock:
                state["in_use"] -= n_threads

    monkeypatch.setattr(_objective.CrossEntropyObjective, "data_loss_gradient",
                        counting_loss_gradient)
    X, y = make_problem(3, n_samples=3000, n_features=10)
    SoftmaxClassifierCV(Cs=4, cv=5, n_jobs=n_jobs).fit(X, y)
    assert state["evaluations"] > 0
    assert 1 <= state["peak"] <= n_jobs


@pytest.mark.parametrize("n_classes, fit_intercept", [(2, True), (3, True), (3, False)])
def test_attribute_shapes(n_classes, fit_intercept):
    X, y = make_problem(n_classes, n_samples=120)
    clf = SoftmaxClassifierCV(Cs=4, cv=3, fit_intercept=fit_intercept).fit(X, y)
    rows = 1 if n_classes == 2 else n_classes
    assert isinstance(clf.C_, float) and clf.C_ in clf.Cs_
    np.testing.assert_array_equal(clf.Cs_, np.logspace(-4, 4, 4))
    assert clf.scores_.shape == (3, 4)
    assert clf.n_iter_.shape == (3, 4)
    assert clf.coefs_paths_.shape == (3, 4, rows, X.shape[1] + fit_intercept)
    assert clf.coef_.shape == (rows, X.shape[1])
    assert clf.intercept_.shape == (rows,)
    assert clf.predict_proba(X).shape == (X.shape[0], n_classes)
    assert len(clf.loss_curve_) >= 1


def test_path_solutions_are_the_fold_optima():
    """Every coefs_paths_ entry is SoftmaxClassifier's model on that training fold."""
    X, y = make_problem(3, n_samples=150)
    cv = StratifiedKFold(3)
    Cs = [10.0, 0.1, 1.0]  # unsorted on purpose: results follow this order
    clf = SoftmaxClassifierCV(Cs, cv=cv, **TIGHT).fit(X, y)
    for i, (train, _) in enumerate(cv.split(X, y)):
        for j, C in enumerate(Cs):
            model = SoftmaxClassifier(C=C, **TIGHT).fit(X[train], y[train])
            np.testing.assert_allclose(clf.coefs_paths_[i, j, :, :-1], model.coef_,
                                       atol=1e-6)
            np.testing.assert_allclose(clf.coefs_paths_[i, j, :, -1], model.intercept_,
                                       atol=1e-6)


def test_verbose_prints_one_line_per_path_fit(capsys):
    X, y = make_problem(3, n_samples=90)
    SoftmaxClassifierCV(Cs=2, cv=3, verbose=1).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("[SoftmaxClassifierCV]")]
    assert len(lines) == 3 * 2


def test_convergence_warning():
    X, y = make_problem(3, n_samples=150)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        SoftmaxClassifierCV(Cs=3, cv=3, max_iter=1).fit(X, y)


@pytest.mark.parametrize("Cs", [[], [1.0, -1.0], [[1.0]], [np.nan]])
def test_invalid_Cs(Cs):
    X, y = make_problem(3, n_samples=60)
    with pytest.raises(ValueError, match="Cs must be"):
        SoftmaxClassifierCV(Cs=Cs).fit(X, y)


def test_failed_fit_leaves_estimator_unchanged():
    X, y = make_problem(3, n_samples=150)
    clf = SoftmaxClassifierCV(Cs=3, cv=3).fit(X, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v)
              for k, v in clf.__dict__.items()}

    def failing_scorer(estimator, X_test, y_test):
        raise RuntimeError("scorer failed")

    clf.set_params(scoring=failing_scorer, n_jobs=2)
    with pytest.raises(RuntimeError, match="scorer failed"):
        clf.fit(X[:, :4], y)
    clf.set_params(scoring=None, n_jobs=None)
    assert clf.__dict__.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(clf.__dict__[key], value)
        else:
            assert clf.__dict__[key] == value
    assert clf.n_features_in_ == X.shape[1]


def test_refit_false_after_refit_drops_refit_attributes():
    X, y = make_problem(3, n_samples=150)
    clf = SoftmaxClassifierCV(Cs=3, cv=3).fit(X, y)
    assert hasattr(clf, "loss_curve_")
    clf.set_params(refit=False).fit(X, y)
    assert not hasattr(clf, "loss_curve_")
    assert not hasattr(clf, "final_gradient_norm_")


def _expected_failed_checks(estimator):
    """Repeating a sample changes the cross-validation folds (weighting it does
    not), so the C selected, and the model, can differ between the two fits;
    the equivalence then holds only to the optimizer's stopping accuracy, not
    to the check's rtol=1e-7. (SoftmaxClassifier itself passes these checks.)"""
    reason = "sample_weight is not equivalent to repeating samples: the CV folds differ."
    expected = {
        "check_sample_weight_equivalence_on_dense_data": reason,
        "check_sample_weight_equivalence_on_sparse_data": reason,
    }
    if estimator.cv is None:
        # Its data has fewer samples per class than the default 5 folds
        # (the estimator with cv=3 passes it).
        expected["check_sparsify_coefficients"] = "fewer samples per class than folds"
    return expected


@parametrize_with_checks([
    SoftmaxClassifierCV(Cs=3),
    SoftmaxClassifierCV(Cs=[0.1, 10.0], cv=3, scoring="neg_log_loss", n_jobs=1),
    SoftmaxClassifierCV(Cs=3, refit=False, class_weight="balanced"),
], expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    """Every scikit-learn estimator check passes, except the sample-weight
    equivalence checks, which cross-validation cannot satisfy exactly."""
    check(estimator)
