"""The fit core: one optimizer run on an objective, for every estimator and path.

:func:`run_lbfgs` is the only caller of :func:`scipy.optimize.minimize` in
skcce, and of its step-for-step counterpart :func:`skcce._lbfgs.minimize_lbfgs`
for models with many parameters. It holds BLAS to one thread (the kernels call GEMM from their own
threads), records the loss curve, prints progress, calls an ``on_iteration``
hook with the model-coordinate iterate, and turns scipy's result into the
iteration count, the final gradient norm and a convergence message worded
like scikit-learn's. :func:`run_owlqn` does the same with OWL-QN
(:mod:`skcce._owlqn`) for objectives with an L1 term, and :func:`run_solver`
chooses between them.

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

from skcce._lbfgs import minimize_lbfgs
from skcce._owlqn import max_abs, minimize_owlqn, pseudo_gradient
from skcce._precondition import rescaled
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


# OWL-QN works on sets of features (see _owlqn_working_sets) when there are
# at least this many; the first set adds this many to those in use.
WORKING_SET_MIN_FEATURES = 1000
WORKING_SET_INITIAL = 100
WORKING_SET_INITIAL_SHARE = 32  # ... or this fraction of all features, if more
# A run on a set that leaves features with pseudo-gradient v outside stops at
# this fraction of v (or at tol).
WORKING_SET_TOL_FRACTION = 0.1
# A set whose columns hold more than this share of X's entries (an evaluation
# on it would cost that share of a full one) gives way to the whole problem:
# the runs on sets, restarted, take more iterations than one run. A set that
# takes in every feature outside with a pseudo-gradient above tol is likely
# the last one, and may cost more.
WORKING_SET_MAX_COST = 0.25
WORKING_SET_MAX_COST_LAST = 0.5

# From this many parameters on, L-BFGS runs skcce._lbfgs, scipy's L-BFGS-B
# iteration without bounds, instead of scipy's (same iterates to rounding): at
# 10^5 parameters scipy's own work per iteration is 5 ms against 1.6 ms, at
# 10^6 94 against 42 ms, 70% of a sparse fit. Below, the fit is scipy's,
# bitwise.
LARGE_MODEL_PARAMS = 100_000

# scikit-learn's L-BFGS options (LogisticRegression): ftol and maxls.
FTOL = 64 * np.finfo(float).eps
MAX_LINE_SEARCH = 50

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
        coefficients (what LogisticRegression compares with ``tol``); with an
        L1 term, of the pseudo-gradient in the optimizer's coordinates (what
        OWL-QN compared with ``tol``); None if not requested.
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

    From :data:`LARGE_MODEL_PARAMS` parameters on, with
    :func:`skcce._lbfgs.minimize_lbfgs`, the same iteration.

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
            result = _minimize(recorder, start, max_iter, 0.0 if own_test else tol,
                               _threads_of(problem))
        gradient_norm = recorder.gradient_norm_at(result.x) if final_gradient_norm else None
    n_iter, failure = _convergence_failure(result, max_iter, recorder.converged)
    params = problem.from_internal(result.x)
    check_finite_model(params)
    return LbfgsResult(
        params=params, n_iter=n_iter,
        loss_curve=list(recorder.loss_curve), final_gradient_norm=gradient_norm,
        failure=failure,
    )


def _threads_of(problem):
    """The problem's thread count (1 for a problem without one)."""
    return int(getattr(problem, "n_threads", 1))


def _minimize(recorder, start, max_iter, gtol, n_threads):
    """L-BFGS-B (or its counterpart for large models) with scikit-learn's options."""
    if start.size >= LARGE_MODEL_PARAMS:
        return minimize_lbfgs(recorder.loss_gradient, start, max_iter=max_iter, gtol=gtol,
                              ftol=FTOL, maxls=MAX_LINE_SEARCH, callback=recorder.callback,
                              n_threads=n_threads)
    return optimize.minimize(
        recorder.loss_gradient, start, method="L-BFGS-B", jac=True,
        options={"maxiter": max_iter, "maxls": MAX_LINE_SEARCH, "gtol": gtol, "ftol": FTOL},
        callback=recorder.callback,
    )


