# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Fused categorical crossentropy loss and gradient, dense and sparse X.

One call makes one pass over ``X``. Rows are cut into *chunks* (sized so that a
chunk of ``X`` stays in the L2 cache between the two products that read it) and
consecutive chunks form *groups*. For each chunk::

    Z   = X_c @ Wt + b                     (product 1, logits, chunk_rows x K)
    Z   <- s_i * (softmax(Z) - onehot(y))  (in place; loss accumulated on the way)
    G  += Z.T @ X_c                        (product 2, gradient, d x K layout)

For up to 32 classes the two products run in register-blocked micro-kernels
(``_microkernel.h``, vectorized over classes padded to the vector width);
with more classes, through BLAS GEMM. Sparse CSR data has its own kernel,
:func:`csr_loss_gradient`.

Each group of consecutive chunks is summed sequentially into its own
buffers; threads take groups as they come (one parallel region, one barrier)
and the group results are merged into the totals in group order. The
partition into chunks and groups depends only on the data shape, never on the
thread count (:func:`dense_partition`), so the result is bitwise identical for
every ``n_threads``.

Coefficients are passed transposed, ``W.T`` of shape (n_features, K), which is
the operand layout a row-major GEMM wants, and the gradient is returned as
(n_features + fit_intercept, K), intercepts in the last row: the C-contiguous
view of the Fortran-ordered (K, n_dof) coefficient matrix, i.e. exactly the
flat vector scipy's L-BFGS works on. Intercepts are float64 and added to the
logits in float64, so a large common offset stays exact for float32 data.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport exp, log
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree, PyMem_RawMalloc
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memset
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from skcce._openmp cimport SKCCE_OPENMP_ENABLED, omp_get_max_threads

cdef extern from "_microkernel.h":
    int SKCCE_LANES_F64
    int SKCCE_LANES_F32
    void skcce_logits_f64(const double* X, Py_ssize_t m, Py_ssize_t d,
                          const double* Wt, Py_ssize_t Kp, double* Z) noexcept nogil
    void skcce_logits_f32(const float* X, Py_ssize_t m, Py_ssize_t d,
                          const float* Wt, Py_ssize_t Kp, float* Z) noexcept nogil
    void skcce_grad_f64(const double* X, Py_ssize_t m, Py_ssize_t d,
                        const double* R, Py_ssize_t Kp, double* G) noexcept nogil
    void skcce_grad_f32(const float* X, Py_ssize_t m, Py_ssize_t d,
                        const float* R, Py_ssize_t Kp, double* G) noexcept nogil
    void skcce_exp_nonpositive_inplace(double* v, Py_ssize_t n) noexcept nogil

cdef extern from "_sparse_tiles.h":
    void skcce_tile_gather_f64(const uint32_t* keys, const double* values,
                               Py_ssize_t e0, Py_ssize_t e1, int shift,
                               const double* wb, Py_ssize_t K, double* z,
                               const double* stream, const double* stream_end,
                               Py_ssize_t lines) noexcept nogil
    void skcce_tile_gather_f32(const uint32_t* keys, const float* values,
                               Py_ssize_t e0, Py_ssize_t e1, int shift,
                               const double* wb, Py_ssize_t K, double* z,
                               const double* stream, const double* stream_end,
                               Py_ssize_t lines) noexcept nogil
    double* skcce_tile_scatter_f64(const uint32_t* keys, const double* values,
                                   Py_ssize_t e0, Py_ssize_t e1, int shift,
                                   double* gb, Py_ssize_t K, const double* residuals,
                                   double* stream, const double* stream_end,
                                   Py_ssize_t lines) noexcept nogil
    double* skcce_tile_scatter_f32(const uint32_t* keys, const float* values,
                                   Py_ssize_t e0, Py_ssize_t e1, int shift,
                                   double* gb, Py_ssize_t K, const double* residuals,
                                   double* stream, const double* stream_end,
                                   Py_ssize_t lines) noexcept nogil

cdef extern from "_prefault.h":
    void skcce_prefault(void* p, size_t n) noexcept nogil

cdef extern from "_ordered_merge.h":
    ctypedef struct skcce_ordered_merge:
        Py_ssize_t n_groups
        Py_ssize_t n_slots
        Py_ssize_t merged
        unsigned char* done
    void skcce_wait_for_slot(skcce_ordered_merge* m, Py_ssize_t g) noexcept nogil
    void skcce_finish_group(skcce_ordered_merge* m, Py_ssize_t g, double* grad,
                            double* grad_intercept, double* loss,
                            const double* grad_slots, const double* intercept_slots,
                            const double* loss_slots, Py_ssize_t n_features,
                            Py_ssize_t n_classes, Py_ssize_t ldw) noexcept nogil

import numpy as np


# Target size in bytes of one chunk of X: small enough that the chunk is still
# in the L2 cache when the gradient GEMM reads it again after the logits GEMM.
cdef enum:
    CHUNK_BYTES = 131072
# Target size in bytes of one block of X: large enough that the per-wave
# synchronisation and the merge are negligible next to the block's work.
cdef enum:
    BLOCK_BYTES = 1048576
# Groups of rows summed separately, then merged in order (see dense_partition).
cdef enum:
    MAX_GROUPS = 64
cdef enum:
    GROUP_BUFFER_BYTES = 67108864
# Group gradient buffers in use at once, per thread (see _ordered_merge.h):
# slack for threads that run ahead while an earlier group is still computed.
cdef enum:
    MERGE_SLOTS_PER_THREAD = 4
cdef enum:
    MIN_CHUNK_ROWS = 8
cdef enum:
    MAX_CHUNK_ROWS = 2048
# Up to this many classes the dense products run in the register-blocked
# micro-kernels of _microkernel.h; above, BLAS GEMM is as fast.
cdef enum:
    MICRO_MAX_CLASSES = 32


