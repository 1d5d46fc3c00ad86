"""Per-column statistics of X, exact over the whole floating-point range.

The per-feature rescaling (:mod:`skcce._precondition`) needs, for every column
j of X, its weighted root mean square ``rms_j = sqrt(sum_i s_i x_ij^2 / S)``,
its largest absolute value and whether it is constant. Squares of entries
beyond ~1e154 overflow float64 and those below ~1e-162 underflow, so a column
whose largest absolute value lies outside ``[2**-SAFE_EXPONENT,
2**SAFE_EXPONENT]`` is summed after multiplying it by a power of two (its
*shift*, an exact scaling) that brings its largest value into [0.5, 1). The
other columns are summed as they are, by one multithreaded kernel pass for
dense data, exactly as before such columns were handled.

The same shifts tell the data terms which columns the fit must see
prescaled (:func:`prescale_shifts`): the kernel accumulates
``sum_i s_i r_ik x_ij`` and casts coefficients to X's dtype, which overflow
for such columns.
"""

from dataclasses import dataclass

import numpy as np

from skcce._kernels import reductions
from skcce._sparse import is_sparse

# Columns whose largest |x| lies in [2**-SAFE_EXPONENT, 2**SAFE_EXPONENT] are
# summed unscaled: their squares, times weights normalized to at most 2**100
# (skcce._weights.weight_scale), over any realistic number of rows, neither
# overflow nor lose precision to subnormal numbers.
SAFE_EXPONENT = 400
# The kernel's float32 path holds coefficients and per-chunk gradient sums in
# float32: columns outside [2**-64, 2**64] are fitted prescaled.
_SAFE_EXPONENT_FLOAT32 = 64

_ROWS_PER_PASS = 8192
_DENSE_BLOCK_BYTES = 4 * 1024 * 1024
_MIN_MAX_BLOCK_BYTES = 256 * 1024


@dataclass
class ColumnSums:
    """Additive per-column sums over a block of rows (combined over Dask blocks).

    Attributes
    ----------
    weight_sum : float
        ``S``, the sum of the sample weights (rows without weights count 1).
    minimum, maximum : ndarray of shape (n_features,), float64
        Smallest and largest value of each column (weights ignored).
    square_sums : ndarray of shape (n_features,), float64
        ``sum_i s_i (x_ij * 2**shift_j)**2``.
    shift : ndarray of shape (n_features,), int64
        0 for ordinary columns; see :func:`_shifts`.
    """

    weight_sum: float
    minimum: np.ndarray
    maximum: np.ndarray
    square_sums: np.ndarray
    shift: np.ndarray

    @classmethod
    def combine(cls, parts):
        """The sums over all blocks, added in the given (block) order.

        Each block's square sums are brought to the shift of the whole column
        first, by an exact power of two (a factor <= 1, which may underflow
        only for blocks that do not matter next to the others).
        """
        parts = list(parts)
        minimum = np.min([p.minimum for p in parts], axis=0)
        maximum = np.max([p.maximum for p in parts], axis=0)
        shift = _shifts(np.maximum(np.abs(minimum), np.abs(maximum)), SAFE_EXPONENT)
        weight_sum = parts[0].weight_sum
        for part in parts[1:]:
            weight_sum += part.weight_sum
        square_sums = None
        for part in parts:
            sums = part.square_sums
            if np.any(part.shift != shift):
                sums = np.ldexp(sums, 2 * (shift - part.shift))
            square_sums = np.array(sums, dtype=np.float64) if square_sums is None \
                else square_sums + sums
        return cls(weight_sum, minimum, maximum, square_sums, shift)

    def statistics(self):
        """The :class:`ColumnStatistics` of these sums."""
        max_abs = np.maximum(np.abs(self.minimum), np.abs(self.maximum))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_squares = self.square_sums / self.weight_sum
        mean_squares = np.where(np.isfinite(mean_squares), mean_squares, 0.0)
        rms = np.ldexp(np.sqrt(mean_squares), -self.shift)
        return ColumnStatistics(rms=rms, max_abs=max_abs,
                                constant=self.minimum == self.maximum)