def run_owlqn(problem, params0, l1_weights, *, max_iter, tol, verbose=0,
              on_iteration=None, final_gradient_norm=True):
    """Minimize ``problem`` plus a weighted L1 norm with OWL-QN.

    The counterpart of :func:`run_lbfgs` for ``f(W) + sum(l1_weights * |W|)``,
    with the same options, hook and result; the stopping quantity is the
    pseudo-gradient (the minimum-norm subgradient), in the optimizer's
    coordinates. After each step the objective's ``class_shift`` is applied
    exactly; with :data:`WORKING_SET_MIN_FEATURES` features or more (and a
    data term that can select columns), OWL-QN runs on working sets of
    features (:func:`_owlqn_working_sets`).

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

    Raises
    ------
    NonFiniteModelError
        If the solution is not finite.
    """
    recorder = _IterationRecorder(problem, verbose=verbose, on_iteration=on_iteration)
    objective = problem.objective
    with single_threaded_blas():
        if (getattr(objective, "can_restrict", False)
                and objective.layout.n_features >= WORKING_SET_MIN_FEATURES):
            params, nit, status, message, pg_norm = _owlqn_working_sets(
                problem, params0, l1_weights, recorder, max_iter, tol)
        else:
            result = _owlqn(problem, problem.to_internal(params0), l1_weights, recorder,
                            max_iter, tol)
            params, nit, status, message = (problem.from_internal(result.x), result.nit,
                                            result.status, result.message)
            pg_norm = max_abs(result.pseudo_grad)
    n_iter, failure = _failure_message("OWL-QN", nit, status, message, max_iter)
    check_finite_model(params)
    return LbfgsResult(
        params=params, n_iter=n_iter, loss_curve=list(recorder.loss_curve),
        final_gradient_norm=pg_norm if final_gradient_norm else None, failure=failure,
    )


def _owlqn(problem, internal0, l1_weights, recorder, max_iter, tol, to_model=None):
    """One OWL-QN run on ``problem`` from ``internal0``; the :class:`OwlqnResult`.

    ``to_model`` maps the optimizer's iterate to the model's flat parameters
    handed to the hook (default ``problem.from_internal``).
    """
    # The rescaling is diagonal and positive, W = V * c, so the L1 term
    # sum(l * |W|) is sum((l * c) * |V|): the optimizer's weights are l * c,
    # which is what from_internal makes of l (gradients map the same way).
    weights = problem.from_internal(np.asarray(l1_weights, dtype=np.float64))

    def record(internal, loss, norm):
        recorder.record(internal, loss, norm, to_model=to_model)

    return minimize_owlqn(
        problem.loss_gradient, internal0, weights, max_iter=max_iter, tol=tol,
        ftol=FTOL, max_linesearch=MAX_LINE_SEARCH, callback=record,
        exact_step=_class_shift_step(problem),
    )


