"""L-BFGS for unconstrained problems with many parameters: scipy's L-BFGS-B, step for step.

:func:`minimize_lbfgs` is the iteration of scipy's L-BFGS-B when no variable
has a bound (the case of every smooth skcce fit), with the same rules and
constants:

- the direction is ``-H g``, ``H`` the inverse of the L-BFGS matrix of the
  last ``memory`` pairs ``(s, y)`` with initial scaling ``s'y / y'y`` of the
  newest pair (L-BFGS-B's ``B0 = theta I``), or ``-g`` when no pair is stored;
- the line search is Moré and Thuente's (1994) with L-BFGS-B's constants
  (sufficient decrease 1e-3, curvature 0.9, interval tolerance 0.1), the
  first trial step ``1 / ||d||`` on the first iteration and 1 afterwards, at
  most ``maxls`` evaluations; a failed search restores the previous iterate
  and restarts from steepest descent, or ends the run if it was one already;
- a pair is skipped when ``s'y <= eps * (-s'g_old)``;
- the run stops when ``max |g| <= gtol``, when an iteration reduces ``f`` by
  at most ``ftol * max(|f_old|, |f|, 1)``, after ``max_iter`` iterations, or
  after more than ``maxfun`` evaluations; ``callback`` is called after each
  iteration and may raise StopIteration to halt.

Only the direction's arithmetic differs: L-BFGS-B solves with the compact
form of ``B`` over the free variables, in scalar loops that cost about 60 ns
per parameter and iteration (measured at a million parameters: 70% of a
sparse fit); here it is the two-loop recursion, each pass over the vector
fusing one update with the next dot product, half
that in one thread, and its passes run in threads (over fixed blocks: the
result does not depend on their number). In exact arithmetic the iterates
are the same; in floating point they agree to rounding (tests compare both).
"""

import numpy as np
from scipy.linalg import blas
from scipy.optimize import OptimizeResult

from skcce._kernels.reductions import lbfgs_direction
from skcce._owlqn import max_abs

# L-BFGS-B's line search constants and largest step without bounds.
_SUFFICIENT_DECREASE = 1e-3
_CURVATURE = 0.9
_INTERVAL_TOL = 0.1
_MAX_STEP = 1e10

_EPS = np.finfo(np.float64).eps

CONVERGED_GRADIENT = "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"
CONVERGED_F = "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"
STOPPED_MAX_ITER = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
STOPPED_MAX_FUN = "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT"
# (scipy.optimize.minimize reports a halt by the callback so)
STOPPED_CALLBACK = "`callback` raised `StopIteration`."
ABNORMAL = "ABNORMAL: "