@dataclass
class ColumnStatistics:
    """What the rescaling needs to know of each column of X.

    Attributes
    ----------
    rms : ndarray of shape (n_features,), float64
        Weighted root mean square, finite for finite X.
    max_abs : ndarray of shape (n_features,), float64
        Largest absolute value.
    constant : ndarray of shape (n_features,), bool
        Whether all values of the column are equal (all-zero columns included).
    """

    rms: np.ndarray
    max_abs: np.ndarray
    constant: np.ndarray


def _shifts(max_abs, safe_exponent):
    """Exponents e with ``max_abs * 2**e`` in [0.5, 1), for columns outside the safe range.

    0 for columns whose largest |x| is 0 or lies in
    ``[2**-safe_exponent, 2**safe_exponent]``.
    """
    _, exponent = np.frexp(max_abs)
    exponent = exponent.astype(np.int64)
    outside = (max_abs != 0) & (np.abs(exponent) > safe_exponent)
    return np.where(outside, -exponent, 0)


def prescale_shifts(max_abs, dtype):
    """Per-column shifts the fit must apply to X, or None if X can be used as is.

    Parameters
    ----------
    max_abs : ndarray of shape (n_features,)
    dtype : numpy dtype
        X's dtype (the kernel's working precision).

    Returns
    -------
    shift : ndarray of shape (n_features,), int64, or None
        ``X * 2**shift`` has every column that lies outside the kernel's safe
        range scaled into [0.5, 1), the others unchanged.
    """
    safe = _SAFE_EXPONENT_FLOAT32 if np.dtype(dtype) == np.float32 else SAFE_EXPONENT
    shift = _shifts(max_abs, safe)
    return shift if np.any(shift) else None


def column_sums(X, sample_weight=None, n_threads=1):
    """The :class:`ColumnSums` of X (a whole matrix or one row block).

    Dense C-ordered float32 or float64 X: one multithreaded kernel pass for
    the square sums (no float64 copy; the result does not depend on
    ``n_threads``), plus NumPy's column minima and maxima. Columns outside the
    safe range are summed again, scaled, a row block at a time.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,), float64, or None
    n_threads : int, default=1

    Returns
    -------
    sums : ColumnSums
    """
    n_samples, n_features = X.shape
    weight_sum = n_samples if sample_weight is None else float(np.sum(sample_weight))
    if is_sparse(X):
        minimum, maximum = _sparse_min_max(X)
    elif n_samples:
        minimum, maximum = _dense_min_max(X)
    else:
        minimum = maximum = np.zeros(n_features)
    shift = _shifts(np.maximum(np.abs(minimum), np.abs(maximum)), SAFE_EXPONENT)
    square_sums = column_square_sums(X, sample_weight, n_threads, shift=shift)
    return ColumnSums(weight_sum, minimum, maximum, square_sums, shift)


