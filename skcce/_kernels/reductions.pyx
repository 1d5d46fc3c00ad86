# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Row-parallel reductions beside the loss kernels, and the build's OpenMP.

The crossentropy metric (:func:`rows_crossentropy`), the objective's
finishing passes (:func:`divide_inplace`, :func:`add_penalty_gradient`), the
column statistics of the rescaling (:func:`dense_column_square_sums`), the
finiteness check of prediction's input (:func:`all_finite`).
Each cuts rows into blocks fixed by the shape, never by the thread count, and
adds per-block sums in block order: results are the same for every
``n_threads``.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdint cimport int32_t

from skcce._kernels.common cimport (
    SKCCE_OPENMP_ENABLED,
    check_sample_weight,
    omp_get_max_threads,
    weights_pointer,
)
from skcce._kernels.crossentropy cimport (
    Targets,
    row_max_logit,
    row_target_logit,
    set_targets,
    target,
)

from skcce._kernels.simd cimport select_simd_loops, skcce_simd

import numpy as np

# The L-BFGS direction's loop for this CPU (see skcce._kernels.dense.simd_loops).
select_simd_loops()


cdef enum:
    # Rows per block of the metric's reduction.
    METRIC_BLOCK_ROWS = 4096
    # Values per row block of the objective's finishing passes.
    HELPER_BLOCK_VALUES = 65536
    # At most this many row blocks (each with its own d partial sums) in
    # dense_column_square_sums; at least this many rows per block.
    COLUMN_MAX_BLOCKS = 64
    COLUMN_MIN_BLOCK_ROWS = 4096

# Values per block of the threads' partition in the helpers (all_finite,
# ...): tests place values around block edges.
BLOCK_VALUES = HELPER_BLOCK_VALUES


def openmp_enabled():
    """Whether the kernels were built with OpenMP support.

    Returns
    -------
    enabled : bool
    """
    return bool(SKCCE_OPENMP_ENABLED)


def omp_max_threads():
    """``omp_get_max_threads()`` (1 for a serial build).

    Returns
    -------
    n_threads : int
    """
    return omp_get_max_threads()


cdef struct RowBlocks:
    Py_ssize_t n        # rows in all
    Py_ssize_t rows     # rows per block (the last block may have fewer)
    Py_ssize_t count    # number of blocks


cdef inline RowBlocks _row_blocks(Py_ssize_t n, Py_ssize_t rows) noexcept nogil:
    """n rows in blocks of ``rows`` (at least 1) rows."""
    cdef RowBlocks blocks
    blocks.n = n
    blocks.rows = max(rows, 1)
    blocks.count = (n + blocks.rows - 1) // blocks.rows
    return blocks


cdef inline Py_ssize_t _block_end(RowBlocks blocks, Py_ssize_t b) noexcept nogil:
    """One past the last row of block b."""
    return min((b + 1) * blocks.rows, blocks.n)


cdef inline int _block_threads(int n_threads, RowBlocks blocks) noexcept nogil:
    """Threads for a loop over the blocks: at most one per block."""
    return <int> max(1, min(n_threads, blocks.count))


cdef double _rows_crossentropy_block(
    const floating* z, Py_ssize_t row_start, Py_ssize_t row_end,
    Py_ssize_t n_classes, const Targets* targets, const double* sw,
    bint from_logits, double clip_eps,
) noexcept nogil:
    """Weighted crossentropy summed over rows [row_start, row_end).

    From logits: ``log(sum_k exp(z_k - m)) - sum_k q_k (z_k - m)`` (stable).
    From probabilities: ``-sum_k q_k log(clip(p_k, eps, 1 - eps))``, terms
    with q_k == 0 skipped.
    """
    cdef Py_ssize_t i, k, K = n_classes
    cdef const floating* row
    cdef double total = 0.0, ce, zmax, sum_exp, q, p
    for i in range(row_start, row_end):
        row = z + i * K
        if from_logits:
            zmax = row_max_logit(row, NULL, K)
            sum_exp = 0.0
            for k in range(K):
                sum_exp = sum_exp + exp(row[k] - zmax)
            ce = log(sum_exp) - row_target_logit(targets, i, row, NULL, K, zmax)
        else:
            ce = 0.0
            for k in range(K):
                q = target(targets, i, k, K)
                if q != 0.0:
                    p = min(max(<double> row[k], clip_eps), 1.0 - clip_eps)
                    ce = ce - q * log(p)
        total = total + (ce if sw == NULL else sw[i] * ce)
    return total


