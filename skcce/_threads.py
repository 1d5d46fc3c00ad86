"""Thread-count policy, BLAS thread limiting and fork safety.

``n_jobs`` follows scikit-learn's OpenMP policy: ``None`` means every usable
core (respecting ``OMP_NUM_THREADS``, CPU affinity and cgroup CPU quotas),
negative values count back from that (``-1`` = all), ``0`` is an error.
"""

import math
import os
import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from skcce import _kernel

# GNU OpenMP is not fork-safe: in a child forked after the parent ran a
# parallel region, a new parallel region can hang. Forked children therefore
# run the kernels single-threaded (results are identical for any thread count).
_IN_FORKED_CHILD = False


def _mark_forked_child():
    global _IN_FORKED_CHILD
    _IN_FORKED_CHILD = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)


def _cgroup_cpu_limit():
    """CPU limit from a cgroup quota (v2 or v1), or None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def usable_cpu_count():
    """Number of CPUs this process may use (affinity and cgroup quota).

    Returns
    -------
    n_cpus : int
    """
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS and Windows
        n_cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n_cpus = min(n_cpus, limit)
    return max(1, n_cpus)


def effective_n_threads(n_jobs):
    """Number of OpenMP threads to use for a given ``n_jobs``.

    Parameters
    ----------
    n_jobs : int or None
        ``None``: all usable cores, or ``OMP_NUM_THREADS`` when it is set.
        Negative: usable cores + 1 + n_jobs (at least 1). Positive: as given.

    Returns
    -------
    n_threads : int
        Always 1 for a build without OpenMP and in a forked child process.

    Raises
    ------
    ValueError
        If ``n_jobs == 0``.
    """
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 is invalid; use None, a positive or a negative int.")
    if not _kernel.openmp_enabled() or _IN_FORKED_CHILD:
        return 1
    if os.environ.get("OMP_NUM_THREADS"):
        max_threads = _kernel.omp_max_threads()
    else:
        max_threads = min(_kernel.omp_max_threads(), usable_cpu_count())
    if n_jobs is None:
        return max_threads
    if n_jobs < 0:
        return max(1, max_threads + 1 + n_jobs)
    return int(n_jobs)


_CONTROLLER = None
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER = None


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread: the kernels call GEMM from their own threads.

    The BLAS thread count is process-wide, so concurrent fits (from several
    Python threads) share one limit: the first to enter sets it, the last to
    leave restores the original setting. The threadpoolctl controller is built
    once (it inspects every loaded library, which is slow) and reused.
    """
    global _CONTROLLER, _BLAS_USERS, _BLAS_LIMITER
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            if _CONTROLLER is None:
                _CONTROLLER = ThreadpoolController()
            _BLAS_LIMITER = _CONTROLLER.limit(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                _BLAS_LIMITER.restore_original_limits()
                _BLAS_LIMITER = None