def column_square_sums(X, sample_weight=None, n_threads=1, shift=None):
    """``sum_i s_i (x_ij * 2**shift_j)^2`` per column, in float64, in row blocks.

    C-ordered float32 or float64 arrays: one multithreaded pass of the
    kernel (no float64 copy; the result does not depend on ``n_threads``).
    Other dense arrays are converted to float64 at most ~4 MiB at a time;
    sparse blocks hold one block of rows' non-zeros. Shifted columns of dense
    X are then summed again, a row block of those columns at a time.
    """
    if shift is not None and not np.any(shift):
        shift = None
    n_samples, n_features = X.shape
    if (isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64)
            and X.ndim == 2 and X.flags.c_contiguous):
        weights = None if sample_weight is None else np.ascontiguousarray(
            sample_weight, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            totals = reductions.dense_column_square_sums(X, weights, n_threads)
        if shift is not None:
            columns = np.flatnonzero(shift)
            totals[columns] = _blockwise(_dense_block_square_sums, X, sample_weight,
                                         shift[columns], columns)
        return totals
    block_sums = _sparse_block_square_sums if is_sparse(X) else _dense_block_square_sums
    return _blockwise(block_sums, X, sample_weight, shift)


def _blockwise(block_sums, X, sample_weight, shift, columns=None):
    """Sums of ``block_sums`` over row blocks of X (of its ``columns`` if given)."""
    n_samples, n_features = X.shape
    width = n_features if columns is None else columns.shape[0]
    rows = _ROWS_PER_PASS if is_sparse(X) else max(1, min(
        _ROWS_PER_PASS, _DENSE_BLOCK_BYTES // (8 * max(width, 1))))
    totals = np.zeros(width)
    for start in range(0, n_samples, rows):
        stop = start + rows
        weights = None if sample_weight is None else sample_weight[start:stop]
        block = X[start:stop] if columns is None else X[start:stop, columns]
        totals += block_sums(block, weights, shift)
    return totals


def _dense_block_square_sums(block, weights, shift=None):
    block = np.asarray(block, dtype=np.float64)
    if shift is not None:
        block = np.ldexp(block, shift)
    if weights is None:
        return np.einsum("ij,ij->j", block, block)
    return np.einsum("i,ij,ij->j", weights, block, block)


def _sparse_block_square_sums(block, weights, shift=None):
    data = block.data
    if shift is not None:
        data = np.ldexp(data.astype(np.float64), shift[block.indices])
    squares = np.square(data, dtype=np.float64)
    if weights is not None:
        squares *= np.repeat(weights, np.diff(block.indptr))
    return np.bincount(block.indices, weights=squares, minlength=block.shape[1])


def _dense_min_max(X):
    """Column minima and maxima of dense X, float64.

    A row block at a time, so that the second reduction reads it from cache.
    """
    n_samples, n_features = X.shape
    rows = max(1, _MIN_MAX_BLOCK_BYTES // (X.itemsize * max(n_features, 1)))
    minimum = np.asarray(X[:rows].min(axis=0), dtype=np.float64)
    maximum = np.asarray(X[:rows].max(axis=0), dtype=np.float64)
    for start in range(rows, n_samples, rows):
        block = X[start:start + rows]
        np.minimum(minimum, block.min(axis=0), out=minimum)
        np.maximum(maximum, block.max(axis=0), out=maximum)
    return minimum, maximum


def _sparse_min_max(X):
    """Column minima and maxima of CSR X, implicit zeros included."""
    n_samples, n_features = X.shape
    data = np.asarray(X.data[: X.indptr[-1]], dtype=np.float64)
    indices = X.indices[: X.indptr[-1]]
    minimum = np.full(n_features, np.inf)
    maximum = np.full(n_features, -np.inf)
    np.minimum.at(minimum, indices, data)
    np.maximum.at(maximum, indices, data)
    # A column with fewer stored entries than rows also holds zeros.
    has_zeros = np.bincount(indices, minlength=n_features) < n_samples
    minimum[has_zeros] = np.minimum(minimum[has_zeros], 0.0)
    maximum[has_zeros] = np.maximum(maximum[has_zeros], 0.0)
    return minimum, maximum


def shifted(X, shift):
    """X with each column j multiplied by ``2**shift_j`` (a copy; exact scaling).

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features), float32 or float64
    shift : ndarray of shape (n_features,), int

    Returns
    -------
    X_shifted : ndarray (C order) or CSR matrix sharing X's index arrays
    """
    exponents = np.asarray(shift, dtype=np.int32)
    if is_sparse(X):
        data = np.ldexp(X.data, exponents[X.indices]).astype(X.dtype, copy=False)
        return type(X)((data, X.indices, X.indptr), shape=X.shape)
    return np.ascontiguousarray(np.ldexp(X, exponents).astype(X.dtype, copy=False))
