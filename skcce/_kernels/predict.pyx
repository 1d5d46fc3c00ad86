# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Chunked, multithreaded prediction of a linear softmax model.

Computes, into a caller-provided ``out`` of shape (n_samples, K), the logits
``Z = X @ W.T + b`` and optionally turns each row, in place, into
probabilities (softmax) or log-probabilities (log-softmax); or, with
``dense_predict_labels`` and ``csr_predict_labels``, only each row's
``predict`` class index, from its chunk's logits. Nothing of size
n_samples x K is allocated besides ``out``: the working memory per thread
is a chunk's logits on the micro-kernel path or for the labels (at most 512
rows of K values, K padded to the vector width on the micro-kernel path), 16
rows of K doubles for the softmax and, for float32 X with a float64 model, a
float64 tile of 256 KiB; and a padded copy of W.T.

Dense ``X`` is cut into chunks of rows; threads take chunks. Where the loss
takes its micro-kernels (up to 200 classes, fewer with narrow vectors:
``dense.product_kernels``), when ``X`` is C-ordered in the model's dtype, a
chunk's logits come from the register-blocked micro-kernels of the loss (``microkernel.h``, in
the instruction set chosen at import) into a per-thread buffer; otherwise
they are written straight into its rows of ``out`` by one GEMM (BLAS must
be held to one thread by the caller). When ``X`` is float32 and the model
float64, each chunk is converted to float64 tile by tile in a per-thread
buffer and multiplied by DGEMM, so ``X`` is never copied as a whole. ``X``
may be C-ordered, Fortran-ordered or row-strided: the GEMM reads it in place.

CSR ``X`` is processed row by row over the non-zeros, accumulating in
float64, in the hot loops' instruction set (``csr_rows.h``): each row's sums
held in registers for up to 32 classes, and the rows of W.T ahead
prefetched when W.T outgrows the caches (the rules: ``csr_policy.h``).
Where the compiler targets a fused multiply-add, each term is added with
one rounding. The (log-)softmax takes eight rows' float64 logits at a time
(a thread's scratch: 8 rows of K float64 logits besides the softmax's 16).

Numerics. Softmax and log-softmax are computed in float64 from the row
maximum ``m``: ``p_k = exp(z_k - m) / s`` and
``log p_k = (z_k - m) - log(s)`` with ``s = sum_k exp(z_k - m)``. They run in
the hot loops' instruction set, eight rows at a time
(``predict_softmax_impl.h``), and ``p_k`` is ``exp(z_k - m) * (1 / s)``,
within an ulp of the quotient. A row whose
logits overflow (an infinity, or NaN from ``inf - inf`` inside a dot
product) is recomputed in float64 from ``X`` and ``W`` scaled by powers of
two, which cannot overflow, so its probabilities still follow the exact
logits: all the mass goes to the largest ones. A log-probability below the
most negative finite value of the output dtype is saturated to that value
(for finite data the exact value is finite; only its rounding overflows).

The chunking depends on the data's shape only and every row is computed on
its own, so the result is bitwise identical for every thread count.
"""

from cython cimport floating
from cython.parallel cimport prange
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree, PyMem_RawMalloc
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport exp, log, fabs, frexp, ldexp, isfinite, NAN
from libc.stdint cimport int32_t

from skcce._kernels.argmax cimport row_argmax
from skcce._kernels.common cimport gemm, index_t, omp_get_thread_num
from skcce._kernels.simd cimport SKCCE_PREDICT_ROWS, select_simd_loops, skcce_simd

cdef extern from "microkernel.h":
    int SKCCE_LANES_f64
    int SKCCE_LANES_f32

cdef extern from "csr_policy.h":
    # Whether a CSR row's logits prefetch the rows of W.T they are about to
    # need, for this shape of W.T.
    bint skcce_csr_prefetches(Py_ssize_t n_features, Py_ssize_t n_classes,
                              size_t coef_bytes) noexcept nogil

import numpy as np

from skcce._kernels.dense import product_kernels as _loss_product_kernels

_SIMD_LOOPS = select_simd_loops()


# dtype of the model and of the output (float32 only when X and the model
# both are); ``floating`` is X's.
ctypedef fused real_t:
    float
    double


cdef enum:
    MODE_DECISION = 0
    MODE_PROBA = 1
    MODE_LOG_PROBA = 2
    # Target size in bytes of one chunk of dense X on the micro-kernel path
    # and for float32 X with a float64 model: small enough to stay in the L2
    # cache.
    CHUNK_BYTES = 262144
    MIN_CHUNK_ROWS = 16
    MAX_CHUNK_ROWS = 512
    # Elements of the per-thread float64 tile a float32 chunk is converted
    # into when the model is float64 (256 KiB).
    TILE_ELEMS = 32768
    # Target size in bytes of one chunk's logits on the GEMM path (BLAS reads
    # X in place). BLAS packs all of W.T at every call, so a chunk needs
    # enough rows to pay for that whatever the width of X; sized by X's bytes,
    # wide rows made chunks of 16 rows that spent most of their time packing.
    GEMM_CHUNK_BYTES = 2097152
    SPARSE_CHUNK_ROWS = 256
    # Up to this many classes the logits of C-ordered X come from the
    # micro-kernels where the loss takes them (with few classes BLAS spends
    # most of its time packing panels for a product only K columns wide),
    # from BLAS where it does (dense.product_kernels).
    MICRO_MAX_CLASSES = 200


DECISION = MODE_DECISION
PROBA = MODE_PROBA
LOG_PROBA = MODE_LOG_PROBA


class ColumnIndexError(ValueError):
    """A CSR column index outside ``[0, n_features)``.

    The CSR kernels raise it with a terse message; callers facing users
    rerun their structure check for scikit-learn's wording.
    """


def dense_chunk_rows(Py_ssize_t n_features, Py_ssize_t itemsize):
    """Rows per chunk of dense X with this width and dtype.

    Depends on the data's shape only, never on the thread count.

    Parameters
    ----------
    n_features : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    chunk_rows : int
    """
    cdef Py_ssize_t rows = CHUNK_BYTES // (max(n_features, 1) * itemsize)
    return int(min(max(rows, MIN_CHUNK_ROWS), MAX_CHUNK_ROWS))


def gemm_chunk_rows(Py_ssize_t n_classes, Py_ssize_t itemsize):
    """Rows per chunk of dense X on the GEMM path, for this many classes and
    the model's dtype (see GEMM_CHUNK_BYTES).

    Depends on the model's shape and dtype only, never on the thread count.

    Parameters
    ----------
    n_classes : int
    itemsize : int
        Bytes per element of the model (4 or 8).

    Returns
    -------
    chunk_rows : int
    """
    cdef Py_ssize_t rows = GEMM_CHUNK_BYTES // (max(n_classes, 1) * itemsize)
    return int(min(max(rows, MIN_CHUNK_ROWS), MAX_CHUNK_ROWS))


def sparse_chunk_rows():
    """Rows per chunk of CSR X.

    Returns
    -------
    chunk_rows : int
    """
    return SPARSE_CHUNK_ROWS


def csr_row_logits(
    const floating[::1] values,
    const index_t[::1] columns,
    const real_t[:, ::1] weights_t,
    const real_t[::1] intercept,
    Py_ssize_t readable,
):
    """One CSR row's float64 logits, as prediction computes them (for tests).

    Parameters
    ----------
    values : ndarray of shape (nnz,), float32 or float64
    columns : ndarray of shape (nnz,), int32 or int64
        Column of each value, in [0, n_features).
    weights_t : ndarray of shape (n_features, K), C order
    intercept : ndarray of shape (K,), weights_t's dtype
    readable : int
        How many of ``columns`` the loops may read ahead to prefetch rows of
        W.T (0: no prefetching; the loops differ, the result does not).

    Returns
    -------
    z : ndarray of shape (K,), float64
    """
    cdef Py_ssize_t K = weights_t.shape[1], nnz = values.shape[0]
    if columns.shape[0] != nnz or intercept.shape[0] != K:
        raise ValueError("values, columns and intercept must match weights_t.")
    if not 0 <= readable <= nnz:
        raise ValueError(f"readable must lie in [0, {nnz}], got {readable}.")
    if nnz > 0 and _columns_out_of_range(&columns[0], nnz, weights_t.shape[0]):
        raise ValueError(f"columns must lie in [0, {weights_t.shape[0]}).")
    z = np.empty(K)
    cdef double[::1] z_view = z
    if K > 0:
        _sparse_row_logits(&values[0] if nnz > 0 else NULL,
                           &columns[0] if nnz > 0 else NULL, nnz, readable,
                           &weights_t[0, 0] if weights_t.shape[0] > 0 else NULL,
                           &intercept[0], K, &z_view[0])
    return z


def csr_terms_fused():
    """Whether each term of the CSR logits is a fused multiply-add.

    For the loops in use (see :func:`skcce._kernels.dense.simd_loops`): each
    term ``acc + x * w`` is rounded once where the compiler targeted a fused
    multiply-add for them, twice elsewhere.

    Returns
    -------
    fused : bool
    """
    return bool(skcce_simd.csr_terms_fused())


cdef inline Py_ssize_t _unshared(Py_ssize_t size, Py_ssize_t itemsize) noexcept nogil:
    """Elements between two threads' scratch of ``size`` elements: a multiple
    of 4 KiB, at least 4 KiB more than the size, so that no page holds two
    threads' scratch. With only 128 bytes between them (no shared cache line,
    nor pair of lines), the softmax on two threads took 5-10% longer."""
    return (size * itemsize + 8191) // 4096 * 4096 // itemsize


cdef inline double _power_of_two_scale(double value) noexcept nogil:
    """A power of two ``s >= 1`` with ``value / s < 2`` (``value`` finite, >= 0).

    ``2**(e - 1)`` for ``value = f * 2**e``, ``0.5 <= f < 1``: never
    overflows, unlike the power of two just above ``value`` near DBL_MAX.
    """
    cdef int exponent
    if value <= 1.0:
        return 1.0
    frexp(value, &exponent)
    return ldexp(1.0, exponent - 1)


cdef inline void _normalize_row(const double* v, Py_ssize_t n_classes, double total,
                                int mode, real_t* out) noexcept nogil:
    """A row's probabilities ``v / total`` (``v`` its exps) or log-probabilities
    ``v - log(total)`` (``v`` its shifted logits), the latter saturated at the
    output dtype's most negative finite value."""
    cdef Py_ssize_t k
    cdef double t, lse
    cdef double lowest = -DBL_MAX if real_t is double else -FLT_MAX
    if mode == MODE_PROBA:
        for k in range(n_classes):
            out[k] = <real_t> (v[k] / total)
    else:
        lse = log(total)
        for k in range(n_classes):
            t = v[k] - lse
            out[k] = <real_t> (t if t > lowest else lowest)


