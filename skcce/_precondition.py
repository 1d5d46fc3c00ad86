"""Diagonal rescaling of the optimizer's variables for badly scaled features.

L-BFGS starts from a steepest-descent step, and its line search sees raw
gradient entries. When feature scales differ by orders of magnitude (a column
of 1e8 next to a column of 1e-4), the curvature of the objective along
different coefficients differs by their squares and L-BFGS stalls or stops at
its first iteration (as LogisticRegression does).

The remedy keeps the objective identical and changes only the coordinates the
optimizer works in: ``W = V * c`` with one multiplier per coefficient column,
a power of two (so that converting between the coordinates is exact), chosen
so that the diagonal curvature of every column is about that of the
intercept. L-BFGS minimizes ``g(V) = f(V * c)``, whose gradient is
``grad_f(V * c) * c``. The penalty is computed in these coordinates,
``lambda * c_j**2 <= 1/2``, so it cannot overflow however small or large the
multipliers are.

The rescaling is applied only when the curvatures of the columns that have
data curvature are far apart, or when a column lies outside the range the
kernel can sum without overflow: ordinary data are optimized exactly as
scikit-learn does. All-zero columns, and with an intercept constant columns,
have no curvature of their own (only the penalty's, or the intercept's) and
never turn it on. The fit core tests ``tol`` on the gradient with respect to
``W`` (as LogisticRegression does) as well as on the rescaled one.

Columns beyond the kernel's safe range (:func:`skcce._columns.prescale_shifts`)
are handed to the kernel multiplied by a power of two: the data term then
works on that copy of X, at coefficients scaled by the inverse factor, which
gives exactly the same logits.
"""

from dataclasses import dataclass

import numpy as np

# Rescale when the square roots of the largest and smallest diagonal
# curvature differ by more than this (feature scales differing by more than
# ~1e3; curvatures by 1e6).
RATIO_LIMIT = 1e3
# Square root of the diagonal curvature of a softmax logit, p (1 - p) <= 1/4.
_HALF = 0.5
# Multipliers are powers of two in this range of exponents, per dtype of X:
# coefficients V * c stay finite in that dtype for any reasonable V.
_EXPONENT_RANGE = {np.dtype(np.float64): (-1022, 1000), np.dtype(np.float32): (-126, 100)}


@dataclass
class Rescaling:
    """The optimizer's coordinates for one problem.

    Attributes
    ----------
    exponents : ndarray of shape (n_dof,), int64
        ``W = V * 2**exponents`` per coefficient column (0 for the intercept).
    shift : ndarray of shape (n_features,), int64, or None
        The data term works on ``X * 2**shift`` (see
        :func:`skcce._columns.prescale_shifts`), or on X itself if None.
    """

    exponents: np.ndarray
    shift: np.ndarray = None


def plan_rescaling(statistics, fit_intercept, l2_reg_strength, dtype, shift=None,
                   ratio_limit=RATIO_LIMIT):
    """The rescaling of a problem, or None when the coefficients need none.

    The diagonal curvature of coefficient column j is at most
    ``rms_j**2 / 4 + l2_reg_strength``, whose square root
    ``sigma_j = hypot(rms_j / 2, sqrt(l2_reg_strength))`` is computed without
    overflow; the intercept's is 1/2. Rescaling is needed when the ``sigma``
    of the columns with data curvature (not all-zero; not constant when an
    intercept is fitted) and of the intercept differ by more than
    ``ratio_limit``, or when X must be prescaled (``shift``).

    Parameters
    ----------
    statistics : ColumnStatistics
    fit_intercept : bool
    l2_reg_strength : float
        Finite and >= 0.
    dtype : numpy dtype
        X's dtype, which bounds the multipliers.
    shift : ndarray of shape (n_features,) or None, default=None
        The data term's prescaling of X, if any.
    ratio_limit : float, default=RATIO_LIMIT
        1 rescales unless every ``sigma`` is the same.

    Returns
    -------
    rescaling : Rescaling or None
    """
    rms = statistics.rms
    sigma = np.hypot(_HALF * rms, np.sqrt(l2_reg_strength))
    curved = rms > 0
    if fit_intercept:
        curved &= ~statistics.constant
    values = sigma[curved]
    if fit_intercept:
        values = np.append(values, _HALF)
    well_scaled = values.size == 0 or values.max() <= ratio_limit * values.min()
    if well_scaled and shift is None:
        return None
    low, high = _EXPONENT_RANGE.get(np.dtype(dtype), _EXPONENT_RANGE[np.dtype(np.float64)])
    exponents = np.zeros(rms.shape[0] + int(fit_intercept), dtype=np.int64)
    positive = sigma > 0
    # c = 2**e nearest 1 / (2 sigma): columns without any curvature keep c = 1.
    with np.errstate(divide="ignore"):
        nearest = -np.round(np.log2(sigma[positive]) + 1.0)
    exponents[: rms.shape[0]][positive] = np.clip(nearest, low, high).astype(np.int64)
    return Rescaling(exponents=exponents, shift=shift)


