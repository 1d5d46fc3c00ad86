"""Array API inputs (``sklearn.set_config(array_api_dispatch=True)``): array-api-strict
and PyTorch CPU tensors.

The fit computes the loss and gradient in the input's namespace; the model must
match the NumPy fit (the compiled kernels) and LogisticRegression's own array
API path, and predictions must come back in the input's namespace, device and
dtype. scikit-learn needs ``SCIPY_ARRAY_API=1`` in the environment before SciPy
is imported for its array API dispatch: run this module as
``SCIPY_ARRAY_API=1 pytest tests/test_array_api.py`` (CI does); without it the
module is skipped.
"""

import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from skcce import SoftmaxClassifier

if os.environ.get("SCIPY_ARRAY_API") != "1":
    pytest.skip("scikit-learn's array API dispatch needs SCIPY_ARRAY_API=1",
                allow_module_level=True)

from sklearn.utils._array_api import _convert_to_numpy, device, get_namespace  # noqa: E402


def _namespaces():
    """(name, module, device) of the namespaces installed here."""
    found = []
    try:
        import array_api_strict
    except ImportError:
        pass
    else:
        found.append(("array_api_strict", array_api_strict, array_api_strict.Device("CPU_DEVICE")))
        found.append(("array_api_strict-device1", array_api_strict,
                      array_api_strict.Device("device1")))
    try:
        import torch
    except ImportError:
        pass
    else:
        found.append(("torch-cpu", torch, torch.device("cpu")))
    return found


NAMESPACES = _namespaces()
if not NAMESPACES:
    pytest.skip("neither array-api-strict nor torch is installed", allow_module_level=True)
NAMESPACE_IDS = [name for name, _, _ in NAMESPACES]
TIGHT = dict(tol=1e-10, max_iter=2000)


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    return X * np.linspace(0.5, 2.0, 8), y


def _asarray(module, array, device, dtype=None):
    return module.asarray(array, device=device, dtype=dtype)


def _numpy(array):
    with config_context(array_api_dispatch=True):  # for arrays on any device
        return _convert_to_numpy(array, get_namespace(array)[0])


@pytest.mark.parametrize("name, xp, dev", NAMESPACES, ids=NAMESPACE_IDS)
def test_float64_fit_matches_the_numpy_fit_and_logistic_regression(problem, name, xp, dev):
    X, y = problem
    numpy_fit = SoftmaxClassifier(**TIGHT).fit(X, y)
    X_xp, y_xp = _asarray(xp, X, dev), _asarray(xp, y, dev)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**TIGHT).fit(X_xp, y_xp)
        lr = LogisticRegression(**TIGHT).fit(X_xp, y_xp)
        proba, lr_proba = clf.predict_proba(X_xp), lr.predict_proba(X_xp)
        labels = clf.predict(X_xp)
    with config_context(array_api_dispatch=True):
        for array in (clf.coef_, clf.intercept_, clf.classes_, proba, labels):
            assert get_namespace(array)[0] is get_namespace(X_xp)[0]
            assert device(array) == device(X_xp)
    assert_allclose(_numpy(clf.coef_), numpy_fit.coef_, atol=1e-6)
    assert_allclose(_numpy(clf.intercept_), numpy_fit.intercept_, atol=1e-6)
    assert_allclose(_numpy(proba), numpy_fit.predict_proba(X), atol=1e-7)
    assert_array_equal(_numpy(labels), numpy_fit.predict(X))
    # LogisticRegression's array API path, in the same namespace.
    assert_allclose(_numpy(proba), _numpy(lr_proba), atol=1e-6)
    assert_allclose(_numpy(clf.coef_), _numpy(lr.coef_), atol=1e-5)


@pytest.mark.parametrize("name, xp, dev", NAMESPACES, ids=NAMESPACE_IDS)
def test_float32_stays_float32(problem, name, xp, dev):
    X, y = problem
    X32 = X.astype(np.float32)
    X_xp = _asarray(xp, X32, dev)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier().fit(X_xp, _asarray(xp, y, dev))
        lr = LogisticRegression().fit(X_xp, _asarray(xp, y, dev))
        proba, log_proba = clf.predict_proba(X_xp), clf.predict_log_proba(X_xp)
        lr_proba = lr.predict_proba(X_xp)
    for array in (clf.coef_, proba, log_proba):
        assert array.dtype == xp.float32
    assert lr.coef_.dtype == clf.coef_.dtype
    numpy_fit = SoftmaxClassifier().fit(X32, y)
    assert_allclose(_numpy(proba), numpy_fit.predict_proba(X32), atol=2e-3)
    assert_allclose(_numpy(proba), _numpy(lr_proba), atol=2e-3)
    assert_allclose(np.exp(_numpy(log_proba)), _numpy(proba), rtol=1e-5)