def rows_crossentropy(
    const floating[:, ::1] y_pred,
    const int32_t[::1] y,
    const double[:, ::1] y_proba,
    double label_smoothing,
    const double[::1] sample_weight,
    bint from_logits,
    int n_threads,
):
    """Sum over rows of the weighted crossentropy between targets and y_pred.

    Parameters
    ----------
    y_pred : ndarray of shape (n_samples, K), float32 or float64, C order
        Logits (``from_logits``) or probabilities (clipped to
        ``[eps, 1 - eps]`` with eps the dtype's machine epsilon, as
        ``sklearn.metrics.log_loss`` does).
    y, y_proba, label_smoothing
        Targets, as in ``skcce._kernels.dense.dense_loss_gradient``.
    sample_weight : ndarray of shape (n_samples,), float64, or None
    from_logits : bool
    n_threads : int
        The result does not depend on it.

    Returns
    -------
    total : float
        ``sum_i s_i * CE_i``.
    """
    cdef Py_ssize_t n = y_pred.shape[0], K = y_pred.shape[1]
    cdef RowBlocks blocks = _row_blocks(n, METRIC_BLOCK_ROWS)
    cdef Py_ssize_t b
    cdef Targets targets
    cdef const double* sw = NULL
    cdef double total = 0.0
    cdef double clip_eps = np.finfo(np.float32 if floating is float else np.float64).eps
    cdef double[::1] partial = np.zeros(max(blocks.count, 1))
    set_targets(&targets, y, y_proba, label_smoothing, n, K)
    check_sample_weight(sample_weight, n)
    sw = weights_pointer(sample_weight)
    if n == 0:
        return 0.0
    with nogil:
        for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                        schedule="static"):
            partial[b] = _rows_crossentropy_block(
                &y_pred[0, 0], b * blocks.rows, _block_end(blocks, b), K,
                &targets, sw, from_logits, clip_eps)
        for b in range(blocks.count):
            total = total + partial[b]
    return total


cdef bint _block_finite(const floating* v, Py_ssize_t n) noexcept nogil:
    """Whether ``v[0:n]`` are all finite: ``v * 0`` is 0 for a finite value
    and NaN for an infinite or NaN one, so eight running sums of it (no
    branch per value, independent additions) end finite exactly then."""
    cdef double acc[8]
    cdef Py_ssize_t i = 0, l
    for l in range(8):
        acc[l] = 0.0
    while i + 8 <= n:
        for l in range(8):
            acc[l] = acc[l] + v[i + l] * 0.0
        i = i + 8
    while i < n:
        acc[0] = acc[0] + v[i] * 0.0
        i = i + 1
    return (((acc[0] + acc[1]) + (acc[2] + acc[3]))
            + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) == 0.0


def all_finite(const floating[::1] values, int n_threads):
    """Whether every value is finite (neither NaN nor infinite).

    In parallel over blocks of values (scikit-learn's check sums the whole
    array in one thread first).

    Parameters
    ----------
    values : ndarray of shape (n,), float32 or float64, contiguous
    n_threads : int

    Returns
    -------
    finite : bool
    """
    cdef RowBlocks blocks = _row_blocks(values.shape[0], HELPER_BLOCK_VALUES)
    cdef Py_ssize_t b
    cdef int bad = 0
    if values.shape[0] == 0:
        return True
    with nogil:
        for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                        schedule="static"):
            if not _block_finite(&values[b * blocks.rows],
                                 _block_end(blocks, b) - b * blocks.rows):
                bad += 1
    return bad == 0