cdef inline void _finish_row(double* z, Py_ssize_t n_classes, double scale_x,
                             double scale_w, int mode, real_t* out) noexcept nogil:
    """Write the row's logits ``scale_x * scale_w * z``, or their (log-)softmax.

    ``z`` (float64, finite) is overwritten. The scales are powers of two,
    applied one after the other so that their product never overflows on its
    own; ``(z_k - m) * scales`` may overflow to -inf, which gives a
    probability of 0 and a saturated log-probability.
    """
    cdef Py_ssize_t k, K = n_classes
    cdef double zmax, total, t
    if mode == MODE_DECISION:
        for k in range(K):
            out[k] = <real_t> ((z[k] * scale_x) * scale_w)
        return
    zmax = z[0]
    for k in range(1, K):
        if z[k] > zmax:
            zmax = z[k]
    total = 0.0
    for k in range(K):
        t = ((z[k] - zmax) * scale_x) * scale_w
        if mode == MODE_PROBA:
            t = exp(t)
            total = total + t
        else:
            total = total + exp(t)
        z[k] = t
    _normalize_row(z, K, total, mode, out)


cdef inline bint _logits_are_finite(const real_t* row, Py_ssize_t n_classes) noexcept nogil:
    """Whether a row of logits is finite (``inf - inf`` and NaN give NaN)."""
    cdef Py_ssize_t k
    cdef double check = 0.0
    for k in range(n_classes):
        check = check + (<double> row[k] - <double> row[k])
    return check == 0.0


cdef inline bint _row_is_finite(const floating* x, Py_ssize_t stride,
                                Py_ssize_t n_values) noexcept nogil:
    """Whether ``x[0], x[stride], ...`` (``n_values`` of them) are all finite."""
    cdef Py_ssize_t j
    for j in range(n_values):
        if not isfinite(x[j * stride]):
            return False
    return True


cdef inline void _fill_nan(real_t* out, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n_classes):
        out[k] = <real_t> NAN


cdef inline void _init_scaled_row(const real_t* intercept, Py_ssize_t n_classes,
                                  double scale_x, double scale_w,
                                  double* z) noexcept nogil:
    """``z = b / (scale_x * scale_w)``, dividing one scale at a time."""
    cdef Py_ssize_t k
    for k in range(n_classes):
        z[k] = (intercept[k] / scale_x) / scale_w


cdef double _rescaled_dense_row(
    const floating* x, Py_ssize_t col_stride, Py_ssize_t n_features,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, double* z,
) noexcept nogil:
    """Logits of a row whose direct computation overflowed, rescaled.

    Returns ``scale_x`` and sets ``z`` such that the logits are
    ``scale_x * scale_w * z``, where ``scale_x`` and ``scale_w`` are powers of
    two with max|x| / scale_x < 2 and max(|W|, |b|) / scale_w < 2. Every term
    of the dot products is then below 4 in magnitude, so ``z`` is finite
    (|z_k| < 4 n_features + 2) and, the scalings being exact, it is the exact
    logits up to rounding.
    """
    cdef Py_ssize_t j, k, K = n_classes
    cdef double amax = 0.0, scale_x, v
    cdef const real_t* w
    for j in range(n_features):
        amax = max(amax, fabs(<double> x[j * col_stride]))
    scale_x = _power_of_two_scale(amax)
    _init_scaled_row(intercept, K, scale_x, scale_w, z)
    for j in range(n_features):
        v = <double> x[j * col_stride] / scale_x
        if v != 0.0:
            w = weights_t + j * K
            for k in range(K):
                z[k] = z[k] + v * (<double> w[k] / scale_w)
    return scale_x


