"""Bitwise reproducibility across n_jobs.

The kernel must use a fixed reduction order independent of the number of
threads, so fitted coefficients (and every loss/gradient evaluation) are
bitwise identical for n_jobs = 1, 2, 3, ...  The problem is large enough
(20,000 x 30, K=5) to span many row blocks and give every thread work.
These tests compare skcce with itself on purpose; each also checks that the
common result is correct against scikit-learn.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import skcce
from skcce import SoftmaxClassifier
from _reference import sklearn_loss_gradient

N_JOBS = (1, 2, 3)

# long fits amplify any thread-dependent rounding; convergence is not the point
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def big():
    X, y = make_classification(
        n_samples=20_000, n_features=30, n_informative=12, n_redundant=4,
        n_classes=5, random_state=42,
    )
    sw = np.random.default_rng(0).uniform(0.2, 3.0, size=len(y))
    return X, y, sw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_bitwise_identical_across_n_jobs(big, dtype, weighted):
    """coef_, intercept_, n_iter_ and predict_proba are bitwise identical for
    n_jobs in (1, 2, 3)."""
    X, y, sw = big
    X = X.astype(dtype)
    sw = sw if weighted else None
    models = [
        SoftmaxClassifier(C=1.0, tol=1e-8, max_iter=300, n_jobs=n).fit(X, y, sample_weight=sw)
        for n in N_JOBS
    ]
    m0 = models[0]
    for n, m in zip(N_JOBS[1:], models[1:]):
        assert np.array_equal(m.coef_, m0.coef_), n
        assert np.array_equal(m.intercept_, m0.intercept_), n
        assert np.array_equal(m.n_iter_, m0.n_iter_), n
        assert np.array_equal(m.predict_proba(X[:2000]), m0.predict_proba(X[:2000])), n
    # sanity: the common solution is a good one (same predictions as sklearn)
    ref = LogisticRegression(C=1.0, tol=1e-8, max_iter=300).fit(
        X.astype(np.float64), y, sample_weight=sw)
    agree = np.mean(m0.predict(X) == ref.predict(X.astype(np.float64)))
    assert agree > 0.99


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_bitwise_identical_binary_and_no_intercept(big):
    """Same for a binary problem and for fit_intercept=False."""
    X, y, sw = big
    Xs, ys = X[:8000], (y[:8000] > 2).astype(int)
    for params, (XX, yy) in [
        (dict(), (Xs, ys)),
        (dict(fit_intercept=False, class_weight="balanced"), (X, y)),
    ]:
        coefs = [
            SoftmaxClassifier(max_iter=40, n_jobs=n, **params).fit(XX, yy).coef_
            for n in (1, 2, 3, -1, None)
        ]
        for c in coefs[1:]:
            assert np.array_equal(c, coefs[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_gradient_bitwise_identical_on_big_problem(big, dtype):
    """Every single loss/gradient evaluation is bitwise identical across n_jobs."""
    X, y, sw = big
    X = X.astype(dtype)
    coef = np.random.default_rng(1).normal(scale=0.3, size=(5, 31))
    out = {n: skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                               l2_reg_strength=1e-3, n_jobs=n)
           for n in (1, 2, 3, 4, None, -1)}
    l1, g1 = out[1]
    for n, (l, g) in out.items():
        assert float(l) == float(l1), n
        assert np.array_equal(g, g1), n
    ref_l, ref_g = sklearn_loss_gradient(coef, X, y, sw, 1e-3, True)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(l1, ref_l, rtol=rtol)
    assert_allclose(g1, ref_g, rtol=rtol, atol=rtol * np.abs(ref_g).max())


def test_repeated_calls_identical(big):
    """Repeated multi-threaded evaluations are deterministic (no racy reductions)."""
    X, y, sw = big
    coef = np.random.default_rng(2).normal(size=(5, 31))
    first = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw, n_jobs=2)
    for _ in range(5):
        again = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw, n_jobs=2)
        assert float(again[0]) == float(first[0])
        assert np.array_equal(again[1], first[1])
    ref = sklearn_loss_gradient(coef, X, y, sw, 0.0, True)
    assert_allclose(first[0], ref[0], rtol=1e-12)


@pytest.mark.parametrize("n_classes", [5, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_slots_reused_bitwise_identical(n_classes, dtype):
    """The dense kernel holds a few group buffers per thread and reuses them
    (group g in slot g % n_slots, merged in group order as soon as the groups
    before it are in). With more groups than slots, and more threads than
    cores (threads then wait for slots), every evaluation is still the same
    bits for every n_jobs, and equal to scikit-learn's loss and gradient."""
    from skcce._kernels import dense

    n, d = 120_000, 50
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, n_classes, size=n)
    sw = rng.uniform(0.2, 3.0, size=n)
    coef = rng.normal(scale=0.3, size=(n_classes, d + 1))
    _, _, n_groups = dense.dense_partition(n, d, n_classes, X.itemsize)
    for n_threads in (1, 2, 3):
        assert dense.dense_merge_slots(n_groups, n_threads) < n_groups
    first = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw, n_jobs=1)
    for n_jobs in (2, 3, 5, 8, 8, 8):
        loss, grad = skcce.crossentropy_loss_gradient(coef, X, y, sample_weight=sw,
                                                      n_jobs=n_jobs)
        assert float(loss) == float(first[0]), n_jobs
        assert np.array_equal(grad, first[1]), n_jobs
    ref_loss, ref_grad = sklearn_loss_gradient(coef, X, y, sw, 0.0, True)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(first[0], ref_loss, rtol=rtol)
    assert_allclose(first[1], ref_grad, rtol=rtol, atol=rtol * np.abs(ref_grad).max())