def divide_inplace(double[:, ::1] a, double divisor, int n_threads):
    """``a /= divisor`` in place, in parallel over row blocks.

    Parameters
    ----------
    a : ndarray of shape (n, m), float64, C order
    divisor : float
    n_threads : int
    """
    cdef Py_ssize_t n = a.shape[0], m = a.shape[1], i, j, b
    cdef RowBlocks blocks = _row_blocks(n, HELPER_BLOCK_VALUES // max(m, 1))
    if n == 0 or m == 0:
        return
    with nogil:
        for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                        schedule="static"):
            for i in range(b * blocks.rows, _block_end(blocks, b)):
                for j in range(m):
                    a[i, j] = a[i, j] / divisor


def add_penalty_gradient(double[:, ::1] grad, const double[:, ::1] weights,
                         double strength, int n_threads):
    """``grad += strength * weights``; return ``sum(weights ** 2)``.

    In parallel over fixed row blocks; the block sums of squares are added in
    block order, so the result does not depend on ``n_threads``. Each entry
    is ``grad + (strength * weights)``, rounded as NumPy would.

    Parameters
    ----------
    grad, weights : ndarray of shape (n, m), float64, C order
    strength : float
    n_threads : int

    Returns
    -------
    sum_squares : float
    """
    cdef Py_ssize_t n = weights.shape[0], m = weights.shape[1], i, j, b
    cdef RowBlocks blocks = _row_blocks(n, HELPER_BLOCK_VALUES // max(m, 1))
    cdef double total = 0.0, acc, w
    if grad.shape[0] != n or grad.shape[1] != m:
        raise ValueError("grad and weights must have the same shape")
    if n == 0 or m == 0:
        return 0.0
    cdef double[::1] partial = np.zeros(blocks.count)
    with nogil:
        for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                        schedule="static"):
            acc = 0.0
            for i in range(b * blocks.rows, _block_end(blocks, b)):
                for j in range(m):
                    w = weights[i, j]
                    acc = acc + w * w
                    grad[i, j] = grad[i, j] + strength * w
            partial[b] = acc
        for b in range(blocks.count):
            total = total + partial[b]
    return total