class RescaledObjective:
    """``g(V) = f(V * 2**e)`` for an objective ``f`` over the flat parameters.

    Parameters
    ----------
    objective : CrossEntropyObjective
        The objective ``f``; its ``l2_reg_strength`` is read once, here.
    rescaling : Rescaling
    data_objective : CrossEntropyObjective, default=None
        The objective whose data term is evaluated: ``objective`` itself, or
        one over the prescaled X (``rescaling.shift``).
    """

    rescaled = True

    def __init__(self, objective, rescaling, data_objective=None):
        self.objective = objective
        self.data_objective = objective if data_objective is None else data_objective
        layout = objective.layout
        n_classes, d = layout.n_classes, layout.n_features
        exponents = rescaling.exponents
        # Flat layout is (n_dof, K) in C order: repeat each column's exponent K times.
        self._exponents = np.repeat(exponents, n_classes)
        data_exponents = exponents.copy()
        if rescaling.shift is not None:
            data_exponents[:d] -= rescaling.shift
        self._data_exponents = np.repeat(data_exponents, n_classes)
        # lambda * c_j**2 per coefficient, 0 for the intercepts: c_j is at most
        # ~1 / sqrt(lambda) (or clipped lower), so this is at most ~1/2.
        self._l2_reg_strength = float(objective.l2_reg_strength)
        penalty = np.zeros(layout.n_dof)
        if self._l2_reg_strength > 0:
            penalty[:d] = np.ldexp(self._l2_reg_strength, 2 * exponents[:d])
        self._penalty = np.repeat(penalty, n_classes)

    @property
    def n_threads(self):
        """The objective's thread count."""
        return self.objective.n_threads

    def to_internal(self, params):
        """Optimizer coordinates V of the coefficients W."""
        return np.ldexp(params, -self._exponents)

    def from_internal(self, internal):
        """Coefficients W of the optimizer coordinates V."""
        return np.ldexp(internal, self._exponents)

    def model_gradient(self, grad):
        """The gradient with respect to W of a gradient with respect to V."""
        return np.ldexp(grad, -self._exponents)

    def loss_gradient(self, internal):
        """Objective and gradient at the optimizer coordinates ``internal``."""
        if self.data_objective is not self.objective:
            # Follow the thread share the estimator gives the objective.
            self.data_objective.n_threads = self.objective.n_threads
        loss, grad = self.data_objective.data_loss_gradient(
            np.ldexp(internal, self._data_exponents))
        grad = np.ldexp(grad, self._data_exponents)
        if self._l2_reg_strength > 0:
            penalty_grad = self._penalty * internal
            loss += 0.5 * float(penalty_grad @ internal)
            grad += penalty_grad
        return loss, grad


class IdentityRescaling:
    """The no-op counterpart of :class:`RescaledObjective`."""

    rescaled = False

    def __init__(self, objective):
        self.objective = objective
        self.loss_gradient = objective.loss_gradient

    @property
    def n_threads(self):
        """The objective's thread count."""
        return self.objective.n_threads

    @staticmethod
    def to_internal(params):
        return params

    @staticmethod
    def from_internal(internal):
        return internal

    @staticmethod
    def model_gradient(grad):
        return grad


def rescaled(objective):
    """The objective in the optimizer's coordinates (rescaled only if needed).

    Parameters
    ----------
    objective : CrossEntropyObjective
        Its data term supplies ``column_statistics()``, ``dtype`` and
        ``prescaled()`` (the data term over X times powers of two, or None).

    Returns
    -------
    problem : RescaledObjective or IdentityRescaling
        With an L1 term (``objective.l1_reg_strength > 0``) the coefficients
        are rescaled whenever the curvatures differ at all: OWL-QN then
        needs two to four times fewer iterations on features of unequal
        scales (TF-IDF text, raw pixels) and the same on standardized ones.
        The L2-only path keeps :data:`RATIO_LIMIT`.
    """
    data = objective.data
    with_l1 = getattr(objective, "l1_reg_strength", 0.0) > 0
    prescaled = data.prescaled()
    plan = plan_rescaling(
        data.column_statistics(), objective.layout.fit_intercept,
        objective.l2_reg_strength, data.dtype,
        shift=None if prescaled is None else prescaled.shift,
        ratio_limit=1.0 if with_l1 else RATIO_LIMIT,
    )
    if plan is None:
        return IdentityRescaling(objective)
    data_objective = None
    if prescaled is not None:
        data_objective = type(objective)(prescaled, objective.l2_reg_strength)
    return RescaledObjective(objective, plan, data_objective)
