"""Fitting on Dask arrays and predicting on them.

References are independent of the Dask code path: the fit of the same data as
NumPy arrays (its own validation, encoding, weighting and single-pass
objective), scikit-learn's ``LogisticRegression``, and NumPy formulas for the
predictions.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import skcce._dask as skcce_dask  # noqa: E402
from skcce import SoftmaxClassifier  # noqa: E402
from skcce._kernels import reductions  # noqa: E402
from skcce._threads import effective_n_threads  # noqa: E402

requires_distributed = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="distributed is not installed"
)

TIGHT = dict(tol=1e-10, max_iter=2000)


def make_problem(n=600, d=7, K=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(d, K))
    y = np.argmax(X @ W + rng.gumbel(size=(n, K)), axis=1)
    return X.astype(dtype), y


def soft_targets(y, K, seed=1):
    rng = np.random.default_rng(seed)
    Y = 0.7 * np.eye(K)[y] + 0.3 * rng.dirichlet(np.ones(K), size=y.shape[0])
    return Y / Y.sum(axis=1, keepdims=True)


def assert_same_model(dask_fit, numpy_fit, atol):
    np.testing.assert_array_equal(dask_fit.classes_, numpy_fit.classes_)
    assert dask_fit.coef_.dtype == numpy_fit.coef_.dtype
    np.testing.assert_allclose(dask_fit.coef_, numpy_fit.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(dask_fit.intercept_, numpy_fit.intercept_, rtol=0, atol=atol)


@pytest.mark.parametrize("fmt", ["csc", "coo", "csr"])
def test_malformed_sparse_block_is_rejected_before_conversion(fmt):
    """A block's index structure is checked before scikit-learn converts it to
    CSR (scipy's conversion of a malformed CSC or COO matrix writes out of
    bounds)."""
    X, y = make_problem(n=40)
    block = sp.csr_matrix(X).asformat(fmt)
    if fmt == "coo":
        block.col[5] = X.shape[1] + 3
    else:
        block.indices[5] = 10**6
    with pytest.raises(ValueError, match=f"Malformed {fmt.upper()} matrix"):
        skcce_dask._prepare_block(block, y, None, np.arange(4))


def test_import_skcce_does_not_import_dask(tmp_path):
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import skcce
        X = np.random.default_rng(0).normal(size=(50, 3))
        clf = skcce.SoftmaxClassifier().fit(X, np.arange(50) % 3)
        clf.predict(X); clf.predict_proba(X); clf.predict_log_proba(X)
        clf.decision_function(X)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
    """)
    # From another directory: `python -c` in the source tree would import
    # the unbuilt sources instead of the installed package.
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tmp_path)


def test_dask_input_without_dask_is_an_explicit_error(monkeypatch):
    # What a Dask array looks like to skcce when dask cannot be imported.
    fake = type("Array", (), {"__module__": "dask.array.core", "shape": (4, 2), "ndim": 2})()
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    clf = SoftmaxClassifier()
    with pytest.raises(ImportError, match=r"skcce\[dask\]"):
        clf.fit(fake, np.arange(4) % 2)
    assert not hasattr(clf, "coef_")


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
@pytest.mark.parametrize("case", ["labels", "float32", "weighted", "soft", "badly_scaled"])
def test_single_block_is_bitwise_the_numpy_fit(scheduler, case):
    X, y = make_problem(dtype=np.float32 if case == "float32" else np.float64)
    params = dict(TIGHT)
    kwargs = {}
    if case == "weighted":
        y = np.array(["ant", "bee", "cat", "dog"])[y]
        kwargs["sample_weight"] = np.random.default_rng(2).uniform(0.1, 3, size=y.shape[0])
        params["class_weight"] = "balanced"
    elif case == "soft":
        y = soft_targets(y, 4)
        params["label_smoothing"] = 0.05
    elif case == "badly_scaled":
        X[:, 0] *= 1e5  # L-BFGS then works on rescaled coefficients
    reference = SoftmaxClassifier(**params).fit(X, y, **kwargs)
    with dask.config.set(scheduler=scheduler):
        fitted = SoftmaxClassifier(**params).fit(
            da.from_array(X, chunks=X.shape), y,
            **{k: da.from_array(v) for k, v in kwargs.items()})
    np.testing.assert_array_equal(fitted.classes_, reference.classes_)
    np.testing.assert_array_equal(fitted.coef_, reference.coef_)
    np.testing.assert_array_equal(fitted.intercept_, reference.intercept_)
    assert fitted.coef_.dtype == reference.coef_.dtype
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.loss_curve_ == reference.loss_curve_
    assert fitted.final_gradient_norm_ == reference.final_gradient_norm_
    assert fitted.n_features_in_ == X.shape[1]


