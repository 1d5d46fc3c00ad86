"""``skcce.categorical_crossentropy``: the (weighted) mean categorical crossentropy.

References: ``sklearn.metrics.log_loss`` on probabilities, and a hand-written
NumPy transcription of PyTorch's ``F.cross_entropy(logits, target,
label_smoothing=eps)`` (mean reduction) built on ``scipy.special.log_softmax``
for logits. PyTorch itself is not used.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax, softmax
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import KFold, cross_val_score

from skcce import SoftmaxClassifier, categorical_crossentropy


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def torch_cross_entropy_ref(logits, target, label_smoothing=0.0, sample_weight=None):
    """NumPy transcription of ``torch.nn.functional.cross_entropy`` (mean).

    Class-index targets: loss_i = (1 - eps) * (-logp[i, y_i]) + (eps / K) * sum_k -logp[i, k].
    Probability targets: loss_i = -sum_k ((1 - eps) q_ik + eps / K) logp[i, k].
    Reduction: mean, or sum(s_i loss_i) / sum(s_i) with sample weights.
    """
    logits = np.asarray(logits, dtype=np.float64)
    n, K = logits.shape
    logp = log_softmax(logits, axis=1)
    target = np.asarray(target)
    eps = label_smoothing
    if target.ndim == 1:
        nll = -logp[np.arange(n), target.astype(int)]
        smooth = -np.sum(logp, axis=1)
        loss = (1.0 - eps) * nll + (eps / K) * smooth if eps else nll
    else:
        q = (1.0 - eps) * np.asarray(target, np.float64) + eps / K
        # 0 * (-inf) must contribute nothing
        loss = -np.sum(np.where(q > 0, q * logp, 0.0), axis=1)
    if sample_weight is None:
        return float(np.mean(loss))
    s = np.asarray(sample_weight, dtype=np.float64)
    return float(np.sum(s * loss) / np.sum(s))


def proba_ce_ref(q, p, sample_weight=None):
    """-sum_k q_k log clip(p_k, eps, 1 - eps), weighted mean; terms with q = 0 skipped."""
    p = np.asarray(p, dtype=np.float64)
    tiny = np.finfo(np.asarray(p).dtype).eps
    p = np.clip(p, tiny, 1 - tiny)
    q = np.asarray(q, dtype=np.float64)
    ce = -np.sum(np.where(q > 0, q * np.log(p), 0.0), axis=1)
    return float(np.average(ce, weights=sample_weight))


def random_proba(rng, n, K, sharpness=1.0):
    return softmax(sharpness * rng.normal(size=(n, K)), axis=1)


# ---------------------------------------------------------------------------
# Probabilities vs sklearn.metrics.log_loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [2, 3, 6])
def test_matches_log_loss_integer_labels(K, weighted):
    rng = np.random.default_rng(K)
    n = 500
    y = rng.integers(0, K, size=n)
    y[:K] = np.arange(K)
    P = random_proba(rng, n, K, sharpness=2.0)
    sw = rng.uniform(0.0, 3.0, size=n) if weighted else None
    got = categorical_crossentropy(y, P, sample_weight=sw)
    assert isinstance(got, float)
    assert_allclose(got, log_loss(y, P, sample_weight=sw), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_log_loss_string_labels(weighted):
    rng = np.random.default_rng(10)
    n = 300
    names = np.array(["spam", "eggs", "ham"])  # sorted: eggs, ham, spam
    y = names[rng.integers(0, 3, size=n)]
    P = random_proba(rng, n, 3)
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    assert_allclose(categorical_crossentropy(y, P, sample_weight=sw),
                    log_loss(y, P, sample_weight=sw), rtol=1e-12)
    # explicit: column order is sorted label order
    idx = np.searchsorted(np.array(["eggs", "ham", "spam"]), y)
    assert_allclose(categorical_crossentropy(y, P, sample_weight=sw),
                    proba_ce_ref(np.eye(3)[idx], P, sw), rtol=1e-12)


def test_matches_log_loss_docstring_example():
    y = ["spam", "ham", "ham", "spam"]
    P = [[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]]
    assert_allclose(categorical_crossentropy(y, P), log_loss(y, P), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_log_loss_with_labels_argument(weighted):
    rng = np.random.default_rng(11)
    n = 200
    labels = [10, 20, 30, 40]
    y = rng.choice([10, 30, 40], size=n)  # label 20 never occurs
    P = random_proba(rng, n, 4)
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    got = categorical_crossentropy(y, P, labels=labels, sample_weight=sw)
    assert_allclose(got, log_loss(y, P, labels=labels, sample_weight=sw), rtol=1e-12)
    # string labels= as well
    names = np.array(["a", "b", "c", "d"])
    ys = names[np.searchsorted(labels, y)]
    got_s = categorical_crossentropy(ys, P, labels=list(names), sample_weight=sw)
    assert_allclose(got_s, log_loss(ys, P, labels=list(names), sample_weight=sw),
                    rtol=1e-12)


def test_missing_class_without_labels_raises():
    rng = np.random.default_rng(12)
    y = rng.choice([0, 2], size=50)
    P = random_proba(rng, 50, 3)
    with pytest.raises(ValueError):
        categorical_crossentropy(y, P)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_1d_probabilities(weighted):
    rng = np.random.default_rng(13)
    n = 300
    y = rng.integers(0, 2, size=n)
    p1 = rng.uniform(0.01, 0.99, size=n)
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    got = categorical_crossentropy(y, p1, sample_weight=sw)
    assert_allclose(got, log_loss(y, p1, sample_weight=sw), rtol=1e-12)
    P = np.column_stack([1 - p1, p1])
    assert_allclose(got, proba_ce_ref(np.eye(2)[y], P, sw), rtol=1e-12)


def test_soft_targets_on_probabilities():
    rng = np.random.default_rng(14)
    n, K = 400, 4
    Q = random_proba(rng, n, K)
    P = random_proba(rng, n, K, sharpness=2.0)
    sw = rng.uniform(0.1, 2.0, size=n)
    assert_allclose(categorical_crossentropy(Q, P), proba_ce_ref(Q, P), rtol=1e-12)
    assert_allclose(categorical_crossentropy(Q, P, sample_weight=sw),
                    proba_ce_ref(Q, P, sw), rtol=1e-12)
    # a one-hot matrix is the same as labels (and as log_loss)
    y = rng.integers(0, K, size=n)
    y[:K] = np.arange(K)
    assert_allclose(categorical_crossentropy(np.eye(K)[y], P, sample_weight=sw),
                    log_loss(y, P, sample_weight=sw), rtol=1e-12)


def test_probabilities_with_exact_zeros():
    P = np.array([[0.0, 0.3, 0.7],
                  [0.5, 0.5, 0.0],
                  [0.0, 0.0, 1.0],
                  [1.0, 0.0, 0.0]])
    # zeros only where the target is 0: they contribute nothing
    y = np.array([2, 0, 2, 0])
    expected = -np.mean(np.log([0.7, 0.5, 1.0 - np.finfo(float).eps,
                                1.0 - np.finfo(float).eps]))
    got = categorical_crossentropy(y, P, labels=[0, 1, 2])
    assert np.isfinite(got)
    assert_allclose(got, expected, rtol=1e-12)
    assert_allclose(got, log_loss(y, P, labels=[0, 1, 2]), rtol=1e-12)
    # zero probability on the target class: clipped to eps, as in log_loss
    y_bad = np.array([0, 2, 1, 1])
    got_bad = categorical_crossentropy(y_bad, P, labels=[0, 1, 2])
    assert np.isfinite(got_bad)
    assert_allclose(got_bad, log_loss(y_bad, P, labels=[0, 1, 2]), rtol=1e-12)
    # every target class has probability 0 here: each row costs -log(eps)
    assert_allclose(got_bad, -np.log(np.finfo(float).eps), rtol=1e-12)
    # soft targets with a zero prediction where q = 0
    Q = np.array([[0.0, 0.4, 0.6], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert_allclose(categorical_crossentropy(Q, P), proba_ce_ref(Q, P), rtol=1e-12)


def test_float32_probabilities_clip_to_float32_eps():
    P = np.array([[0.0, 1.0], [0.25, 0.75]], dtype=np.float32)
    y = np.array([0, 1])
    got = categorical_crossentropy(y, P)
    assert_allclose(got, log_loss(y, P), rtol=1e-6)
    expected = -0.5 * (np.log(np.float64(np.finfo(np.float32).eps))
                       + np.log(np.float64(np.float32(0.75))))
    assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_on_probabilities(eps):
    rng = np.random.default_rng(15)
    n, K = 300, 5
    y = rng.integers(0, K, size=n)
    P = random_proba(rng, n, K)
    sw = rng.uniform(0.1, 2.0, size=n)
    Qs = (1 - eps) * np.eye(K)[y] + eps / K
    assert_allclose(categorical_crossentropy(y, P, label_smoothing=eps),
                    proba_ce_ref(Qs, P), rtol=1e-12)
    assert_allclose(categorical_crossentropy(y, P, label_smoothing=eps, sample_weight=sw),
                    proba_ce_ref(Qs, P, sw), rtol=1e-12)
    # with soft targets
    Q = random_proba(rng, n, K)
    assert_allclose(categorical_crossentropy(Q, P, label_smoothing=eps),
                    proba_ce_ref((1 - eps) * Q + eps / K, P), rtol=1e-12)
    # a zero prediction now meets a positive smoothed target: clipped
    P0 = P.copy()
    P0[0] = 0.0
    P0[0, y[0]] = 1.0
    assert_allclose(categorical_crossentropy(y, P0, label_smoothing=eps),
                    proba_ce_ref(Qs, P0), rtol=1e-12)


def test_probabilities_out_of_range_raise():
    y = [0, 1]
    with pytest.raises(ValueError):
        categorical_crossentropy(y, [[1.2, -0.2], [0.5, 0.5]])
    with pytest.raises(ValueError):
        categorical_crossentropy(y, [[1.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        categorical_crossentropy(y, [[-0.5, 0.5], [0.5, 0.5]])


def test_probabilities_not_summing_to_one_warn():
    y = [0, 1, 2]
    P = np.array([[0.5, 0.2, 0.1], [0.2, 0.6, 0.1], [0.1, 0.1, 0.6]])
    with pytest.warns(UserWarning, match="sum"):
        got = categorical_crossentropy(y, P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = log_loss(y, P)
    assert_allclose(got, expected, rtol=1e-12)
    # proper probabilities do not warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        categorical_crossentropy(y, P / P.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("eps", [-0.1, 1.0])
def test_label_smoothing_out_of_range_raises(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        categorical_crossentropy([0, 1], [[0.6, 0.4], [0.3, 0.7]], label_smoothing=eps)


def test_malformed_soft_y_true_raises():
    P = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="sum"):
        categorical_crossentropy(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]), P)
    with pytest.raises(ValueError, match="negative"):
        categorical_crossentropy(np.array([[1.5, -0.5, 0], [0, 1, 0], [0, 0, 1]]), P)
    with pytest.raises(ValueError, match="columns"):
        categorical_crossentropy(np.full((3, 4), 0.25), P)


# ---------------------------------------------------------------------------
# Logits vs a NumPy transcription of torch.nn.functional.cross_entropy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.45])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [2, 3, 7])
def test_logits_class_indices_vs_torch_reference(K, weighted, eps):
    rng = np.random.default_rng(100 + K)
    n = 400
    Z = 3.0 * rng.normal(size=(n, K))
    y = rng.integers(0, K, size=n)
    y[:K] = np.arange(K)
    sw = rng.uniform(0.0, 2.0, size=n) if weighted else None
    got = categorical_crossentropy(y, Z, from_logits=True, label_smoothing=eps,
                                   sample_weight=sw)
    assert_allclose(got, torch_cross_entropy_ref(Z, y, eps, sw), rtol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_logits_probability_targets_vs_torch_reference(weighted, eps):
    rng = np.random.default_rng(200)
    n, K = 400, 5
    Z = 3.0 * rng.normal(size=(n, K))
    Q = random_proba(rng, n, K)
    Q[:10] = np.eye(K)[rng.integers(0, K, size=10)]  # some exactly one-hot rows
    sw = rng.uniform(0.0, 2.0, size=n) if weighted else None
    got = categorical_crossentropy(Q, Z, from_logits=True, label_smoothing=eps,
                                   sample_weight=sw)
    assert_allclose(got, torch_cross_entropy_ref(Z, Q, eps, sw), rtol=1e-12)


def test_logits_float32():
    rng = np.random.default_rng(201)
    Z = (3.0 * rng.normal(size=(300, 4))).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    got = categorical_crossentropy(y, Z, from_logits=True, label_smoothing=0.1)
    # the kernel reads float32 logits; the reference uses the same values in float64
    assert_allclose(got, torch_cross_entropy_ref(Z.astype(np.float64), y, 0.1),
                    rtol=1e-6)


def test_logits_binary_1d_log_odds():
    rng = np.random.default_rng(202)
    t = 4.0 * rng.normal(size=300)
    y = rng.integers(0, 2, size=300)
    got = categorical_crossentropy(y, t, from_logits=True)
    assert_allclose(got, torch_cross_entropy_ref(np.column_stack([np.zeros_like(t), t]), y),
                    rtol=1e-12)
    # = binary log-loss of sigmoid(t), computed stably
    bce = np.mean(np.logaddexp(0.0, t) - y * t)
    assert_allclose(got, bce, rtol=1e-12)


def test_logits_extreme_values_exact():
    Z = np.array([[1e300, -1e300, 0.0]])
    assert categorical_crossentropy([0], Z, from_logits=True, labels=[0, 1, 2]) == 0.0
    assert_allclose(categorical_crossentropy([1], Z, from_logits=True, labels=[0, 1, 2]),
                    2e300, rtol=1e-15)
    assert_allclose(categorical_crossentropy([2], Z, from_logits=True, labels=[0, 1, 2]),
                    1e300, rtol=1e-15)
    Z2 = np.array([[1e300, -1e300]])
    assert categorical_crossentropy([0], Z2, from_logits=True, labels=[0, 1]) == 0.0
    assert_allclose(categorical_crossentropy([1], Z2, from_logits=True, labels=[0, 1]),
                    2e300, rtol=1e-15)
    # several rows at once, with smoothing, against the reference (log_softmax is
    # exact here: z - max is exact and the log-sum-exp term is log(1) = 0)
    Z3 = np.array([[1e300, -1e300, 0.0], [0.0, 1e300, -1e300], [-1e300, 0.0, 1e300]])
    y3 = np.array([0, 2, 1])
    for eps in (0.0, 0.3):
        got = categorical_crossentropy(y3, Z3, from_logits=True, label_smoothing=eps)
        assert np.isfinite(got)
        ref = torch_cross_entropy_ref(Z3, y3, eps)
        assert_allclose(got, ref, rtol=1e-14)
    # soft target row on extreme logits
    Q = np.array([[0.5, 0.0, 0.5]])
    assert_allclose(categorical_crossentropy(Q, Z[:1], from_logits=True), 0.5e300,
                    rtol=1e-15)


@pytest.mark.parametrize("offset", [1e6, 1e15, -1e15])
def test_logits_large_common_offset(offset):
    rng = np.random.default_rng(203)
    n, K = 200, 3
    small = np.array([[0.0, 1.0, 2.0]] * n)
    spread = rng.normal(size=(n, K))
    y = rng.integers(0, K, size=n)
    y[:K] = np.arange(K)
    # integer spread: the offset logits are exactly representable
    assert_allclose(categorical_crossentropy(y, small + offset, from_logits=True),
                    torch_cross_entropy_ref(small, y), rtol=1e-9)
    # a generic spread: compare with the answer without offset
    if abs(offset) <= 1e6:
        shifted = spread + offset
        assert_allclose(categorical_crossentropy(y, shifted, from_logits=True),
                        torch_cross_entropy_ref(spread, y), rtol=1e-9)
        # with smoothing and soft targets too
        Q = random_proba(rng, n, K)
        assert_allclose(categorical_crossentropy(Q, shifted, from_logits=True,
                                                 label_smoothing=0.1),
                        torch_cross_entropy_ref(spread, Q, 0.1), rtol=1e-9)
    # the answer for [0, 1, 2] is known in closed form
    lse = np.log(1 + np.e + np.e ** 2)
    expected = np.mean(lse - small[np.arange(n), y])
    assert_allclose(categorical_crossentropy(y, small + offset, from_logits=True),
                    expected, rtol=1e-9)


def test_logits_nan_raises():
    with pytest.raises(ValueError):
        categorical_crossentropy([0, 1], [[np.nan, 0.0], [0.0, 1.0]], from_logits=True)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [False, True])
def test_bitwise_identical_across_n_jobs(from_logits):
    rng = np.random.default_rng(300)
    n, K = 20000, 6
    Z = 2.0 * rng.normal(size=(n, K))
    y_pred = Z if from_logits else softmax(Z, axis=1)
    y = rng.integers(0, K, size=n)
    Q = random_proba(rng, n, K)
    sw = rng.uniform(0.1, 2.0, size=n)
    for y_true in (y, Q):
        for eps in (0.0, 0.1):
            kw = dict(from_logits=from_logits, label_smoothing=eps, sample_weight=sw)
            a = categorical_crossentropy(y_true, y_pred, n_jobs=1, **kw)
            b = categorical_crossentropy(y_true, y_pred, n_jobs=2, **kw)
            assert a == b
            if from_logits:
                ref = torch_cross_entropy_ref(Z, y_true, eps, sw)
            else:
                q = np.eye(K)[y_true] if y_true.ndim == 1 else y_true
                ref = proba_ce_ref((1 - eps) * q + eps / K, y_pred, sw)
            assert_allclose(a, ref, rtol=1e-12)


# ---------------------------------------------------------------------------
# As a scorer
# ---------------------------------------------------------------------------


CCE_SCORER = make_scorer(categorical_crossentropy, greater_is_better=False,
                         response_method="predict_proba")


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("estimator", [
    SoftmaxClassifier(max_iter=500),
    LogisticRegression(max_iter=500),
], ids=["SoftmaxClassifier", "LogisticRegression"])
def test_scorer_matches_neg_log_loss(estimator, n_classes):
    X, y = make_classification(n_samples=240, n_features=6, n_informative=4,
                               n_classes=n_classes, random_state=n_classes)
    cv = KFold(n_splits=3, shuffle=True, random_state=0)
    ours = cross_val_score(estimator, X, y, cv=cv, scoring=CCE_SCORER)
    ref = cross_val_score(estimator, X, y, cv=cv, scoring="neg_log_loss")
    assert np.all(ours < 0)
    assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_scorer_string_labels():
    X, y = make_classification(n_samples=150, n_features=5, n_informative=3,
                               n_classes=3, random_state=7)
    y = np.array(["z", "a", "m"])[y]
    cv = KFold(n_splits=3, shuffle=True, random_state=1)
    est = SoftmaxClassifier(max_iter=500)
    ours = cross_val_score(est, X, y, cv=cv, scoring=CCE_SCORER)
    ref = cross_val_score(est, X, y, cv=cv, scoring="neg_log_loss")
    assert_allclose(ours, ref, rtol=0, atol=1e-10)
