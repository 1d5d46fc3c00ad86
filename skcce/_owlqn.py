"""OWL-QN: orthant-wise limited-memory quasi-Newton for ``f(x) + sum_i w_i |x_i|``.

The method of Andrew and Gao (2007), "Scalable training of L1-regularized
log-linear models" (ICML), for a smooth convex ``f`` with its gradient and
non-negative weights ``w`` (``w_i = 0``: ``x_i`` is not penalized, e.g. an
intercept). Each iteration:

1. the *pseudo-gradient* ``pg``: the minimum-norm subgradient of the whole
   objective (``grad f + w sign(x)`` where ``x != 0``; at ``x_i = 0`` the
   one-sided derivative that descends, or 0 if neither does);
2. the L-BFGS direction ``d = -H pg`` of the smooth part's curvature pairs
   ``(s, y)``, ``y`` the change of ``grad f``, with the entries that
   disagree in sign with ``-pg`` set to 0 (penalized entries only);
3. a backtracking line search on the *projected* point
   ``x(a) = P(x + a d)``, where ``P`` zeroes the penalized entries that left
   the orthant of ``x`` (for ``x_i = 0``, that of ``-pg_i``), until the
   objective decreases by ``c1 pg . (x(a) - x)`` (Armijo);
4. optionally, an exact step the caller knows how to take without
   evaluating ``f`` (for the softmax: the shift of each feature's
   coefficients across classes that minimizes the penalty, see
   ``CrossEntropyObjective.class_shift``).

It stops as scipy's L-BFGS-B does in ``LogisticRegression``: when
``max |pg| <= tol`` (for ``w = 0`` the gradient's ``max`` norm, L-BFGS-B's
``gtol`` test), or when an iteration reduces the objective by at most
``ftol`` relative to its value. At a minimum, ``pg = 0``: for ``x_i != 0``,
``grad_i f + w_i sign(x_i) = 0``; for ``x_i = 0``, ``|grad_i f| <= w_i``.

Everything here is a fixed sequence of NumPy operations on the iterate, so a
deterministic ``fun`` gives a bitwise deterministic run.
"""

from collections import deque

import numpy as np

# Sufficient decrease of the Armijo test.
ARMIJO_C1 = 1e-4
# A backtracking step shrinks the step to between these fractions of it
# (the minimizer of the quadratic through the values, when within them).
_SHRINK_MIN, _SHRINK_MAX = 0.1, 0.5

CONVERGED_PG = "CONVERGENCE: NORM OF PSEUDO-GRADIENT <= TOL"
CONVERGED_F = "CONVERGENCE: REL_REDUCTION_OF_F_<=_FACTR*EPSMCH"
STOPPED_MAX_ITER = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
LINE_SEARCH_FAILED = "ABNORMAL_TERMINATION_IN_LNSRCH"


def pseudo_gradient(x, grad, weights):
    """The minimum-norm subgradient of ``f(x) + sum(weights * |x|)``.

    Parameters
    ----------
    x, grad, weights : ndarray of shape (n,)
        The point, ``grad f(x)`` and the non-negative L1 weights.

    Returns
    -------
    pg : ndarray of shape (n,)
    """
    # At 0 the subdifferential is [g - w, g + w]; its element of least
    # magnitude is g soft-thresholded by w (0 when neither side descends).
    at_zero = grad - np.clip(grad, -weights, weights)
    return np.where(x == 0, at_zero, grad + weights * np.sign(x))


def l1_norm(weights, x):
    """``sum(weights * |x|)``."""
    return float(np.dot(weights, np.abs(x)))


class OwlqnResult:
    """The end of an OWL-QN run.

    Attributes
    ----------
    x : ndarray
        The last accepted iterate.
    fun : float
        The objective (smooth part plus L1 term) at ``x``.
    grad : ndarray
        The smooth part's gradient at ``x``.
    pseudo_grad : ndarray
        The pseudo-gradient at ``x``.
    nit : int
        Iterations.
    status : int
        0 converged, 1 iteration limit, 2 line search failure.
    message : str
    """

    def __init__(self, x, fun, grad, pseudo_grad, nit, status, message):
        self.x, self.fun, self.grad, self.pseudo_grad = x, fun, grad, pseudo_grad
        self.nit, self.status, self.message = nit, status, message


