# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Fused categorical crossentropy loss and gradient for dense X.

One call makes one pass over ``X``. Rows are cut into *chunks* (sized so that a
chunk of ``X`` stays in the L2 cache between the two GEMMs that read it) and
chunks are grouped into *blocks*. For each chunk::

    Z   = X_c @ Wt + b                     (GEMM 1, logits, chunk_rows x K)
    Z   <- s_i * (softmax(Z) - onehot(y))  (in place; loss accumulated on the way)
    G  += Z.T @ X_c                        (GEMM 2, gradient, d x K layout)

Each block is summed sequentially into its own buffers. Blocks are processed in
*waves* of ``n_threads`` blocks, one per thread, and each wave's block results
are merged into the totals in block order. The partition into chunks and blocks
and the merge order depend only on the data shape, never on the thread count,
so the result is bitwise identical for every ``n_threads``.

Coefficients are passed transposed, ``W.T`` of shape (n_features, K), which is
the operand layout a row-major GEMM wants, and the gradient is returned as
(n_features + fit_intercept, K), intercepts in the last row: the C-contiguous
view of the Fortran-ordered (K, n_dof) coefficient matrix, i.e. exactly the
flat vector scipy's L-BFGS works on. Intercepts are float64 and added to the
logits in float64, so a large common offset stays exact for float32 data.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdint cimport int32_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from skcce._openmp cimport SKCCE_OPENMP_ENABLED, omp_get_max_threads

import numpy as np


# Target size in bytes of one chunk of X: small enough that the chunk is still
# in the L2 cache when the gradient GEMM reads it again after the logits GEMM.
DEF CHUNK_BYTES = 131072
# Target size in bytes of one block of X: large enough that the per-wave
# synchronisation and the merge are negligible next to the block's work.
DEF BLOCK_BYTES = 1048576
DEF MIN_CHUNK_ROWS = 8
DEF MAX_CHUNK_ROWS = 2048


def openmp_enabled():
    """Whether this extension was built with OpenMP support.

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


def row_partition(Py_ssize_t n_features, Py_ssize_t itemsize):
    """Rows per chunk and chunks per block for data of this width and dtype.

    Depends on the data shape only (never on the thread count): this is what
    makes results reproducible across thread counts.

    Parameters
    ----------
    n_features : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    chunk_rows, chunks_per_block : int, int
    """
    cdef Py_ssize_t row_bytes = max(n_features, 1) * itemsize
    cdef Py_ssize_t chunk_rows = CHUNK_BYTES // row_bytes
    chunk_rows = min(max(chunk_rows, MIN_CHUNK_ROWS), MAX_CHUNK_ROWS)
    cdef Py_ssize_t chunks_per_block = max(
        BLOCK_BYTES // (chunk_rows * row_bytes), 1)
    return int(chunk_rows), int(chunks_per_block)


cdef inline void _gemm(char* transa, char* transb, int m, int n, int k,
                       const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major ``C = op(A) @ op(B) + beta * C`` through scipy's BLAS."""
    cdef floating alpha = 1.0
    if floating is double:
        dgemm(transa, transb, &m, &n, &k, &alpha, <double*> a, &lda,
              <double*> b, &ldb, &beta, c, &ldc)
    else:
        sgemm(transa, transb, &m, &n, &k, &alpha, <float*> a, &lda,
              <float*> b, &ldb, &beta, c, &ldc)


cdef struct Targets:
    # What each row is fitted to: a class index (``labels``) or a probability
    # row (``proba``, row-major n x K); either way optionally label-smoothed,
    # q <- (1 - smoothing) * q + smoothing / K.
    const int32_t* labels
    const double* proba
    double smoothing


cdef inline double _logit(const floating* row, const double* intercept,
                          Py_ssize_t k) noexcept nogil:
    """Logit k of a row in float64, intercept added when there is one."""
    if intercept == NULL:
        return row[k]
    return row[k] + intercept[k]


cdef inline double _target(const Targets* t, Py_ssize_t i, Py_ssize_t k,
                           Py_ssize_t n_classes) noexcept nogil:
    """Target probability q_ik."""
    cdef double q
    if t.proba != NULL:
        q = t.proba[i * n_classes + k]
    else:
        q = 1.0 if k == t.labels[i] else 0.0
    if t.smoothing != 0.0:
        q = (1.0 - t.smoothing) * q + t.smoothing / n_classes
    return q


cdef inline double _row_max_logit(const floating* row, const double* intercept,
                                  Py_ssize_t n_classes) noexcept nogil:
    cdef double zmax = _logit(row, intercept, 0), zk
    cdef Py_ssize_t k
    for k in range(1, n_classes):
        zk = _logit(row, intercept, k)
        if zk > zmax:
            zmax = zk
    return zmax


