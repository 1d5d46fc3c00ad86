"""scikit-learn API compliance: the full estimator check suite, and use inside
Pipeline + GridSearchCV with parallel (joblib, process-based) cross-validation."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcce import SoftmaxClassifier


@parametrize_with_checks(
    [
        SoftmaxClassifier(),
        # fit_intercept=False is not listed: check_class_weight_classifiers needs a
        # boundary away from the origin (LogisticRegression(fit_intercept=False)
        # fails it the same way); it is covered by the parity tests instead.
        SoftmaxClassifier(C=np.inf, max_iter=1000),
        SoftmaxClassifier(C=10.0, tol=1e-6),
        SoftmaxClassifier(class_weight="balanced"),
        SoftmaxClassifier(n_jobs=1),
        # L1 and elastic net (OWL-QN). Weakly penalized L1 fits (C >= 1) are
        # not listed (nor C=0.3): check_sample_weight_equivalence's data (15 distinct
        # samples, 30 uncentered features) make them so ill-conditioned that
        # the weighted and the repeated fits stop (relative decrease below 64
        # epsilons) with the same objective to 1e-12 but predictions 1e-6
        # apart, where the check's rtol is 1e-7.
        SoftmaxClassifier(l1_ratio=0.5, C=0.1),
        SoftmaxClassifier(l1_ratio=1.0, C=0.1),
        SoftmaxClassifier(l1_ratio=0.9, C=0.2, tol=1e-10, max_iter=2000),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    """Every scikit-learn estimator check passes (no expected failures)."""
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def test_gridsearch_pipeline_digits(digits):
    """Pipeline(StandardScaler, SoftmaxClassifier) in GridSearchCV(n_jobs=2, cv=3)
    works (estimator is picklable / clonable across worker processes) and reaches
    a reasonable score, comparable to the same search with LogisticRegression."""
    X, y = digits
    pipe = make_pipeline(StandardScaler(), SoftmaxClassifier(max_iter=300))
    gs = GridSearchCV(pipe, param_grid={"softmaxclassifier__C": [0.1, 1, 10]},
                      n_jobs=2, cv=3)
    gs.fit(X, y)
    assert gs.best_params_["softmaxclassifier__C"] in (0.1, 1, 10)
    assert gs.best_score_ > 0.9
    assert gs.score(X, y) > 0.95  # refit on all data
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    # independent reference: the same search with LogisticRegression
    ref = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
        param_grid={"logisticregression__C": [0.1, 1, 10]}, n_jobs=2, cv=3,
    ).fit(X, y)
    assert abs(gs.best_score_ - ref.best_score_) < 0.02


def test_cross_val_score_with_threads(digits):
    """cross_val_score with joblib processes *and* skcce threads (n_jobs=2 each)."""
    X, y = digits
    X = X / 16.0
    scores = cross_val_score(SoftmaxClassifier(C=1.0, n_jobs=2, max_iter=300), X, y,
                             cv=3, n_jobs=2)
    ref = cross_val_score(LogisticRegression(C=1.0, max_iter=300), X, y, cv=3)
    assert scores.shape == (3,)
    np.testing.assert_allclose(scores, ref, atol=0.02)
