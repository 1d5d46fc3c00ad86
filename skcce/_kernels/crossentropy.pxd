# The per-row crossentropy arithmetic shared by the dense and sparse loss
# kernels and the metric: targets, stable log-sum-exp, and the chunk's
# weighted softmax residuals.

from cython cimport floating
from libc.math cimport log
from libc.stdint cimport int32_t


cdef extern from "vector_exp.h":
    void skcce_exp_nonpositive_inplace(double* v, Py_ssize_t n) noexcept nogil


cdef struct Targets:
    # What each row is fitted to: a class index (``labels``) or a probability
    # row (``proba``, row-major n x K); either way optionally label-smoothed,
    # q <- (1 - smoothing) * q + smoothing / K.
    const int32_t* labels
    const double* proba
    double smoothing


cdef inline int set_targets(Targets* targets, const int32_t[::1] y,
                            const double[:, ::1] y_proba, double label_smoothing,
                            Py_ssize_t n, Py_ssize_t n_classes) except -1:
    """Fill ``targets`` from exactly one of labels ``y`` and ``y_proba``.

    Raises ValueError if both or neither are given, or on a wrong shape.
    """
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


cdef inline double logit(const floating* row, const double* intercept,
                         Py_ssize_t k) noexcept nogil:
    """Logit k of a row in float64, intercept added when there is one."""
    if intercept == NULL:
        return row[k]
    return row[k] + intercept[k]


cdef inline double target(const Targets* t, Py_ssize_t i, Py_ssize_t k,
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


cdef inline double row_max_logit(const floating* row, const double* intercept,
                                 Py_ssize_t n_classes) noexcept nogil:
    cdef double zmax = logit(row, intercept, 0), zk
    cdef Py_ssize_t k
    for k in range(1, n_classes):
        zk = logit(row, intercept, k)
        if zk > zmax:
            zmax = zk
    return zmax


cdef inline double row_target_logit(
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
        return logit(row, intercept, t.labels[i]) - zmax
    for k in range(n_classes):
        q = target(t, i, k, n_classes)
        if q != 0.0:
            acc = acc + q * (logit(row, intercept, k) - zmax)
    return acc


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
        zmax = row_max_logit(row, intercept, K)
        target_logit[i] = row_target_logit(targets, first_row + i, row, intercept,
                                           K, zmax)
        for k in range(K):
            e[k] = logit(row, intercept, k) - zmax
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
                r = r - weight * target(targets, first_row + i, k, K)
            row[k] = <floating> r
            if grad_intercept != NULL:
                grad_intercept[k] = grad_intercept[k] + r
    return loss