@pytest.mark.parametrize("case", [
    "labels", "string_labels_weights_dict", "soft_targets", "one_hot_soft", "no_intercept",
    "smoothing_balanced", "scalar_weight", "numpy_y_and_weights",
])
def test_many_blocks_match_the_numpy_fit(case):
    X, y = make_problem(n=900, d=9, K=4)
    params = dict(TIGHT)
    weights = None
    row_chunks = (97, 200, 3, 300, 300)  # uneven, including a tiny block
    Y = y
    if case == "string_labels_weights_dict":
        Y = np.array(["ant", "bee", "cat", "dog"])[y]
        weights = np.random.default_rng(3).uniform(0.0, 2.0, size=y.shape[0])
        params["class_weight"] = {"ant": 2.0, "cat": 0.5}
    elif case == "soft_targets":
        Y = soft_targets(y, 4)
    elif case == "one_hot_soft":
        Y = np.eye(4)[y]
    elif case == "no_intercept":
        params["fit_intercept"] = False
    elif case == "smoothing_balanced":
        params.update(label_smoothing=0.1, class_weight="balanced", C=0.3)
        weights = np.random.default_rng(4).uniform(0.5, 1.5, size=y.shape[0])
    elif case == "scalar_weight":
        weights = 2.5
    reference = SoftmaxClassifier(**params).fit(X, Y, sample_weight=weights)

    Xd = da.from_array(X, chunks=(row_chunks, 4))  # column chunks get merged
    if case == "numpy_y_and_weights":
        weights = np.random.default_rng(5).uniform(0.5, 1.5, size=y.shape[0])
        reference = SoftmaxClassifier(**params).fit(X, Y, sample_weight=weights)
        Yd, Wd = Y, weights
    else:
        # y and the weights chunked differently from X: aligned on the rows.
        Yd = da.from_array(Y, chunks=(150,) + Y.shape[1:])
        Wd = weights if weights is None or np.isscalar(weights) else da.from_array(
            weights, chunks=250)
    with dask.config.set(scheduler="threads"):
        fitted = SoftmaxClassifier(**params).fit(Xd, Yd, sample_weight=Wd)
    assert_same_model(fitted, reference, atol=1e-8)
    if case == "one_hot_soft":
        labels = SoftmaxClassifier(**params).fit(X, y)
        assert_same_model(fitted, labels, atol=1e-8)