def minimize_lbfgs(fun, x0, *, max_iter, gtol, ftol, maxls=50, memory=10, maxfun=15000,
                   callback=None, n_threads=1):
    """Minimize ``fun`` from ``x0`` as scipy's L-BFGS-B does without bounds.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, grad)`` for a float64 vector ``x`` (which it must not
        change), with a gradient array of its own (kept, not copied).
    x0 : ndarray of shape (n,)
    max_iter : int
        Most iterations (scipy's ``maxiter``).
    gtol : float
        Stop when ``max |grad| <= gtol``.
    ftol : float
        Stop when an iteration reduces ``f`` by at most ``ftol`` relative to
        ``max(|f_old|, |f|, 1)``.
    maxls : int, default=50
        Most evaluations per line search.
    memory : int, default=10
        Pairs kept (scipy's ``maxcor``).
    maxfun : int, default=15000
        Stop after an iteration that brings the evaluations above this.
    callback : callable, default=None
        Called after each iteration with ``OptimizeResult(x=x, fun=f)``; may
        raise StopIteration to stop the run.
    n_threads : int, default=1
        Threads of the direction's passes; the result does not depend on it.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac``, ``nit``, ``nfev``, ``status`` (0 converged,
        1 iteration or evaluation limit, 99 halted by the callback, 2
        otherwise), ``success`` and ``message``, as
        scipy's ``minimize`` with ``method="L-BFGS-B"`` reports them.
    """
    if maxls <= 0:
        raise ValueError("maxls must be positive.")
    x = np.array(x0, dtype=np.float64)
    n = x.shape[0]
    evaluations = [0]

    def evaluate(point):
        evaluations[0] += 1
        f, g = fun(point)
        return float(f), np.asarray(g, dtype=np.float64)

    f, g = evaluate(x)
    memory_pairs = _Pairs(n, memory, n_threads)
    n_iter = 0
    if max_abs(g) <= gtol:
        return _result(x, f, g, n_iter, evaluations[0], 0, CONVERGED_GRADIENT)
    while True:
        f_old, g_old = f, g
        d = memory_pairs.direction(g)
        if n_iter == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                first_step = np.fmin(1.0 / np.float64(blas.dnrm2(d)), _MAX_STEP)
        else:
            first_step = 1.0
        slope = _dot(g, d)
        outcome = None
        if not slope >= 0.0:  # (a NaN slope is searched, as L-BFGS-B does)
            outcome = _line_search(evaluate, x, f, d, slope, first_step, maxls)
        if outcome is None:
            # No acceptable step: restart from steepest descent, or stop if it
            # was steepest descent already (the previous iterate stands).
            if len(memory_pairs) == 0:
                reason = ABNORMAL
                break
            memory_pairs.clear()
            continue
        step, x, f, g, new_slope = outcome
        n_iter += 1
        if callback is not None:
            try:
                callback(OptimizeResult(x=x, fun=f))
            except StopIteration:
                reason = STOPPED_CALLBACK
                break
        if n_iter >= max_iter:
            reason = STOPPED_MAX_ITER
            break
        if evaluations[0] > maxfun:
            reason = STOPPED_MAX_FUN
            break
        if max_abs(g) <= gtol:
            reason = CONVERGED_GRADIENT
            break
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            reason = CONVERGED_F
            break
        # s'y and s'g_old from the slopes along d, as L-BFGS-B computes them.
        memory_pairs.add(step, d, g, g_old, step * (new_slope - slope), step * slope)
    # The status as scipy's minimize reports it.
    if reason == STOPPED_CALLBACK:
        status = 99
    elif reason in (CONVERGED_GRADIENT, CONVERGED_F):
        status = 0
    elif n_iter >= max_iter or evaluations[0] > maxfun:
        status = 1
    else:
        status = 2
    return _result(x, f, g, n_iter, evaluations[0], status, reason)


def _result(x, f, g, nit, nfev, status, message):
    return OptimizeResult(x=x, fun=f, jac=g, nit=nit, nfev=nfev, status=status,
                          success=status == 0, message=message)


def _dot(a, b):
    return float(blas.ddot(a, b))


class _Pairs:
    """The L-BFGS memory: the newest ``memory`` pairs ``(s, y)`` in a ring."""

    _NO_PAIRS = np.empty((0, 0))

    def __init__(self, n, memory, n_threads=1):
        self.n, self.memory, self.n_threads = n, memory, n_threads
        self.s = self.y = self._NO_PAIRS  # (memory, n) each from the first pair
        self.rho = np.zeros(memory)
        self.order = []  # slots, oldest first
        self.gamma = 1.0

    def __len__(self):
        return len(self.order)

    def clear(self):
        self.order = []
        self.gamma = 1.0

    def add(self, step, d, g, g_old, sy, s_dot_g_old):
        """Store ``s = step d`` and ``y = g - g_old`` unless
        ``s'y <= eps * (-s'g_old)`` (L-BFGS-B's skip)."""
        if sy <= _EPS * -s_dot_g_old:
            return
        if self.s is self._NO_PAIRS:
            self.s = np.empty((self.memory, self.n))
            self.y = np.empty((self.memory, self.n))
        if len(self.order) < self.memory:
            slot = len(self.order)
        else:
            slot = self.order.pop(0)
        np.multiply(d, step, out=self.s[slot])
        np.subtract(g, g_old, out=self.y[slot])
        self.rho[slot] = 1.0 / sy
        self.order.append(slot)
        self.gamma = sy / _dot(self.y[slot], self.y[slot])

    def direction(self, g):
        """``-H g`` by the two-loop recursion (``-g`` with no pair), in
        parallel passes over fixed blocks (:func:`lbfgs_direction`)."""
        d = np.empty_like(g)
        lbfgs_direction(self.s, self.y, self.rho, np.asarray(self.order, dtype=np.intp),
                        self.gamma, g, d, self.n_threads)
        return d


