"""Soft (probability) targets in ``skcce.crossentropy_loss_gradient`` and in
``skcce.SoftmaxClassifier.fit``.

References are independent of skcce: a plain NumPy implementation of the
soft-target objective written below (``ref_objective``), central finite
differences, and an equivalent weighted duplicated-data problem. skcce is only
compared with itself where the spec requires bitwise identity (one-hot matrix
vs labels, n_jobs invariance, (n, 1) y vs 1-D y).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.special import softmax
from sklearn.exceptions import DataConversionWarning

from skcce import SoftmaxClassifier, crossentropy_loss_gradient
from _reference import central_differences, full_coef, ref_objective

TIGHT = dict(tol=1e-10, max_iter=10000)


# ---------------------------------------------------------------------------
# Independent NumPy reference of the objective
# ---------------------------------------------------------------------------


def estimator_objective(clf, X, Q, sample_weight=None):
    """Reference objective (loss, grad) of a fitted classifier at its solution:
    l2 = 1 / (C * S), S = sum of the effective sample weights."""
    n = X.shape[0]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    l2 = 1.0 / (clf.C * s.sum())
    return ref_objective(full_coef(clf), X, Q, s, l2, clf.fit_intercept,
                         clf.label_smoothing)


def random_soft_targets(rng, n, K, sharpness=1.0):
    return softmax(sharpness * rng.normal(size=(n, K)), axis=1)


def soft_problem(n=200, d=4, K=3, seed=0, dtype=np.float64):
    """Data whose soft targets come from a (noisy) softmax model of X."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(K, d))
    Q = softmax(X @ W.T + 0.5 * rng.normal(size=(n, K)), axis=1)
    return X.astype(dtype), Q