def test_matches_scikit_learn_logistic_regression():
    X, y = make_problem(n=800, d=6, K=3, seed=7)
    with dask.config.set(scheduler="sync"):
        fitted = SoftmaxClassifier(C=0.5, **TIGHT).fit(da.from_array(X, chunks=(123, 6)),
                                                      da.from_array(y, chunks=123))
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, reference.coef_, atol=1e-6)
    np.testing.assert_allclose(fitted.intercept_, reference.intercept_, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_blocks(dtype):
    X, y = make_problem(n=500, d=12, K=3, seed=11, dtype=dtype)
    X[np.abs(X) < 0.8] = 0.0
    reference = SoftmaxClassifier(**TIGHT).fit(sp.csr_matrix(X), y)
    Xd = da.from_array(X, chunks=(120, 12)).map_blocks(sp.csr_matrix, dtype=dtype)
    with dask.config.set(scheduler="sync"):
        fitted = SoftmaxClassifier(**TIGHT).fit(Xd, y)
        proba = fitted.predict_proba(Xd).compute()
    assert_same_model(fitted, reference, atol=1e-8)
    if dtype == np.float64:
        assert_same_model(fitted, SoftmaxClassifier(**TIGHT).fit(X, y), atol=1e-8)
    z = X.astype(np.float64) @ fitted.coef_.T.astype(np.float64) + fitted.intercept_
    np.testing.assert_allclose(proba, softmax(z, axis=1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_predictions_are_lazy_blockwise_dask_arrays(n_classes):
    X, y = make_problem(n=300, d=5, K=n_classes, seed=n_classes)
    clf = SoftmaxClassifier().fit(X, np.array(["no", "yes", "maybe", "both"])[y])
    Xd = da.from_array(X, chunks=((100, 0, 150, 50), (2, 3)))
    z = X @ clf.coef_.T + clf.intercept_
    if n_classes == 2:
        decision = z.ravel()
        full = np.column_stack([-decision, decision])
    else:
        decision = full = z
    expected = {
        "decision_function": decision,
        "predict_proba": softmax(full, axis=1),
        "predict_log_proba": log_softmax(full, axis=1),
        "predict": clf.classes_[np.argmax(full, axis=1)],
    }
    lazy = {name: getattr(clf, name)(Xd) for name in expected}
    clf.fit(X[::-1], y[::-1])  # a later refit does not change the graphs
    with dask.config.set(scheduler="sync"):
        for name, reference in expected.items():
            result = lazy[name]
            assert isinstance(result, da.Array), name
            assert result.shape == reference.shape
            computed = result.compute()
            assert isinstance(computed, np.ndarray)
            assert computed.dtype == result.dtype
            if name == "predict":
                np.testing.assert_array_equal(computed, reference)
            else:
                np.testing.assert_allclose(computed, reference, rtol=1e-12, atol=1e-12)
            # NumPy in, NumPy out.
            assert isinstance(getattr(clf, name)(X), np.ndarray)


def test_prediction_errors_are_raised_eagerly():
    Xd = da.zeros((10, 3), chunks=5)
    with pytest.raises(NotFittedError):
        SoftmaxClassifier().predict_proba(Xd)
    clf = SoftmaxClassifier().fit(*make_problem(n=40, d=4, K=3))
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xd)


def test_failed_fits_leave_the_estimator_unchanged():
    X, y = make_problem(n=200, d=4, K=3)
    clf = SoftmaxClassifier().fit(X, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(clf).items()}
    X_nan = X.copy()
    X_nan[150, 2] = np.nan
    chunks = (50, 4)
    bad_inputs = [
        (da.from_array(X_nan, chunks=chunks), y, None, ValueError, "NaN"),
        (da.from_array(X, chunks=chunks), y[:-1], None, ValueError, "inconsistent"),
        (da.from_array(X, chunks=chunks), y, -np.ones(200), ValueError, "Negative"),
        (da.from_array(X, chunks=chunks), y, np.zeros(200), ValueError, "non-zero"),
        (da.from_array(X, chunks=chunks), np.zeros(200), None, ValueError, "one class"),
        (da.from_array(X, chunks=chunks), y + 0.5, None, ValueError, "continuous"),
        (da.from_array(X[:, 0], chunks=50), y, None, ValueError, "2-D"),
        (da.from_array(X, chunks=chunks)[da.from_array(y, chunks=50) > 0], y, None,
         ValueError, "compute_chunk_sizes"),
        (da.from_array(X, chunks=chunks), np.full((200, 3), 0.5), None, ValueError,
         "probability"),
    ]
    with dask.config.set(scheduler="sync"):
        for X_bad, y_bad, w_bad, error, match in bad_inputs:
            with pytest.raises(error, match=match):
                clf.fit(X_bad, y_bad, sample_weight=w_bad)
            assert vars(clf).keys() == before.keys()
            for key, value in before.items():
                np.testing.assert_array_equal(getattr(clf, key), value)


def test_a_block_of_zero_weights_is_allowed():
    """Only the whole data must have a non-zero weight: a block whose weights
    are all zero fits like the NumPy fit of the same weights."""
    X, y = make_problem(n=200, d=4, K=3)
    w = np.ones(200)
    w[50:100] = 0.0
    expected = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=w)
    with dask.config.set(scheduler="sync"):
        clf = SoftmaxClassifier(**TIGHT).fit(
            da.from_array(X, chunks=(50, 4)), da.from_array(y, chunks=50),
            sample_weight=da.from_array(w, chunks=50))
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", ["negative weight", "all-zero weights", "2-D weights",
                                  "NaN weight", "one class", "continuous labels"])