def _line_search(evaluate, x, f0, d, slope0, step, maxls):
    """Moré-Thuente search along ``d`` from ``x``: ``(step, x, f, g, g'd)`` or None.

    None when ``maxls`` trials found no step the search accepts. A trial at
    the step just tried reuses its evaluation (scipy's objective wrapper
    caches the last point: neither evaluated nor counted again).
    """
    search = _MoreThuente(f0, slope0, step)
    last = None
    for _ in range(maxls):
        if last is not None and step == last[0]:
            trial, f, g, slope = last[1:]
        else:
            trial = blas.daxpy(d, x.copy(), a=step)
            f, g = evaluate(trial)
            slope = _dot(g, d)
            last = (step, trial, f, g, slope)
        step, done = search.next_step(step, f, slope)
        if done:
            return step, trial, f, g, slope
    return None


class _MoreThuente:
    """The line search of Moré and Thuente (1994), "Line search algorithms with
    guaranteed sufficient decrease", ACM TOMS 20(3), as L-BFGS-B runs it.

    :meth:`next_step` takes the value and slope at the step just tried and
    returns the next step to try, or that step and ``done`` when it meets the
    strong Wolfe conditions, or when the interval can shrink no further
    (L-BFGS-B accepts the step then too).
    """

    _EXTRAPOLATE_MIN, _EXTRAPOLATE_MAX = 1.1, 4.0

    def __init__(self, f0, slope0, step):
        # NumPy scalars: division by zero and overflow give inf and NaN, as in
        # C (the warnings are silenced in next_step).
        f0, slope0, step = np.float64(f0), np.float64(slope0), np.float64(step)
        self.f0, self.slope0 = f0, slope0
        self.decrease_slope = _SUFFICIENT_DECREASE * slope0
        self.bracketed = False
        self.first_stage = True
        self.width = np.float64(_MAX_STEP)
        self.previous_width = 2.0 * self.width
        # The best step so far (x) and the other end of the interval (y).
        self.stx, self.fx, self.gx = np.float64(0.0), f0, slope0
        self.sty, self.fy, self.gy = np.float64(0.0), f0, slope0
        self.step_min = np.float64(0.0)
        self.step_max = step + self._EXTRAPOLATE_MAX * step

    def next_step(self, step, f, slope):
        with np.errstate(all="ignore"):
            return self._next_step(np.float64(step), np.float64(f), np.float64(slope))

    def _next_step(self, step, f, slope):
        f_test = self.f0 + step * self.decrease_slope
        if self.first_stage and f <= f_test and slope >= 0.0:
            self.first_stage = False
        if self.bracketed and (step <= self.step_min or step >= self.step_max):
            return step, True  # rounding errors prevent progress
        if self.bracketed and self.step_max - self.step_min <= _INTERVAL_TOL * self.step_max:
            return step, True  # the interval is as small as asked
        if step == _MAX_STEP and f <= f_test and slope <= self.decrease_slope:
            return step, True
        if step == 0.0 and (f > f_test or slope >= self.decrease_slope):
            return step, True
        if f <= f_test and abs(slope) <= _CURVATURE * -self.slope0:
            return step, True  # strong Wolfe conditions
        if self.first_stage and f <= self.fx and f > f_test:
            # A lower value without sufficient decrease: steps from the
            # modified function f - decrease_slope * step, until a step with
            # sufficient decrease and a non-negative slope is found.
            c = self.decrease_slope
            fx, fy = self.fx - self.stx * c, self.fy - self.sty * c
            gx, gy = self.gx - c, self.gy - c
            new = _step(self.stx, fx, gx, self.sty, fy, gy, step, f - step * c, slope - c,
                        self.bracketed, self.step_min, self.step_max)
            (self.stx, fx, gx, self.sty, fy, gy, step, self.bracketed) = new
            self.fx, self.fy = fx + self.stx * c, fy + self.sty * c
            self.gx, self.gy = gx + c, gy + c
        else:
            new = _step(self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, step, f,
                        slope, self.bracketed, self.step_min, self.step_max)
            (self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, step,
             self.bracketed) = new
        if self.bracketed:
            # Bisect when the interval did not shrink enough in two steps.
            if abs(self.sty - self.stx) >= 0.66 * self.previous_width:
                step = self.stx + 0.5 * (self.sty - self.stx)
            self.previous_width = self.width
            self.width = abs(self.sty - self.stx)
            self.step_min = np.fmin(self.stx, self.sty)
            self.step_max = np.fmax(self.stx, self.sty)
        else:
            self.step_min = step + self._EXTRAPOLATE_MIN * (step - self.stx)
            self.step_max = step + self._EXTRAPOLATE_MAX * (step - self.stx)
        # fmin and fmax, as the C code: a NaN step becomes the bound.
        step = np.fmin(np.fmax(step, 0.0), _MAX_STEP)
        if self.bracketed and (step <= self.step_min or step >= self.step_max
                               or self.step_max - self.step_min
                               <= _INTERVAL_TOL * self.step_max):
            step = self.stx
        return step, False