def dense_column_square_sums(const floating[:, ::1] X,
                             const double[::1] sample_weight, int n_threads):
    """``sum_i s_i x_ij^2`` per column of dense X, in float64.

    One pass over X, float32 read as is (no float64 copy), in parallel over
    row blocks that depend on the shape only; the block sums are added in
    block order, so the result does not depend on ``n_threads``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C order
    sample_weight : ndarray of shape (n_samples,), float64, or None
    n_threads : int

    Returns
    -------
    sums : ndarray of shape (n_features,), float64
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], b, i, j
    cdef RowBlocks blocks = _row_blocks(
        n, max(COLUMN_MIN_BLOCK_ROWS, (n + COLUMN_MAX_BLOCKS - 1) // COLUMN_MAX_BLOCKS))
    cdef const double* sw = NULL
    cdef double w, x
    cdef double* acc
    check_sample_weight(sample_weight, n)
    sw = weights_pointer(sample_weight)
    sums = np.zeros(d)
    if n == 0 or d == 0:
        return sums
    cdef double[:, ::1] partial = np.zeros((blocks.count, d))
    cdef double[::1] sums_view = sums
    with nogil:
        for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                        schedule="static"):
            acc = &partial[b, 0]
            for i in range(b * blocks.rows, _block_end(blocks, b)):
                w = 1.0 if sw == NULL else sw[i]
                for j in range(d):
                    x = X[i, j]
                    acc[j] = acc[j] + w * (x * x)
        for b in range(blocks.count):
            for j in range(d):
                sums_view[j] = sums_view[j] + partial[b, j]
    return sums


# ---------------------------------------------------------------------------
# The L-BFGS direction: the two-loop recursion over fixed blocks of the vector.

cdef enum:
    # Values per block of the direction's passes (the block dot products are
    # added in block order).
    DIRECTION_BLOCK_VALUES = 16384


cdef double _ordered_sum(const double* partial, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t b
    cdef double total = 0.0
    for b in range(count):
        total = total + partial[b]
    return total


cdef double _direction_pass(double* q, const double* x, double a, double scale,
                            const double* v, Py_ssize_t n, double* partial,
                            int n_threads) noexcept nogil:
    """One pass of the instruction set's ``axpy_dot`` loop (simd.h) over all
    blocks; the dot product ``v . q``, its block sums added in block order."""
    cdef RowBlocks blocks = _row_blocks(n, DIRECTION_BLOCK_VALUES)
    cdef Py_ssize_t b
    for b in prange(blocks.count, num_threads=_block_threads(n_threads, blocks),
                    schedule="static"):
        partial[b] = skcce_simd.axpy_dot(
            q + b * blocks.rows, NULL if x == NULL else x + b * blocks.rows, a, scale,
            NULL if v == NULL else v + b * blocks.rows, _block_end(blocks, b) - b * blocks.rows)
    return _ordered_sum(partial, blocks.count)


def lbfgs_direction(const double[:, ::1] s, const double[:, ::1] y, const double[::1] rho,
                    const Py_ssize_t[::1] order, double gamma, const double[::1] g,
                    double[::1] out, int n_threads):
    """``out = -H g``: the L-BFGS direction by the two-loop recursion.

    ``H`` is the inverse L-BFGS matrix of the pairs ``(s[k], y[k])`` for k in
    ``order`` (oldest first), ``rho[k] = 1 / s[k]'y[k]``, with initial matrix
    ``gamma * I``. Each pass over the vector fuses one update with the next
    dot product, in parallel over fixed blocks whose dot products are added
    in block order: the result does not depend on ``n_threads``.

    Parameters
    ----------
    s, y : ndarray of shape (memory, n), float64, C order
    rho : ndarray of shape (memory,), float64
    order : ndarray of shape (count,), intp
        The slots of the stored pairs, oldest first (at most ``memory``).
    gamma : float
    g : ndarray of shape (n,), float64
    out : ndarray of shape (n,), float64
        The direction (may not overlap ``g``).
    n_threads : int
    """
    cdef Py_ssize_t n = g.shape[0], count = order.shape[0], t, slot, previous
    cdef double[::1] alpha = np.zeros(max(rho.shape[0], 1))
    cdef double[::1] partial = np.zeros(max(_row_blocks(n, DIRECTION_BLOCK_VALUES).count, 1))
    cdef double coef, beta, dot
    cdef double* q
    cdef const double* update
    cdef const double* next_y
    if out.shape[0] != n or (count > 0 and (s.shape[1] != n or y.shape[1] != n)):
        raise ValueError("s, y, g and out must have the same length")
    for t in range(count):
        if not 0 <= order[t] < min(s.shape[0], y.shape[0], rho.shape[0]):
            raise ValueError("order holds a slot outside s, y or rho")
    if n == 0:
        return
    q = &out[0]
    for t in range(n):
        q[t] = -g[t]
    if count == 0:
        return
    with nogil:
        # Newest to oldest: alpha_k = rho_k s_k'q, then q -= alpha_k y_k
        # (fused with the next pair's dot product).
        previous = -1
        for t in range(count - 1, -1, -1):
            slot = order[t]
            update = NULL
            coef = 0.0
            if previous >= 0:
                update = &y[previous, 0]
                coef = -alpha[previous]
            dot = _direction_pass(q, update, coef, 1.0, &s[slot, 0], n, &partial[0],
                                  n_threads)
            alpha[slot] = rho[slot] * dot
            previous = slot
        # The last update, the initial matrix, and the oldest pair's y'q.
        dot = _direction_pass(q, &y[previous, 0], -alpha[previous], gamma,
                              &y[order[0], 0], n, &partial[0], n_threads)
        # Oldest to newest: beta = rho_k y_k'q, q += (alpha_k - beta) s_k.
        for t in range(count):
            slot = order[t]
            beta = rho[slot] * dot
            coef = alpha[slot] - beta
            next_y = NULL
            if t + 1 < count:
                next_y = &y[order[t + 1], 0]
            dot = _direction_pass(q, &s[slot, 0], coef, 1.0, next_y, n, &partial[0],
                                  n_threads)
