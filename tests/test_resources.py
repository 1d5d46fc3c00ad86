"""Resources: no memory growth over many fits / kernel calls, and a fit never
allocates an n_samples x n_classes array (LogisticRegression does).

Resident memory is read from /proc/self/statm after a warm-up and
gc.collect(); allocator noise is a few hundred KiB, a leak of one small array
per call would add megabytes over these loops (e.g. 200 fits x 2,000 x 4
doubles = 12 MiB for a leaked n x K array, 2,000 calls x 21 x 4 doubles
= 1.3 MiB for a leaked gradient, 2,000 x 2000 x 4 doubles for leaked logits).
"""

import gc
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import skcce
from skcce import SoftmaxClassifier
from _memory import traced_peak

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc"),
]

MiB = 2**20


def _rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _problem(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, d))
    X[np.arange(n), y % d] += 1.0
    return X, y


def test_repeated_fits_do_not_grow_resident_memory():
    X, y = _problem(2000, 20, 4)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    configs = [dict(n_jobs=2), dict(n_jobs=1, class_weight="balanced"),
               dict(n_jobs=2, label_smoothing=0.1), dict(n_jobs=2, C=np.inf)]

    def fit(i):
        clf = SoftmaxClassifier(max_iter=30, **configs[i % 4])
        return clf.fit(X, y, sample_weight=sw if i % 3 == 0 else None)

    models = [fit(i) for i in range(20)]  # warm-up: imports, pools, caches
    start = _rss()
    for i in range(200):
        last = fit(i)
    grown = _rss() - start
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 200 fits"
    # the fits were real and deterministic: fit 199 has the arguments of fit
    # 199 % 12 (configs repeat every 4, weights every 3)
    assert np.array_equal(last.coef_, models[199 % 12].coef_)


def test_repeated_kernel_calls_do_not_grow_resident_memory():
    X, y = _problem(2000, 20, 4)
    X32 = X.astype(np.float32)
    Q = np.random.default_rng(2).dirichlet(np.ones(4), size=len(y))
    coef = np.random.default_rng(3).normal(scale=0.1, size=(4, 21))

    def call(i):
        target = Q if i % 2 else y
        data = X32 if i % 3 == 0 else X
        return skcce.crossentropy_loss_gradient(coef, data, target, n_jobs=2,
                                                l2_reg_strength=1e-3)

    first = [call(i) for i in range(20)]  # warm-up
    start = _rss()
    for i in range(2000):
        last = call(i)
    grown = _rss() - start
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 2000 calls"
    # deterministic: call 1999 has the arguments of call 1999 % 6 (period 6)
    assert last[0] == first[1999 % 6][0]
    assert np.array_equal(last[1], first[1999 % 6][1])


def test_fit_peak_memory_is_small_and_below_logistic_regression():
    """tracemalloc peak of one fit on 100,000 x 50 float64, K = 10.

    Measured on the reference machine (sklearn 1.9.1): SoftmaxClassifier
    ~3.9 MiB (label encoding: a few n-sized int arrays), LogisticRegression
    ~17 MiB (n x K logits, gradient and one-hot targets, float64); n*K*8 is
    7.6 MiB and X is 38 MiB. The bound allows 10% of X plus 2 MiB: no
    n x K float64 array fits in it together with the label encoding.
    """
    n, d, k = 100_000, 50, 10
    X, y = _problem(n, d, k)
    SoftmaxClassifier(max_iter=2).fit(X[:500], y[:500])  # warm-up imports
    LogisticRegression(max_iter=2).fit(X[:500], y[:500])

    ours, _ = traced_peak(lambda: SoftmaxClassifier(max_iter=20).fit(X, y))
    theirs, _ = traced_peak(lambda: LogisticRegression(max_iter=2).fit(X, y))
    n_by_k = n * k * 8
    assert ours < 0.10 * X.nbytes + 2 * MiB, f"peak {ours / MiB:.2f} MiB"
    assert theirs > n_by_k, f"LogisticRegression peak {theirs / MiB:.2f} MiB"
    assert ours < theirs
