"""The fit core: one optimizer run on an objective, for every estimator and path.

:func:`run_lbfgs` is the only caller of :func:`scipy.optimize.minimize` in
skcce. It holds BLAS to one thread (the kernels call GEMM from their own
threads), records the loss curve, prints progress, calls an ``on_iteration``
hook with the model-coordinate iterate, and turns scipy's result into the
iteration count, the final gradient norm and a convergence message worded
like scikit-learn's. :func:`run_owlqn` does the same with OWL-QN
(:mod:`skcce._owlqn`) for objectives with an L1 term, and :func:`run_solver`
chooses between them.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from sklearn.exceptions import ConvergenceWarning

from skcce._owlqn import minimize_owlqn
from skcce._threads import single_threaded_blas

_SCALING_HINT = (
    "\nYou might also want to scale the data as shown in:\n"
    "    https://scikit-learn.org/stable/modules/preprocessing.html"
)


@dataclass
class LbfgsResult:
    """What one L-BFGS run produced.

    Attributes
    ----------
    params : ndarray
        The solution, in the model's coordinates (flat layout).
    n_iter : int
        Iterations, at most ``max_iter``.
    loss_curve : list of float
        Objective after each iteration.
    final_gradient_norm : float or None
        max |gradient| at the solution in the optimizer's coordinates (what
        was compared with ``tol``; with an L1 term, of the pseudo-gradient);
        None if not requested.
    failure : str or None
        The ConvergenceWarning message, None if the optimizer converged.
    """

    params: np.ndarray
    n_iter: int
    loss_curve: list = field(default_factory=list)
    final_gradient_norm: float = None
    failure: str = None

    def warn_if_not_converged(self, prefix="", stacklevel=2):
        """Emit the ConvergenceWarning (prefixed) if the optimizer did not converge."""
        if self.failure is not None:
            warnings.warn(prefix + self.failure, ConvergenceWarning,
                          stacklevel=stacklevel + 1)


def run_lbfgs(problem, params0, *, max_iter, tol, verbose=0, on_iteration=None,
              final_gradient_norm=True):
    """Minimize ``problem`` with scipy's L-BFGS-B and scikit-learn's options.

    Parameters
    ----------
    problem : object
        The objective in the optimizer's coordinates: ``loss_gradient``,
        ``to_internal`` and ``from_internal`` (see
        :func:`skcce._precondition.rescaled`).
    params0 : ndarray
        The start, in the model's coordinates.
    max_iter : int
    tol : float
        ``gtol``: stop when max |gradient| <= tol (``ftol`` is 64 machine
        epsilons and ``maxls`` 50, as in ``LogisticRegression``).
    verbose : int, default=0
        If > 0, print one line per iteration.
    on_iteration : callable, default=None
        Called after each iteration with the iterate in model coordinates.
    final_gradient_norm : bool, default=True
        Whether to report the gradient norm at the solution (free when the
        solution was the last point evaluated, else one more evaluation).

    Returns
    -------
    result : LbfgsResult
    """
    recorder = _IterationRecorder(problem, verbose=verbose, on_iteration=on_iteration)
    with single_threaded_blas():
        result = optimize.minimize(
            recorder.loss_gradient,
            problem.to_internal(params0),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": max_iter,
                "maxls": 50,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
            },
            callback=recorder.callback,
        )
        gradient_norm = recorder.gradient_norm_at(result.x) if final_gradient_norm else None
    n_iter, failure = _convergence_failure(result, max_iter)
    return LbfgsResult(
        params=problem.from_internal(result.x), n_iter=n_iter,
        loss_curve=list(recorder.loss_curve), final_gradient_norm=gradient_norm,
        failure=failure,
    )


def run_owlqn(problem, params0, l1_weights, *, max_iter, tol, verbose=0,
              on_iteration=None, final_gradient_norm=True):
    """Minimize ``problem`` plus a weighted L1 norm with OWL-QN.

    The counterpart of :func:`run_lbfgs` for ``f(W) + sum(l1_weights * |W|)``,
    with the same options, hook and result; the stopping quantity is the
    pseudo-gradient (the minimum-norm subgradient), in the optimizer's
    coordinates.

    Parameters
    ----------
    problem : object
        The smooth part in the optimizer's coordinates, as for
        :func:`run_lbfgs`.
    params0 : ndarray
        The start, in the model's coordinates.
    l1_weights : ndarray
        Non-negative weight of ``|w|`` per entry of the model's flat
        parameters (0: not penalized).
    max_iter : int
    tol : float
        Stop when max |pseudo-gradient| <= tol, or when an iteration reduces
        the objective by at most 64 machine epsilons relative to its value.
    verbose, on_iteration, final_gradient_norm
        As for :func:`run_lbfgs` (the norm is always free here).

    Returns
    -------
    result : LbfgsResult
        ``loss_curve`` holds the whole objective, L1 term included.
    """
    # The rescaling is diagonal and positive, W = V * c, so the L1 term
    # sum(l * |W|) is sum((l * c) * |V|): the optimizer's weights are l * c,
    # which is what from_internal makes of l (gradients map the same way).
    weights = problem.from_internal(np.asarray(l1_weights, dtype=np.float64))
    recorder = _IterationRecorder(problem, verbose=verbose, on_iteration=on_iteration)
    with single_threaded_blas():
        result = minimize_owlqn(
            problem.loss_gradient, problem.to_internal(params0), weights,
            max_iter=max_iter, tol=tol, ftol=64 * np.finfo(float).eps, max_linesearch=50,
            callback=recorder.record, exact_step=_class_shift_step(problem),
        )
    pg_norm = float(np.max(np.abs(result.pseudo_grad))) if result.pseudo_grad.size else 0.0
    n_iter, failure = _failure_message("OWL-QN", result.nit, result.status,
                                       result.message, max_iter)
    return LbfgsResult(
        params=problem.from_internal(result.x), n_iter=n_iter,
        loss_curve=list(recorder.loss_curve),
        final_gradient_norm=pg_norm if final_gradient_norm else None,
        failure=failure,
    )


def _class_shift_step(problem):
    """OWL-QN's exact step: the objective's ``class_shift``, in the optimizer's coordinates."""
    objective = problem.objective

    def step(internal, loss, grad):
        shift, loss_change, grad_change = objective.class_shift(
            problem.from_internal(internal))
        if shift is None:
            return internal, loss, grad
        return (internal + problem.to_internal(shift), loss + loss_change,
                grad + problem.from_internal(grad_change))

    return step


