"""ONNX export through skl2onnx, run by onnxruntime (``pip install "skcce[onnx]" onnxruntime``).

onnxruntime's labels must equal ``predict`` exactly and its probabilities
``predict_proba`` (and NumPy's softmax of the logits) to 1e-6 for float64 and
1e-5 for float32, alone, in a pipeline, for SoftmaxClassifierCV, binary and
multiclass, int and string labels; LogisticRegression's export is held to the
same standard beside it.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier, SoftmaxClassifierCV

skl2onnx = pytest.importorskip("skl2onnx", reason="the onnx extra is not installed")
rt = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

import skcce.onnx  # noqa: E402

TOLERANCE = {np.float64: 1e-6, np.float32: 1e-5}


@pytest.fixture(scope="module", autouse=True)
def registered():
    skcce.onnx.register()


def _problem(n_classes, dtype, labels="int"):
    X, y = make_classification(n_samples=400, n_features=12, n_informative=6,
                               n_classes=n_classes, random_state=n_classes)
    X = (X * np.linspace(0.5, 3.0, X.shape[1]) + 1.0).astype(dtype)
    if labels == "str":
        y = np.array(["ant", "bee", "cat", "dog", "eel"])[y]
    return X, y


def _run(model, X, **options):
    """onnxruntime's (labels, probabilities) of the exported model."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    onx = skl2onnx.to_onnx(model, X[:1], options={id(final): {"zipmap": False, **options}})
    session = rt.InferenceSession(onx.SerializeToString(),
                                  providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxClassifier])
def test_onnxruntime_reproduces_the_model(Estimator, labels, n_classes, dtype):
    X, y = _problem(n_classes, dtype, labels)
    model = Estimator(max_iter=1000).fit(X, y)
    onnx_labels, onnx_proba = _run(model, X)
    assert_array_equal(onnx_labels, model.predict(X))
    assert_allclose(onnx_proba, model.predict_proba(X), rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_is_sigmoid_of_twice_the_decision(dtype):
    """For two classes the exported probabilities are softmax([-d, d]) = sigmoid(2 d)."""
    X, y = _problem(2, dtype)
    model = SoftmaxClassifier(C=0.3).fit(X, y)
    d = X.astype(np.float64) @ model.coef_[0].astype(np.float64) + model.intercept_[0]
    _, onnx_proba = _run(model, X)
    assert_allclose(onnx_proba[:, 1], 1 / (1 + np.exp(-2 * d)), atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_cv_estimator_in_a_pipeline(n_classes, dtype):
    X, y = _problem(n_classes, dtype)
    pipe = make_pipeline(StandardScaler(), SoftmaxClassifierCV(Cs=4, cv=3)).fit(X, y)
    onnx_labels, onnx_proba = _run(pipe, X)
    assert_array_equal(onnx_labels, pipe.predict(X))
    assert_allclose(onnx_proba, pipe.predict_proba(X), rtol=0, atol=TOLERANCE[dtype])
    # And against NumPy, from the fitted parameters.
    Z = pipe[0].transform(X).astype(np.float64)
    clf = pipe[-1]
    coef = np.vstack([-clf.coef_, clf.coef_]) if n_classes == 2 else clf.coef_
    intercept = np.r_[-clf.intercept_, clf.intercept_] if n_classes == 2 else clf.intercept_
    assert_allclose(onnx_proba, _softmax(Z @ coef.T + intercept), atol=TOLERANCE[dtype])


def test_without_intercept_sparsified_and_soft_targets():
    X, y = _problem(3, np.float64)
    no_intercept = SoftmaxClassifier(fit_intercept=False).fit(X, y)
    sparse = SoftmaxClassifier().fit(X, y).sparsify()
    soft = np.full((X.shape[0], 3), 0.1)
    soft[np.arange(X.shape[0]), y] = 0.8
    soft_model = SoftmaxClassifier().fit(X, soft)
    for model in (no_intercept, sparse, soft_model):
        onnx_labels, onnx_proba = _run(model, X)
        assert_array_equal(onnx_labels, model.predict(X))
        assert_allclose(onnx_proba, model.predict_proba(X), atol=1e-6)
    assert sparse.coef_.format == "csr"  # restored after the conversion


def test_default_zipmap_output_and_raw_scores():
    """skl2onnx's options work as for its own linear classifiers."""
    X, y = _problem(3, np.float32)
    model = SoftmaxClassifier().fit(X, y)
    onx = skl2onnx.to_onnx(model, X[:1])  # default: probabilities as a list of dicts
    session = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, proba_maps = session.run(None, {session.get_inputs()[0].name: X[:5]})
    assert_array_equal(labels, model.predict(X[:5]))
    assert_allclose([[row[k] for k in range(3)] for row in proba_maps],
                    model.predict_proba(X[:5]), atol=1e-5)
    _, scores = _run(model, X, raw_scores=True)
    assert_allclose(scores, model.decision_function(X), rtol=1e-5, atol=1e-5)


def test_register_is_idempotent_and_names_the_aliases():
    first = skcce.onnx.register()
    assert skcce.onnx.register() == first
    assert set(first) == {SoftmaxClassifier, SoftmaxClassifierCV}
