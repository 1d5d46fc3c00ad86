"""Label smoothing in ``skcce.crossentropy_loss_gradient`` and
``skcce.SoftmaxClassifier``.

Definition (PyTorch ``CrossEntropyLoss(label_smoothing=eps)`` / Keras): the
target distribution q (one-hot for a label) becomes (1 - eps) q + eps / K.

References: a NumPy implementation written below in the PyTorch form
``(1 - eps) * NLL + eps * mean_k(-log p_k)`` for labels and with smoothed
distributions for soft targets, and central finite differences. skcce is only
compared with itself where the spec requires bitwise identity.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax, softmax
from sklearn.datasets import make_blobs

from skcce import SoftmaxClassifier, crossentropy_loss_gradient
from _reference import central_differences, full_coef

TIGHT = dict(tol=1e-10, max_iter=10000)


# ---------------------------------------------------------------------------
# Independent NumPy references
# ---------------------------------------------------------------------------


def ref_smoothed_objective(coef, X, y, eps, sample_weight=None, l2=0.0,
                           fit_intercept=True):
    """Label-smoothed weighted CE + L2, and its gradient.

    Labels: CE_i = (1 - eps) * (-log p_{i,y_i}) + eps * mean_k(-log p_ik)
    (the PyTorch formulation); soft targets (2-D y): CE_i = -sum_k q'_ik log p_ik
    with q' = (1 - eps) q + eps / K. Gradient wrt z_i: s_i (p_i - q'_i) / S.
    """
    coef = np.asarray(coef, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    K = coef.shape[0]
    W = coef[:, :d]
    z = X @ W.T
    if fit_intercept:
        z = z + coef[:, d]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    S = s.sum()
    logp = log_softmax(z, axis=1)
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.astype(int)
        nll = -logp[np.arange(n), y]
        ce = (1.0 - eps) * nll + eps * np.mean(-logp, axis=1)
        q = np.full((n, K), eps / K)
        q[np.arange(n), y] += 1.0 - eps
    else:
        q = (1.0 - eps) * y.astype(np.float64) + eps / K
        ce = -np.sum(q * logp, axis=1)
    loss = np.dot(s, ce) / S + 0.5 * l2 * np.sum(W * W)
    R = (np.exp(logp) - q) * (s / S)[:, None]
    grad = np.zeros_like(coef)
    grad[:, :d] = R.T @ X + l2 * W
    if fit_intercept:
        grad[:, d] = R.sum(axis=0)
    return float(loss), grad


def estimator_gradient(clf, X, y_encoded, sample_weight=None):
    n = X.shape[0]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    return ref_smoothed_objective(full_coef(clf), X, y_encoded, clf.label_smoothing, s,
                                  1.0 / (clf.C * s.sum()), clf.fit_intercept)


def assert_grad_close(actual, desired, rtol, atol_factor):
    desired = np.asarray(desired)
    atol = atol_factor * max(np.max(np.abs(desired)), np.finfo(float).tiny)
    assert_allclose(actual, desired, rtol=rtol, atol=atol)


def loss_problem(n=300, d=6, K=4, dtype=np.float64, fit_intercept=True, weighted=False,
                 seed=0, soft=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    if soft:
        y = softmax(rng.normal(size=(n, K)), axis=1)
    else:
        y = rng.integers(0, K, size=n)
        y[:K] = np.arange(K)
    coef = rng.normal(size=(K, d + fit_intercept))
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return coef, X, y, sw


# ---------------------------------------------------------------------------
# crossentropy_loss_gradient(label_smoothing=...)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_label_smoothing_vs_numpy(dtype, fit_intercept, weighted, n_jobs, soft):
    coef, X, y, sw = loss_problem(dtype=dtype, fit_intercept=fit_intercept,
                                  weighted=weighted, soft=soft, seed=1)
    for eps in (0.05, 0.3, 0.9):
        loss, grad = crossentropy_loss_gradient(
            coef, X, y, sample_weight=sw, l2_reg_strength=0.25,
            fit_intercept=fit_intercept, label_smoothing=eps, n_jobs=n_jobs)
        ref_loss, ref_grad = ref_smoothed_objective(coef, X, y, eps, sw, 0.25,
                                                    fit_intercept)
        assert grad.shape == coef.shape
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        assert_allclose(loss, ref_loss, rtol=rtol)
        assert_grad_close(grad, ref_grad, rtol=rtol, atol_factor=rtol)


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loss_label_smoothing_finite_differences(fit_intercept, soft):
    coef, X, y, sw = loss_problem(n=60, d=3, K=3, fit_intercept=fit_intercept,
                                  weighted=True, soft=soft, seed=2)
    kw = dict(sample_weight=sw, l2_reg_strength=0.1, fit_intercept=fit_intercept,
              label_smoothing=0.2)
    _, grad = crossentropy_loss_gradient(coef, X, y, **kw)
    fd = central_differences(
        lambda c: crossentropy_loss_gradient(c, X, y, **kw)[0], coef)
    assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_loss_label_smoothing_changes_result():
    """eps > 0 is not silently ignored: the loss is the reference's, which differs."""
    coef, X, y, _ = loss_problem(seed=3)
    plain, _ = crossentropy_loss_gradient(coef, X, y)
    smoothed, _ = crossentropy_loss_gradient(coef, X, y, label_smoothing=0.1)
    assert abs(smoothed - plain) > 1e-3
    assert_allclose(smoothed, ref_smoothed_objective(coef, X, y, 0.1)[0], rtol=1e-12)


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_label_smoothing_zero_is_bitwise_plain(dtype, weighted, soft):
    coef, X, y, sw = loss_problem(dtype=dtype, weighted=weighted, soft=soft, seed=4)
    l0, g0 = crossentropy_loss_gradient(coef, X, y, sample_weight=sw, l2_reg_strength=0.1)
    l1, g1 = crossentropy_loss_gradient(coef, X, y, sample_weight=sw, l2_reg_strength=0.1,
                                        label_smoothing=0.0)
    l2, g2 = crossentropy_loss_gradient(coef, X, y, sample_weight=sw, l2_reg_strength=0.1,
                                        label_smoothing=0)
    assert l0 == l1 == l2
    assert np.array_equal(g0, g1) and np.array_equal(g0, g2)
    ref_loss, _ = ref_smoothed_objective(coef, X, y, 0.0, sw, 0.1)
    assert_allclose(l0, ref_loss, rtol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("eps", [-0.1, -1e-12, 1.0, 1.5, np.nan])
def test_loss_label_smoothing_out_of_range_raises(eps):
    coef, X, y, _ = loss_problem(n=10, seed=5)
    with pytest.raises(ValueError, match="label_smoothing"):
        crossentropy_loss_gradient(coef, X, y, label_smoothing=eps)


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
def test_loss_label_smoothing_bitwise_across_n_jobs(soft):
    coef, X, y, sw = loss_problem(n=12000, d=40, K=5, weighted=True, soft=soft, seed=6)
    coef *= 0.1
    l1, g1 = crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                        label_smoothing=0.15, n_jobs=1)
    l2, g2 = crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                        label_smoothing=0.15, n_jobs=2)
    assert l1 == l2
    assert np.array_equal(g1, g2)
    ref_loss, ref_grad = ref_smoothed_objective(coef, X, y, 0.15, sw)
    assert_allclose(l1, ref_loss, rtol=1e-12)
    assert_grad_close(g1, ref_grad, rtol=1e-12, atol_factor=1e-12)