def assert_grad_close(actual, desired, rtol, atol_factor):
    desired = np.asarray(desired)
    atol = atol_factor * max(np.max(np.abs(desired)), np.finfo(float).tiny)
    assert_allclose(actual, desired, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# crossentropy_loss_gradient with soft targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_soft_targets_vs_numpy(dtype, fit_intercept, weighted, n_jobs):
    rng = np.random.default_rng(1)
    n, d, K = 300, 6, 4
    X = rng.normal(size=(n, d)).astype(dtype)
    Q = random_soft_targets(rng, n, K)
    coef = rng.normal(size=(K, d + fit_intercept))
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    l2 = 0.37
    loss, grad = crossentropy_loss_gradient(
        coef, X, Q, sample_weight=sw, l2_reg_strength=l2, fit_intercept=fit_intercept,
        n_jobs=n_jobs)
    ref_loss, ref_grad = ref_objective(coef, X, Q, sw, l2, fit_intercept)
    assert isinstance(loss, float)
    assert grad.shape == coef.shape
    assert grad.dtype == np.float64
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(loss, ref_loss, rtol=rtol)
    assert_grad_close(grad, ref_grad, rtol=rtol, atol_factor=rtol)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loss_soft_targets_finite_differences(fit_intercept):
    rng = np.random.default_rng(2)
    n, d, K = 80, 3, 3
    X = rng.normal(size=(n, d))
    Q = random_soft_targets(rng, n, K)
    sw = rng.uniform(0.5, 2.0, size=n)
    coef = rng.normal(size=(K, d + fit_intercept))
    kw = dict(sample_weight=sw, l2_reg_strength=0.1, fit_intercept=fit_intercept)
    _, grad = crossentropy_loss_gradient(coef, X, Q, **kw)
    fd = central_differences(
        lambda c: crossentropy_loss_gradient(c, X, Q, **kw)[0], coef)
    assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_soft_targets_bitwise_across_n_jobs(dtype):
    # enough rows for several row blocks, so that both threads get work
    rng = np.random.default_rng(3)
    n, d, K = 12000, 40, 5
    X = rng.normal(size=(n, d)).astype(dtype)
    Q = random_soft_targets(rng, n, K)
    sw = rng.uniform(0.1, 2.0, size=n)
    coef = 0.1 * rng.normal(size=(K, d + 1))
    l1, g1 = crossentropy_loss_gradient(coef, X, Q, sample_weight=sw, n_jobs=1)
    l2, g2 = crossentropy_loss_gradient(coef, X, Q, sample_weight=sw, n_jobs=2)
    assert l1 == l2
    assert np.array_equal(g1, g2)
    # and it is the right value
    ref_loss, ref_grad = ref_objective(coef, X, Q, sw)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(l1, ref_loss, rtol=rtol)
    assert_grad_close(g1, ref_grad, rtol=rtol, atol_factor=rtol)


def test_one_row_loss_one_hot_matrix_bitwise_equals_labels():
    """One row's loss at a time (weight 1 in a vector of 8 rows, the others 0),
    labels against one-hot targets, bit for bit: a chunk's sum would hide a
    1-ulp difference in one row's log, as a vector log that the compiler
    fused differently once gave in about 1 of 1,000 rows with two classes
    (the first logit below among them)."""
    rng = np.random.default_rng(11)
    K, n = 2, 8
    sw = np.zeros(n)
    sw[3] = 1.0
    X = np.zeros((n, K))
    y = np.zeros(n, dtype=int)
    coef = np.zeros((K, K + 1))
    mismatches = 0
    for t in [float.fromhex("-0x1.6847dc59465ap-1"), *rng.uniform(-0.89, 0.0, size=5000)]:
        coef[1, -1] = t  # logits (0, t): sums of exps in [1.41, 2]
        l_lab, g_lab = crossentropy_loss_gradient(coef, X, y, sample_weight=sw)
        l_mat, g_mat = crossentropy_loss_gradient(coef, X, np.eye(K)[y], sample_weight=sw)
        mismatches += (l_lab != l_mat) + (not np.array_equal(g_lab, g_mat))
    assert mismatches == 0


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("K", [4, 9, 17, 40, 230])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_one_hot_matrix_bitwise_equals_labels(dtype, fit_intercept, weighted, K,
                                                   sparse):
    # Labels take the residuals of the hot loops (softmax_impl.h; a copy per
    # K below 8), one-hot targets the baseline's row-at-a-time ones; K = 230:
    # the dense BLAS path.
    rng = np.random.default_rng(4)
    n, d = 257 + K, 5
    X = rng.normal(size=(n, d)).astype(dtype)
    if sparse:
        X = sp.csr_matrix(X * (rng.random((n, d)) < 0.5))
    y = rng.integers(0, K, size=n)
    Y = np.eye(K)[y]
    coef = rng.normal(size=(K, d + fit_intercept))
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    kw = dict(sample_weight=sw, l2_reg_strength=0.2, fit_intercept=fit_intercept)
    l_lab, g_lab = crossentropy_loss_gradient(coef, X, y, **kw)
    l_mat, g_mat = crossentropy_loss_gradient(coef, X, Y, **kw)
    assert l_lab == l_mat
    assert np.array_equal(g_lab, g_mat)
    # independent check of the common value
    ref_loss, ref_grad = ref_objective(coef, X.toarray() if sparse else X, y, sw, 0.2,
                                       fit_intercept)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(l_lab, ref_loss, rtol=rtol)
    assert_grad_close(g_lab, ref_grad, rtol=rtol, atol_factor=rtol)


def _bad_targets(kind, n, K, rng):
    Q = random_soft_targets(rng, n, K)
    if kind == "negative":
        Q[3] = [1.2, -0.2] + [0.0] * (K - 2)
    elif kind == "multilabel":
        Q[5] = [1.0, 1.0] + [0.0] * (K - 2)
    elif kind == "not_summing":
        Q[7] *= 0.9
    elif kind == "nan":
        Q[2, 1] = np.nan
    elif kind == "too_many_columns":
        Q = random_soft_targets(rng, n, K + 1)
    elif kind == "too_few_columns":
        Q = random_soft_targets(rng, n, K - 1)
    return Q


BAD_TARGETS = [
    ("negative", "negative"),
    ("multilabel", "sum"),
    ("not_summing", "sum"),
    ("nan", "(?i)nan"),
    ("too_many_columns", "columns"),
    ("too_few_columns", "columns"),
]


@pytest.mark.parametrize("kind, match", BAD_TARGETS)
def test_loss_malformed_soft_targets_raise(kind, match):
    rng = np.random.default_rng(5)
    n, d, K = 20, 3, 3
    X = rng.normal(size=(n, d))
    coef = rng.normal(size=(K, d + 1))
    Q = _bad_targets(kind, n, K, rng)
    with pytest.raises(ValueError, match=match):
        crossentropy_loss_gradient(coef, X, Q)


def test_loss_multilabel_indicator_matrix_raises():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="sum"):
        crossentropy_loss_gradient(np.zeros((3, 3)), X, Y)