def _owlqn_working_sets(problem, params0, l1_weights, recorder, max_iter, tol):
    """OWL-QN on growing sets of features, each solution checked on all features.

    An L1 model often uses a small fraction of the features, and an
    evaluation on the columns of those features costs that fraction of a
    pass over X. Starting from the features in use at ``params0`` plus those
    whose coefficients' pseudo-gradients are largest (at least
    :data:`WORKING_SET_INITIAL`, or a :data:`WORKING_SET_INITIAL_SHARE`-th of
    all features), OWL-QN solves the problem on the working set (the others
    held at 0); one pass over all of X then computes every pseudo-gradient. If
    none outside the set exceeds ``tol``, the solution is the whole problem's
    (its optimality conditions hold to ``tol`` everywhere); otherwise the
    worst offenders are added, at least doubling the set, and OWL-QN goes on
    from the current solution. A run that leaves offenders outside stops at
    :data:`WORKING_SET_TOL_FRACTION` of the largest of them (the set will
    change anyway), the others at ``tol``. A set whose columns hold more than
    :data:`WORKING_SET_MAX_COST` of X's entries
    (:data:`WORKING_SET_MAX_COST_LAST` if it takes in every offender) gives
    way to the whole problem. The iterations of all runs count towards
    ``max_iter`` and make one loss curve.

    Returns
    -------
    params, nit, status, message, pseudo_gradient_norm
    """
    objective = problem.objective
    layout = objective.layout
    n_features = layout.n_features
    weights = problem.from_internal(np.asarray(l1_weights, dtype=np.float64))
    params = np.array(params0, dtype=np.float64)
    working = np.flatnonzero(np.any(layout.weights_t(params) != 0, axis=1))
    nit, status, message, round_tol = 0, 0, None, tol
    sub_problem = sub_working = None
    while True:
        # Every pseudo-gradient at the current solution: one pass over X.
        internal = problem.to_internal(params)
        _, grad = problem.loss_gradient(internal)
        pseudo_grad = pseudo_gradient(internal, grad, weights)
        if message is not None and status != 0:
            return params, nit, status, message, max_abs(pseudo_grad)
        violation = np.max(np.abs(layout.weights_t(pseudo_grad)), axis=1)
        violation[working] = 0.0
        outside = np.flatnonzero(violation > tol)
        if message is not None and outside.size == 0 and round_tol <= tol:
            return params, nit, status, message, max_abs(pseudo_grad)
        # The worst offenders first (a stable order: ties by feature index).
        worst = outside[np.argsort(-violation[outside], kind="stable")]
        n_new = max(WORKING_SET_INITIAL, n_features // WORKING_SET_INITIAL_SHARE,
                    working.size)
        working = np.union1d(working, worst[:n_new])
        # While features still wait outside, the set will change again: solve
        # only as far as their pull, to tol once they are all in.
        waiting = violation[worst[n_new]] if worst.size > n_new else 0.0
        round_tol = max(tol, WORKING_SET_TOL_FRACTION * waiting)
        max_cost = WORKING_SET_MAX_COST_LAST if waiting == 0 else WORKING_SET_MAX_COST
        if (working.size == 0 or nit >= max_iter
                or objective.restriction_cost(working) > max_cost):
            # The whole problem (also: nothing to add, or no iterations left).
            result = _owlqn(problem, internal, l1_weights, recorder, max_iter - nit, tol)
            return (problem.from_internal(result.x), nit + result.nit, result.status,
                    result.message, max_abs(result.pseudo_grad))
        if sub_problem is None or not np.array_equal(working, sub_working):
            sub_problem, sub_working = rescaled(objective.restricted(working)), working
        result = _owlqn(
            sub_problem, sub_problem.to_internal(_restrict(layout, params, working)),
            sub_problem.objective.l1_weights(), recorder, max_iter - nit, round_tol,
            to_model=lambda x, sub=sub_problem, rows=working: _embed(
                layout, sub.from_internal(x), rows),
        )
        params = _embed(layout, sub_problem.from_internal(result.x), working)
        nit += result.nit
        status, message = result.status, result.message


def _restrict(layout, params, features):
    """The flat parameters of the features ``features`` (and the intercepts)."""
    rows = layout.transposed(params)
    keep = np.append(features, layout.n_features) if layout.fit_intercept else features
    return rows[keep].ravel()


def _embed(layout, sub_params, features):
    """Full flat parameters from those of ``features``; the other features' are 0."""
    params = np.zeros(layout.n_params)
    rows = layout.transposed(params)
    sub_rows = sub_params.reshape(-1, layout.n_classes)
    rows[features] = sub_rows[:len(features)]
    if layout.fit_intercept:
        rows[layout.n_features] = sub_rows[-1]
    return params



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


def _convergence_failure(result, max_iter, converged=False):
    """Iteration count and a ConvergenceWarning message (None if converged).

    ``converged``: the iteration test of a rescaled problem stopped L-BFGS
    (scipy then reports a halt by the callback, status 99 or 2).
    """
    status = 0 if converged else result.status
    return _failure_message("lbfgs", result.nit, status, result.message, max_iter)


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
    its gradient is taken from the cache. With ``tol``, the callback stops
    L-BFGS (StopIteration) once the iterate passes :meth:`converged_at`.
    OWL-QN calls :meth:`record` with its pseudo-gradient's norm. Iterates
    handed to ``on_iteration`` are in the model's coordinates.
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
        """scipy's callback: the accepted iterate ``intermediate_result.x``."""
        x = intermediate_result.x
        norm = self.gradient_norm_at(x) if self.verbose else None
        self.record(x, intermediate_result.fun, norm, label="max|grad|")
        if self.tol is not None and self.converged_at(x):
            self.converged = True
            raise StopIteration

    def record(self, internal, loss, gradient_norm, label="max|pg|", to_model=None):
        """Record one iteration: loss curve, progress line, hook.

        ``to_model`` maps ``internal`` to the model's flat parameters (default
        ``problem.from_internal``); it is called only when there is a hook.
        """
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
            self.on_iteration((to_model or self.problem.from_internal)(internal))
