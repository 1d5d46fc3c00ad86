"""The fit core: one L-BFGS run on an objective, for every estimator and path.

:func:`run_lbfgs` is the only caller of :func:`scipy.optimize.minimize` in
skcce. It holds BLAS to one thread (the kernels call GEMM from their own
threads), records the loss curve, prints progress, calls an ``on_iteration``
hook with the model-coordinate iterate, and turns scipy's result into the
iteration count, the final gradient norm and a convergence message worded
like scikit-learn's.

``tol`` is tested, as in LogisticRegression, on the gradient with respect to
the model's coefficients. When the optimizer works on rescaled coefficients
(:mod:`skcce._precondition`), it is tested on that gradient as well, so the
fit stops neither before LogisticRegression's test is met nor before the
rescaled gradient is small: scipy's own test then sees only the rescaled
gradient and is replaced by a test after each iteration.

A run that ends with a non-finite solution raises :class:`NonFiniteModelError`
instead of returning it.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from sklearn.exceptions import ConvergenceWarning

from skcce._threads import single_threaded_blas


class NonFiniteModelError(ValueError):
    """A fit ended with NaN or infinite coefficients; the model is not returned."""

    def __init__(self, detail=""):
        super().__init__(
            "The fit ended with a non-finite model (NaN or infinite coefficients), "
            "which is not returned" + (f": {detail}" if detail else "") + ". Features, "
            "sample weights or C near the limits of the floating-point range can "
            "cause this; standardizing the features (for instance with "
            "sklearn.preprocessing.StandardScaler) avoids it."
        )


def check_finite_model(params, detail=""):
    """Raise :class:`NonFiniteModelError` if ``params`` holds NaN or infinity."""
    if not np.all(np.isfinite(params)):
        raise NonFiniteModelError(detail)


def check_finite_attributes(fitted):
    """Raise :class:`NonFiniteModelError` if ``coef_`` or ``intercept_`` is not finite.

    The fitted attributes have X's dtype: float64 coefficients that are
    finite can still overflow float32.
    """
    for name in ("coef_", "intercept_"):
        values = fitted[name]
        if not np.all(np.isfinite(values)):
            raise NonFiniteModelError(
                f"{name} overflows {values.dtype} (the dtype of X)"
                if values.dtype != np.float64 else "")

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
        max |gradient| at the solution with respect to the model's
        coefficients (what LogisticRegression compares with ``tol``); None if
        not requested.
    failure : str or None
        The ConvergenceWarning message, None if L-BFGS converged.
    """

    params: np.ndarray
    n_iter: int
    loss_curve: list = field(default_factory=list)
    final_gradient_norm: float = None
    failure: str = None

    def warn_if_not_converged(self, prefix="", stacklevel=2):
        """Emit the ConvergenceWarning (prefixed) if L-BFGS did not converge."""
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
        ``to_internal``, ``from_internal``, ``model_gradient`` and
        ``rescaled`` (see :func:`skcce._precondition.rescaled`).
    params0 : ndarray
        The start, in the model's coordinates.
    max_iter : int
    tol : float
        Stop when max |gradient| <= tol, with respect to the model's
        coefficients and, if rescaled, to the optimizer's coordinates too
        (``ftol`` is 64 machine epsilons and ``maxls`` 50, as in
        ``LogisticRegression``).
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

    Raises
    ------
    NonFiniteModelError
        If the solution is not finite.
    """
    # Rescaled problems: scipy's gtol would test the rescaled gradient alone.
    own_test = problem.rescaled
    recorder = _IterationRecorder(problem, verbose=verbose, on_iteration=on_iteration,
                                  tol=tol if own_test else None)
    start = problem.to_internal(params0)
    with single_threaded_blas():
        if own_test and recorder.converged_at(start):
            # scipy stops before the first iteration when the start passes its test.
            result = optimize.OptimizeResult(x=start, nit=0, status=0, message="")
        else:
            result = optimize.minimize(
                recorder.loss_gradient,
                start,
                method="L-BFGS-B",
                jac=True,
                options={
                    "maxiter": max_iter,
                    "maxls": 50,
                    "gtol": 0.0 if own_test else tol,
                    "ftol": 64 * np.finfo(float).eps,
                },
                callback=recorder.callback,
            )
        gradient_norm = recorder.gradient_norm_at(result.x) if final_gradient_norm else None
    n_iter, failure = _convergence_failure(result, max_iter, recorder.converged)
    params = problem.from_internal(result.x)
    check_finite_model(params)
    return LbfgsResult(
        params=params, n_iter=n_iter,
        loss_curve=list(recorder.loss_curve), final_gradient_norm=gradient_norm,
        failure=failure,
    )


def _convergence_failure(result, max_iter, converged=False):
    """Iteration count and a ConvergenceWarning message (None if converged).

    ``converged``: the iteration test of a rescaled problem stopped L-BFGS
    (scipy then reports a halt by the callback, status 99 or 2).
    """
    n_iter = min(int(result.nit), max_iter)
    if result.status == 0 or converged:
        return n_iter, None
    message = result.message
    if isinstance(message, bytes):
        message = message.decode("latin1")
    warning = (
        f"lbfgs failed to converge after {n_iter} iteration(s) "
        f"(status={result.status}):\n{message}\n"
    )
    if n_iter == max_iter:
        warning += (
            "\nIncrease the number of iterations to improve the "
            f"convergence (max_iter={max_iter})."
        )
    return n_iter, warning + _SCALING_HINT


class _IterationRecorder:
    """Wraps the objective for L-BFGS: records the loss curve, prints progress.

    scipy calls ``callback`` after each iteration with the accepted iterate,
    which is the last point evaluated; its gradient is taken from the cache.
    Iterates handed to ``on_iteration`` are in the model's coordinates. With
    ``tol``, the callback stops L-BFGS (StopIteration) once the iterate
    passes :meth:`converged_at`.
    """

    def __init__(self, problem, verbose=0, on_iteration=None, tol=None):
        self.problem = problem
        self.verbose = verbose
        self.on_iteration = on_iteration
        self.tol = tol
        self.converged = False
        self.loss_curve = []
        self._last = None  # (internal params, loss, internal grad) of the last evaluation
        self._start = time.perf_counter()

    def loss_gradient(self, internal):
        if self._last is not None and np.array_equal(self._last[0], internal):
            return self._last[1], self._last[2].copy()
        loss, grad = self.problem.loss_gradient(internal)
        self._last = (internal.copy(), loss, grad)
        return loss, grad

    def _internal_gradient(self, internal):
        if self._last is None or not np.array_equal(self._last[0], internal):
            self.loss_gradient(internal)
        return self._last[2]

    def gradient_norm_at(self, internal):
        """max |gradient| with respect to the model's coefficients."""
        grad = self.problem.model_gradient(self._internal_gradient(internal))
        return float(np.max(np.abs(grad))) if grad.size else 0.0

    def converged_at(self, internal):
        """Whether both gradients at ``internal`` are <= tol (rescaled problems)."""
        grad = self._internal_gradient(internal)
        if grad.size == 0:
            return True
        return (float(np.max(np.abs(grad))) <= self.tol
                and self.gradient_norm_at(internal) <= self.tol)

    def callback(self, intermediate_result):
        loss = float(intermediate_result.fun)
        self.loss_curve.append(loss)
        if self.verbose:
            print(
                f"iter {len(self.loss_curve):5d}  objective {loss:.12e}  "
                f"max|grad| {self.gradient_norm_at(intermediate_result.x):.3e}  "
                f"elapsed {time.perf_counter() - self._start:.3f}s",
                flush=True,
            )
        if self.on_iteration is not None:
            self.on_iteration(self.problem.from_internal(intermediate_result.x))
        if self.tol is not None and self.converged_at(intermediate_result.x):
            self.converged = True
            raise StopIteration