def minimize_owlqn(fun, x0, weights, *, max_iter, tol, ftol, memory=10,
                   max_linesearch=50, callback=None, exact_step=None):
    """Minimize ``f(x) + sum(weights * |x|)`` with OWL-QN.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f(x), grad f(x))`` of the smooth part; ``f`` convex.
    x0 : ndarray of shape (n,)
        The start (not modified).
    weights : ndarray of shape (n,)
        Non-negative L1 weights; entries with weight 0 are smooth variables
        (no orthant constraint).
    max_iter : int
    tol : float
        Stop when ``max |pseudo-gradient| <= tol``.
    ftol : float
        Stop when an iteration reduces the objective by at most
        ``ftol * max(|F_old|, |F_new|, 1)``.
    memory : int, default=10
        Number of curvature pairs kept (scipy's L-BFGS-B default).
    max_linesearch : int, default=50
        Objective evaluations per line search.
    callback : callable, default=None
        ``callback(x, objective, max_abs_pseudo_gradient)`` after each iteration.
    exact_step : callable, default=None
        ``exact_step(x, f, grad) -> (x, f, grad)``: a move that does not
        increase the objective, with the smooth part and its gradient at the
        new point computed without calling ``fun`` (e.g. an exact
        minimization along directions where ``f - penalty`` is constant).
        Applied to the start and to each accepted point, before the
        curvature pair is formed (the pair stays a secant pair of ``f``).

    Returns
    -------
    result : OwlqnResult
    """
    weights = np.asarray(weights, dtype=np.float64)
    penalized = weights > 0
    x = np.array(x0, dtype=np.float64)
    f, grad = fun(x)
    if exact_step is not None:
        x, f, grad = exact_step(x, f, grad)
    objective = f + l1_norm(weights, x)
    pg = pseudo_gradient(x, grad, weights)
    pairs = deque(maxlen=memory)  # (s, y, 1 / s.y), oldest first
    nit = 0
    if max_abs(pg) <= tol:
        return OwlqnResult(x, objective, grad, pg, 0, 0, CONVERGED_PG)
    while True:
        if nit >= max_iter:
            return OwlqnResult(x, objective, grad, pg, nit, 1, STOPPED_MAX_ITER)
        direction = _direction(pg, pairs, penalized)
        slope = float(np.dot(pg, direction))
        if not slope < 0:  # not a descent direction: restart from steepest descent
            pairs.clear()
            direction = -pg
            slope = -float(np.dot(pg, pg))
        # Without curvature pairs, a first step of unit length (as L-BFGS-B).
        step = 1.0 if pairs else 1.0 / np.sqrt(-slope)
        found = _line_search(fun, x, objective, pg, direction, slope, step, weights,
                             penalized, max_linesearch)
        if found is None:
            if pairs:  # as L-BFGS-B: forget the curvature and try steepest descent
                pairs.clear()
                continue
            return OwlqnResult(x, objective, grad, pg, nit, 2, LINE_SEARCH_FAILED)
        x_new, f_new, grad_new, objective_new = found
        if exact_step is not None:
            x_new, f_new, grad_new = exact_step(x_new, f_new, grad_new)
            objective_new = f_new + l1_norm(weights, x_new)
        nit += 1
        s, y = x_new - x, grad_new - grad
        sy = float(np.dot(s, y))
        # Convex f: s.y >= 0; keep the pair only when it carries curvature.
        if sy > np.finfo(float).eps * float(np.dot(y, y)):
            pairs.append((s, y, 1.0 / sy))
        objective_old = objective
        x, f, grad, objective = x_new, f_new, grad_new, objective_new
        pg = pseudo_gradient(x, grad, weights)
        pg_norm = max_abs(pg)
        if callback is not None:
            callback(x, objective, pg_norm)
        scale = max(abs(objective_old), abs(objective), 1.0)
        if objective_old - objective <= ftol * scale:
            return OwlqnResult(x, objective, grad, pg, nit, 0, CONVERGED_F)
        if pg_norm <= tol:
            return OwlqnResult(x, objective, grad, pg, nit, 0, CONVERGED_PG)


def max_abs(v):
    return float(np.max(np.abs(v))) if v.size else 0.0


def _direction(pg, pairs, penalized):
    """``-H pg`` by the two-loop recursion, kept in the orthant of ``-pg``."""
    q = pg.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * float(np.dot(s, q))
        q -= alpha * y
        alphas.append(alpha)
    if pairs:
        s, y, rho = pairs[-1]
        q *= 1.0 / (rho * float(np.dot(y, y)))  # s.y / y.y
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        beta = rho * float(np.dot(y, q))
        q += (alpha - beta) * s
    direction = np.negative(q, out=q)
    # A penalized entry moves only the way its pseudo-gradient descends.
    direction[penalized & (direction * pg >= 0)] = 0.0
    return direction


def _line_search(fun, x, objective, pg, direction, slope, step, weights, penalized,
                 max_linesearch):
    """Backtracking on the projected point; ``(x, f, grad, objective)`` or None."""
    # The orthant the step must stay in: that of x, or of -pg where x is 0.
    orthant = np.sign(x)
    at_zero = x == 0
    orthant[at_zero] = -np.sign(pg[at_zero])
    for _ in range(max_linesearch):
        x_new = x + step * direction
        x_new[penalized & (np.sign(x_new) != orthant)] = 0.0
        f_new, grad_new = fun(x_new)
        objective_new = f_new + l1_norm(weights, x_new)
        decrease = float(np.dot(pg, x_new - x))
        if np.isfinite(objective_new) and objective_new <= objective + ARMIJO_C1 * decrease:
            return x_new, f_new, grad_new, objective_new
        step *= _shrink(objective, slope, step, objective_new)
    return None


def _shrink(objective, slope, step, objective_new):
    """Factor for the next trial step: the quadratic model's minimizer, safeguarded."""
    curvature = objective_new - objective - slope * step
    if not np.isfinite(objective_new) or curvature <= 0:
        return _SHRINK_MIN if not np.isfinite(objective_new) else _SHRINK_MAX
    factor = -slope * step / (2.0 * curvature)
    return min(max(factor, _SHRINK_MIN), _SHRINK_MAX)