# ---------------------------------------------------------------------------
# SoftmaxClassifier.fit with soft targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fit_soft_targets_multiclass_minimizes_objective(fit_intercept):
    X, Q = soft_problem(K=3)
    clf = SoftmaxClassifier(C=2.0, fit_intercept=fit_intercept, **TIGHT).fit(X, Q)
    np.testing.assert_array_equal(clf.classes_, np.arange(3))
    assert clf.coef_.shape == (3, X.shape[1])
    assert clf.intercept_.shape == (3,)
    if not fit_intercept:
        assert np.all(clf.intercept_ == 0)
    _, grad = estimator_objective(clf, X, Q)
    assert np.max(np.abs(grad)) < 1e-6
    # prediction API in terms of an independent softmax of the linear model
    D = X @ clf.coef_.T + clf.intercept_
    P = clf.predict_proba(X)
    assert P.shape == (X.shape[0], 3)
    assert_allclose(P, softmax(D, axis=1), rtol=1e-12, atol=1e-15)
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, np.argmax(D, axis=1))
    assert set(np.unique(pred)) <= {0, 1, 2}


def test_fit_soft_targets_five_classes():
    X, Q = soft_problem(n=250, d=5, K=5, seed=11)
    clf = SoftmaxClassifier(C=0.5, **TIGHT).fit(X, Q)
    np.testing.assert_array_equal(clf.classes_, np.arange(5))
    assert clf.predict_proba(X).shape == (250, 5)
    _, grad = estimator_objective(clf, X, Q)
    assert np.max(np.abs(grad)) < 1e-6


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fit_soft_targets_binary(fit_intercept):
    X, Q = soft_problem(K=2, seed=7)
    clf = SoftmaxClassifier(fit_intercept=fit_intercept, **TIGHT).fit(X, Q)
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert clf.coef_.shape == (1, X.shape[1])
    assert clf.intercept_.shape == (1,)
    # the symmetric full solution minimizes the 2-class objective
    _, grad = estimator_objective(clf, X, Q)
    assert np.max(np.abs(grad)) < 1e-6
    d = X @ clf.coef_[0] + clf.intercept_[0]
    P = clf.predict_proba(X)
    assert P.shape == (X.shape[0], 2)
    assert_allclose(P[:, 1], 1.0 / (1.0 + np.exp(-2.0 * d)), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), (d > 0).astype(int))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [2, 3, 4])
def test_fit_one_hot_matrix_bitwise_equals_labels(K, weighted):
    rng = np.random.default_rng(20 + K)
    n, d = 150, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, size=n)
    y[:K] = np.arange(K)
    X[:, :K] += 0.8 * np.eye(K)[y]
    Y = np.eye(K)[y]
    sw = rng.uniform(0.2, 2.0, size=n) if weighted else None
    a = SoftmaxClassifier(max_iter=300).fit(X, y, sample_weight=sw)
    b = SoftmaxClassifier(max_iter=300).fit(X, Y, sample_weight=sw)
    np.testing.assert_array_equal(a.classes_, b.classes_)
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(a.intercept_, b.intercept_)
    # also integer and boolean one-hot matrices
    c = SoftmaxClassifier(max_iter=300).fit(X, Y.astype(np.int64), sample_weight=sw)
    assert np.array_equal(a.coef_, c.coef_)
    assert np.array_equal(a.intercept_, c.intercept_)
    # the common model is the optimum of the label objective (independent check)
    _, grad = estimator_objective(a, X, y, sw)
    assert np.max(np.abs(grad)) <= max(a.tol, a.final_gradient_norm_) * (1 + 1e-6)


