# The chunk's weighted softmax residuals, shared by the dense and sparse loss
# kernels: the loss and the gradient's residuals of a chunk of logits.

from cython cimport floating

from skcce._kernels.crossentropy cimport (
    Targets,
    logit,
    row_max_logit,
    row_target_logit,
    target,
)
from skcce._kernels.simd cimport skcce_simd


cdef inline Py_ssize_t residual_scratch_doubles(Py_ssize_t n_rows,
                                                Py_ssize_t n_classes) noexcept nogil:
    """Doubles of scratch :func:`softmax_residual_chunk` needs for ``n_rows`` rows."""
    return n_rows * (n_classes + 3)


cdef inline double row_sum(const double* e, Py_ssize_t n) noexcept nogil:
    """Sum of ``e[0:n]`` in eight interleaved partial sums.

    Eight independent chains of additions instead of one (whose latency,
    one addition after another, made the sum of a row's exps the residuals'
    slowest step with many classes); the order is fixed, so every call gives
    the same sum, and below 8 values it is the plain sequential sum.
    """
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef double s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef Py_ssize_t k = 0
    if n < 8:
        for k in range(n):
            s0 = s0 + e[k]
        return s0
    while k + 8 <= n:
        s0 = s0 + e[k]
        s1 = s1 + e[k + 1]
        s2 = s2 + e[k + 2]
        s3 = s3 + e[k + 3]
        s4 = s4 + e[k + 4]
        s5 = s5 + e[k + 5]
        s6 = s6 + e[k + 6]
        s7 = s7 + e[k + 7]
        k = k + 8
    while k < n:
        s0 = s0 + e[k]
        k = k + 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double softmax_residual_chunk(
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

    ``scratch`` holds :func:`residual_scratch_doubles` doubles: the shifted
    logits ``z_k + b_k - m`` of all rows (n_rows x K), exponentiated in one
    vectorized call (within 2 ulp of the correctly rounded exp), then per
    row the target logit, the sum of exps, whose logs are taken in one
    vectorized call (within 2 ulp), and ``s / sum``.

    Class labels (no soft targets, no smoothing) take the same steps in the
    hot loops (``softmax_impl.h``, compiled for the instruction set in use,
    with a copy per class count below 8), whose results are those of the
    loops below for one-hot targets, bit for bit.
    """
    cdef Py_ssize_t i, k, K = n_classes
    cdef double zmax, sum_exp, weight, scale
    cdef double loss = 0.0
    cdef floating* row
    cdef double* e
    cdef double* target_logit = scratch + n_rows * K
    cdef double* log_sum_exp = target_logit + n_rows
    cdef double* scales = log_sum_exp + n_rows
    if targets.proba == NULL and targets.smoothing == 0.0:
        if floating is double:
            return skcce_simd.softmax_labels_f64(z, row_stride, n_rows, K, intercept,
                                                 targets.labels + first_row, sw,
                                                 grad_intercept, scratch)
        else:
            return skcce_simd.softmax_labels_f32(z, row_stride, n_rows, K, intercept,
                                                 targets.labels + first_row, sw,
                                                 grad_intercept, scratch)
    for i in range(n_rows):
        row = z + i * row_stride
        e = scratch + i * K
        zmax = row_max_logit(row, intercept, K)
        target_logit[i] = row_target_logit(targets, first_row + i, row, intercept,
                                           K, zmax)
        for k in range(K):
            e[k] = logit(row, intercept, k) - zmax
    skcce_simd.exp_nonpositive_inplace(scratch, n_rows * K)
    for i in range(n_rows):
        sum_exp = row_sum(scratch + i * K, K)
        log_sum_exp[i] = sum_exp
        scales[i] = (1.0 if sw == NULL else sw[i]) / sum_exp
    skcce_simd.log_ge1_inplace(log_sum_exp, n_rows)
    # The residuals in float64, in place of the exps.
    for i in range(n_rows):
        e = scratch + i * K
        weight = 1.0 if sw == NULL else sw[i]
        loss = loss + weight * (log_sum_exp[i] - target_logit[i])
        scale = scales[i]
        for k in range(K):
            e[k] = e[k] * scale - weight * target(targets, first_row + i, k, K)
    for i in range(n_rows):
        row = z + i * row_stride
        e = scratch + i * K
        for k in range(K):
            row[k] = <floating> e[k]
        if grad_intercept != NULL:
            for k in range(K):
                grad_intercept[k] = grad_intercept[k] + e[k]
    return loss
