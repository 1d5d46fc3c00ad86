"""The prediction benchmark's setup: every contender holds the same model, and its roofline.

No timings here: only the helpers of ``benchmarks/suite/prediction.py``,
checked against plain NumPy and SciPy.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, softmax

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from suite import prediction  # noqa: E402

RATES = {"bandwidth": {"1": 10e9, "all": 20e9},
         "peak": {"float64": {"1": 50e9, "all": 100e9}, "float32": {"1": 100e9, "all": 200e9}},
         "last_level_cache": {"bytes": 1 << 20, "source": "test"}}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n_classes", [2, 5])
def test_contenders_hold_the_same_model(n_classes, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 7)).astype(dtype)
    models = prediction.prediction_models(n_classes, 7, 7, dtype)
    coef, intercept = models["coef"].astype(np.float64), models["intercept"].astype(np.float64)
    logits = X.astype(np.float64) @ coef.T + intercept
    if n_classes == 2:
        # skcce's symmetric model [-w, w]: P(class 1) = expit(2 d)
        expected = np.column_stack([expit(-2 * logits[:, 0]), expit(2 * logits[:, 0])])
    else:
        expected = softmax(logits, axis=1)
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for name in ("skcce_all", "skcce_1", "sklearn"):
        model = models[name]
        assert model.coef_.dtype == np.dtype(dtype)
        np.testing.assert_allclose(model.predict_proba(X), expected, atol=tolerance)
        np.testing.assert_array_equal(model.predict(X), np.argmax(expected, axis=1))
    # the decision functions: LogisticRegression's is twice skcce's for two classes
    decision = logits[:, 0] if n_classes == 2 else logits
    np.testing.assert_allclose(models["skcce_all"].decision_function(X), decision,
                               atol=10 * tolerance)
    np.testing.assert_allclose(models["sklearn"].decision_function(X),
                               (2 if n_classes == 2 else 1) * decision, atol=20 * tolerance)
    assert models["skcce_1"].n_jobs == 1 and models["skcce_all"].n_jobs is None


@pytest.mark.parametrize("sparse", [False, True])
def test_torch_calls_hold_the_same_model(sparse):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for n_classes in (2, 4):
        X = rng.standard_normal((50, 6))
        X[np.abs(X) < 0.7] = 0.0
        models = prediction.prediction_models(n_classes, 6, 6, "float64")
        calls = prediction.torch_calls(torch, sp.csr_matrix(X) if sparse else X,
                                       models["coef"], models["intercept"])
        decision = X @ models["coef"].T + models["intercept"]
        full = (np.column_stack([-decision, decision]) if n_classes == 2 else decision)
        np.testing.assert_allclose(calls["decision_function"]().numpy(),
                                   decision[:, 0] if n_classes == 2 else decision, atol=1e-12)
        np.testing.assert_allclose(calls["predict_proba"]().numpy(), softmax(full, axis=1),
                                   atol=1e-12)
        np.testing.assert_array_equal(calls["predict"]().numpy(), np.argmax(full, axis=1))


def test_agreement_halves_logistic_regressions_two_class_decision():
    reference = np.array([0.5, -1.0, 2.0])
    found = prediction.agreement("decision_function",
                                 {"skcce_all": reference, "sklearn": 2 * reference,
                                  "torch": reference + 0.25}, n_classes=2)
    assert found["sklearn"]["max_abs_difference"] == 0.0
    assert found["torch"]["max_abs_difference"] == 0.25
    labels = prediction.agreement("predict", {"skcce_all": np.array([0, 1, 2, 1]),
                                              "sklearn": np.array([0, 1, 0, 1])}, n_classes=3)
    assert labels["sklearn"]["mismatched_labels"] == 0.25


def test_prediction_roofline_counts_x_the_result_and_the_products():
    X = np.zeros((1000, 10))
    X[:, 0] = 1.0
    x_bytes = 1000 * 10 * 8
    for method, written in (("predict", 1000 * 8), ("predict_proba", 1000 * 3 * 8),
                            ("decision_function", 1000 * 3 * 8)):
        roof = prediction.prediction_roofline(X, 3, method, RATES)
        assert roof["result_bytes"] == written
        assert roof["flops"] == 2 * 1000 * 10 * 3  # dense: every value counts
        assert roof["all"]["memory_seconds"] == pytest.approx((x_bytes + written) / 20e9)
        assert roof["1"]["compute_seconds"] == pytest.approx(roof["flops"] / 50e9)
    assert prediction.result_bytes("decision_function", 1000, 2, np.float32) == 4000
    assert prediction.result_bytes("predict_proba", 1000, 2, np.float32) == 8000


def test_prediction_roofline_gathers_rows_beyond_the_cache():
    # 1,000 columns x 200 classes x 8 bytes = 1.6 MB of coefficients: more than
    # the 1 MiB cache, so the non-zeros of the coldest columns read their rows.
    X = sp.random(500, 1000, density=0.02, format="csr", random_state=0)
    roof = prediction.prediction_roofline(X, 200, "predict", RATES)
    counts = np.sort(np.bincount(X.indices, minlength=1000))[::-1]
    cached = (1 << 20) // (200 * 8)
    assert roof["gathered_bytes"] == counts[cached:].sum() * 200 * 8 > 0
    assert roof["flops"] == 2 * X.nnz * 200