cdef double _rescaled_sparse_row(
    const floating* values, const index_t* columns, Py_ssize_t nnz,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, double* z,
) noexcept nogil:
    """Rescaled logits of an overflowing CSR row; see ``_rescaled_dense_row``."""
    cdef Py_ssize_t p, k, K = n_classes
    cdef double amax = 0.0, scale_x, v
    cdef const real_t* w
    for p in range(nnz):
        amax = max(amax, fabs(<double> values[p]))
    scale_x = _power_of_two_scale(amax)
    _init_scaled_row(intercept, K, scale_x, scale_w, z)
    for p in range(nnz):
        v = <double> values[p] / scale_x
        w = weights_t + columns[p] * K
        for k in range(K):
            z[k] = z[k] + v * (<double> w[k] / scale_w)
    return scale_x


cdef inline Py_ssize_t _recompute_sparse_row(
    const floating* values, const index_t* columns, Py_ssize_t nnz,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, int mode, double* z, real_t* out,
) noexcept nogil:
    """``_recompute_row`` of a CSR row whose logits ``z`` (float64) are not
    finite: rescaled if its values are finite; else NaN (log-)probabilities,
    or the logits ``z`` as computed. Returns 1 if a value is not finite."""
    cdef double scale_x
    cdef Py_ssize_t k
    if _row_is_finite(values, 1, nnz):
        scale_x = _rescaled_sparse_row(values, columns, nnz, weights_t, intercept, n_classes,
                                       scale_w, z)
        _finish_row(z, n_classes, scale_x, scale_w, mode, out)
        return 0
    if mode == MODE_DECISION:
        for k in range(n_classes):
            out[k] = <real_t> z[k]
    else:
        _fill_nan(out, n_classes)
    return 1


cdef inline void _micro_logits(const real_t* X, Py_ssize_t m, Py_ssize_t d,
                               const real_t* weights_padded, Py_ssize_t ldw, real_t* z,
                               Py_ssize_t rows_readable) noexcept nogil:
    """Z (m x ldw) = X_c @ W.T in the micro-kernel of the model's dtype."""
    if real_t is double:
        skcce_simd.logits_f64(X, m, d, weights_padded, ldw, z, rows_readable)
    else:
        skcce_simd.logits_f32(X, m, d, weights_padded, ldw, z, rows_readable)


cdef inline Py_ssize_t _recompute_row(
    const floating* x, Py_ssize_t col_stride, Py_ssize_t n_features,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, int mode, double* z, real_t* out,
) noexcept nogil:
    """The output row of a row whose logits are not finite: rescaled if its
    values are finite; else NaN (log-)probabilities, or the logits left as
    computed. Returns 1 if a value is not finite."""
    cdef double scale_x
    if _row_is_finite(x, col_stride, n_features):
        scale_x = _rescaled_dense_row(x, col_stride, n_features, weights_t, intercept,
                                      n_classes, scale_w, z)
        _finish_row(z, n_classes, scale_x, scale_w, mode, out)
        return 0
    if mode != MODE_DECISION:
        _fill_nan(out, n_classes)
    return 1


cdef inline Py_ssize_t _label_of_rescaled(double* z, Py_ssize_t n_classes,
                                         double scale_x, double scale_w,
                                         real_t* row) noexcept nogil:
    """The class ``predict_proba`` ranks first for rescaled logits ``z``
    (see ``_finish_row``); ``row`` (K values) receives the probabilities."""
    cdef bint finite
    _finish_row(z, n_classes, scale_x, scale_w, MODE_PROBA, row)
    return row_argmax(row, n_classes, &finite)


cdef inline Py_ssize_t _logits_label(const real_t* row, Py_ssize_t n_classes,
                                     bint* overflow) noexcept nogil:
    """LogisticRegression's label of a row of logits (``logit > 0`` for one
    column, else NumPy's argmax); ``overflow``: the logit picked is not
    finite, so the label must come from the exact logits."""
    cdef bint finite
    cdef Py_ssize_t best
    if n_classes == 1:
        overflow[0] = False
        return row[0] > 0
    best = row_argmax(row, n_classes, &finite)
    overflow[0] = not finite
    return best


cdef inline Py_ssize_t _dense_row_label(
    real_t* row, Py_ssize_t n_classes, const floating* x, Py_ssize_t col_stride,
    Py_ssize_t n_features, const real_t* weights_t, const real_t* intercept,
    double scale_w, double* z,
) noexcept nogil:
    """``predict``'s class index of a row of X from its logits ``row``, as
    LogisticRegression's: ``logit > 0`` for one column, else NumPy's argmax.

    When the logit picked is not finite (the row overflowed), the class
    ``predict_proba`` ranks first, from the exact logits rescaled (``row`` is
    overwritten); 0 when the row of X holds a NaN or an infinity (its
    probabilities are NaN).
    """
    cdef bint overflow
    cdef double scale_x
    cdef Py_ssize_t best = _logits_label(row, n_classes, &overflow)
    if not overflow:
        return best
    if not _row_is_finite(x, col_stride, n_features):
        return 0
    scale_x = _rescaled_dense_row(x, col_stride, n_features, weights_t, intercept,
                                  n_classes, scale_w, z)
    return _label_of_rescaled(z, n_classes, scale_x, scale_w, row)


cdef inline void _predict_labels(const real_t* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                 Py_ssize_t n_classes, const real_t* intercept,
                                 Py_ssize_t* labels, unsigned char* nonfinite) noexcept nogil:
    """Labels of the rows of ``z + intercept`` whose logits are all finite, in
    the hot loops' instruction set; flags the others."""
    if real_t is double:
        skcce_simd.predict_labels_f64(z, ldz, n_rows, n_classes, intercept, labels,
                                      nonfinite)
    else:
        skcce_simd.predict_labels_f32(z, ldz, n_rows, n_classes, intercept, labels,
                                      nonfinite)


cdef inline void _predict_softmax(const real_t* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                  Py_ssize_t n_classes, const real_t* intercept, int mode,
                                  real_t* out, unsigned char* nonfinite,
                                  double* scratch) noexcept nogil:
    """(Log-)softmax of ``z + intercept`` in the hot loops' instruction set;
    flags rows whose logits are not finite (``predict_softmax_impl.h``)."""
    if real_t is double:
        skcce_simd.predict_softmax_f64(z, ldz, n_rows, n_classes, intercept,
                                       mode == MODE_LOG_PROBA, out, nonfinite, scratch)
    else:
        skcce_simd.predict_softmax_f32(z, ldz, n_rows, n_classes, intercept,
                                       mode == MODE_LOG_PROBA, out, nonfinite, scratch)