def test_loss_label_smoothing_one_hot_matrix_equals_labels():
    coef, X, y, sw = loss_problem(weighted=True, seed=7)
    Y = np.eye(coef.shape[0])[y]
    l_lab, g_lab = crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                              label_smoothing=0.2)
    l_mat, g_mat = crossentropy_loss_gradient(coef, X, Y, sample_weight=sw,
                                              label_smoothing=0.2)
    ref_loss, ref_grad = ref_smoothed_objective(coef, X, y, 0.2, sw)
    for loss, grad in ((l_lab, g_lab), (l_mat, g_mat)):
        assert_allclose(loss, ref_loss, rtol=1e-12)
        assert_grad_close(grad, ref_grad, rtol=1e-12, atol_factor=1e-12)


# ---------------------------------------------------------------------------
# SoftmaxClassifier(label_smoothing=...)
# ---------------------------------------------------------------------------


def clf_problem(K=3, n=200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = 2.0 * rng.normal(size=(K, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    y[:K] = np.arange(K)
    return X, y


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("K", [2, 3, 5])
@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_fit_label_smoothing_minimizes_smoothed_objective(eps, K, fit_intercept):
    X, y = clf_problem(K=K, seed=K)
    clf = SoftmaxClassifier(C=3.0, fit_intercept=fit_intercept, label_smoothing=eps,
                            **TIGHT).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.arange(K))
    _, grad = estimator_gradient(clf, X, y)
    assert np.max(np.abs(grad)) < 1e-6
    # not the minimizer of the unsmoothed objective
    _, grad0 = ref_smoothed_objective(full_coef(clf), X, y, 0.0, None,
                                      1.0 / (clf.C * X.shape[0]), fit_intercept)
    assert np.max(np.abs(grad0)) > 1e-3


def test_fit_label_smoothing_string_labels_weighted():
    X, y = clf_problem(K=3, seed=12)
    names = np.array(["cat", "ant", "bee"])  # sorted: ant, bee, cat
    y_str = names[y]
    sw = np.random.default_rng(0).uniform(0.2, 2.0, size=len(y))
    clf = SoftmaxClassifier(label_smoothing=0.2, **TIGHT).fit(X, y_str, sample_weight=sw)
    np.testing.assert_array_equal(clf.classes_, ["ant", "bee", "cat"])
    y_enc = np.searchsorted(clf.classes_, y_str)
    _, grad = estimator_gradient(clf, X, y_enc, sw)
    assert np.max(np.abs(grad)) < 1e-6


@pytest.mark.parametrize("K", [2, 3])
def test_fit_label_smoothing_with_soft_targets(K):
    rng = np.random.default_rng(20 + K)
    n, d = 200, 4
    X = rng.normal(size=(n, d))
    Q = softmax(X @ rng.normal(size=(K, d)).T * 2.0, axis=1)
    sw = rng.uniform(0.2, 2.0, size=n)
    clf = SoftmaxClassifier(label_smoothing=0.3, **TIGHT).fit(X, Q, sample_weight=sw)
    np.testing.assert_array_equal(clf.classes_, np.arange(K))
    _, grad = estimator_gradient(clf, X, Q, sw)
    assert np.max(np.abs(grad)) < 1e-6


@pytest.mark.parametrize("K", [2, 4])
def test_fit_label_smoothing_zero_bitwise_default(K):
    X, y = clf_problem(K=K, seed=30 + K)
    a = SoftmaxClassifier().fit(X, y)
    b = SoftmaxClassifier(label_smoothing=0.0).fit(X, y)
    c = SoftmaxClassifier(label_smoothing=0).fit(X, y)
    for other in (b, c):
        assert np.array_equal(a.coef_, other.coef_)
        assert np.array_equal(a.intercept_, other.intercept_)
    # the common model is the unsmoothed optimum (at the default tol)
    _, grad = estimator_gradient(a, X, y)
    assert np.max(np.abs(grad)) <= a.tol * (1 + 1e-6)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5])