def test_dask_input_errors_say_what_in_memory_errors_say(case):
    """The Dask fit validates with the in-memory helpers: the same ValueError,
    word for word, as the NumPy fit of the same data."""
    X, y = make_problem(n=200, d=4, K=3)
    w = None
    if case == "negative weight":
        w = np.ones(200)
        w[170] = -1.0
    elif case == "all-zero weights":
        w = np.zeros(200)
    elif case == "2-D weights":
        w = np.ones((200, 2))
    elif case == "NaN weight":
        w = np.ones(200)
        w[3] = np.nan
    elif case == "one class":
        y = np.zeros(200, dtype=int)
    else:
        y = y + 0.5
    with pytest.raises(ValueError) as in_memory:
        SoftmaxClassifier().fit(X, y, sample_weight=w)
    w_dask = None if w is None or w.ndim == 2 else da.from_array(w, chunks=50)
    if w is not None and w.ndim == 2:
        w_dask = da.from_array(w, chunks=(50, 2))
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError) as on_dask:
        SoftmaxClassifier().fit(da.from_array(X, chunks=(50, 4)), da.from_array(y, chunks=50),
                                sample_weight=w_dask)
    assert str(on_dask.value) == str(in_memory.value)


def test_thread_rule():
    n_threads = effective_n_threads(None)
    assert skcce_dask._task_threads(None, 1) == n_threads
    assert skcce_dask._task_threads(None, n_threads + 5) == 1
    assert skcce_dask._task_threads(4, 2) == min(4, effective_n_threads(4)) // 2
    import dask.local
    import dask.threaded

    assert skcce_dask._local_pool_size(dask, dask.local.get_sync) == 1
    with dask.config.set(num_workers=3):
        assert skcce_dask._local_pool_size(dask, dask.threaded.get) == 3


def test_verbose_and_warm_start(capsys):
    X, y = make_problem(n=300, d=5, K=3)
    Xd = da.from_array(X, chunks=(100, 5))
    with dask.config.set(scheduler="sync"):
        clf = SoftmaxClassifier(max_iter=3, verbose=1, warm_start=True)
        with pytest.warns(ConvergenceWarning):
            clf.fit(Xd, y)
        assert capsys.readouterr().out.count("iter ") == 3
        clf.set_params(max_iter=1000, tol=1e-10, verbose=0).fit(Xd, y)
    reference = SoftmaxClassifier(**TIGHT).fit(X, y)
    assert_same_model(clf, reference, atol=1e-7)


# ---------------------------------------------------------------------------
# A distributed LocalCluster with worker processes


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # The nanny exports OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, ... into
    # this process's environment to pass them to the workers, and leaves them
    # there: restore the environment so that later tests see their own.
    environment = os.environ.copy()
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster:
            with distributed.Client(cluster) as client:
                yield client
    finally:
        os.environ.clear()
        os.environ.update(environment)


def cluster_problem(n, d, K, n_blocks):
    """Data generated on the workers, reproducibly (lineage: seeds only)."""
    rs = da.random.RandomState(0)
    X = rs.normal(size=(n, d), chunks=(-(-n // n_blocks), d))
    W = np.random.default_rng(1).normal(size=(d, K))
    y = da.argmax(X @ W + rs.gumbel(size=(n, K), chunks=(X.chunks[0], K)), axis=1)
    return X, y


@requires_distributed
def test_cluster_fit_matches_numpy_fit(client, monkeypatch):
    X, y = cluster_problem(6000, 10, 5, n_blocks=5)
    sample_weight = da.random.RandomState(2).uniform(0.5, 2.0, size=6000, chunks=1000)
    X_np, y_np, w_np = dask.compute(X, y, sample_weight)
    reference = SoftmaxClassifier(**TIGHT).fit(X_np, y_np, sample_weight=w_np)

    fitted = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=sample_weight)
    assert_same_model(fitted, reference, atol=1e-8)
    # The partial sums are added in block order on the client: the same model,
    # to the bit, as with the synchronous local scheduler and with the
    # parameters scattered to the workers instead of sent with each task.
    with dask.config.set(scheduler="sync"):
        local = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=sample_weight)
    monkeypatch.setattr(skcce_dask, "_SCATTER_BYTES", 0)
    scattered = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=sample_weight)
    for other in (local, scattered):
        np.testing.assert_array_equal(other.coef_, fitted.coef_)
        np.testing.assert_array_equal(other.intercept_, fitted.intercept_)

    proba = fitted.predict_proba(X)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(
        proba.compute(), softmax(X_np @ fitted.coef_.T + fitted.intercept_, axis=1),
        rtol=1e-12, atol=1e-14)


