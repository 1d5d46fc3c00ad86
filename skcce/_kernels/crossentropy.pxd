# The per-row crossentropy arithmetic shared by the dense and sparse loss
# kernels and the metric: targets and the stable shifted logits.

from cython cimport floating
from libc.stdint cimport int32_t




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
    """Largest logit of a row, starting from the first and skipping NaNs after
    it; from 8 classes on, in four interleaved running maxima (four
    independent chains of comparisons instead of one, whose latency made it
    the residuals' slowest step with many classes). Every chain starts from
    the first logit, so the result is the sequential loop's (a NaN first
    logit gives NaN, a later NaN is skipped)."""
    cdef double zmax = logit(row, intercept, 0), zk
    cdef double m1, m2, m3
    cdef Py_ssize_t k
    if n_classes < 8:
        for k in range(1, n_classes):
            zk = logit(row, intercept, k)
            if zk > zmax:
                zmax = zk
        return zmax
    m1 = zmax
    m2 = zmax
    m3 = zmax
    k = 1
    while k + 4 <= n_classes:
        zk = logit(row, intercept, k)
        if zk > zmax:
            zmax = zk
        zk = logit(row, intercept, k + 1)
        if zk > m1:
            m1 = zk
        zk = logit(row, intercept, k + 2)
        if zk > m2:
            m2 = zk
        zk = logit(row, intercept, k + 3)
        if zk > m3:
            m3 = zk
        k = k + 4
    while k < n_classes:
        zk = logit(row, intercept, k)
        if zk > zmax:
            zmax = zk
        k = k + 1
    if m1 > zmax:
        zmax = m1
    if m3 > m2:
        m2 = m3
    if m2 > zmax:
        zmax = m2
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