cdef Py_ssize_t _dense_chunk(
    const floating* X, Py_ssize_t row_stride, Py_ssize_t col_stride,
    Py_ssize_t n_features, Py_ssize_t row_start, Py_ssize_t n_rows,
    Py_ssize_t n_samples, const real_t* weights_t, const real_t* intercept,
    const real_t* zeros, Py_ssize_t n_classes, double scale_w, int mode, real_t* oc,
    real_t* tile, Py_ssize_t tile_cols, const real_t* weights_padded, Py_ssize_t ldw,
    real_t* logits, double* z, double* softmax_scratch, unsigned char* nonfinite,
    Py_ssize_t* labels,
) noexcept nogil:
    """The output rows ``oc`` (n_rows x K) of rows [row_start, row_start +
    n_rows) of X, and their labels if ``labels`` is not NULL (then ``mode``
    is DECISION and ``oc`` scratch); returns how many of these rows of X hold
    a NaN or an infinity.

    ``X[i, j]`` is at ``X + i * row_stride + j * col_stride``, with one of the
    strides equal to 1. ``tile`` (n_rows x tile_cols scratch) is used only
    when X's dtype differs from the model's; ``weights_padded`` (n_features
    x ldw, zero past K) and ``logits`` (n_rows x ldw scratch) only on the
    micro-kernel path (X C-ordered in the model's dtype, else NULL). ``zeros``
    is K zeros; ``z`` is K float64 scratch; ``softmax_scratch``
    (2 SKCCE_PREDICT_ROWS x K float64) and ``nonfinite`` (n_rows flags) are
    the (log-)softmax's.

    A NaN or infinity in a row of X makes every one of its logits non-finite
    when each value is multiplied in (IEEE arithmetic: ``inf * 0`` is NaN), so
    only rows with non-finite logits are looked at. Their logits are left as
    computed, and their (log-)probabilities are NaN.
    """
    cdef Py_ssize_t i, j, k, j0, cols, K = n_classes, d = n_features
    cdef Py_ssize_t non_finite_rows = 0
    cdef const floating* xc = X + row_start * row_stride
    cdef double check
    cdef real_t logit
    if weights_padded != NULL:
        # Z = X_c @ W.T in the micro-kernel; the intercepts are added below.
        _micro_logits(<const real_t*> xc, n_rows, d, weights_padded, ldw, logits,
                      n_samples - row_start)
        if mode != MODE_DECISION:
            _predict_softmax(logits, ldw, n_rows, K, intercept, mode, oc, nonfinite,
                             softmax_scratch)
        elif labels != NULL:
            _predict_labels(logits, ldw, n_rows, K, intercept, labels, nonfinite)
            for i in range(n_rows):
                if nonfinite[i]:
                    for k in range(K):
                        oc[i * K + k] = logits[i * ldw + k] + intercept[k]
        else:
            for i in range(n_rows):
                check = 0.0
                for k in range(K):
                    logit = logits[i * ldw + k] + intercept[k]
                    oc[i * K + k] = logit
                    check = check + (<double> logit - <double> logit)
                nonfinite[i] = check != 0.0
    else:
        # The logits start at the intercepts; the GEMMs add X_c @ W.T to them.
        for i in range(n_rows):
            for k in range(K):
                oc[i * K + k] = intercept[k]
        if d > 0:
            if (floating is float and real_t is float) or (
                    floating is double and real_t is double):
                # Column-major view: out_c.T (K x m) += W (K x d) @ X_c.T (d x m);
                # W.T row-major is W column-major, and X_c.T is X_c read in place.
                if col_stride == 1:
                    gemm(b"N", b"N", <int> K, <int> n_rows, <int> d, weights_t, <int> K,
                         <const real_t*> xc, <int> row_stride, <real_t> 1.0, oc, <int> K)
                else:
                    gemm(b"N", b"T", <int> K, <int> n_rows, <int> d, weights_t, <int> K,
                         <const real_t*> xc, <int> col_stride, <real_t> 1.0, oc, <int> K)
            else:
                # X's dtype differs from the model's: convert the chunk tile by
                # tile (column blocks), so the buffer stays small for any width.
                j0 = 0
                while j0 < d:
                    cols = min(tile_cols, d - j0)
                    for i in range(n_rows):
                        for j in range(cols):
                            tile[i * cols + j] = <real_t> xc[i * row_stride
                                                             + (j0 + j) * col_stride]
                    gemm(b"N", b"N", <int> K, <int> n_rows, <int> cols, weights_t + j0 * K,
                         <int> K, tile, <int> cols, <real_t> 1.0, oc, <int> K)
                    j0 = j0 + cols
        if mode != MODE_DECISION:
            # In place: the logits already hold the intercepts.
            _predict_softmax(oc, K, n_rows, K, zeros, mode, oc, nonfinite, softmax_scratch)
        elif labels != NULL:
            _predict_labels(oc, K, n_rows, K, zeros, labels, nonfinite)
        else:
            for i in range(n_rows):
                nonfinite[i] = not _logits_are_finite(oc + i * K, K)
    # Rows with non-finite logits (their logits are in oc).
    for i in range(n_rows):
        if nonfinite[i]:
            non_finite_rows += _recompute_row(xc + i * row_stride, col_stride, d, weights_t,
                                              intercept, K, scale_w, mode, z, oc + i * K)
            if labels != NULL:
                labels[i] = _dense_row_label(oc + i * K, K, xc + i * row_stride, col_stride,
                                             d, weights_t, intercept, scale_w, z)
    return non_finite_rows


cdef inline Py_ssize_t _sparse_row_label(
    real_t* row, Py_ssize_t n_classes, bint x_finite, const floating* values,
    const index_t* columns, Py_ssize_t nnz, const real_t* weights_t,
    const real_t* intercept, double scale_w, double* z,
) noexcept nogil:
    """``_dense_row_label`` of a CSR row (``x_finite``: its values are)."""
    cdef bint overflow
    cdef double scale_x
    cdef Py_ssize_t best = _logits_label(row, n_classes, &overflow)
    if not overflow:
        return best
    if not x_finite:
        return 0
    scale_x = _rescaled_sparse_row(values, columns, nnz, weights_t, intercept, n_classes,
                                   scale_w, z)
    return _label_of_rescaled(z, n_classes, scale_x, scale_w, row)


