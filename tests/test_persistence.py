"""Persistence: pickle and joblib round trips of SoftmaxClassifier.

Invariants: a loaded model predicts bitwise like the original; it is fully
refittable (refitting it gives bitwise the model of a fresh estimator, the
independent reference); an unfitted estimator stays unfitted. The estimator
check suite (tests/test_sklearn_checks.py) only checks predictions of one
default model after pickling; here every model variant, bytes and files.
"""

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skcce import SoftmaxClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _problem(kind):
    X, y = make_classification(n_samples=400, n_features=6, n_informative=4,
                               n_classes=2 if kind == "binary" else 4, random_state=0)
    sw = None
    params = dict(max_iter=200)
    if kind == "soft":
        rng = np.random.default_rng(0)
        Y = rng.dirichlet(np.ones(4), size=len(y))
        y = 0.5 * Y + 0.5 * np.eye(4)[y]
    elif kind == "class_weight":
        params["class_weight"] = {0: 1.0, 1: 3.0, 2: 0.5, 3: 1.0}
        sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    elif kind == "balanced_smoothing":
        params.update(class_weight="balanced", label_smoothing=0.1, C=0.3)
    elif kind == "float32":
        X = X.astype(np.float32)
    elif kind == "string_labels":
        y = np.array(["ant", "bee", "cat", "dog"])[y]
    return X, y, sw, params


KINDS = ["multiclass", "binary", "soft", "class_weight", "balanced_smoothing", "float32",
         "string_labels"]


def _roundtrips(est, tmp_path):
    """(name, loaded copy) for pickle/joblib, to bytes and to a file."""
    out = [("pickle bytes", pickle.loads(pickle.dumps(est)))]
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump(est, f, protocol=pickle.HIGHEST_PROTOCOL)
    with open(path, "rb") as f:
        out.append(("pickle file", pickle.load(f)))
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    out.append(("joblib bytes", joblib.load(buf)))
    jpath = tmp_path / "model.joblib"
    joblib.dump(est, jpath, compress=3)
    out.append(("joblib file", joblib.load(jpath)))
    return out


def _same_model(a, b, X):
    assert np.array_equal(a.classes_, b.classes_)
    for attr in ("coef_", "intercept_", "n_iter_"):
        assert getattr(a, attr).dtype == getattr(b, attr).dtype, attr
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    assert a.n_features_in_ == b.n_features_in_
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.predict_log_proba(X), b.predict_log_proba(X))
    assert np.array_equal(a.decision_function(X), b.decision_function(X))
    assert np.array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("kind", KINDS)
def test_fitted_model_round_trips_bitwise_and_refits(kind, tmp_path):
    X, y, sw, params = _problem(kind)
    est = SoftmaxClassifier(**params).fit(X, y, sample_weight=sw)
    fresh_refit = SoftmaxClassifier(**params).fit(X[::-1], y[::-1],
                                                  sample_weight=None if sw is None
                                                  else sw[::-1])
    for name, loaded in _roundtrips(est, tmp_path):
        assert type(loaded) is SoftmaxClassifier, name
        assert loaded.get_params() == est.get_params(), name
        assert loaded.loss_curve_ == est.loss_curve_, name
        assert loaded.final_gradient_norm_ == est.final_gradient_norm_, name
        _same_model(loaded, est, X)
        # fully refittable: refit on other data == a fresh estimator, bitwise
        loaded.fit(X[::-1], y[::-1], sample_weight=None if sw is None else sw[::-1])
        _same_model(loaded, fresh_refit, X)
    # the original was not affected by refitting its copies
    _same_model(est, SoftmaxClassifier(**params).fit(X, y, sample_weight=sw), X)


def test_unfitted_estimator_round_trips_unfitted(tmp_path):
    est = SoftmaxClassifier(C=0.5, class_weight="balanced", label_smoothing=0.05)
    X, y, _, _ = _problem("multiclass")
    for name, loaded in _roundtrips(est, tmp_path):
        assert loaded.get_params() == est.get_params(), name
        with pytest.raises(NotFittedError):
            check_is_fitted(loaded)
        assert not [k for k in vars(loaded) if k.endswith("_") and not k.startswith("_")]
        ref = SoftmaxClassifier(**est.get_params()).fit(X, y)
        _same_model(loaded.fit(X, y), ref, X)


def test_warm_start_after_round_trip_continues_from_loaded_model(tmp_path):
    """warm_start uses the loaded coef_: refitting the loaded copy is bitwise
    the same as refitting the original."""
    X, y, _, _ = _problem("multiclass")
    est = SoftmaxClassifier(warm_start=True, max_iter=5).fit(X, y)
    (_, loaded), = _roundtrips(est, tmp_path)[:1]
    est.set_params(max_iter=50).fit(X, y)
    loaded.set_params(max_iter=50).fit(X, y)
    _same_model(loaded, est, X)


def test_callbacks_round_trip(tmp_path):
    callback = pytest.importorskip("sklearn.callback",
                                   reason="scikit-learn < 1.9 has no callbacks")
    X, y, _, _ = _problem("multiclass")
    est = SoftmaxClassifier(max_iter=50).set_callbacks(
        callback.ScoringMonitor(scoring="accuracy"))
    est.fit(X, y)
    for name, loaded in _roundtrips(est, tmp_path):
        _same_model(loaded, est, X)
        (monitor,) = loaded._skl_callbacks
        assert type(monitor) is callback.ScoringMonitor, name
        assert not hasattr(loaded, "_callback_fit_ctx")  # no in-flight fit state
        # the restored callback still works on a refit: one row per iteration
        loaded.fit(X, y)
        rows = [r for r in monitor.get_logs().data if r["task_name"] == "lbfgs-iter"]
        assert len(rows) >= loaded.n_iter_[0]
        _same_model(loaded, SoftmaxClassifier(max_iter=50).fit(X, y), X)