@requires_distributed
def test_cluster_thread_rule(client):
    # Two single-threaded workers on this host: two tasks run at once here,
    # so a task gets half of the thread budget n_jobs.
    slots = skcce_dask._host_task_slots(client)
    assert sum(slots.values()) == 2 and len(slots) == 1
    for n_jobs, expected in [(1, 1), (2, 1), (4, 2), (5, 2)]:
        if not reductions.openmp_enabled():
            expected = 1  # a serial build runs one thread whatever n_jobs
        threads = client.submit(skcce_dask._task_threads, n_jobs, slots, pure=False)
        assert threads.result() == expected
    # The nanny starts workers with OMP_NUM_THREADS=1: n_jobs=None is one thread.
    assert client.submit(skcce_dask._task_threads, None, slots, pure=False).result() == 1


def _evaluation_hook(monkeypatch, at, action):
    """Run ``action()`` on the client just before the ``at``-th evaluation."""
    evaluations = []
    blocked_sum = skcce_dask._BlockedData.loss_gradient_sum

    def hooked(self, params):
        evaluations.append(None)
        if len(evaluations) == at:
            action()
        return blocked_sum(self, params)

    monkeypatch.setattr(skcce_dask._BlockedData, "loss_gradient_sum", hooked)
    return evaluations


@requires_distributed
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_recovers_the_blocks_of_a_dead_worker(client, monkeypatch):
    """A worker dies between two evaluations: its blocks are recomputed from
    their lineage and the fit ends with exactly the undisturbed model."""
    X, y = cluster_problem(200_000, 40, 8, n_blocks=8)
    params = dict(max_iter=20, tol=1e-12)
    undisturbed = SoftmaxClassifier(**params).fit(X, y)
    victim = next(iter(client.run(os.getpid).values()))

    def kill_and_wait():
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while victim in client.run(os.getpid, on_error="ignore").values():
            assert time.monotonic() < deadline, "the killed worker never left"
            time.sleep(0.05)

    evaluations = _evaluation_hook(monkeypatch, 4, kill_and_wait)
    clf = SoftmaxClassifier(**params).fit(X, y)
    assert len(evaluations) > 4
    np.testing.assert_array_equal(clf.coef_, undisturbed.coef_)
    np.testing.assert_array_equal(clf.intercept_, undisturbed.intercept_)
    assert clf.loss_curve_ == undisturbed.loss_curve_
    client.wait_for_workers(2, timeout=60)


def _die_in_block_tasks():
    """On a worker: its next block task kills the worker process."""
    import skcce._dask as module

    def dying(block, params, spec, slots):
        os.kill(os.getpid(), signal.SIGKILL)

    module._block_loss_gradient = dying


@requires_distributed
def test_worker_death_inside_a_task_fails_the_fit_without_touching_the_model(monkeypatch):
    """The only worker dies while running block tasks and the scheduler gives
    up (no retries): the fit raises KilledWorker and the fitted estimator is
    exactly as it was. A cluster of its own, so that the killed worker does
    not disturb the other tests' cluster."""
    distributed = pytest.importorskip("distributed")
    clf = SoftmaxClassifier(max_iter=20).fit(*make_problem(n=100, d=10, K=4))
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(clf).items()}
    environment = os.environ.copy()
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            cluster.scheduler.allowed_failures = 0
            X, y = cluster_problem(20_000, 10, 4, n_blocks=4)
            _evaluation_hook(monkeypatch, 3, lambda: client.run(_die_in_block_tasks))
            with pytest.raises(Exception) as info:
                clf.fit(X, y)
            # The nanny restarts the worker; let it register before the cluster closes.
            client.wait_for_workers(1, timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(environment)
    assert type(info.value).__name__ == "KilledWorker", repr(info.value)
    assert vars(clf).keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(clf, key), value)