def test_fit_column_vector_y_is_labels_with_warning():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(120, 3))
    y = rng.integers(0, 3, size=120)
    with pytest.warns(DataConversionWarning):
        a = SoftmaxClassifier().fit(X, y.reshape(-1, 1))
    b = SoftmaxClassifier().fit(X, y)
    np.testing.assert_array_equal(a.classes_, [0, 1, 2])
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(a.intercept_, b.intercept_)
    # string labels in a column too: classes are the labels, not arange
    ys = np.array(["a", "b", "c"])[y].reshape(-1, 1)
    with pytest.warns(DataConversionWarning):
        c = SoftmaxClassifier().fit(X, ys)
    np.testing.assert_array_equal(c.classes_, ["a", "b", "c"])


@pytest.mark.parametrize("kind, match", [
    ("negative", "negative"),
    ("multilabel", "sum"),
    ("not_summing", "sum"),
    ("nan", "(?i)nan"),
])
def test_fit_malformed_soft_targets_raise(kind, match):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(20, 3))
    Q = _bad_targets(kind, 20, 3, rng)
    clf = SoftmaxClassifier()
    with pytest.raises(ValueError, match=match):
        clf.fit(X, Q)
    assert not hasattr(clf, "coef_")


def test_fit_multilabel_indicator_raises():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 3))
    Y = rng.integers(0, 2, size=(30, 3))
    Y[0] = [1, 1, 0]
    with pytest.raises(ValueError, match="sum"):
        SoftmaxClassifier().fit(X, Y)


@pytest.mark.parametrize("K", [2, 3])
def test_fit_soft_targets_mixture_equals_weighted_duplicated_data(K):
    """Q = a onehot(y1) + (1-a) onehot(y2) is the same objective as the duplicated
    data (X; X), (y1; y2) with weights (a; 1-a): same weight sum n, same penalty."""
    rng = np.random.default_rng(30 + K)
    n, d = 150, 4
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(K, d))
    y1 = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    y2 = np.argmax(X @ W.T + rng.gumbel(size=(n, K)), axis=1)
    y1[:K] = np.arange(K)  # every class appears
    a = rng.uniform(0.05, 0.95, size=n)
    Q = a[:, None] * np.eye(K)[y1] + (1 - a)[:, None] * np.eye(K)[y2]

    soft = SoftmaxClassifier(C=1.0, **TIGHT).fit(X, Q)
    X2 = np.vstack([X, X])
    y_dup = np.concatenate([y1, y2])
    sw = np.concatenate([a, 1 - a])
    assert_allclose(sw.sum(), n, rtol=1e-13)
    dup = SoftmaxClassifier(C=1.0, **TIGHT).fit(X2, y_dup, sample_weight=sw)

    np.testing.assert_array_equal(soft.classes_, dup.classes_)
    Xt = rng.normal(size=(50, d))
    # tolerance: both fits stop at max|grad| <= 1e-10; the Hessian's smallest
    # eigenvalue is >= 1/(C n) ~ 7e-3, so parameters agree to ~1e-8 at worst.
    assert_allclose(soft.predict_proba(Xt), dup.predict_proba(Xt), rtol=0, atol=1e-8)
    assert_allclose(soft.predict_proba(X), dup.predict_proba(X), rtol=0, atol=1e-8)
    # and both are the optimum of the (common) NumPy objective
    _, grad = estimator_objective(soft, X, Q)
    assert np.max(np.abs(grad)) < 1e-6


