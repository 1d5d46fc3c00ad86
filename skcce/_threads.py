"""Thread-count policy, BLAS thread limiting and fork safety.

``n_jobs`` follows scikit-learn's OpenMP policy: ``None`` means every usable
core (respecting ``OMP_NUM_THREADS``, CPU affinity and cgroup CPU quotas),
negative values count back from that (``-1`` = all), ``0`` is an error.
"""

import math
import numbers
import os
import threading
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

from skcce._kernels import reductions

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
        If ``n_jobs == 0`` or is not None nor an int.
    """
    # Non-integers were silently truncated by int() (n_jobs=1.5 -> 1) or failed
    # with a TypeError (a string); the estimator's parameter validation rejects
    # them, so do the same for the public functions that take n_jobs.
    if n_jobs is not None and not isinstance(n_jobs, numbers.Integral):
        raise ValueError(f"n_jobs must be None or an int; got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 is invalid; use None, a positive or a negative int.")
    if not reductions.openmp_enabled() or _IN_FORKED_CHILD:
        return 1
    if os.environ.get("OMP_NUM_THREADS"):
        max_threads = reductions.omp_max_threads()
    else:
        max_threads = min(reductions.omp_max_threads(), usable_cpu_count())
    if n_jobs is None:
        return max_threads
    if n_jobs < 0:
        return max(1, max_threads + 1 + n_jobs)
    return int(n_jobs)


_CONTROLLER = None
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER = None


def _release_openblas_control():
    """Give up threadpoolctl's OpenBLAS "controlling thread" after a change.

    threadpoolctl >= 3.8 lets only one Python thread (the first to change it,
    while it lives) set OpenBLAS's process-wide thread count, and releases it
    only when a limiter used as a ``with`` block exits. Our limit is entered
    and left by different threads (first in / last out), so without this the
    first thread that ever fitted kept control: later limits from any other
    thread -- skcce's own and the user's ``threadpool_limits`` -- were
    silently ignored. Only clears control held by the current thread.
    """
    openblas = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(openblas, "clear_controlling_thread", None)
    if clear is not None:
        clear()


# Nesting depth of single_threaded_blas in the current thread. After a fork
# only the forking thread survives, so the child's user count is its depth.
_BLAS_DEPTH = threading.local()


def _blas_after_fork_in_child():
    """Repair the shared BLAS limit in a child forked while fits were running.

    The child inherits the parent's user count and its BLAS limit of 1, but
    not the threads that held them: without this, their count never drops to
    zero in the child, so its BLAS stays single-threaded for good. The lock
    was taken before the fork (so the state is consistent) and is released.
    """
    global _BLAS_USERS, _BLAS_LIMITER
    _BLAS_USERS = getattr(_BLAS_DEPTH, "depth", 0)
    if _BLAS_USERS == 0 and _BLAS_LIMITER is not None:
        try:
            _BLAS_LIMITER.restore_original_limits()
            _release_openblas_control()
        finally:
            _BLAS_LIMITER = None
    _BLAS_LOCK.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_BLAS_LOCK.acquire,
        after_in_parent=_BLAS_LOCK.release,
        after_in_child=_blas_after_fork_in_child,
    )


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
            _release_openblas_control()
        _BLAS_USERS += 1
        _BLAS_DEPTH.depth = getattr(_BLAS_DEPTH, "depth", 0) + 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_DEPTH.depth -= 1
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                _BLAS_LIMITER.restore_original_limits()
                _release_openblas_control()
                _BLAS_LIMITER = None
