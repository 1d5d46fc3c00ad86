"""The machine: cores, CPU, caches, BLAS and library versions; measured bandwidth and GEMM rates.

Both roofline inputs are measured in the same process as the timings they
bound, with BLAS held to the thread count in question through threadpoolctl.
"""

import glob
import os
import platform
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import numpy as np
from scipy.linalg import blas as scipy_blas
from threadpoolctl import threadpool_info, threadpool_limits

# Distributions whose versions are reported (missing ones are reported as None).
REPORTED_DISTRIBUTIONS = ("skcce", "numpy", "scipy", "scikit-learn", "threadpoolctl",
                          "torch", "jax", "jaxlib", "scikit-learn-intelex", "matplotlib")
# Size of the block of rows the GEMM rate is measured on: fits in the L2/L3
# caches, so the rate is the GEMMs' own, not the memory's.
GEMM_BLOCK_BYTES = 4 << 20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "XLA_FLAGS")
# Size units of cache sizes in sysfs and lscpu.
_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20,
               "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


def usable_cores():
    """Number of CPUs this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_model():
    """CPU model name from ``/proc/cpuinfo``, or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _parse_size(text):
    """``"491520K"`` or ``"480 MiB"`` -> bytes, or None when not a size."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?i?B?)\s*", text, flags=re.IGNORECASE)
    if match is None or match.group(2).upper() not in _SIZE_UNITS:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def last_level_cache():
    """Size of the largest, last-level data cache, and where it was read.

    Reads ``/sys/devices/system/cpu/cpu0/cache/index*/`` (the highest level
    holding data), else ``lscpu -B``.

    Returns
    -------
    size : int or None
        Bytes of one instance of the cache (None when unknown).
    source : str
        E.g. ``"sysfs: L3 Unified, shared by CPUs 0-1"``.
    """
    caches = []
    for directory in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            fields = {name: open(os.path.join(directory, name)).read().strip()
                      for name in ("level", "type", "size", "shared_cpu_list")}
        except OSError:
            continue
        size = _parse_size(fields["size"])
        if size and fields["type"] in ("Unified", "Data"):
            caches.append((int(fields["level"]), size, fields))
    if caches:
        level, size, fields = max(caches, key=lambda cache: cache[:2])
        return size, (f"sysfs: L{level} {fields['type']}, shared by CPUs "
                      f"{fields['shared_cpu_list']}")
    try:
        output = subprocess.run(["lscpu", "-B"], capture_output=True, text=True,
                                check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None, "unknown"
    levels = {}
    for line in output.splitlines():
        # "L3 cache:   503316480 (1 instance)": the total over the instances.
        match = re.match(r"L(\d)d? cache:\s*(\d+)(?:\s*\((\d+) instances?\))?", line)
        if match:
            levels[int(match.group(1))] = int(match.group(2)) // int(match.group(3) or 1)
    if not levels:
        return None, "unknown"
    level = max(levels)
    return levels[level], f"lscpu: L{level}, one instance"


def load_average():
    """The 1-, 5- and 15-minute load averages, or None where the OS has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def library_versions():
    """Installed version of each distribution in :data:`REPORTED_DISTRIBUTIONS`."""
    versions = {}
    for name in REPORTED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info():
    """Everything about the machine that the results depend on.

    Returns
    -------
    info : dict
        ``cpu``, ``usable_cores`` (affinity), ``cpu_count`` (online CPUs),
        ``load_average`` (1, 5, 15 minutes, when known), ``threadpools``
        (threadpoolctl's view of BLAS and OpenMP libraries, with their thread
        counts), ``environment`` (thread-related variables that are set),
        ``python``, ``platform`` and ``versions``.
    """
    return {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "threadpools": [
            {key: pool.get(key) for key in
             ("user_api", "internal_api", "prefix", "version", "architecture",
              "threading_layer", "num_threads", "filepath")}
            for pool in threadpool_info()
        ],
        "environment": {name: os.environ[name] for name in THREAD_VARIABLES
                        if name in os.environ},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": library_versions(),
    }


def blas_summary(info):
    """The BLAS libraries of :func:`machine_info` in one line."""
    return "; ".join(
        f"{pool['internal_api']} {pool['version']} ({pool['architecture']}, "
        f"{pool['num_threads']} threads, {os.path.basename(pool['filepath'])})"
        for pool in info["threadpools"] if pool["user_api"] == "blas"
    )


def machine_summary(info=None):
    """One line: CPU, cores, BLAS and thread-related environment variables.

    Parameters
    ----------
    info : dict, default=None
        Output of :func:`machine_info`; measured now when None.

    Returns
    -------
    summary : str
    """
    info = info or machine_info()
    return (f"{info['cpu']}, {info['usable_cores']} usable cores; BLAS: {blas_summary(info)}; "
            f"environment: {info['environment'] or 'no thread variables set'}")