def test_fit_label_smoothing_out_of_range_raises(eps):
    X, y = clf_problem(K=3, n=30)
    clf = SoftmaxClassifier(label_smoothing=eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        clf.fit(X, y)
    assert not hasattr(clf, "coef_")


def test_fit_label_smoothing_out_of_range_is_invalid_parameter_error():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = clf_problem(K=3, n=30)
    with pytest.raises(InvalidParameterError):
        SoftmaxClassifier(label_smoothing=1.0).fit(X, y)


@pytest.mark.parametrize("K", [2, 3])
def test_heavy_label_smoothing_less_extreme_probabilities(K):
    centers = [[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]][:K]
    X, y = make_blobs(n_samples=150, centers=centers, cluster_std=0.5, random_state=K)
    plain = SoftmaxClassifier(C=100.0, max_iter=2000).fit(X, y)
    smooth = SoftmaxClassifier(C=100.0, label_smoothing=0.4, max_iter=2000).fit(X, y)
    p_plain = plain.predict_proba(X).max(axis=1)
    p_smooth = smooth.predict_proba(X).max(axis=1)
    assert p_plain.max() > 0.99
    assert p_smooth.max() < p_plain.max()
    assert np.all(p_smooth < p_plain)
    # on average clearly further from certainty
    assert p_smooth.mean() < p_plain.mean() - 0.1
    # separable data: both still classify the training data perfectly
    np.testing.assert_array_equal(plain.predict(X), y)
    np.testing.assert_array_equal(smooth.predict(X), y)