cdef inline double _row_target_logit(
    const Targets* t, Py_ssize_t i, const floating* row,
    const double* intercept, Py_ssize_t n_classes, double zmax,
) noexcept nogil:
    """sum_k q_ik (z_k - m): the target-weighted shifted logit of row i.

    Terms with q_ik == 0 are skipped (0 * -inf would be NaN for extreme
    logits), so a one-hot row gives exactly the label result.
    """
    cdef double acc = 0.0, q
    cdef Py_ssize_t k
    if t.proba == NULL and t.smoothing == 0.0:
        return _logit(row, intercept, t.labels[i]) - zmax
    for k in range(n_classes):
        q = _target(t, i, k, n_classes)
        if q != 0.0:
            acc = acc + q * (_logit(row, intercept, k) - zmax)
    return acc


cdef double _softmax_residual_rows(
    floating* z, Py_ssize_t first_row, Py_ssize_t n_rows, Py_ssize_t n_classes,
    const double* intercept, const Targets* targets, const double* sw,
    double* grad_intercept,
) noexcept nogil:
    """Turn logits into weighted residuals in place; return the weighted loss.

    ``z`` holds ``X_c @ W.T`` (without intercept) for rows ``first_row ...``.
    For each row, in float64, with logits ``z_k + b_k`` and weight s (1 if
    ``sw`` is NULL) and target q:
    ``loss = log(sum_k exp(z_k - m)) - sum_k q_k (z_k - m)`` with
    ``m = max_k z_k`` (never ``log(sum) + m - ...``, which cancels
    catastrophically when all logits share a large offset), and
    ``z_k <- s * (p_k - q_k)``. Adding the intercept in float64 keeps a large
    common offset exact for float32 data too. The residuals are also summed
    into ``grad_intercept`` (float64).
    """
    cdef Py_ssize_t i, k, K = n_classes
    cdef double zmax, sum_exp, zt, weight, scale, r
    cdef double loss = 0.0
    cdef floating* row
    cdef bint plain_labels = targets.proba == NULL and targets.smoothing == 0.0
    for i in range(n_rows):
        row = z + i * K
        weight = 1.0 if sw == NULL else sw[i]
        zmax = _row_max_logit(row, intercept, K)
        zt = _row_target_logit(targets, first_row + i, row, intercept, K, zmax)
        sum_exp = 0.0
        for k in range(K):
            row[k] = <floating> exp(_logit(row, intercept, k) - zmax)
            sum_exp = sum_exp + row[k]
        loss = loss + weight * (log(sum_exp) - zt)
        scale = weight / sum_exp
        for k in range(K):
            r = row[k] * scale
            if plain_labels:
                if k == targets.labels[first_row + i]:
                    r = r - weight
            else:
                r = r - weight * _target(targets, first_row + i, k, K)
            row[k] = <floating> r
            grad_intercept[k] = grad_intercept[k] + r
    return loss


cdef double _block_loss_gradient(
    const floating* X, Py_ssize_t n_features,
    const Targets* targets, const double* sw,
    const floating* weights_t, const double* intercept, Py_ssize_t n_classes,
    Py_ssize_t row_start, Py_ssize_t row_end, Py_ssize_t chunk_rows,
    floating* z, floating* grad_chunk, double* grad, double* grad_intercept,
) noexcept nogil:
    """Loss and gradient of rows [row_start, row_end), summed sequentially.

    ``grad`` (n_features x K, float64) and ``grad_intercept`` (K) are
    overwritten. ``z`` is chunk_rows x K scratch; ``grad_chunk`` is
    n_features x K scratch used only for float32 (the chunk's gradient is
    computed by SGEMM, then accumulated into the float64 block buffer).
    """
    cdef Py_ssize_t d = n_features, K = n_classes
    cdef Py_ssize_t r0, m, e
    cdef const floating* xc
    cdef const double* sw_c
    cdef double loss = 0.0
    cdef bint first = True

    memset(grad, 0, d * K * sizeof(double))
    memset(grad_intercept, 0, K * sizeof(double))
    r0 = row_start
    while r0 < row_end:
        m = min(chunk_rows, row_end - r0)
        xc = X + r0 * d
        # Logits without intercept: Z (m x K, row-major) = X_c @ W.T.
        if d > 0:
            _gemm(b"N", b"N", <int> K, <int> m, <int> d, weights_t, <int> K,
                  xc, <int> d, <floating> 0.0, z, <int> K)
        else:
            memset(z, 0, m * K * sizeof(floating))
        sw_c = NULL
        if sw != NULL:
            sw_c = sw + r0
        loss = loss + _softmax_residual_rows(z, r0, m, K, intercept, targets,
                                             sw_c, grad_intercept)
        # Gradient: G (d x K, row-major) += X_c.T @ R.
        if d > 0:
            if floating is double:
                _gemm(b"N", b"T", <int> K, <int> d, <int> m, z, <int> K,
                      xc, <int> d, <double> (0.0 if first else 1.0),
                      grad, <int> K)
            else:
                _gemm(b"N", b"T", <int> K, <int> d, <int> m, z, <int> K,
                      xc, <int> d, <float> 0.0, grad_chunk, <int> K)
                for e in range(d * K):
                    grad[e] = grad[e] + grad_chunk[e]
        first = False
        r0 = r0 + m
    return loss