def _step(stx, fx, dx, sty, fy, dy, stp, fp, dp, bracketed, step_min, step_max):
    """One safeguarded step of the search (Moré and Thuente's four cases).

    Returns the updated interval ends ``(stx, fx, dx)`` and ``(sty, fy, dy)``,
    the next trial step and whether a minimizer is bracketed.
    """
    sign = dp * np.sign(dx)
    if fp > fx:
        # 1: higher value. The minimizer is bracketed; the cubic step, or
        # halfway to the quadratic one when that is closer to stx.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = np.fmax(np.fmax(abs(theta), abs(dx)), abs(dp))
        gamma = s * np.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + p / q * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(stpc - stx) < abs(stpq - stx):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        bracketed = True
    elif sign < 0.0:
        # 2: lower value, slopes of opposite signs: bracketed; the cubic or
        # the secant step, whichever is farther from stp.
        stpc = _cubic_step(stp, fp, dp, stx, fx, dx)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        bracketed = True
    elif abs(dp) < abs(dx):
        # 3: lower value, same-sign slopes, decreasing in magnitude.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = np.fmax(np.fmax(abs(theta), abs(dx)), abs(dp))
        gamma = s * np.sqrt(np.fmax(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = step_max
        else:
            stpc = step_min
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if bracketed:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = np.fmin(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = np.fmax(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = np.fmax(step_min, np.fmin(step_max, stpf))
    else:
        # 4: lower value, same-sign slopes, not decreasing in magnitude.
        if bracketed:
            stpf = _cubic_step(stp, fp, dp, sty, fy, dy)
        elif stp > stx:
            stpf = step_max
        else:
            stpf = step_min
    # The new interval: stx keeps the lowest value.
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sign < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, bracketed


def _cubic_step(stp, fp, dp, other, f_other, d_other):
    """The minimizer of the cubic through the values and slopes at ``stp`` and
    ``other`` (Moré and Thuente's cases 2 and 4)."""
    theta = 3.0 * (f_other - fp) / (stp - other) + d_other + dp
    s = np.fmax(np.fmax(abs(theta), abs(d_other)), abs(dp))
    gamma = s * np.sqrt((theta / s) ** 2 - (d_other / s) * (dp / s))
    if stp > other:
        gamma = -gamma
    p = (gamma - dp) + theta
    q = ((gamma - dp) + gamma) + d_other
    return stp + p / q * (other - stp)
