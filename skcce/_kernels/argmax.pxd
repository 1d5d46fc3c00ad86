# NumPy's argmax of a row of logits, for predict's labels.

from cython cimport floating


cdef inline Py_ssize_t _row_argmax_exact(const floating* row,
                                         Py_ssize_t n_classes) noexcept nogil:
    """NumPy's argmax of a row, with a branch per value (rows holding a NaN)."""
    cdef Py_ssize_t k, pick = 0
    cdef floating largest = row[0], v
    if largest != largest:
        return 0
    for k in range(1, n_classes):
        v = row[k]
        if v != v:
            return k
        if v > largest:
            largest = v
            pick = k
    return pick


cdef inline Py_ssize_t row_argmax(const floating* row, Py_ssize_t n_classes,
                                  bint* picked_finite) noexcept nogil:
    """``np.argmax(row)``: the first largest value; a NaN counts as larger
    than every number, so the first NaN wins. Sets ``picked_finite`` to
    whether the value picked is finite.

    Without branches on the data (random rows would mispredict half the
    comparisons); a row holding a NaN goes the exact way.
    """
    cdef Py_ssize_t k, pick = 0
    cdef floating largest = row[0], v
    cdef bint larger, nan_seen = largest != largest
    for k in range(1, n_classes):
        v = row[k]
        nan_seen = nan_seen | (v != v)
        larger = v > largest
        pick = k if larger else pick
        largest = v if larger else largest
    if nan_seen:
        picked_finite[0] = False
        return _row_argmax_exact(row, n_classes)
    picked_finite[0] = largest - largest == 0
    return pick