cdef int _set_targets(Targets* targets, const int32_t[::1] y,
                      const double[:, ::1] y_proba, double label_smoothing,
                      Py_ssize_t n, Py_ssize_t n_classes) except -1:
    """Fill ``targets`` from exactly one of labels ``y`` and ``y_proba``."""
    if (y is None) == (y_proba is None):
        raise ValueError("pass exactly one of y and y_proba")
    targets.labels = NULL
    targets.proba = NULL
    targets.smoothing = label_smoothing
    if y is not None:
        if y.shape[0] != n:
            raise ValueError("y has the wrong length")
        if n > 0:
            targets.labels = &y[0]
    else:
        if y_proba.shape[0] != n or y_proba.shape[1] != n_classes:
            raise ValueError("y_proba has the wrong shape")
        if n > 0:
            targets.proba = &y_proba[0, 0]
    return 0


def dense_loss_gradient(
    const floating[:, ::1] X,
    const int32_t[::1] y,
    const double[:, ::1] y_proba,
    double label_smoothing,
    const double[::1] sample_weight,
    const floating[:, ::1] weights_t,
    const double[::1] intercept,
    int n_threads,
    double[:, ::1] grad_t,
):
    """Sum of weighted crossentropies and its gradient, in one pass over X.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C order
    y : ndarray of shape (n_samples,), int32, or None
        Class indices in [0, K) (not checked here), or None with ``y_proba``.
    y_proba : ndarray of shape (n_samples, K), float64, or None
        Target distributions (rows summing to 1), used when ``y`` is None.
    label_smoothing : float
        Targets become ``(1 - label_smoothing) * q + label_smoothing / K``.
    sample_weight : ndarray of shape (n_samples,), float64, or None
    weights_t : ndarray of shape (n_features, K), X's dtype, C order
        Transposed coefficient matrix ``W.T``.
    intercept : ndarray of shape (K,), float64, or None
        Intercepts (None: no intercept). Added to the logits in float64.
    n_threads : int
        OpenMP threads (>= 1). The result does not depend on it.
    grad_t : ndarray of shape (n_features + fit_intercept, K), float64
        Output: gradient of the *unnormalized* sum w.r.t. ``W.T`` and, in
        the last row when ``intercept`` is given, w.r.t. the intercepts.

    Returns
    -------
    loss_sum : float
        ``sum_i s_i * CE_i`` (not divided by the weight sum, no penalty).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = weights_t.shape[1]
    cdef bint fit_intercept = intercept is not None
    cdef Py_ssize_t dK = d * K
    cdef Py_ssize_t chunk_rows, chunks_per_block, block_rows, n_blocks
    cdef Py_ssize_t n_waves, wave, first_block, nb, t, e, b0, b1
    cdef int T
    cdef double loss_total = 0.0
    cdef double* gp
    cdef double acc
    cdef const double* sw = NULL
    cdef const floating* Xp
    cdef const floating* wp = NULL
    cdef const double* bp = NULL
    cdef floating* z_buf = NULL
    cdef floating* gchunk_buf = NULL
    cdef double* g_buf = NULL
    cdef double* gb_buf = NULL
    cdef double* loss_buf = NULL
    cdef Targets targets

    _set_targets(&targets, y, y_proba, label_smoothing, n, K)
    if weights_t.shape[0] != d:
        raise ValueError("weights_t must have n_features rows")
    if fit_intercept:
        if intercept.shape[0] != K:
            raise ValueError("intercept must have K entries")
        bp = &intercept[0]
    if d > 0:
        wp = &weights_t[0, 0]
    if grad_t.shape[0] != d + fit_intercept or grad_t.shape[1] != K:
        raise ValueError("grad_t has the wrong shape")
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight has the wrong length")
        sw = &sample_weight[0] if n > 0 else NULL
    if n == 0:
        grad_t[:, :] = 0.0
        return 0.0
    Xp = &X[0, 0] if d > 0 else NULL

    itemsize = sizeof(floating)
    chunk_rows, chunks_per_block = row_partition(d, itemsize)
    block_rows = chunk_rows * chunks_per_block
    n_blocks = (n + block_rows - 1) // block_rows
    T = <int> max(1, min(n_threads, n_blocks))
    n_waves = (n_blocks + T - 1) // T

    z_buf = <floating*> malloc(T * chunk_rows * K * sizeof(floating))
    g_buf = <double*> malloc(max(T * dK, 1) * sizeof(double))
    gb_buf = <double*> malloc(T * K * sizeof(double))
    loss_buf = <double*> malloc(T * sizeof(double))
    if floating is float:
        gchunk_buf = <floating*> malloc(max(dK, 1) * T * sizeof(floating))
    try:
        if (z_buf == NULL or g_buf == NULL or gb_buf == NULL
                or loss_buf == NULL or (floating is float and gchunk_buf == NULL)):
            raise MemoryError()
        grad_t[:, :] = 0.0
        gp = &grad_t[0, 0]
        with nogil:
            for wave in range(n_waves):
                first_block = wave * T
                nb = min(T, n_blocks - first_block)
                for t in prange(nb, num_threads=T, schedule="static", chunksize=1):
                    b0 = (first_block + t) * block_rows
                    b1 = min(b0 + block_rows, n)
                    loss_buf[t] = _block_loss_gradient(
                        Xp, d, &targets, sw, wp, bp, K,
                        b0, b1, chunk_rows,
                        z_buf + t * chunk_rows * K,
                        NULL if gchunk_buf == NULL else gchunk_buf + t * dK,
                        g_buf + t * dK, gb_buf + t * K)
                # Ordered merge: block results are added in block order, so the
                # sums never depend on which thread computed which block.
                for t in range(nb):
                    loss_total = loss_total + loss_buf[t]
                if dK * nb >= 65536 and T > 1:
                    for e in prange(dK, num_threads=T, schedule="static"):
                        acc = gp[e]
                        for t in range(nb):
                            acc = acc + g_buf[t * dK + e]
                        gp[e] = acc
                else:
                    for e in range(dK):
                        acc = gp[e]
                        for t in range(nb):
                            acc = acc + g_buf[t * dK + e]
                        gp[e] = acc
                if fit_intercept:
                    for e in range(K):
                        acc = gp[dK + e]
                        for t in range(nb):
                            acc = acc + gb_buf[t * K + e]
                        gp[dK + e] = acc
    finally:
        free(z_buf)
        free(g_buf)
        free(gb_buf)
        free(loss_buf)
        free(gchunk_buf)
    return loss_total


# Rows per block of the metric's reduction: fixed, so sums never depend on the
# thread count.
DEF METRIC_BLOCK_ROWS = 4096


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
            zmax = _row_max_logit(row, NULL, K)
            sum_exp = 0.0
            for k in range(K):
                sum_exp = sum_exp + exp(row[k] - zmax)
            ce = log(sum_exp) - _row_target_logit(targets, i, row, NULL, K, zmax)
        else:
            ce = 0.0
            for k in range(K):
                q = _target(targets, i, k, K)
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
        Targets, as in :func:`dense_loss_gradient`.
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
    cdef Py_ssize_t n_blocks = (n + METRIC_BLOCK_ROWS - 1) // METRIC_BLOCK_ROWS
    cdef Py_ssize_t b
    cdef Targets targets
    cdef const double* sw = NULL
    cdef double total = 0.0
    cdef double clip_eps = np.finfo(np.float32 if floating is float else np.float64).eps
    cdef double[::1] partial = np.zeros(max(n_blocks, 1))
    _set_targets(&targets, y, y_proba, label_smoothing, n, K)
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight has the wrong length")
        if n > 0:
            sw = &sample_weight[0]
    if n == 0:
        return 0.0
    with nogil:
        for b in prange(n_blocks, num_threads=max(1, min(n_threads, n_blocks)),
                        schedule="static"):
            partial[b] = _rows_crossentropy_block(
                &y_pred[0, 0], b * METRIC_BLOCK_ROWS,
                min((b + 1) * METRIC_BLOCK_ROWS, n), K, &targets, sw,
                from_logits, clip_eps)
        for b in range(n_blocks):
            total = total + partial[b]
    return total