@pytest.mark.parametrize("K", [2, 3])
def test_fit_soft_targets_with_sample_weight(K):
    X, Q = soft_problem(K=K, seed=40 + K)
    sw = np.random.default_rng(1).uniform(0.0, 3.0, size=X.shape[0])
    clf = SoftmaxClassifier(C=0.7, **TIGHT).fit(X, Q, sample_weight=sw)
    _, grad = estimator_objective(clf, X, Q, sw)
    assert np.max(np.abs(grad)) < 1e-6
    # not the unweighted optimum
    _, grad_unweighted = estimator_objective(clf, X, Q)
    assert np.max(np.abs(grad_unweighted)) > 1e-4


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [2, 3])
def test_fit_soft_targets_class_weight_dict(K, weighted):
    X, Q = soft_problem(K=K, seed=50 + K)
    n = X.shape[0]
    s = np.random.default_rng(2).uniform(0.2, 2.0, size=n) if weighted else np.ones(n)
    cw = {0: 0.5, 1: 3.0, 2: 1.7}
    cw = {k: cw[k] for k in range(K)}
    clf = SoftmaxClassifier(class_weight=cw, **TIGHT).fit(
        X, Q, sample_weight=s if weighted else None)
    w = np.array([cw[k] for k in range(K)])
    effective = s * (Q @ w)
    _, grad = estimator_objective(clf, X, Q, effective)
    assert np.max(np.abs(grad)) < 1e-6
    _, grad_plain = estimator_objective(clf, X, Q, s)
    assert np.max(np.abs(grad_plain)) > 1e-4


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [2, 3])
def test_fit_soft_targets_class_weight_balanced(K, weighted):
    X, Q = soft_problem(K=K, seed=60 + K)
    n = X.shape[0]
    # make the classes unbalanced
    Q = Q * np.array([4.0, 1.0, 0.5][:K])
    Q /= Q.sum(axis=1, keepdims=True)
    s = np.random.default_rng(3).uniform(0.2, 2.0, size=n) if weighted else np.ones(n)
    clf = SoftmaxClassifier(class_weight="balanced", **TIGHT).fit(
        X, Q, sample_weight=s if weighted else None)
    m = s @ Q  # class mass
    w = m.sum() / (K * m)
    effective = s * (Q @ w)
    _, grad = estimator_objective(clf, X, Q, effective)
    assert np.max(np.abs(grad)) < 1e-6


def test_fit_soft_targets_float32():
    X64, Q = soft_problem(K=3, seed=70)
    X = X64.astype(np.float32)
    clf = SoftmaxClassifier(tol=1e-5, max_iter=1000).fit(X, Q)
    np.testing.assert_array_equal(clf.classes_, np.arange(3))
    P = clf.predict_proba(X)
    assert P.shape == (X.shape[0], 3)
    assert np.all(np.isfinite(P))
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    # near the optimum of the float64 objective on the same (float32) data
    _, grad = estimator_objective(clf, X.astype(np.float64), Q)
    assert np.max(np.abs(grad)) < 1e-4


def test_fit_soft_targets_float32_binary():
    X64, Q = soft_problem(K=2, seed=71)
    X = X64.astype(np.float32)
    clf = SoftmaxClassifier(tol=1e-5, max_iter=1000).fit(X, Q)
    assert clf.coef_.shape == (1, X.shape[1])
    _, grad = estimator_objective(clf, X.astype(np.float64), Q)
    assert np.max(np.abs(grad)) < 1e-4


def test_fit_soft_targets_n_jobs_bitwise():
    X, Q = soft_problem(n=600, d=6, K=4, seed=80)
    a = SoftmaxClassifier(n_jobs=1).fit(X, Q)
    b = SoftmaxClassifier(n_jobs=2).fit(X, Q)
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(a.intercept_, b.intercept_)
    _, grad = estimator_objective(a, X, Q)
    assert np.max(np.abs(grad)) <= max(a.tol, a.final_gradient_norm_) * (1 + 1e-6)