cdef inline void _sparse_row_logits(
    const floating* values, const index_t* columns, Py_ssize_t nnz, Py_ssize_t readable,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes, double* z,
) noexcept nogil:
    """``z = b + sum_p values[p] * W.T[columns[p]]`` of one CSR row, in float64,
    in the order of the non-zeros (csr_rows.h, for the instruction set).

    The rows of W.T that the non-zeros among the first ``readable`` of
    ``columns`` need are prefetched a few non-zeros ahead (0: no prefetch).
    """
    if floating is double and real_t is double:
        if index_t is int32_t:
            skcce_simd.csr_row_logits_x64_w64_i32(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
        else:
            skcce_simd.csr_row_logits_x64_w64_i64(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
    elif floating is double:
        if index_t is int32_t:
            skcce_simd.csr_row_logits_x64_w32_i32(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
        else:
            skcce_simd.csr_row_logits_x64_w32_i64(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
    elif real_t is double:
        if index_t is int32_t:
            skcce_simd.csr_row_logits_x32_w64_i32(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
        else:
            skcce_simd.csr_row_logits_x32_w64_i64(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
    else:
        if index_t is int32_t:
            skcce_simd.csr_row_logits_x32_w32_i32(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)
        else:
            skcce_simd.csr_row_logits_x32_w32_i64(values, columns, nnz, readable, weights_t,
                                                  intercept, n_classes, z)


cdef Py_ssize_t _sparse_softmax_chunk(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, int mode, real_t* out, double* z, bint prefetch,
    const double* zeros, double* softmax_scratch, unsigned char* nonfinite,
) noexcept nogil:
    """``_sparse_chunk``'s probabilities or log-probabilities: the logits of
    SKCCE_PREDICT_ROWS rows at a time into ``z`` (float64, intercepts
    included), then their (log-)softmax in the hot loops' instruction set
    (``predict_softmax_impl.h``, with ``zeros`` as intercepts), in float64
    and rounded to the output's dtype. Rows whose logits are not finite are
    recomputed scaled, or get NaN when X's row is not finite (counted)."""
    cdef Py_ssize_t i, r, k, p0, p1, rows, K = n_classes, non_finite_rows = 0
    # The non-zeros whose rows of W.T may be prefetched: this chunk's.
    cdef Py_ssize_t p_end = indptr[row_end]
    cdef double v
    cdef double lowest = -FLT_MAX
    i = row_start
    while i < row_end:
        rows = min(<Py_ssize_t> SKCCE_PREDICT_ROWS, row_end - i)
        for r in range(rows):
            p0 = indptr[i + r]
            p1 = indptr[i + r + 1]
            _sparse_row_logits(data + p0, indices + p0, p1 - p0,
                               p_end - p0 if prefetch else 0, weights_t, intercept, K,
                               z + r * K)
        if real_t is double:
            skcce_simd.predict_softmax_f64(z, K, rows, K, zeros, mode == MODE_LOG_PROBA,
                                           out + i * K, nonfinite, softmax_scratch)
        else:
            # In place in float64, then rounded (log-probabilities saturated
            # at float32's most negative finite value).
            skcce_simd.predict_softmax_f64(z, K, rows, K, zeros, mode == MODE_LOG_PROBA,
                                           z, nonfinite, softmax_scratch)
            for r in range(rows):
                if not nonfinite[r]:
                    for k in range(K):
                        v = z[r * K + k]
                        out[(i + r) * K + k] = <real_t> (v if v > lowest else lowest)
        for r in range(rows):
            if nonfinite[r]:
                p0 = indptr[i + r]
                p1 = indptr[i + r + 1]
                non_finite_rows += _recompute_sparse_row(
                    data + p0, indices + p0, p1 - p0, weights_t, intercept, K, scale_w, mode,
                    z + r * K, out + (i + r) * K)
        i += rows
    return non_finite_rows


cdef Py_ssize_t _sparse_chunk(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, int mode, real_t* out, double* z, real_t* row_scratch,
    Py_ssize_t* labels, bint prefetch, const double* zeros, double* softmax_scratch,
    unsigned char* nonfinite, Py_ssize_t n_features,
) noexcept nogil:
    """Rows [row_start, row_end) of ``out`` from CSR X, accumulated in float64
    (``prefetch``: the rows of W.T ahead, see ``_sparse_row_logits``);
    returns how many of these rows hold a NaN or an infinity (see
    ``_dense_chunk``: every stored value is multiplied in), or -1, with
    nothing computed, if one of their column indices leaves
    [0, n_features) (indptr must have been checked). If ``labels`` is
    not NULL, ``mode`` is DECISION, ``out`` is unused and each row's logits
    go through ``row_scratch`` (K values) to its label (``labels[i]``; see
    ``_dense_row_label``). ``z`` holds SKCCE_PREDICT_ROWS x K float64 logits;
    ``zeros`` (K), ``softmax_scratch`` and ``nonfinite`` (SKCCE_PREDICT_ROWS
    flags) are the (log-)softmax's, see ``_sparse_softmax_chunk``."""
    if _columns_out_of_range(indices + indptr[row_start], indptr[row_end] - indptr[row_start],
                             n_features):
        return -1
    if mode != MODE_DECISION:
        return _sparse_softmax_chunk(data, indices, indptr, row_start, row_end, weights_t,
                                     intercept, n_classes, scale_w, mode, out, z, prefetch,
                                     zeros, softmax_scratch, nonfinite)
    cdef Py_ssize_t i, k, p0, p1, K = n_classes, non_finite_rows = 0, x_non_finite
    # The non-zeros whose rows of W.T may be prefetched: this chunk's.
    cdef Py_ssize_t p_end = indptr[row_end]
    cdef real_t* row
    cdef bint finite
    for i in range(row_start, row_end):
        row = row_scratch if labels != NULL else out + i * K
        p0 = indptr[i]
        p1 = indptr[i + 1]
        _sparse_row_logits(data + p0, indices + p0, p1 - p0, p_end - p0 if prefetch else 0,
                           weights_t, intercept, K, z)
        finite = True
        for k in range(K):
            if not isfinite(z[k]):
                finite = False
        if finite:
            x_non_finite = 0
            for k in range(K):
                row[k] = <real_t> z[k]
        else:
            x_non_finite = _recompute_sparse_row(data + p0, indices + p0, p1 - p0, weights_t,
                                                 intercept, K, scale_w, MODE_DECISION, z, row)
            non_finite_rows += x_non_finite
        if labels != NULL:
            labels[i] = _sparse_row_label(row, K, not x_non_finite, data + p0, indices + p0,
                                          p1 - p0, weights_t, intercept, scale_w, z)
    return non_finite_rows


cdef double _model_scale(const real_t[:, ::1] weights_t,
                         const real_t[::1] intercept):
    """Power of two scaling max(|W|, |b|) below 2: rescales overflowing rows."""
    cdef Py_ssize_t j, k
    cdef double amax = 0.0
    for j in range(weights_t.shape[0]):
        for k in range(weights_t.shape[1]):
            amax = max(amax, fabs(<double> weights_t[j, k]))
    for k in range(intercept.shape[0]):
        amax = max(amax, fabs(<double> intercept[k]))
    if not isfinite(amax):
        raise ValueError("the coefficients and intercepts must be finite")
    return _power_of_two_scale(amax)


cdef int _check_strides(Py_ssize_t row_bytes, Py_ssize_t col_bytes, Py_ssize_t itemsize,
                        Py_ssize_t n, Py_ssize_t d) except -1:
    """Raise ValueError unless BLAS can read dense X in place (see dense_predict)."""
    cdef Py_ssize_t row_stride = row_bytes // itemsize, col_stride = col_bytes // itemsize
    if row_bytes % itemsize or col_bytes % itemsize:
        raise ValueError("X's strides must be multiples of its item size")
    if not ((col_stride == 1 and row_stride >= d) or (row_stride == 1 and col_stride >= n)):
        raise ValueError("X must have one unit stride, the other large enough")
    if max(row_stride, col_stride) > 2147483647:
        raise ValueError("X's strides exceed the range of a BLAS int")
    return 0


cdef bint _indptr_is_malformed(const index_t* indptr, Py_ssize_t n,
                               Py_ssize_t nnz) noexcept nogil:
    """Whether indptr decreases or leaves [0, nnz]: O(n_samples), before the
    threads' pass, where each chunk checks its column indices before reading
    through them (``_columns_out_of_range``)."""
    cdef Py_ssize_t i
    if indptr[0] < 0 or indptr[n] > nnz:
        return True
    for i in range(n):
        if indptr[i + 1] < indptr[i]:
            return True
    return False


cdef inline bint _columns_out_of_range(const index_t* columns, Py_ssize_t count,
                                       Py_ssize_t n_features) noexcept nogil:
    """Whether a column index leaves [0, n_features): one pass without branches
    (a negative index is a huge unsigned one), over indices that the chunk's
    pass then reads again, from the cache unless the chunk's rows are long."""
    cdef Py_ssize_t p
    cdef unsigned char outside = 0
    for p in range(count):
        outside |= <size_t> columns[p] >= <size_t> n_features
    return outside != 0


cdef int _check_model(Py_ssize_t n_features, Py_ssize_t n_classes,
                      const real_t[:, ::1] weights_t,
                      const real_t[::1] intercept, int mode,
                      Py_ssize_t out_rows, Py_ssize_t out_cols, Py_ssize_t n) except -1:
    """Check the shapes of the model and the output, and the mode.

    Raises
    ------
    ValueError
        If a shape does not match or the mode is unknown.
    """
    if weights_t.shape[0] != n_features:
        raise ValueError("weights_t must have n_features rows")
    if n_classes < 1 or intercept.shape[0] != n_classes:
        raise ValueError("intercept must have one entry per column of weights_t")
    if out_rows != n or out_cols != n_classes:
        raise ValueError("out must have shape (n_samples, n_classes)")
    if mode not in (MODE_DECISION, MODE_PROBA, MODE_LOG_PROBA):
        raise ValueError(f"unknown mode {mode}")
    return 0


def dense_predict(
    const floating[:, :] X,
    const real_t[:, ::1] weights_t,
    const real_t[::1] intercept,
    int mode,
    int n_threads,
    real_t[:, ::1] out,
):
    """Logits, probabilities or log-probabilities of dense X, into ``out``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Read in place: one of its strides must be the item size (C- or
        Fortran-ordered, or rows sliced with a step), and the other at least
        the item size times the extent of that dimension and within the range
        of a BLAS int.
    weights_t : ndarray of shape (n_features, K), C order
        Transposed coefficients ``W.T``, in the output's dtype. If X is
        float32 and this is float64, chunks of X are converted to float64.
    intercept : ndarray of shape (K,), the output's dtype
    mode : int
        ``DECISION`` (logits), ``PROBA`` (softmax) or ``LOG_PROBA``
        (log-softmax).
    n_threads : int
        OpenMP threads (>= 1). The result does not depend on it. The caller
        must hold BLAS to one thread.
    out : ndarray of shape (n_samples, K), float32 or float64, C order
        Output, overwritten.

    Returns
    -------
    X_finite : bool or None
        False if X holds a NaN or an infinity (its rows' logits are left as
        computed, their probabilities are NaN). True if X is finite: the
        micro-kernels multiply every value of X into the logits, so a
        non-finite value cannot go unseen. None when the GEMM path found no
        non-finite value: a BLAS may skip multiplications by zero.
    """
    _check_model(X.shape[1], weights_t.shape[1], weights_t, intercept, mode, out.shape[0],
                 out.shape[1], X.shape[0])
    return _dense_run(X, weights_t, intercept, mode, n_threads,
                      &out[0, 0] if out.shape[0] > 0 else NULL, NULL)


def dense_predict_labels(
    const floating[:, :] X,
    const real_t[:, ::1] weights_t,
    const real_t[::1] intercept,
    int n_threads,
    Py_ssize_t[::1] labels,
):
    """``predict``'s class indices of dense X, into ``labels``, without the
    n_samples x K logits.

    Each row's label is LogisticRegression's: ``logit > 0`` for one column
    of ``weights_t``, else the first largest logit (a NaN wins, as in
    ``np.argmax``). A row whose largest logit overflows takes the class its
    probabilities rank first (from the exact logits, see the module's
    numerics), and a row of X with a NaN or an infinity takes 0 (its
    probabilities are NaN).

    Parameters
    ----------
    X, weights_t, intercept, n_threads
        As for :func:`dense_predict`.
    labels : ndarray of shape (n_samples,), intp
        Output, overwritten.

    Returns
    -------
    X_finite : bool or None
        As for :func:`dense_predict`.
    """
    _check_model(X.shape[1], weights_t.shape[1], weights_t, intercept, MODE_DECISION,
                 labels.shape[0], weights_t.shape[1], X.shape[0])
    return _dense_run(X, weights_t, intercept, MODE_DECISION, n_threads, NULL,
                      &labels[0] if labels.shape[0] > 0 else NULL)


cdef inline Py_ssize_t _dense_chunk_on_thread(
    int tid, Py_ssize_t chunk, Py_ssize_t chunk_rows,
    const floating* X, Py_ssize_t row_stride, Py_ssize_t col_stride,
    Py_ssize_t n_features, Py_ssize_t n_samples, const real_t* weights_t,
    const real_t* intercept, const real_t* zeros, Py_ssize_t n_classes, double scale_w,
    int mode, real_t* out, Py_ssize_t* labels,
    real_t* tile_buf, Py_ssize_t tile_size, Py_ssize_t tile_cols,
    const real_t* weights_padded, Py_ssize_t ldw, real_t* logits_buf, Py_ssize_t logits_rows,
    double* z_buf, double* softmax_buf, Py_ssize_t softmax_size,
    unsigned char* nonfinite_buf, Py_ssize_t flags_size,
    real_t* rows_buf, Py_ssize_t rows_size,
) noexcept nogil:
    """``_dense_chunk`` of chunk ``chunk`` (``chunk_rows`` rows) on thread
    ``tid``, which uses its own slice of each per-thread buffer (``*_buf``,
    each ``*_size`` apart; NULL buffers stay NULL). With ``labels``, the
    chunk's logits go to the thread's ``rows_buf`` instead of ``out``."""
    cdef Py_ssize_t row_start = chunk * chunk_rows
    return _dense_chunk(
        X, row_stride, col_stride, n_features, row_start,
        min(chunk_rows, n_samples - row_start), n_samples, weights_t, intercept, zeros,
        n_classes, scale_w, mode,
        rows_buf + tid * rows_size if labels != NULL else out + row_start * n_classes,
        NULL if tile_buf == NULL else tile_buf + tid * tile_size, tile_cols,
        weights_padded, ldw,
        NULL if logits_buf == NULL else logits_buf + tid * logits_rows * ldw,
        z_buf + tid * n_classes,
        NULL if softmax_buf == NULL else softmax_buf + tid * softmax_size,
        nonfinite_buf + tid * flags_size,
        NULL if labels == NULL else labels + row_start)


cdef object _dense_run(const floating[:, :] X, const real_t[:, ::1] weights_t,
                       const real_t[::1] intercept, int mode, int n_threads,
                       real_t* outp, Py_ssize_t* labelsp):
    """:func:`dense_predict` into ``outp``, or labels into ``labelsp`` (not
    NULL: ``outp`` is NULL, the logits go through per-thread chunk rows)."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = weights_t.shape[1]
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef Py_ssize_t row_stride, col_stride, chunk_rows, n_chunks, tile_cols, c
    cdef Py_ssize_t tile_size = 0
    cdef int T
    cdef double scale_w
    cdef const floating* Xp = NULL
    cdef const real_t* wp = NULL
    cdef const real_t* bp
    cdef real_t* tile_buf = NULL
    cdef real_t* rows_buf = NULL
    cdef double* z_buf = NULL
    cdef real_t* logits_buf = NULL
    cdef double* softmax_buf = NULL
    cdef unsigned char* nonfinite_buf = NULL
    cdef const real_t* padded_p = NULL
    cdef real_t[:, ::1] padded
    cdef real_t[::1] zeros
    cdef Py_ssize_t ldw = K, lanes, logits_rows, flags_size, softmax_size = 0, rows_size = 0
    cdef bint convert = not ((floating is float and real_t is float)
                             or (floating is double and real_t is double))
    cdef bint micro
    cdef Py_ssize_t non_finite_rows = 0

    if n == 0:
        return True
    row_stride = X.strides[0] // itemsize
    col_stride = X.strides[1] // itemsize
    if d > 0:
        _check_strides(X.strides[0], X.strides[1], itemsize, n, d)
        Xp = &X[0, 0]
    scale_w = _model_scale(weights_t, intercept)

    micro = (not convert and d > 0 and K <= MICRO_MAX_CLASSES
             and col_stride == 1 and row_stride == d
             and _loss_product_kernels(d, K, itemsize) != "blas")
    # The GEMM path reads X in place. Float32 X with a float64 model (whose
    # chunks are converted tile by tile) keeps the chunks sized by X: GEMM
    # chunks were not measured there.
    if micro or convert:
        chunk_rows = dense_chunk_rows(d, itemsize)
    else:
        chunk_rows = gemm_chunk_rows(K, sizeof(real_t))
    n_chunks = (n + chunk_rows - 1) // chunk_rows
    T = <int> max(1, min(n_threads, n_chunks))
    tile_cols = min(max(TILE_ELEMS // chunk_rows, 1), max(d, 1))
    # The micro-kernels read rows d apart and W.T with K padded to the vector
    # width, zero past K.
    if micro:
        lanes = SKCCE_LANES_f64 if real_t is double else SKCCE_LANES_f32
        ldw = (K + lanes - 1) // lanes * lanes
        if ldw == K:
            padded_p = &weights_t[0, 0]
        else:
            padded_array = np.zeros((d, ldw),
                                    dtype=np.float64 if real_t is double else np.float32)
            padded_array[:, :K] = np.asarray(weights_t)
            padded = padded_array
            padded_p = &padded[0, 0]
    # Python objects before the raw buffers, which only the try below frees.
    zeros = np.zeros(K, dtype=np.float64 if real_t is double else np.float32)
    if convert:
        tile_size = chunk_rows * tile_cols
        # PyMem_Raw* (thread-safe without the GIL) so tracemalloc sees it.
        tile_buf = <real_t*> PyMem_RawMalloc(T * tile_size * sizeof(real_t))
    logits_rows = min(chunk_rows, n)
    z_buf = <double*> PyMem_RawMalloc(T * K * sizeof(double))
    flags_size = _unshared(logits_rows, 1)
    nonfinite_buf = <unsigned char*> PyMem_RawMalloc(T * flags_size)
    if mode != MODE_DECISION:
        softmax_size = _unshared(2 * SKCCE_PREDICT_ROWS * K, sizeof(double))
        softmax_buf = <double*> PyMem_RawMalloc(T * softmax_size * sizeof(double))
    if micro:
        logits_buf = <real_t*> PyMem_RawMalloc(T * logits_rows * ldw * sizeof(real_t))
    if labelsp != NULL:
        # A chunk's logits, before their labels.
        rows_size = _unshared(logits_rows * K, sizeof(real_t))
        rows_buf = <real_t*> PyMem_RawMalloc(T * rows_size * sizeof(real_t))
    try:
        if z_buf == NULL or nonfinite_buf == NULL or (convert and tile_buf == NULL) \
                or (micro and logits_buf == NULL) \
                or (mode != MODE_DECISION and softmax_buf == NULL) \
                or (labelsp != NULL and rows_buf == NULL):
            raise MemoryError()
        if d > 0:
            wp = &weights_t[0, 0]
        bp = &intercept[0]
        with nogil:
            if T == 1:
                # No OpenMP region at all on one thread (also safe after fork).
                for c in range(n_chunks):
                    non_finite_rows += _dense_chunk_on_thread(
                        0, c, chunk_rows, Xp, row_stride, col_stride, d, n, wp, bp,
                        &zeros[0], K, scale_w, mode, outp, labelsp, tile_buf, tile_size,
                        tile_cols, padded_p, ldw, logits_buf, logits_rows, z_buf,
                        softmax_buf, softmax_size, nonfinite_buf, flags_size, rows_buf,
                        rows_size)
            else:
                for c in prange(n_chunks, num_threads=T, schedule="dynamic"):
                    non_finite_rows += _dense_chunk_on_thread(
                        omp_get_thread_num(), c, chunk_rows, Xp, row_stride, col_stride, d, n,
                        wp, bp, &zeros[0], K, scale_w, mode, outp, labelsp, tile_buf,
                        tile_size, tile_cols, padded_p, ldw, logits_buf, logits_rows, z_buf,
                        softmax_buf, softmax_size, nonfinite_buf, flags_size, rows_buf,
                        rows_size)
    finally:
        PyMem_RawFree(tile_buf)
        PyMem_RawFree(z_buf)
        PyMem_RawFree(logits_buf)
        PyMem_RawFree(softmax_buf)
        PyMem_RawFree(nonfinite_buf)
        PyMem_RawFree(rows_buf)
    if non_finite_rows > 0:
        return False
    return True if (micro or d == 0) else None


def csr_predict(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const real_t[:, ::1] weights_t,
    const real_t[::1] intercept,
    int mode,
    int n_threads,
    real_t[:, ::1] out,
):
    """Logits, probabilities or log-probabilities of CSR X, into ``out``.

    Parameters
    ----------
    data : ndarray of shape (nnz,), float32 or float64
    indices : ndarray of shape (nnz,), int32 or int64
        Column of each stored value (duplicates are summed, any order).
    indptr : ndarray of shape (n_samples + 1,), indices' dtype
    weights_t : ndarray of shape (n_features, K), C order
        Transposed coefficients ``W.T``, in the output's dtype.
    intercept : ndarray of shape (K,), the output's dtype
    mode : int
        ``DECISION``, ``PROBA`` or ``LOG_PROBA``.
    n_threads : int
        OpenMP threads (>= 1). The result does not depend on it.
    out : ndarray of shape (n_samples, K), float32 or float64, C order
        Output, overwritten.

    Raises
    ------
    ValueError
        If the CSR structure is malformed: ``indptr`` decreasing or outside
        ``[0, nnz]`` (checked first), or, as :class:`ColumnIndexError`, a
        column index outside ``[0, n_features)`` (each chunk of rows checks
        its own before reading through them, so ``out`` may then be partly
        written).

    Returns
    -------
    X_finite : bool or None
        Whether the stored values are all finite (each is multiplied into
        the logits; see ``dense_predict``), or None when ``data`` holds values
        outside ``indptr``'s range, which are not read.
    """
    if indptr.shape[0] < 1:
        raise ValueError("indptr must have n_samples + 1 entries")
    _check_model(weights_t.shape[0], weights_t.shape[1], weights_t, intercept, mode,
                 out.shape[0], out.shape[1], indptr.shape[0] - 1)
    return _csr_run(data, indices, indptr, weights_t, intercept, mode, n_threads,
                    &out[0, 0] if out.shape[0] > 0 else NULL, NULL)


def csr_predict_labels(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const real_t[:, ::1] weights_t,
    const real_t[::1] intercept,
    int n_threads,
    Py_ssize_t[::1] labels,
):
    """``predict``'s class indices of CSR X, into ``labels``: see
    :func:`dense_predict_labels`.

    Parameters
    ----------
    data, indices, indptr, weights_t, intercept, n_threads
        As for :func:`csr_predict`.
    labels : ndarray of shape (n_samples,), intp
        Output, overwritten.

    Returns
    -------
    X_finite : bool or None
        As for :func:`csr_predict`.
    """
    if indptr.shape[0] < 1:
        raise ValueError("indptr must have n_samples + 1 entries")
    _check_model(weights_t.shape[0], weights_t.shape[1], weights_t, intercept,
                 MODE_DECISION, labels.shape[0], weights_t.shape[1], indptr.shape[0] - 1)
    return _csr_run(data, indices, indptr, weights_t, intercept, MODE_DECISION, n_threads,
                    NULL, &labels[0] if labels.shape[0] > 0 else NULL)


cdef inline Py_ssize_t _sparse_chunk_with_scratch(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t chunk, Py_ssize_t n_samples,
    const real_t* weights_t, const real_t* intercept, Py_ssize_t n_classes,
    double scale_w, int mode, real_t* out, Py_ssize_t* labels, bint prefetch,
    const double* zeros, Py_ssize_t n_features,
    double* scratch, Py_ssize_t logits_size, Py_ssize_t softmax_size,
) noexcept nogil:
    """``_sparse_chunk`` of chunk ``chunk`` (SPARSE_CHUNK_ROWS rows), with one
    thread's ``scratch`` laid out as ``_csr_run`` sizes it: logits
    (``logits_size``), a row of K outputs, the softmax's scratch
    (``softmax_size``), then the row flags."""
    cdef double* row_values = scratch + logits_size
    cdef double* softmax_scratch = row_values + n_classes
    return _sparse_chunk(
        data, indices, indptr, chunk * SPARSE_CHUNK_ROWS,
        min((chunk + 1) * SPARSE_CHUNK_ROWS, n_samples), weights_t, intercept, n_classes,
        scale_w, mode, out, scratch, <real_t*> row_values, labels, prefetch, zeros,
        softmax_scratch, <unsigned char*> (softmax_scratch + softmax_size), n_features)


cdef object _csr_run(const floating[::1] data, const index_t[::1] indices,
                     const index_t[::1] indptr, const real_t[:, ::1] weights_t,
                     const real_t[::1] intercept, int mode, int n_threads,
                     real_t* outp, Py_ssize_t* labelsp):
    """:func:`csr_predict` into ``outp``, or labels into ``labelsp``."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = weights_t.shape[0]
    cdef Py_ssize_t K = weights_t.shape[1], nnz = indices.shape[0]
    cdef Py_ssize_t c, n_chunks, scratch_size, logits_size, softmax_size
    cdef int T
    cdef bint malformed = False, prefetch
    cdef double* zeros = NULL
    cdef Py_ssize_t non_finite_rows = 0, chunk_result, bad_chunks = 0
    cdef double scale_w
    cdef double* scratch_buf = NULL
    cdef const floating* dp = NULL
    cdef const index_t* ip = NULL
    cdef const index_t* pp
    cdef const real_t* wp = NULL
    cdef const real_t* bp

    if data.shape[0] != nnz:
        raise ValueError("data and indices must have the same length")
    if n == 0:
        return True if nnz == 0 else None
    with nogil:
        malformed = _indptr_is_malformed(&indptr[0], n, nnz)
    if malformed:
        raise ValueError("Malformed CSR matrix: indptr must be non-decreasing within "
                         "[0, nnz].")
    scale_w = _model_scale(weights_t, intercept)

    n_chunks = (n + SPARSE_CHUNK_ROWS - 1) // SPARSE_CHUNK_ROWS
    T = <int> max(1, min(n_threads, n_chunks))
    prefetch = skcce_csr_prefetches(d, K, sizeof(real_t))
    # Per thread: SKCCE_PREDICT_ROWS rows of float64 logits, a row of K output
    # values (labels), the softmax's scratch (none for logits) and its row flags.
    logits_size = SKCCE_PREDICT_ROWS * K
    softmax_size = 2 * SKCCE_PREDICT_ROWS * K if mode != MODE_DECISION else 0
    scratch_size = _unshared(logits_size + K + softmax_size
                             + (SKCCE_PREDICT_ROWS + 7) // 8, sizeof(double))
    scratch_buf = <double*> PyMem_RawMalloc(T * scratch_size * sizeof(double))
    zeros = <double*> PyMem_RawCalloc(K, sizeof(double))
    if scratch_buf == NULL or zeros == NULL:
        PyMem_RawFree(scratch_buf)
        PyMem_RawFree(zeros)
        raise MemoryError()
    try:
        if nnz > 0:
            dp = &data[0]
            ip = &indices[0]
        pp = &indptr[0]
        if d > 0:
            wp = &weights_t[0, 0]
        bp = &intercept[0]
        with nogil:
            if T == 1:
                # No OpenMP region at all on one thread (also safe after fork).
                for c in range(n_chunks):
                    chunk_result = _sparse_chunk_with_scratch(
                        dp, ip, pp, c, n, wp, bp, K, scale_w, mode, outp, labelsp, prefetch,
                        zeros, d, scratch_buf, logits_size, softmax_size)
                    if chunk_result < 0:
                        bad_chunks += 1
                        break
                    non_finite_rows += chunk_result
            else:
                for c in prange(n_chunks, num_threads=T, schedule="dynamic"):
                    chunk_result = _sparse_chunk_with_scratch(
                        dp, ip, pp, c, n, wp, bp, K, scale_w, mode, outp, labelsp, prefetch,
                        zeros, d, scratch_buf + omp_get_thread_num() * scratch_size,
                        logits_size, softmax_size)
                    if chunk_result < 0:
                        bad_chunks += 1
                    else:
                        non_finite_rows += chunk_result
    finally:
        PyMem_RawFree(scratch_buf)
        PyMem_RawFree(zeros)
    if bad_chunks > 0:
        raise ColumnIndexError(f"a CSR column index lies outside [0, {d})")
    if non_finite_rows > 0:
        return False
    return True if (indptr[0] == 0 and indptr[n] == nnz) else None
