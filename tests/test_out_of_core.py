"""Out-of-core fits: a memory-mapped X is read in place, chunk by chunk.

Fitting a C-ordered float32/float64 ``np.memmap`` never copies it: validation
keeps the mapping, and the kernel streams it one chunk of rows at a time. So
the process's anonymous memory (``RssAnon``, which excludes the file-backed
pages of the mapping) stays far below the size of the file.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.utils.validation import validate_data

from skcce import SoftmaxClassifier

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/status"
)


def write_memmap(path, n, d, K, dtype, seed=0, rows_per_write=50_000):
    """Random X written in slices (never whole in memory) and its labels."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, K)).astype(dtype)
    X = np.memmap(path, dtype=dtype, mode="w+", shape=(n, d))
    y = np.empty(n, dtype=np.int32)
    for start in range(0, n, rows_per_write):
        rows = rng.standard_normal(size=(min(rows_per_write, n - start), d), dtype=dtype)
        X[start:start + rows.shape[0]] = rows
        y[start:start + rows.shape[0]] = np.argmax(
            rows @ W + rng.gumbel(size=(rows.shape[0], K)), axis=1)
    X.flush()
    del X
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_is_used_in_place(tmp_path, dtype):
    path = tmp_path / "X.bin"
    y = write_memmap(path, 3000, 6, 3, dtype)
    X = np.memmap(path, dtype=dtype, mode="r", shape=(3000, 6))
    clf = SoftmaxClassifier(tol=1e-10, max_iter=500)
    # The validation the fit runs returns the mapping itself, not a copy.
    X_checked, _ = validate_data(
        clf, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
        multi_output=True, reset=True,
    )
    assert np.shares_memory(X_checked, X)
    # A read-only mapping gives bitwise the model of the same array in memory.
    fitted = clf.fit(X, y)
    reference = SoftmaxClassifier(tol=1e-10, max_iter=500).fit(np.array(X), y)
    np.testing.assert_array_equal(fitted.coef_, reference.coef_)
    np.testing.assert_array_equal(fitted.intercept_, reference.intercept_)


_CHILD = textwrap.dedent("""
    import json, sys, threading, time, warnings
    import numpy as np
    from skcce import SoftmaxClassifier

    def rss_anon_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

    path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
    y = np.load(path + ".y.npy")
    warnings.simplefilter("ignore")  # max_iter is deliberately small
    clf = SoftmaxClassifier(max_iter=4)
    clf.fit(X[:1000], y[:1000])  # warm-up: thread pools, BLAS buffers
    baseline = rss_anon_kib()
    peak = baseline
    done = threading.Event()

    def sample():
        global peak
        while not done.is_set():
            peak = max(peak, rss_anon_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    clf.fit(X, y)
    done.set()
    sampler.join()
    peak = max(peak, rss_anon_kib())
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak,
                      "n_iter": int(clf.n_iter_[0])}))
""")


@linux_only
def test_memmap_fit_keeps_anonymous_memory_bounded(tmp_path):
    n, d = 1_000_000, 100  # a 381 MiB float32 file
    path = tmp_path / "X.f32"
    try:
        y = write_memmap(path, n, d, 5, np.float32)
        np.save(f"{path}.y.npy", y)
        del y
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(n), str(d)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        measured = json.loads(result.stdout)
    finally:
        path.unlink(missing_ok=True)
        (tmp_path / "X.f32.y.npy").unlink(missing_ok=True)
    file_kib = n * d * 4 / 1024
    growth_kib = measured["peak_kib"] - measured["baseline_kib"]
    print(f"RssAnon growth {growth_kib / 1024:.1f} MiB for a {file_kib / 1024:.0f} MiB memmap")
    assert measured["n_iter"] == 4
    # A copy of X would add at least the file's size (twice, as float64);
    # what remains is the labels (a few MiB) and per-chunk buffers.
    assert growth_kib < 0.2 * file_kib, (growth_kib, file_kib)
