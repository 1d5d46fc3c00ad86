"""scikit-learn callbacks (sklearn.callback, scikit-learn >= 1.9) on SoftmaxClassifier."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss

from skcce import SoftmaxClassifier

callback = pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


def _scores(monitor, task_name):
    return [row for row in monitor.get_logs().data if row["task_name"] == task_name]


def test_scoring_monitor_one_subtask_per_iteration(iris):
    """One 'lbfgs-iter' row per L-BFGS iteration, and the fit row scores the final model."""
    X, y = iris
    monitor = callback.ScoringMonitor(scoring="neg_log_loss")
    clf = SoftmaxClassifier(max_iter=200).set_callbacks(monitor).fit(X, y)
    iterations = _scores(monitor, "lbfgs-iter")
    assert len(iterations) == clf.n_iter_[0]
    (fit_row,) = _scores(monitor, "fit")
    assert_allclose(fit_row["neg_log_loss"], -log_loss(y, clf.predict_proba(X)), rtol=1e-12)


def test_scoring_monitor_sees_the_iterates(iris):
    """Without penalty and weights the objective is the training log-loss, so the
    intermediate models the callbacks receive, scored by scikit-learn's log_loss,
    must reproduce loss_curve_ (computed by the kernel)."""
    X, y = iris
    monitor = callback.ScoringMonitor(scoring="neg_log_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxClassifier(C=np.inf, max_iter=15).set_callbacks(monitor).fit(X, y)
    scores = [-row["neg_log_loss"] for row in _scores(monitor, "lbfgs-iter")]
    assert_allclose(scores, clf.loss_curve_, rtol=1e-10)


def test_progress_bar_runs(iris, capsys):
    pytest.importorskip("rich")
    X, y = iris
    clf = SoftmaxClassifier(max_iter=200).set_callbacks(callback.ProgressBar()).fit(X, y)
    assert clf.n_iter_[0] > 0
    assert not hasattr(clf, "_callback_fit_ctx")  # torn down after fit


def test_failed_fit_with_callbacks_is_rolled_back_and_torn_down(iris):
    X, y = iris
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = SoftmaxClassifier(max_iter=200).set_callbacks(monitor).fit(X, y)
    coef = clf.coef_.copy()
    with pytest.raises(ValueError):
        clf.fit(X, np.zeros_like(y))  # a single class
    assert not hasattr(clf, "_callback_fit_ctx")
    assert not hasattr(clf, "_skl_callbacks_to_teardown")
    assert np.array_equal(clf.coef_, coef)


class _InterruptAtIteration:
    """A FitCallback that raises inside the L-BFGS loop, at a given iteration."""

    def __init__(self, at):
        self.at, self.seen, self.torn_down = at, 0, False

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        self.torn_down = True

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name == "lbfgs-iter" and fitted_estimator is not None:
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt


def test_interrupt_inside_the_optimizer_leaves_the_model_unchanged(iris):
    """An interruption mid-fit restores the previous model and tears callbacks down."""
    X, y = iris
    clf = SoftmaxClassifier(max_iter=200).fit(X, y)
    before = {k: np.copy(v) for k, v in vars(clf).items() if k.endswith("_")}
    proba_before = clf.predict_proba(X)
    interrupt = _InterruptAtIteration(at=3)
    clf.set_callbacks(interrupt)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X[:, ::-1], y)
    assert interrupt.seen == 3 and interrupt.torn_down
    assert not hasattr(clf, "_callback_fit_ctx")
    after = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key]), key
    assert np.array_equal(clf.predict_proba(X), proba_before)
