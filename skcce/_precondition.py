"""Diagonal rescaling of the optimizer's variables for badly scaled features.

L-BFGS starts from a steepest-descent step, and its line search and stopping
test see raw gradient entries. When feature scales differ by orders of
magnitude (a column of 1e8 next to a column of 1e-4), the curvature of the
objective along different coefficients differs by their squares and L-BFGS
stalls or stops at its first iteration (as LogisticRegression does).

The remedy keeps the objective identical and changes only the coordinates the
optimizer works in: ``W = V * c`` with one multiplier per coefficient column,
chosen so that the diagonal curvature of every column matches that of the
intercept. L-BFGS minimizes ``g(V) = f(V * c)``, whose gradient is
``grad_f(V * c) * c``. It is applied only when the curvatures are far apart,
so ordinary data are optimized exactly as scikit-learn does.
"""

import numpy as np

from skcce import _kernel
from skcce._sparse import is_sparse

# Rescale when the largest and smallest diagonal curvature differ by more
# than this (feature scales differing by more than ~1e3).
CURVATURE_RATIO_LIMIT = 1e6
# Diagonal curvature of a softmax logit, bounded by p (1 - p) <= 1/4.
_LOGIT_CURVATURE = 0.25
_ROWS_PER_PASS = 8192
_DENSE_BLOCK_BYTES = 4 * 1024 * 1024


def weighted_column_mean_squares(X, sample_weight=None, n_threads=1):
    """``sum_i s_i x_ij^2 / sum_i s_i`` per column, in float64, in row chunks.

    Chunks bound the temporary memory for float32 X (converted per chunk) and
    for sparse X (one block of rows' non-zeros at a time).
    """
    n_samples = X.shape[0]
    weight_sum = n_samples if sample_weight is None else float(np.sum(sample_weight))
    return column_square_sums(X, sample_weight, n_threads) / weight_sum


def column_square_sums(X, sample_weight=None, n_threads=1):
    """``sum_i s_i x_ij^2`` per column, in float64, in row blocks.

    C-ordered float32 or float64 arrays: one multithreaded pass of the
    kernel (no float64 copy; the result does not depend on ``n_threads``).
    Other dense arrays are converted to float64 at most ~4 MiB at a time;
    sparse blocks hold one block of rows' non-zeros.
    """
    if (isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64)
            and X.ndim == 2 and X.flags.c_contiguous):
        weights = None if sample_weight is None else np.ascontiguousarray(
            sample_weight, dtype=np.float64)
        return _kernel.dense_column_square_sums(X, weights, n_threads)
    n_samples, n_features = X.shape
    block_sums = _sparse_block_square_sums if is_sparse(X) else _dense_block_square_sums
    rows = _ROWS_PER_PASS if is_sparse(X) else max(1, min(
        _ROWS_PER_PASS, _DENSE_BLOCK_BYTES // (8 * max(n_features, 1))))
    totals = np.zeros(n_features)
    for start in range(0, n_samples, rows):
        stop = start + rows
        weights = None if sample_weight is None else sample_weight[start:stop]
        totals += block_sums(X[start:stop], weights)
    return totals


def _dense_block_square_sums(block, weights):
    block = np.asarray(block, dtype=np.float64)
    if weights is None:
        return np.einsum("ij,ij->j", block, block)
    return np.einsum("i,ij,ij->j", weights, block, block)


def _sparse_block_square_sums(block, weights):
    squares = np.square(block.data, dtype=np.float64)
    if weights is not None:
        squares *= np.repeat(weights, np.diff(block.indptr))
    return np.bincount(block.indices, weights=squares, minlength=block.shape[1])


def column_multipliers(X, sample_weight, fit_intercept, l2_reg_strength, *,
                       mean_squares=None, n_threads=1, ratio_limit=None):
    """Per-column multipliers ``c`` (length n_features + fit_intercept), or None.

    The diagonal curvature of coefficient column j is at most
    ``mean_s(x_j^2)/4 + l2_reg_strength``; the intercept's is 1/4. Returns
    None (no rescaling) when all curvatures are within
    :data:`CURVATURE_RATIO_LIMIT` of each other. ``mean_squares``, if given,
    is :func:`weighted_column_mean_squares` of (X, sample_weight), computed
    once by callers that try several penalties on the same data.
    ``ratio_limit`` replaces :data:`CURVATURE_RATIO_LIMIT` (1: rescale
    unless every curvature is the same).
    """
    if ratio_limit is None:
        ratio_limit = CURVATURE_RATIO_LIMIT
    if mean_squares is None:
        mean_squares = weighted_column_mean_squares(X, sample_weight, n_threads)
    curvature = _LOGIT_CURVATURE * mean_squares
    curvature += l2_reg_strength
    if fit_intercept:
        curvature = np.append(curvature, _LOGIT_CURVATURE)
    positive = curvature[curvature > 0]
    if positive.size == 0 or positive.max() <= ratio_limit * positive.min():
        return None
    # All-zero columns without penalty have no curvature: leave them as is.
    safe = np.where(curvature > 0, curvature, _LOGIT_CURVATURE)
    return np.sqrt(_LOGIT_CURVATURE / safe)


class RescaledObjective:
    """``g(V) = f(V * c)`` for an objective ``f`` over the flat parameters.

    Parameters
    ----------
    objective : CrossEntropyObjective
    multipliers : ndarray of shape (n_dof,)
        One multiplier per coefficient column (all classes share it).
    """

    def __init__(self, objective, multipliers):
        self.objective = objective
        # Flat layout is (n_dof, K) in C order: repeat each column's multiplier K times.
        self._flat = np.repeat(multipliers, objective.layout.n_classes)

    def to_internal(self, params):
        """Optimizer coordinates V of the coefficients W."""
        return params / self._flat

    def from_internal(self, internal):
        """Coefficients W of the optimizer coordinates V."""
        return internal * self._flat

    def loss_gradient(self, internal):
        loss, grad = self.objective.loss_gradient(internal * self._flat)
        return loss, grad * self._flat


class IdentityRescaling:
    """The no-op counterpart of :class:`RescaledObjective`."""

    def __init__(self, objective):
        self.objective = objective
        self.loss_gradient = objective.loss_gradient

    @staticmethod
    def to_internal(params):
        return params

    @staticmethod
    def from_internal(internal):
        return internal


def rescaled(objective):
    """The objective in the optimizer's coordinates (rescaled only if needed).

    Parameters
    ----------
    objective : CrossEntropyObjective
        Its data term supplies the column mean squares
        (``column_mean_squares()``).

    Returns
    -------
    problem : RescaledObjective or IdentityRescaling
        With an L1 term (``objective.l1_reg_strength > 0``) the coefficients
        are rescaled whenever the curvatures differ at all: OWL-QN then
        needs two to four times fewer iterations on features of unequal
        scales (TF-IDF text, raw pixels) and the same on standardized ones.
        The L2-only path keeps :data:`CURVATURE_RATIO_LIMIT`.
    """
    with_l1 = getattr(objective, "l1_reg_strength", 0.0) > 0
    multipliers = column_multipliers(
        None, None, objective.layout.fit_intercept, objective.l2_reg_strength,
        mean_squares=objective.data.column_mean_squares(),
        ratio_limit=1.0 if with_l1 else None,
    )
    if multipliers is None:
        return IdentityRescaling(objective)
    return RescaledObjective(objective, multipliers)