@pytest.mark.parametrize("name, xp, dev", NAMESPACES, ids=NAMESPACE_IDS)
def test_weights_binary_smoothing_soft_targets(problem, name, xp, dev):
    """Every part of the objective: the same model as the NumPy fit."""
    X, y = problem
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.2, 3.0, size=y.shape[0])
    soft = rng.dirichlet(np.ones(3), size=y.shape[0])
    cases = [
        (dict(class_weight="balanced"), y, weights),
        (dict(label_smoothing=0.1, C=0.3), y, None),
        (dict(fit_intercept=False), y == 1, weights),
        (dict(C=np.inf), soft, None),
    ]
    X_xp = _asarray(xp, X, dev)
    for params, targets, sample_weight in cases:
        numpy_fit = SoftmaxClassifier(**params, **TIGHT).fit(X, targets, sample_weight)
        with config_context(array_api_dispatch=True):
            clf = SoftmaxClassifier(**params, **TIGHT).fit(
                X_xp, _asarray(xp, targets, dev),
                None if sample_weight is None else _asarray(xp, sample_weight, dev))
            proba = _numpy(clf.predict_proba(X_xp))
            decision = _numpy(clf.decision_function(X_xp))
        assert_allclose(proba, numpy_fit.predict_proba(X), atol=1e-6, err_msg=str(params))
        assert_allclose(decision, numpy_fit.decision_function(X), atol=1e-4,
                        err_msg=str(params))


@pytest.mark.parametrize("name, xp, dev", NAMESPACES, ids=NAMESPACE_IDS)
def test_badly_scaled_features_are_rescaled_as_in_the_numpy_fit(name, xp, dev):
    X, y = make_classification(n_samples=300, n_features=4, n_informative=3,
                               n_redundant=0, n_classes=3, random_state=1)
    X = X * np.array([1e-4, 1.0, 1e4, 1e6])
    numpy_fit = SoftmaxClassifier(**TIGHT).fit(X, y)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**TIGHT).fit(_asarray(xp, X, dev), _asarray(xp, y, dev))
    with config_context(array_api_dispatch=True):
        proba = _numpy(clf.predict_proba(_asarray(xp, X, dev)))
    assert_allclose(proba, numpy_fit.predict_proba(X), atol=1e-6)


def test_string_labels_with_tensor_X(problem):
    torch = pytest.importorskip("torch")
    X, y = problem
    labels = np.array(["ant", "bee", "cat"])[y]
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**TIGHT).fit(torch.asarray(X), labels)
        lr = LogisticRegression(**TIGHT).fit(torch.asarray(X), labels)
        predicted = clf.predict(torch.asarray(X))
        lr_predicted = lr.predict(torch.asarray(X))
    assert isinstance(clf.classes_, np.ndarray) and isinstance(lr.classes_, np.ndarray)
    assert_array_equal(predicted, lr_predicted)


def test_numpy_inputs_keep_the_compiled_kernels_bitwise(problem):
    """With dispatch on, NumPy data takes the kernel path: the same bits."""
    X, y = problem
    off = SoftmaxClassifier().fit(X, y)
    with config_context(array_api_dispatch=True):
        on = SoftmaxClassifier().fit(X, y)
        proba = on.predict_proba(X)
    assert isinstance(on.coef_, np.ndarray)
    assert_array_equal(on.coef_, off.coef_)
    assert_array_equal(proba, off.predict_proba(X))


def test_warm_start_and_mixed_namespaces(problem):
    torch = pytest.importorskip("torch")
    X, y = problem
    X_t = torch.asarray(X)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(warm_start=True, **TIGHT).fit(X_t, torch.asarray(y))
        n_iter = int(clf.n_iter_[0])
        clf.fit(X_t, torch.asarray(y))  # starts at the solution
        assert int(clf.n_iter_[0]) < n_iter
        with pytest.raises(ValueError, match="same namespace"):
            clf.predict(X)  # fitted on tensors, NumPy data


def test_soft_target_score_and_onnx_export_of_a_tensor_fit(problem):
    torch = pytest.importorskip("torch")
    X, y = problem
    rng = np.random.default_rng(1)
    soft = rng.dirichlet(np.ones(3), size=y.shape[0])
    numpy_fit = SoftmaxClassifier(**TIGHT).fit(X, soft)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**TIGHT).fit(torch.asarray(X), torch.asarray(soft))
        score = clf.score(torch.asarray(X), torch.asarray(soft))
        labels_fit = SoftmaxClassifier(**TIGHT).fit(torch.asarray(X), torch.asarray(y))
    assert_allclose(score, numpy_fit.score(X, soft), rtol=1e-7)
    skl2onnx = pytest.importorskip("skl2onnx")
    rt = pytest.importorskip("onnxruntime")
    import skcce.onnx

    skcce.onnx.register()
    onx = skl2onnx.to_onnx(labels_fit, X[:1], options={id(labels_fit): {"zipmap": False}})
    session = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_labels, onnx_proba = session.run(None, {session.get_inputs()[0].name: X})
    with config_context(array_api_dispatch=True):
        proba = _numpy(labels_fit.predict_proba(torch.asarray(X)))
        labels = _numpy(labels_fit.predict(torch.asarray(X)))
    assert_array_equal(onnx_labels, labels)
    assert_allclose(onnx_proba, proba, atol=1e-6)
    assert isinstance(labels_fit.coef_, torch.Tensor)  # restored after the conversion


def test_cv_estimator_refuses_array_api_inputs_clearly(problem):
    """LogisticRegressionCV has no array API support either (it fails inside)."""
    torch = pytest.importorskip("torch")
    from skcce import SoftmaxClassifierCV

    X, y = problem
    with config_context(array_api_dispatch=True):
        with pytest.raises(TypeError, match="SoftmaxClassifierCV takes NumPy arrays"):
            SoftmaxClassifierCV(Cs=2).fit(torch.asarray(X), torch.asarray(y))