def run_solver(problem, params0, *, l1_weights=None, **options):
    """:func:`run_owlqn` when there are L1 weights, else :func:`run_lbfgs`.

    Parameters
    ----------
    problem, params0
        As for :func:`run_lbfgs`.
    l1_weights : ndarray or None, default=None
        The objective's ``l1_weights()``: None for a smooth objective.
    **options
        ``max_iter``, ``tol``, ``verbose``, ``on_iteration``,
        ``final_gradient_norm``.

    Returns
    -------
    result : LbfgsResult
    """
    if l1_weights is None:
        return run_lbfgs(problem, params0, **options)
    return run_owlqn(problem, params0, l1_weights, **options)


def _convergence_failure(result, max_iter):
    """Iteration count and a ConvergenceWarning message (None if converged)."""
    return _failure_message("lbfgs", result.nit, result.status, result.message, max_iter)


def _failure_message(solver, nit, status, message, max_iter):
    """Iteration count and the ConvergenceWarning message of a run (None if converged)."""
    n_iter = min(int(nit), max_iter)
    if status == 0:
        return n_iter, None
    if isinstance(message, bytes):
        message = message.decode("latin1")
    warning = (
        f"{solver} failed to converge after {n_iter} iteration(s) "
        f"(status={status}):\n{message}\n"
    )
    if n_iter == max_iter:
        warning += (
            "\nIncrease the number of iterations to improve the "
            f"convergence (max_iter={max_iter})."
        )
    return n_iter, warning + _SCALING_HINT


class _IterationRecorder:
    """Records the loss curve, prints progress and calls the hook per iteration.

    For L-BFGS it wraps the objective: scipy calls ``callback`` after each
    iteration with the accepted iterate, which is the last point evaluated;
    its gradient is taken from the cache. OWL-QN calls :meth:`record` with its
    pseudo-gradient's norm. Iterates handed to ``on_iteration`` are in the
    model's coordinates.
    """

    def __init__(self, problem, verbose=0, on_iteration=None):
        self.problem = problem
        self.verbose = verbose
        self.on_iteration = on_iteration
        self.loss_curve = []
        self._last = None  # (internal params, loss, internal grad) of the last evaluation
        self._start = time.perf_counter()

    def loss_gradient(self, internal):
        loss, grad = self.problem.loss_gradient(internal)
        self._last = (internal.copy(), loss, grad)
        return loss, grad

    def gradient_norm_at(self, internal):
        """max |gradient| in the optimizer's coordinates: what L-BFGS compares with tol."""
        if self._last is not None and np.array_equal(self._last[0], internal):
            grad = self._last[2]
        else:
            grad = self.problem.loss_gradient(internal)[1]
        return float(np.max(np.abs(grad))) if grad.size else 0.0

    def callback(self, intermediate_result):
        """scipy's callback: the accepted iterate ``intermediate_result.x``."""
        x = intermediate_result.x
        norm = self.gradient_norm_at(x) if self.verbose else None
        self.record(x, intermediate_result.fun, norm, label="max|grad|")

    def record(self, internal, loss, gradient_norm, label="max|pg|"):
        """Record one iteration: loss curve, progress line, hook."""
        loss = float(loss)
        self.loss_curve.append(loss)
        if self.verbose:
            print(
                f"iter {len(self.loss_curve):5d}  objective {loss:.12e}  "
                f"{label} {gradient_norm:.3e}  "
                f"elapsed {time.perf_counter() - self._start:.3f}s",
                flush=True,
            )
        if self.on_iteration is not None:
            self.on_iteration(self.problem.from_internal(internal))
