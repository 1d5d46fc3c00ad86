"""The physical roofline of one evaluation of the loss and gradient.

The least time any implementation can take on this machine::

    max((bytes of X + gathered coefficient bytes) / B, 4 · nnz(X) · K / P)

- ``B`` is the streaming-read bandwidth (a copy-free read of an array far
  larger than the caches, :func:`suite.machine.streaming_read_bandwidth`);
- ``P`` is the machine's practical FMA peak, the rate of a large square
  GEMM (:func:`suite.machine.peak_gemm_rate`), not BLAS's rate on the
  kernel's own skinny shapes, which runs far below it;
- ``4 · nnz · K`` counts the two products (logits and gradient), a multiply
  and an add per non-zero and class each;
- gathered coefficient bytes (CSR only): each non-zero in column ``j`` needs
  the coefficients of feature ``j`` (K values). Rows that stay in the
  last-level cache cost nothing; at best the cache holds the most frequently
  used ones, so only the non-zeros of the other columns read their row from
  memory. When the whole coefficient matrix fits in the cache, nothing is
  gathered from memory.

Both rates are measured in the same run as the timings they bound; see
:func:`measure_rates`.
"""

import numpy as np
import scipy.sparse as sp

from suite import machine
from suite.problems import count_nonzeros, storage_bytes

# Side of the square GEMM that measures the peak (full run; --quick: smaller).
PEAK_GEMM_SIZE = 3000
QUICK_PEAK_GEMM_SIZE = 800
# Array read to measure the streaming bandwidth, in bytes (full run; --quick).
BANDWIDTH_BYTES = 512 << 20
QUICK_BANDWIDTH_BYTES = 64 << 20


def gathered_coefficient_bytes(column_counts, n_classes, itemsize, cache_bytes):
    """Bytes of coefficient rows read from memory in one pass over CSR data.

    Parameters
    ----------
    column_counts : ndarray of shape (n_features,)
        Non-zeros per column of X.
    n_classes : int
    itemsize : int
        Bytes per coefficient (X's dtype: a kernel may keep the coefficients
        in X's precision).
    cache_bytes : int or None
        Size of the last-level cache; None (unknown) counts nothing.

    Returns
    -------
    n_bytes : int
        ``(non-zeros outside the hottest columns whose rows fill the cache)
        · n_classes · itemsize``; 0 when every row fits.
    """
    row_bytes = n_classes * itemsize
    if cache_bytes is None or len(column_counts) * row_bytes <= cache_bytes:
        return 0
    cached_rows = int(cache_bytes // row_bytes)
    counts = np.sort(np.asarray(column_counts, dtype=np.int64))[::-1]
    return int(counts[cached_rows:].sum()) * row_bytes


def roofline_seconds(x_bytes, gathered_bytes, flops, bytes_per_second, flops_per_second):
    """The bound and what sets it.

    Parameters
    ----------
    x_bytes, gathered_bytes : int
        Bytes of X read once, and of coefficient rows gathered from memory.
    flops : float
        ``4 · nnz · K``.
    bytes_per_second, flops_per_second : float
        Streaming-read bandwidth and peak GEMM rate.

    Returns
    -------
    roofline : dict
        ``seconds`` (the larger of the two times), ``memory_seconds``,
        ``compute_seconds`` and ``bound`` ("memory" or "compute").
    """
    memory = (x_bytes + gathered_bytes) / bytes_per_second
    compute = flops / flops_per_second
    return {"seconds": max(memory, compute), "memory_seconds": memory,
            "compute_seconds": compute, "bound": "memory" if memory >= compute else "compute"}


def measure_rates(n_cores, quick, log=print):
    """Streaming-read bandwidth and peak GEMM rates, for one thread and all cores.

    All cores can do at least what one thread does, so an all-cores rate below
    the one-thread rate (a busy moment) is raised to it.

    Parameters
    ----------
    n_cores : int
    quick : bool
        Smaller array and GEMM, fewer repeats (``--quick``).
    log : callable, default=print

    Returns
    -------
    rates : dict
        ``bandwidth``: ``{"1": bytes/s, "all": bytes/s}`` plus ``method`` and
        ``array_bytes``; ``peak``: ``{dtype: {"1": flop/s, "all": flop/s}}``
        plus ``gemm_size``; ``last_level_cache``: ``{"bytes", "source"}``.
    """
    n_bytes = QUICK_BANDWIDTH_BYTES if quick else BANDWIDTH_BYTES
    size = QUICK_PEAK_GEMM_SIZE if quick else PEAK_GEMM_SIZE
    repeats = 3 if quick else 15
    bandwidth = {"array_bytes": n_bytes, "method": {}}
    peak = {"gemm_size": size}
    for key, threads in (("1", 1), ("all", n_cores)):
        rate, method = machine.streaming_read_bandwidth(n_bytes, threads, repeats)
        bandwidth[key] = max(rate, bandwidth.get("1", 0.0))
        bandwidth["method"][key] = method
        log(f"read bandwidth, {threads} thread(s): {bandwidth[key] / 1e9:.1f} GB/s ({method})")
    for dtype in ("float64", "float32"):
        peak[dtype] = {}
        for key, threads in (("1", 1), ("all", n_cores)):
            rate = machine.peak_gemm_rate(size, dtype, threads, repeats=2 if quick else 5)
            peak[dtype][key] = max(rate, peak[dtype].get("1", 0.0))
            log(f"peak {size}×{size} GEMM {dtype}, {threads} thread(s): "
                f"{peak[dtype][key] / 1e9:.1f} GFLOP/s")
    cache_bytes, source = machine.last_level_cache()
    log(f"last-level cache: {'unknown' if cache_bytes is None else f'{cache_bytes >> 20} MiB'}"
        f" ({source})")
    return {"bandwidth": bandwidth, "peak": peak,
            "last_level_cache": {"bytes": cache_bytes, "source": source}}


def physical_roofline(X, n_classes, rates):
    """The physical roofline of one evaluation on X, for one thread and all cores.

    Parameters
    ----------
    X : ndarray or CSR matrix, float64 or float32
    n_classes : int
    rates : dict
        Output of :func:`measure_rates`.

    Returns
    -------
    roofline : dict
        ``x_bytes``, ``gathered_bytes``, ``nnz``, ``flops`` and, under ``"1"``
        and ``"all"``, the output of :func:`roofline_seconds`.
    """
    nnz = count_nonzeros(X)
    gathered = 0
    if sp.issparse(X):
        gathered = gathered_coefficient_bytes(
            np.bincount(X.indices, minlength=X.shape[1]), n_classes, X.dtype.itemsize,
            rates["last_level_cache"]["bytes"])
    result = {"x_bytes": storage_bytes(X), "gathered_bytes": gathered, "nnz": nnz,
              "flops": 4 * nnz * n_classes}
    for key in ("1", "all"):
        result[key] = roofline_seconds(result["x_bytes"], gathered, result["flops"],
                                       rates["bandwidth"][key],
                                       rates["peak"][X.dtype.name][key])
    return result