def _microkernel_width(Py_ssize_t n_classes, Py_ssize_t itemsize):
    """Padded number of classes (row stride of W.T, logits and gradient).

    A multiple of the micro-kernels' vector width for up to
    MICRO_MAX_CLASSES classes, else K itself (BLAS path).
    """
    cdef Py_ssize_t lanes = SKCCE_LANES_F64 if itemsize == 8 else SKCCE_LANES_F32
    if n_classes > MICRO_MAX_CLASSES:
        return int(n_classes)
    return int((n_classes + lanes - 1) // lanes * lanes)


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

    Depends on the data shape only (never on the thread count).

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


def dense_partition(Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t n_classes,
                    Py_ssize_t itemsize):
    """How the dense kernel splits the rows: chunks, and groups of chunks.

    Each group (consecutive rows) is summed sequentially into a gradient
    buffer of its own (one of a few slots per thread, see
    :func:`dense_merge_slots`); threads take groups as they come; group
    results are merged in group order. At most MAX_GROUPS groups, of at least
    one block (~1 MiB of X) each, and no more than GROUP_BUFFER_BYTES of
    d x K gradients in total: each group's merge adds d x K values under a
    lock, so very wide data with many classes has fewer groups (hence fewer
    threads at work) rather than a merge that outweighs the work. Depends on
    the data shape only, never on the thread count: this is what makes
    results bitwise reproducible.

    Parameters
    ----------
    n_samples, n_features, n_classes : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    chunk_rows, group_rows, n_groups : int, int, int
    """
    chunk_rows, chunks_per_block = row_partition(n_features, itemsize)
    cdef Py_ssize_t block_rows = chunk_rows * chunks_per_block
    cdef Py_ssize_t n_blocks = max(1, (n_samples + block_rows - 1) // block_rows)
    cdef Py_ssize_t buffer_bytes = (
        (n_features * _microkernel_width(n_classes, itemsize) + n_classes + 1) * 8)
    cdef Py_ssize_t max_groups = max(1, min(MAX_GROUPS, GROUP_BUFFER_BYTES // buffer_bytes))
    cdef Py_ssize_t blocks_per_group = (n_blocks + max_groups - 1) // max_groups
    cdef Py_ssize_t group_rows = blocks_per_group * block_rows
    cdef Py_ssize_t n_groups = max(1, (n_samples + group_rows - 1) // group_rows)
    return int(chunk_rows), int(group_rows), int(n_groups)


def dense_merge_slots(Py_ssize_t n_groups, Py_ssize_t n_threads):
    """Group gradient buffers the dense kernel holds at once.

    Group g is summed into slot g % n_slots and added to the total, in group
    order, as soon as the groups before it are in; a few slots per thread let
    threads run ahead of a slow group. The result does not depend on it.

    Parameters
    ----------
    n_groups, n_threads : int

    Returns
    -------
    n_slots : int
    """
    return int(max(1, min(n_groups, MERGE_SLOTS_PER_THREAD * max(n_threads, 1))))


ctypedef fused index_t:
    int32_t
    int64_t


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


cdef double _softmax_residual_chunk(
    floating* z, Py_ssize_t row_stride, Py_ssize_t first_row, Py_ssize_t n_rows,
    Py_ssize_t n_classes, const double* intercept, const Targets* targets,
    const double* sw, double* grad_intercept, double* scratch,
) noexcept nogil:
    """Turn logits into weighted residuals in place; return the weighted loss.

    ``z`` holds ``X_c @ W.T`` (without intercept) for rows ``first_row ...``,
    one row every ``row_stride`` values (columns past K are left alone).
    For each row, in float64, with logits ``z_k + b_k`` and weight s (1 if
    ``sw`` is NULL) and target q:
    ``loss = log(sum_k exp(z_k - m)) - sum_k q_k (z_k - m)`` with
    ``m = max_k z_k`` (never ``log(sum) + m - ...``, which cancels
    catastrophically when all logits share a large offset), and
    ``z_k <- s * (p_k - q_k)``. Adding the intercept in float64 keeps a large
    common offset exact for float32 data too. The residuals are also summed
    into ``grad_intercept`` (float64) unless it is NULL.

    The shifted logits ``z_k + b_k - m`` of all rows go to ``scratch``
    (n_rows x K doubles, then n_rows target logits) and are exponentiated in
    one vectorized call (within 2 ulp of the correctly rounded exp).
    """
    cdef Py_ssize_t i, k, K = n_classes
    cdef double zmax, sum_exp, weight, scale, r
    cdef double loss = 0.0
    cdef floating* row
    cdef double* e
    cdef double* target_logit = scratch + n_rows * K
    cdef bint plain_labels = targets.proba == NULL and targets.smoothing == 0.0
    for i in range(n_rows):
        row = z + i * row_stride
        e = scratch + i * K
        zmax = _row_max_logit(row, intercept, K)
        target_logit[i] = _row_target_logit(targets, first_row + i, row, intercept,
                                            K, zmax)
        for k in range(K):
            e[k] = _logit(row, intercept, k) - zmax
    skcce_exp_nonpositive_inplace(scratch, n_rows * K)
    for i in range(n_rows):
        row = z + i * row_stride
        e = scratch + i * K
        weight = 1.0 if sw == NULL else sw[i]
        sum_exp = 0.0
        for k in range(K):
            sum_exp = sum_exp + e[k]
        loss = loss + weight * (log(sum_exp) - target_logit[i])
        scale = weight / sum_exp
        for k in range(K):
            r = e[k] * scale
            if plain_labels:
                if k == targets.labels[first_row + i]:
                    r = r - weight
            else:
                r = r - weight * _target(targets, first_row + i, k, K)
            row[k] = <floating> r
            if grad_intercept != NULL:
                grad_intercept[k] = grad_intercept[k] + r
    return loss


cdef double _block_loss_gradient(
    const floating* X, Py_ssize_t n_features,
    const Targets* targets, const double* sw,
    const floating* weights_t, Py_ssize_t ldw, const double* intercept,
    Py_ssize_t n_classes, Py_ssize_t row_start, Py_ssize_t row_end,
    Py_ssize_t chunk_rows, floating* z, floating* grad_chunk, double* grad,
    double* grad_intercept, double* scratch,
) noexcept nogil:
    """Loss and gradient of rows [row_start, row_end), summed sequentially.

    ``weights_t`` is (n_features x ldw) with zero columns past K; ``z`` is
    chunk_rows x ldw scratch; ``grad`` (n_features x ldw, float64) and
    ``grad_intercept`` (K) are overwritten; ``scratch`` holds
    chunk_rows x (K + 1) doubles. With ``ldw`` a multiple of the
    vector width (:func:`_microkernel_width`), the products run in the
    register-blocked micro-kernels; otherwise (``ldw == K``, many classes)
    through BLAS GEMM, with ``grad_chunk`` (n_features x K float32 scratch)
    for float32 data.
    """
    cdef Py_ssize_t d = n_features, K = n_classes
    cdef Py_ssize_t r0, m, e
    cdef const floating* xc
    cdef const double* sw_c
    cdef double loss = 0.0
    cdef bint first = True
    cdef bint micro = ldw != K or K <= MICRO_MAX_CLASSES

    memset(grad, 0, d * ldw * sizeof(double))
    memset(grad_intercept, 0, K * sizeof(double))
    r0 = row_start
    while r0 < row_end:
        m = min(chunk_rows, row_end - r0)
        xc = X + r0 * d
        # Logits without intercept: Z (m x ldw, row-major) = X_c @ W.T.
        if d == 0:
            memset(z, 0, m * ldw * sizeof(floating))
        elif micro:
            if floating is double:
                skcce_logits_f64(xc, m, d, weights_t, ldw, z)
            else:
                skcce_logits_f32(xc, m, d, weights_t, ldw, z)
        else:
            _gemm(b"N", b"N", <int> K, <int> m, <int> d, weights_t, <int> K,
                  xc, <int> d, <floating> 0.0, z, <int> K)
        sw_c = NULL
        if sw != NULL:
            sw_c = sw + r0
        loss = loss + _softmax_residual_chunk(z, ldw, r0, m, K, intercept, targets,
                                              sw_c, grad_intercept, scratch)
        # Gradient: G (d x ldw, row-major) += X_c.T @ R.
        if d == 0:
            pass
        elif micro:
            if floating is double:
                skcce_grad_f64(xc, m, d, z, ldw, grad)
            else:
                skcce_grad_f32(xc, m, d, z, ldw, grad)
        elif floating is double:
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
    cdef Py_ssize_t chunk_rows, group_rows, n_groups, n_slots
    cdef Py_ssize_t g, t, b0, b1, ldw, dL, slot
    cdef int T
    cdef double loss_total = 0.0
    cdef double* gp
    cdef double* gbp = NULL
    cdef skcce_ordered_merge merge
    cdef const double* sw = NULL
    cdef const floating* Xp
    cdef const floating* wp = NULL
    cdef const double* bp = NULL
    cdef floating* z_buf = NULL
    cdef floating* gchunk_buf = NULL
    cdef floating[:, ::1] padded_view
    cdef double* e_buf = NULL
    cdef bint blas_float
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
    # W.T, logits and group gradients have ldw >= K columns (padded with
    # zeros to the micro-kernels' vector width).
    ldw = _microkernel_width(K, itemsize)
    dL = d * ldw
    chunk_rows, group_rows, n_groups = dense_partition(n, d, K, itemsize)
    T = <int> max(1, min(n_threads, n_groups))
    if ldw != K and d > 0:
        padded_weights = np.zeros((d, ldw), dtype=np.asarray(weights_t).dtype)
        padded_weights[:, :K] = weights_t
        padded_view = padded_weights
        wp = &padded_view[0, 0]
    blas_float = floating is float and ldw == K and K > MICRO_MAX_CLASSES

    # Scratch per thread; gradient, intercept and loss sums per slot: group g
    # uses slot g % n_slots and is added to the totals, in group order, as
    # soon as the groups before it are in (_ordered_merge.h). PyMem_Raw*
    # (thread-safe without the GIL) so that tracemalloc counts the kernels'
    # buffers too.
    n_slots = dense_merge_slots(n_groups, T)
    z_buf = <floating*> PyMem_RawMalloc(T * chunk_rows * ldw * sizeof(floating))
    e_buf = <double*> PyMem_RawMalloc(T * chunk_rows * (K + 1) * sizeof(double))
    g_buf = <double*> PyMem_RawMalloc(max(n_slots * dL, 1) * sizeof(double))
    gb_buf = <double*> PyMem_RawMalloc(n_slots * K * sizeof(double))
    loss_buf = <double*> PyMem_RawMalloc(n_slots * sizeof(double))
    merge.done = <unsigned char*> PyMem_RawCalloc(n_groups, 1)
    merge.n_groups = n_groups
    merge.n_slots = n_slots
    merge.merged = 0
    if blas_float:
        gchunk_buf = <floating*> PyMem_RawMalloc(max(dK, 1) * T * sizeof(floating))
    try:
        if (z_buf == NULL or e_buf == NULL or g_buf == NULL or gb_buf == NULL
                or loss_buf == NULL or merge.done == NULL
                or (blas_float and gchunk_buf == NULL)):
            raise MemoryError()
        grad_t[:, :] = 0.0
        gp = &grad_t[0, 0]
        if fit_intercept:
            gbp = gp + dK
        with nogil:
            for g in prange(n_groups, num_threads=T, schedule="dynamic"):
                t = threadid()
                slot = g % n_slots
                skcce_wait_for_slot(&merge, g)
                b0 = g * group_rows
                b1 = min(b0 + group_rows, n)
                loss_buf[slot] = _block_loss_gradient(
                    Xp, d, &targets, sw, wp, ldw, bp, K,
                    b0, b1, chunk_rows,
                    z_buf + t * chunk_rows * ldw,
                    NULL if gchunk_buf == NULL else gchunk_buf + t * dK,
                    g_buf + slot * dL, gb_buf + slot * K,
                    e_buf + t * chunk_rows * (K + 1))
                skcce_finish_group(&merge, g, gp, gbp, &loss_total, g_buf, gb_buf,
                                   loss_buf, d, K, ldw)
    finally:
        PyMem_RawFree(z_buf)
        PyMem_RawFree(e_buf)
        PyMem_RawFree(g_buf)
        PyMem_RawFree(gb_buf)
        PyMem_RawFree(loss_buf)
        PyMem_RawFree(merge.done)
        PyMem_RawFree(gchunk_buf)
    return loss_total


# The sparse kernel works on tiles: a chunk of rows keeps its logits (then
# residuals) in the L2 cache, chunk_rows x K float64 (512 KiB), and the
# coefficient and gradient rows are visited one *feature block* at a time (a
# power of two of features whose K float64 coefficients take at most
# SPARSE_BLOCK_BYTES, 128 KiB), the next block streamed in address order while
# the current one is processed. Measured on CSR 100,000 x 100,000 with 100
# non-zeros per row, K = 20: visiting the coefficient and gradient rows in the
# rows' random order made every non-zero two random cache misses (the d x K
# coefficients and gradient do not fit in the cache together); the tiles halve
# the time of an evaluation.
cdef enum:
    SPARSE_CHUNK_VALUES = 65536
cdef enum:
    SPARSE_MIN_CHUNK_ROWS = 64
# At most 2^16 rows: a tile entry stores the row within its chunk in 16 bits.
cdef enum:
    SPARSE_MAX_CHUNK_ROWS = 16384
# Non-zeros per chunk (a chunk ends earlier when it would exceed this, unless
# it is a single row): bounds the chunk's tile entries (12 bytes each).
cdef enum:
    SPARSE_CHUNK_NNZ = 262144
cdef enum:
    SPARSE_BLOCK_BYTES = 131072
# At most 2^16 features per block: an entry stores the feature within its
# block in 16 bits.
cdef enum:
    SPARSE_MAX_BLOCK_FEATURES = 65536
# Fewest non-zeros per thread worth starting a thread for.
cdef enum:
    SPARSE_NNZ_PER_THREAD = 32768


def sparse_chunk_rows(Py_ssize_t n_classes):
    """Largest number of rows per chunk of the sparse kernel for K classes.

    The sparse kernel's results do not depend on the thread count: its chunks
    and feature blocks depend on the data and K only, and every sum runs in a
    fixed order.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    chunk_rows : int
    """
    return int(min(max(SPARSE_CHUNK_VALUES // max(n_classes, 1),
                       SPARSE_MIN_CHUNK_ROWS), SPARSE_MAX_CHUNK_ROWS))


def sparse_block_shift(Py_ssize_t n_classes):
    """log2 of the number of features per block of the sparse kernel.

    The largest power of two of features (at most 2^16) whose K float64
    coefficients take at most SPARSE_BLOCK_BYTES; at least one feature.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    shift : int
    """
    cdef Py_ssize_t shift = 0, row_bytes = max(n_classes, 1) * 8
    while ((2 << shift) <= SPARSE_MAX_BLOCK_FEATURES
           and (2 << shift) * row_bytes <= SPARSE_BLOCK_BYTES):
        shift += 1
    return int(shift)


cdef inline Py_ssize_t _stream_block(
    const double* next_block, Py_ssize_t block_values, Py_ssize_t n_entries,
) noexcept nogil:
    """Cache lines of the next block to prefetch per entry of this one.

    While a block's entries are processed, the next block's coefficient (or
    gradient) rows are prefetched in address order, a few lines per entry, so
    that they arrive as a stream instead of as random misses.
    """
    if next_block == NULL:
        return 0
    return min(8, (block_values // 8) // max(n_entries, 1) + 1)


cdef struct ChunkTiles:
    # One chunk's non-zeros sorted by feature block (rows in order within a
    # block), and the chunk's logits / residuals. Entry e of block b covers
    # ``block_start[b] <= e < block_start[b + 1]``: its key is
    # ``(row - chunk's first row) << 16 | (feature - b * block features)``,
    # its value ``values[e]`` (X's dtype).
    uint32_t* keys
    void* values
    Py_ssize_t* block_start
    Py_ssize_t* block_next
    Py_ssize_t* block_counts
    double* z
    double* scratch
    double* intercept_sum
    Py_ssize_t row_start
    Py_ssize_t row_end
    double loss


cdef struct TileCache:
    # Every chunk's tiles, built once by csr_tile_cache (all NULL: none).
    # Entries of chunk c sit where its non-zeros sit in the CSR arrays; its
    # block offsets are row c of block_start, relative to its first entry.
    uint32_t* keys
    const void* values
    Py_ssize_t* block_start


cdef void _tile_chunk(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end, int block_shift, Py_ssize_t n_blocks,
    ChunkTiles* tiles,
) noexcept nogil:
    """Sort the non-zeros of rows [row_start, row_end) by feature block.

    A counting sort: the order within a block is the CSR order, i.e. rows in
    order (and, within a row, the row's stored order).
    """
    cdef Py_ssize_t b, e, i
    cdef index_t p, j
    cdef uint32_t row_key, mask = (1u << block_shift) - 1
    cdef Py_ssize_t* start = tiles.block_start
    cdef Py_ssize_t* next_entry = tiles.block_next
    cdef floating* values = <floating*> tiles.values
    cdef Py_ssize_t* counts = tiles.block_counts
    cdef index_t p_end = indptr[row_end]
    # Four interleaved histograms: consecutive non-zeros often fall in the
    # same block, and one histogram would chain their increments.
    memset(counts, 0, 4 * n_blocks * sizeof(Py_ssize_t))
    p = indptr[row_start]
    while p + 4 <= p_end:
        counts[indices[p] >> block_shift] += 1
        counts[n_blocks + (indices[p + 1] >> block_shift)] += 1
        counts[2 * n_blocks + (indices[p + 2] >> block_shift)] += 1
        counts[3 * n_blocks + (indices[p + 3] >> block_shift)] += 1
        p = p + 4
    while p < p_end:
        counts[indices[p] >> block_shift] += 1
        p = p + 1
    start[0] = 0
    for b in range(n_blocks):
        start[b + 1] = (start[b] + counts[b] + counts[n_blocks + b]
                        + counts[2 * n_blocks + b] + counts[3 * n_blocks + b])
        next_entry[b] = start[b]
    for i in range(row_start, row_end):
        row_key = (<uint32_t> (i - row_start)) << 16
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            b = j >> block_shift
            e = next_entry[b]
            next_entry[b] = e + 1
            tiles.keys[e] = row_key | (<uint32_t> j & mask)
            values[e] = data[p]


cdef void _gather_logits(
    const ChunkTiles* tiles, const floating* values_type, Py_ssize_t n_blocks,
    int block_shift, const double* weights_t, Py_ssize_t n_features,
    Py_ssize_t n_classes,
) noexcept nogil:
    """``z[r, :] = sum x * W.T[j, :]`` over the chunk's entries, block by block.

    For a row whose indices are sorted, the terms are added in CSR order.
    ``values_type`` only selects the fused type (X's dtype).
    """
    cdef Py_ssize_t b, e0, e1, K = n_classes
    cdef Py_ssize_t block_values = (<Py_ssize_t> 1 << block_shift) * K
    cdef const double* wb
    cdef const double* stream
    cdef const double* stream_end = weights_t + n_features * K
    memset(tiles.z, 0, (tiles.row_end - tiles.row_start) * K * sizeof(double))
    for b in range(n_blocks):
        wb = weights_t + (b << block_shift) * K
        e0 = tiles.block_start[b]
        e1 = tiles.block_start[b + 1]
        stream = wb + block_values if b + 1 < n_blocks else NULL
        if floating is double:
            skcce_tile_gather_f64(tiles.keys, <const double*> tiles.values, e0, e1,
                                  block_shift, wb, K, tiles.z, stream, stream_end,
                                  _stream_block(stream, block_values, e1 - e0))
        else:
            skcce_tile_gather_f32(tiles.keys, <const float*> tiles.values, e0, e1,
                                  block_shift, wb, K, tiles.z, stream, stream_end,
                                  _stream_block(stream, block_values, e1 - e0))


cdef void _scatter_block(
    const ChunkTiles* tiles, Py_ssize_t n_chunks, const floating* values_type,
    Py_ssize_t b, Py_ssize_t n_blocks, int block_shift, Py_ssize_t n_features,
    Py_ssize_t n_classes, double* grad_t, bint zero_first,
) noexcept nogil:
    """``G[j, :] += x * R[r, :]`` for the entries in feature block b of
    ``n_chunks`` consecutive chunks, chunks in order, rows in order.

    With ``zero_first`` (the first wave) the block's gradient rows are zeroed
    first: the thread that owns the block touches its memory first, in cache,
    instead of a separate pass over the whole gradient. Meanwhile the
    gradient rows of block b + 1 (usually this thread's next block) are
    prefetched in address order.
    """
    cdef Py_ssize_t c, K = n_classes, n_entries = 0, lines
    cdef Py_ssize_t block_values = (<Py_ssize_t> 1 << block_shift) * K
    cdef double* gb = grad_t + (b << block_shift) * K
    cdef double* stream = gb + block_values if b + 1 < n_blocks else NULL
    cdef const double* stream_end = grad_t + n_features * K
    if zero_first:
        memset(gb, 0, max(0, min(<Py_ssize_t> 1 << block_shift,
                                 n_features - (b << block_shift))) * K * sizeof(double))
    for c in range(n_chunks):
        n_entries += tiles[c].block_start[b + 1] - tiles[c].block_start[b]
    lines = _stream_block(stream, block_values, n_entries)
    for c in range(n_chunks):
        if floating is double:
            stream = skcce_tile_scatter_f64(
                tiles[c].keys, <const double*> tiles[c].values,
                tiles[c].block_start[b], tiles[c].block_start[b + 1], block_shift,
                gb, K, tiles[c].z, stream, stream_end, lines)
        else:
            stream = skcce_tile_scatter_f32(
                tiles[c].keys, <const float*> tiles[c].values,
                tiles[c].block_start[b], tiles[c].block_start[b + 1], block_shift,
                gb, K, tiles[c].z, stream, stream_end, lines)


# Alignment of the tiles and of each of a thread's tile buffers within them: a
# cache line, so that no two threads write to one line.
cdef enum:
    TILE_ALIGN = 64


cdef inline size_t _aligned(size_t n) noexcept nogil:
    return (n + TILE_ALIGN - 1) & ~(<size_t> TILE_ALIGN - 1)


cdef size_t _tile_bytes(Py_ssize_t largest_nnz, size_t value_size, Py_ssize_t chunk_rows,
                        Py_ssize_t K, Py_ssize_t n_blocks) noexcept nogil:
    """Bytes of one thread's tile buffers (see :func:`_carve_tiles`)."""
    cdef size_t nnz = max(largest_nnz, 1)
    return (_aligned(nnz * sizeof(uint32_t)) + _aligned(nnz * value_size)
            + _aligned(chunk_rows * K * sizeof(double))
            + _aligned(chunk_rows * (K + 1) * sizeof(double))
            + _aligned((6 * n_blocks + 1) * sizeof(Py_ssize_t))
            + _aligned(K * sizeof(double)))


cdef void _carve_tiles(ChunkTiles* tiles, char* p, Py_ssize_t largest_nnz,
                       size_t value_size, Py_ssize_t chunk_rows, Py_ssize_t K,
                       Py_ssize_t n_blocks) noexcept nogil:
    """Point a thread's tile buffers into its ``_tile_bytes`` of scratch at p:
    the sorted keys and values of a chunk's non-zeros, its logits and
    residuals, the block offsets and counts, the intercept sums."""
    cdef size_t nnz = max(largest_nnz, 1)
    tiles.keys = <uint32_t*> p
    p += _aligned(nnz * sizeof(uint32_t))
    tiles.values = <void*> p
    p += _aligned(nnz * value_size)
    tiles.z = <double*> p
    p += _aligned(chunk_rows * K * sizeof(double))
    tiles.scratch = <double*> p
    p += _aligned(chunk_rows * (K + 1) * sizeof(double))
    tiles.block_start = <Py_ssize_t*> p
    tiles.block_next = tiles.block_start + n_blocks + 1
    tiles.block_counts = tiles.block_next + n_blocks
    p += _aligned((6 * n_blocks + 1) * sizeof(Py_ssize_t))
    tiles.intercept_sum = <double*> p


cdef void _chunk_residuals(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end, int block_shift, Py_ssize_t n_blocks,
    const double* weights_t, Py_ssize_t n_features, const double* intercept,
    Py_ssize_t n_classes, const Targets* targets, const double* sw,
    ChunkTiles* tiles, const TileCache* cache, Py_ssize_t chunk_index,
) noexcept nogil:
    """Tile one chunk (or point at its cached tiles), then its logits, loss and
    weighted residuals."""
    cdef const double* sw_chunk = NULL
    cdef Py_ssize_t first = indptr[row_start]
    if sw != NULL:
        sw_chunk = sw + row_start
    tiles.row_start = row_start
    tiles.row_end = row_end
    if cache.keys != NULL:
        tiles.keys = cache.keys + first
        tiles.values = <void*> (<const floating*> cache.values + first)
        tiles.block_start = cache.block_start + chunk_index * (n_blocks + 1)
    else:
        _tile_chunk(data, indices, indptr, row_start, row_end, block_shift, n_blocks,
                    tiles)
    _gather_logits(tiles, data, n_blocks, block_shift, weights_t, n_features,
                   n_classes)
    memset(tiles.intercept_sum, 0, n_classes * sizeof(double))
    tiles.loss = _softmax_residual_chunk(
        tiles.z, n_classes, row_start, row_end - row_start, n_classes, intercept,
        targets, sw_chunk, tiles.intercept_sum, tiles.scratch)


def _sparse_chunks(const index_t[::1] indptr, Py_ssize_t max_rows):
    """Row boundaries of the sparse kernel's chunks, and their largest nnz.

    A chunk has at most ``max_rows`` rows and, unless it is a single row, at
    most SPARSE_CHUNK_NNZ non-zeros.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, start = 0, stop, largest = 0
    bounds = [0]
    while start < n:
        stop = start + 1
        while (stop < n and stop - start < max_rows
               and indptr[stop + 1] - indptr[start] <= SPARSE_CHUNK_NNZ):
            stop += 1
        largest = max(largest, indptr[stop] - indptr[start])
        bounds.append(stop)
        start = stop
    return np.asarray(bounds, dtype=np.intp), largest


def _sparse_layout(const index_t[::1] indptr, Py_ssize_t n_features, Py_ssize_t n_classes):
    """How the sparse kernel cuts X, from X's shape and K only.

    Returns
    -------
    bounds : ndarray of intp
        Row boundaries of the chunks (:func:`_sparse_chunks`).
    largest_nnz : int
        Non-zeros of the largest chunk.
    chunk_rows : int
        Most rows per chunk.
    block_shift : int
        Features per block, as a power of two (:func:`sparse_block_shift`).
    n_blocks : int
        Feature blocks (at least 1).
    """
    cdef Py_ssize_t n = max(indptr.shape[0] - 1, 0)
    chunk_rows = min(sparse_chunk_rows(n_classes), n)
    bounds, largest_nnz = _sparse_chunks(indptr, chunk_rows)
    block_shift = sparse_block_shift(n_classes)
    n_blocks = max(1, (n_features + (1 << block_shift) - 1) >> block_shift)
    return bounds, largest_nnz, chunk_rows, block_shift, n_blocks


cdef inline int _sparse_threads(int n_threads, Py_ssize_t nnz,
                                Py_ssize_t n_chunks) noexcept nogil:
    """Threads only where there is work for them (the result does not depend
    on their number): small problems run on one."""
    return <int> max(1, min(n_threads, nnz // SPARSE_NNZ_PER_THREAD, n_chunks))


def csr_loss_gradient(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    Py_ssize_t n_features,
    const int32_t[::1] y,
    const double[:, ::1] y_proba,
    double label_smoothing,
    const double[::1] sample_weight,
    const double[:, ::1] weights_t,
    const double[::1] intercept,
    int n_threads,
    double[:, ::1] grad_t,
    tile_cache=None,
):
    """Sum of weighted crossentropies and its gradient for CSR X, in one pass.

    The sparse counterpart of :func:`dense_loss_gradient`. Rows are cut into
    chunks and features into blocks (:func:`sparse_chunk_rows`,
    :func:`sparse_block_shift`). Chunks are processed in waves of one chunk
    per thread:

    1. each thread sorts its chunk's non-zeros by feature block (a counting
       sort, rows kept in order within a block), computes the chunk's logits
       block by block in float64 (the block's coefficient rows stay in
       cache), then the stable softmax, loss and weighted residuals;
    2. the threads share out the feature blocks: for its blocks, a thread
       updates the gradient rows ``G[j, :] += x_ij * R[i, :]`` with the
       wave's chunks in order.

    Each gradient entry is thus updated by one thread, in row order; losses
    and intercept sums are added in chunk order: the result is bitwise
    identical for every thread count. No per-thread copy of the d x K
    gradient exists: memory is O(threads x (chunk_rows x K + chunk non-zeros
    + blocks)) whatever n_features. Indices must lie in [0, n_features) and
    indptr must be non-decreasing from 0 to nnz (checked by the caller).

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays of X (n_samples = len(indptr) - 1): float32 or float64
        values, int32 or int64 indices (both arrays of the same type).
    n_features : int
    y, y_proba, label_smoothing, sample_weight
        As in :func:`dense_loss_gradient`.
    weights_t : ndarray of shape (n_features, K), float64, C order
        ``W.T``; float64 whatever the dtype of X.
    intercept : ndarray of shape (K,), float64, or None
    n_threads : int
    grad_t : ndarray of shape (n_features + fit_intercept, K), float64
        Output, as in :func:`dense_loss_gradient`.
    tile_cache : tuple or None, default=None
        X's tiles from :func:`csr_tile_cache` (same X, same K): step 1 then
        skips the sort. The result is bitwise the same.

    Returns
    -------
    loss_sum : float
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = n_features, K = weights_t.shape[1]
    cdef TileCache cache
    cdef const uint32_t[::1] cache_keys
    cdef const floating[::1] cache_values
    cdef const Py_ssize_t[:, ::1] cache_starts
    cdef bint fit_intercept = intercept is not None
    cdef Py_ssize_t c, i, k, s, b, wave, wave_size, largest_nnz, chunk_rows, n_chunks
    cdef Py_ssize_t nnz = data.shape[0]
    cdef Py_ssize_t n_blocks
    cdef int T, block_shift
    cdef double loss_total = 0.0
    cdef const floating* dp = NULL
    cdef const index_t* ip = NULL
    cdef const index_t* pp
    cdef const double* sw = NULL
    cdef const double* wp = NULL
    cdef const double* bp = NULL
    cdef const Py_ssize_t* bounds_p
    cdef double* gp
    cdef double* gb = NULL
    cdef ChunkTiles* tiles = NULL
    cdef ChunkTiles* tile
    cdef char* arena = NULL
    cdef char* tiles_start
    cdef size_t tile_bytes
    cdef Targets targets

    if n < 0:
        raise ValueError("indptr must have n_samples + 1 entries")
    _set_targets(&targets, y, y_proba, label_smoothing, n, K)
    if weights_t.shape[0] != d:
        raise ValueError("weights_t must have n_features rows")
    if grad_t.shape[0] != d + fit_intercept or grad_t.shape[1] != K:
        raise ValueError("grad_t has the wrong shape")
    if indices.shape[0] != nnz:
        raise ValueError("data and indices must have the same length")
    if fit_intercept:
        if intercept.shape[0] != K:
            raise ValueError("intercept must have K entries")
        bp = &intercept[0]
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight has the wrong length")
        sw = &sample_weight[0] if n > 0 else NULL
    if n == 0 or K == 0:
        grad_t[:, :] = 0.0
        return 0.0
    # The gradient rows are zeroed block by block by the first wave (see
    # _scatter_block); only the intercept row is zeroed here.
    if fit_intercept:
        grad_t[d, :] = 0.0
    if nnz > 0:
        dp = &data[0]
        ip = &indices[0]
    if d > 0:
        wp = &weights_t[0, 0]
    gp = &grad_t[0, 0]
    if fit_intercept:
        gb = &grad_t[d, 0]
    pp = &indptr[0]

    bounds, largest_nnz, chunk_rows, block_shift, n_blocks = _sparse_layout(indptr, d, K)
    cdef const Py_ssize_t[::1] bounds_view = bounds
    bounds_p = &bounds_view[0]
    n_chunks = bounds_view.shape[0] - 1
    cache.keys = NULL
    cache.values = NULL
    cache.block_start = NULL
    if tile_cache is not None:
        cache_keys, cache_values, cache_starts = tile_cache
        if (cache_keys.shape[0] != nnz or cache_values.shape[0] != nnz
                or cache_starts.shape[0] != n_chunks
                or cache_starts.shape[1] != n_blocks + 1):
            raise ValueError("tile_cache was not built from this X and K")
        if nnz > 0:
            cache.keys = <uint32_t*> &cache_keys[0]
            cache.values = <const void*> &cache_values[0]
            cache.block_start = <Py_ssize_t*> &cache_starts[0, 0]
            # Cached tiles need no sort buffers.
            largest_nnz = 0
    T = _sparse_threads(n_threads, nnz, n_chunks)
    tiles = <ChunkTiles*> PyMem_RawCalloc(T, sizeof(ChunkTiles))
    tile_bytes = _tile_bytes(largest_nnz, sizeof(floating), chunk_rows, K, n_blocks)
    if tile_bytes > <size_t> ((PY_SSIZE_T_MAX - TILE_ALIGN) // T):
        PyMem_RawFree(tiles)
        raise MemoryError()
    # TILE_ALIGN - 1 spare bytes: the tiles start on a cache line boundary
    # (the allocator only promises 16 bytes).
    arena = <char*> PyMem_RawMalloc(T * tile_bytes + TILE_ALIGN - 1)
    try:
        if tiles == NULL or arena == NULL:
            raise MemoryError()
        tiles_start = <char*> _aligned(<size_t> arena)
        for s in range(T):
            _carve_tiles(&tiles[s], tiles_start + s * tile_bytes, largest_nnz,
                         sizeof(floating), chunk_rows, K, n_blocks)
        with nogil:
            # Map the fresh tiles and gradient here rather than by page faults
            # in the threads (_prefault.h).
            skcce_prefault(tiles_start, T * tile_bytes)
            skcce_prefault(gp, (d + fit_intercept) * K * sizeof(double))
            wave = 0
            while wave < n_chunks:
                wave_size = min(T, n_chunks - wave)
                for s in prange(wave_size, num_threads=T, schedule="static",
                                chunksize=1):
                    _chunk_residuals(dp, ip, pp, bounds_p[wave + s],
                                     bounds_p[wave + s + 1], block_shift, n_blocks,
                                     wp, d, bp, K, &targets, sw, &tiles[s], &cache,
                                     wave + s)
                # Contiguous ranges of blocks per thread: each thread's next
                # block is (mostly) its own, for the prefetch.
                for b in prange(n_blocks, num_threads=T, schedule="static"):
                    _scatter_block(tiles, wave_size, dp, b, n_blocks, block_shift, d,
                                   K, gp, wave == 0)
                for s in range(wave_size):
                    tile = &tiles[s]
                    loss_total = loss_total + tile.loss
                    if fit_intercept:
                        for k in range(K):
                            gb[k] = gb[k] + tile.intercept_sum[k]
                wave = wave + wave_size
    finally:
        PyMem_RawFree(arena)
        PyMem_RawFree(tiles)
    return loss_total


def csr_tile_cache(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    Py_ssize_t n_features,
    Py_ssize_t n_classes,
    int n_threads,
):
    """X's tiles, sorted once for every evaluation of a fit.

    The sparse kernel's first step sorts each chunk's non-zeros by feature
    block. The order depends on X and K only, not on the coefficients, so a
    fit can sort once and hand the tiles to every :func:`csr_loss_gradient`
    call, which then skips the sort (about a quarter of an evaluation). The
    tiles are sorted by the kernel's own routine: results are bitwise the same
    with or without them. They take as much memory as X's ``data`` and
    ``indices``: 4 bytes per non-zero for the key, plus the value.

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays of X, as in :func:`csr_loss_gradient`.
    n_features, n_classes : int
    n_threads : int

    Returns
    -------
    tile_cache : tuple
        ``(keys, values, block_start)``: uint32 keys and X's values in tile
        order, both of length nnz, and intp block offsets of shape
        (n_chunks, n_blocks + 1).
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, nnz = data.shape[0], K = n_classes
    cdef Py_ssize_t n_chunks, n_blocks, c, first
    cdef int T, block_shift, t
    cdef ChunkTiles* tiles = NULL
    cdef Py_ssize_t* sort_buffers = NULL
    cdef const Py_ssize_t* bounds_p
    cdef const floating* dp = NULL
    cdef const index_t* ip = NULL
    cdef uint32_t* kp
    cdef floating* vp
    cdef Py_ssize_t* sp

    if indices.shape[0] != nnz:
        raise ValueError("data and indices must have the same length")
    bounds, _, _, block_shift, n_blocks = _sparse_layout(indptr, n_features, K)
    cdef const Py_ssize_t[::1] bounds_view = bounds
    bounds_p = &bounds_view[0]
    n_chunks = bounds_view.shape[0] - 1
    keys = np.empty(nnz, dtype=np.uint32)
    values = np.empty(nnz, dtype=np.float64 if floating is double else np.float32)
    block_start = np.empty((n_chunks, n_blocks + 1), dtype=np.intp)
    if nnz == 0 or n_chunks == 0:
        block_start[:] = 0
        return keys, values, block_start
    cdef uint32_t[::1] keys_view = keys
    cdef floating[::1] values_view = values
    cdef Py_ssize_t[:, ::1] starts_view = block_start
    kp = &keys_view[0]
    vp = &values_view[0]
    sp = &starts_view[0, 0]
    dp = &data[0]
    ip = &indices[0]
    T = _sparse_threads(n_threads, nnz, n_chunks)
    tiles = <ChunkTiles*> PyMem_RawCalloc(T, sizeof(ChunkTiles))
    # Per thread, the counting sort's cursors and four histograms.
    sort_buffers = <Py_ssize_t*> PyMem_RawMalloc(T * 5 * n_blocks * sizeof(Py_ssize_t))
    try:
        if tiles == NULL or sort_buffers == NULL:
            raise MemoryError()
        for t in range(T):
            tiles[t].block_next = sort_buffers + t * 5 * n_blocks
            tiles[t].block_counts = tiles[t].block_next + n_blocks
        with nogil:
            for c in prange(n_chunks, num_threads=T, schedule="dynamic"):
                t = threadid()
                first = indptr[bounds_p[c]]
                tiles[t].keys = kp + first
                tiles[t].values = <void*> (vp + first)
                tiles[t].block_start = sp + c * (n_blocks + 1)
                _tile_chunk(dp, ip, &indptr[0], bounds_p[c], bounds_p[c + 1],
                            block_shift, n_blocks, &tiles[t])
    finally:
        PyMem_RawFree(sort_buffers)
        PyMem_RawFree(tiles)
    return keys, values, block_start


# The row-parallel helpers below (the metric, the objective's finishing
# passes, the column statistics) cut rows into blocks fixed by the shape, never
# by the thread count, and add per-block sums in block order: their results are
# the same for every n_threads.
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


# Rows per block of the metric's reduction.
cdef enum:
    METRIC_BLOCK_ROWS = 4096


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
    cdef RowBlocks blocks = _row_blocks(n, METRIC_BLOCK_ROWS)
    cdef Py_ssize_t b
    cdef Targets targets
    cdef const double* sw = NULL
    cdef double total = 0.0
    cdef double clip_eps = np.finfo(np.float32 if floating is float else np.float64).eps
    cdef double[::1] partial = np.zeros(max(blocks.count, 1))
    _set_targets(&targets, y, y_proba, label_smoothing, n, K)
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight has the wrong length")
        if n > 0:
            sw = &sample_weight[0]
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


# Values per row block of the objective's finishing passes.
cdef enum:
    HELPER_BLOCK_VALUES = 65536


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


# At most this many row blocks (each with its own d partial sums) in
# dense_column_square_sums; at least this many rows per block.
cdef enum:
    COLUMN_MAX_BLOCKS = 64
cdef enum:
    COLUMN_MIN_BLOCK_ROWS = 4096


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
    if sample_weight is not None:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight has the wrong length")
        if n > 0:
            sw = &sample_weight[0]
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
