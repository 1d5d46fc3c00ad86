"""Side-by-side timing: contenders run round-robin, so machine noise hits all alike."""

import time

import numpy as np
import scipy.sparse as sp

# What a library raises when it does not accept sparse input (scikit-learn's
# validation raises TypeError; others raise the rest).
SPARSE_REJECTIONS = (TypeError, ValueError, NotImplementedError, RuntimeError)


def keep_supported(calls, X):
    """Run each call once; set aside those that reject sparse X.

    Parameters
    ----------
    calls : dict of str to callable
        Zero-argument callables.
    X : ndarray or sparse matrix
        The data the calls use. Errors on dense data propagate: they are bugs.

    Returns
    -------
    supported : dict of str to callable
        The calls that ran.
    first_results : dict of str to object
        What each supported call returned on its first run.
    unsupported : dict of str to str
        Name to ``"ExceptionType: message"`` for the calls that raised.
    """
    supported, first_results, unsupported = {}, {}, {}
    for name, call in calls.items():
        try:
            first_results[name] = call()
        except SPARSE_REJECTIONS as error:
            if not sp.issparse(X):
                raise
            unsupported[name] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        else:
            supported[name] = call
    return supported, first_results, unsupported


def interleaved_times(calls, rounds, warmup_rounds=1, pause=0.0, rewarm=False):
    """Wall times of each call over ``rounds`` round-robin rounds.

    Every round runs each call once, in the same order; the first
    ``warmup_rounds`` rounds are not timed. A pause before each call lets the
    previous contender's idle threads stop spinning (OpenBLAS and OpenMP
    workers busy-wait for a while after their work), so they do not take
    cores from the next one. With ``rewarm``, each timed call follows an
    untimed one of the same contender: after the pause a contender's own
    threads (and an idle virtual CPU) wake slowly, which costs a short
    evaluation milliseconds that it never pays inside a fit, where
    evaluations follow each other.

    Parameters
    ----------
    calls : dict of str to callable
    rounds : int
    warmup_rounds : int, default=1
    pause : float, default=0.0
        Seconds to sleep before each call (not timed).
    rewarm : bool, default=False
        Run each call once, untimed, right before each of its timed runs.

    Returns
    -------
    times : dict of str to list of float
        Seconds per run, in run order.
    last_results : dict of str to object
        What each call returned on its last run.
    """
    times = {name: [] for name in calls}
    last_results = {}
    for round_index in range(warmup_rounds + rounds):
        for name, call in calls.items():
            time.sleep(pause)
            if rewarm:
                call()
            start = time.perf_counter()
            last_results[name] = call()
            elapsed = time.perf_counter() - start
            if round_index >= warmup_rounds:
                times[name].append(elapsed)
    return times, last_results


def median(times):
    """Median of a list of seconds, as a float."""
    return float(np.median(times))