def streaming_read_bandwidth(n_bytes, n_threads, repeats):
    """Best rate at which ``n_threads`` threads read a large array, in bytes/s.

    Two copy-free reads of a float64 array far larger than the caches are
    timed, and the faster one counts: ``np.dot(a, a)`` (BLAS ``ddot``, which
    reads ``a`` once, held to ``n_threads`` BLAS threads) and ``np.sum`` over
    ``n_threads`` contiguous slices in as many Python threads (NumPy releases
    the GIL inside the reduction).

    Parameters
    ----------
    n_bytes : int
        Size of the array read; make it many times the last-level cache.
    n_threads : int
    repeats : int
        Runs of each read; the fastest counts.

    Returns
    -------
    bandwidth : float
        Bytes per second.
    method : str
        Which read was the fastest.
    """
    array = np.full(n_bytes // 8, 1.0)
    slices = np.array_split(array, n_threads)
    with threadpool_limits(limits=n_threads, user_api="blas"), \
            ThreadPoolExecutor(n_threads) as pool:
        reads = {
            "BLAS ddot": lambda: np.dot(array, array),
            f"np.sum in {n_threads} threads": lambda: list(pool.map(np.sum, slices)),
        }
        best = {name: _fastest_run(read, repeats) for name, read in reads.items()}
    method = min(best, key=best.get)
    return array.nbytes / best[method], method


def gemm_rate(n_features, n_classes, dtype, n_threads, repeats, block_bytes=GEMM_BLOCK_BYTES):
    """Rate of the two GEMMs of one evaluation on a cache-sized block, in flop/s.

    The kernel's GEMM shapes are timed on a block of rows of about
    ``block_bytes`` (so the GEMMs run from cache and only their speed is
    measured): logits ``Z = X_b @ W.T`` and gradient ``G = Z.T @ X_b``, with
    ``X_b`` of shape (rows, n_features) and W of shape (n_classes,
    n_features), through SciPy's BLAS (the library skcce's kernel calls),
    held to ``n_threads`` threads. Together they do ``4 · rows ·
    n_features · n_classes`` flops, the count used by the roofline.

    Parameters
    ----------
    n_features, n_classes : int
        For sparse data, pass the non-zeros per row as ``n_features``.
    dtype : {"float64", "float32"}
        ``dgemm`` or ``sgemm``.
    n_threads : int
    repeats : int
        Timed runs of both GEMMs after a warm-up; the fastest counts.
    block_bytes : int, default=GEMM_BLOCK_BYTES (4 MiB)

    Returns
    -------
    rate : float
        Flop per second.
    """
    dtype = np.dtype(dtype)
    gemm = scipy_blas.dgemm if dtype == np.float64 else scipy_blas.sgemm
    rows = max(256, block_bytes // (n_features * dtype.itemsize))
    rng = np.random.default_rng(0)
    block = rng.standard_normal((rows, n_features)).astype(dtype)
    weights = np.asfortranarray(rng.standard_normal((n_classes, n_features)), dtype=dtype)
    logits = np.zeros((rows, n_classes), dtype=dtype)
    gradient = np.zeros((n_classes, n_features), dtype=dtype, order="F")

    def both_gemms():
        # Fortran views of the row-major arrays: logits.T = W @ block.T, then
        # gradient = logits.T @ block, both written in place.
        gemm(1.0, weights, block.T, c=logits.T, overwrite_c=True)
        gemm(1.0, logits.T, block.T, trans_b=True, c=gradient, overwrite_c=True)

    with threadpool_limits(limits=n_threads, user_api="blas"):
        seconds = _fastest_run(both_gemms, repeats, min_seconds=0.02)
    return 4.0 * rows * n_features * n_classes / seconds


def peak_gemm_rate(size, dtype, n_threads, repeats):
    """Rate of a large square GEMM, the machine's practical FMA peak, in flop/s.

    ``C = A @ B`` with square ``size`` × ``size`` operands through SciPy's
    BLAS (``dgemm`` or ``sgemm``), held to ``n_threads`` threads: ``2 ·
    size³`` flops. A large square GEMM runs BLAS's best blocking and reaches
    close to the FMA units' peak; no loss-and-gradient kernel can do its
    products faster.

    Parameters
    ----------
    size : int
        Side of the matrices (3000: about 70 MB of float64 operands).
    dtype : {"float64", "float32"}
    n_threads : int
    repeats : int
        Timed runs after a warm-up; the fastest counts.

    Returns
    -------
    rate : float
        Flop per second.
    """
    dtype = np.dtype(dtype)
    gemm = scipy_blas.dgemm if dtype == np.float64 else scipy_blas.sgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size)), dtype=dtype)
    b = np.asfortranarray(rng.standard_normal((size, size)), dtype=dtype)
    c = np.zeros((size, size), dtype=dtype, order="F")
    with threadpool_limits(limits=n_threads, user_api="blas"):
        seconds = _fastest_run(lambda: gemm(1.0, a, b, c=c, overwrite_c=True), repeats)
    return 2.0 * size ** 3 / seconds


def _fastest_run(func, repeats, min_seconds=0.0):
    """Shortest wall time of ``func()`` over ``repeats`` runs after a warm-up.

    A run of ``func`` shorter than ``min_seconds`` is repeated within one
    timing until it lasts that long, and the time per call is returned.
    """
    func()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            func()
        if time.perf_counter() - start >= min_seconds:
            break
        calls *= 2
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = min(best, (time.perf_counter() - start) / calls)
    return best
