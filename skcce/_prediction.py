"""Prediction of a linear softmax model: dtype and layout rules around the kernel.

:func:`predict_linear` takes validated data (a NumPy array or a CSR matrix)
and the model, and returns the logits, the probabilities, the
log-probabilities or ``predict``'s class indices, computed chunk by chunk in
threads by :mod:`skcce._kernels.predict` into the result array: nothing else
of size n_samples x n_classes is allocated (for class indices, not even the
result).

Output dtype: scikit-learn's ``LinearClassifierMixin`` computes
``X @ coef_.T + intercept_`` with NumPy, so its result has NumPy's
``result_type`` of X, ``coef_`` and ``intercept_``: float32 only when all of
them are float32 (or X is a narrower type such as bool, int8/int16, uint8
or float16 and the model is float32), float64 otherwise, e.g. for float32 X
with a float64 model. The same rule is applied here (anything that is not
float32 becomes float64).

Copies of X: float32 and float64 data are read in place, including
Fortran-ordered arrays and rows sliced with a step. float32 X with a float64
model is converted chunk by chunk inside the kernel, never as a whole. Other
dtypes (integers, bool, float16) are converted once to the output dtype, as
scikit-learn does implicitly. Only arrays with neither a unit row nor a unit
column stride (e.g. ``X[:, ::2]``, negative or zero strides) are copied once
to C order. For CSR input only non-float data is converted; CSC and COO are
converted to CSR once by the caller's validation.
"""

import numpy as np
import scipy.sparse as sp

from skcce._kernels import predict, reductions
from skcce._sparse import check_sparse_structure
from skcce._threads import single_threaded_blas

DECISION = predict.DECISION
PROBA = predict.PROBA
LOG_PROBA = predict.LOG_PROBA
# ``predict``'s class indices: the kernel's own entry points, not a mode.
LABELS = "labels"

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BLAS_INT_MAX = 2**31 - 1


def known_finite(X, n_threads):
    """Whether validated X is certainly finite, checked in threads.

    A separate pass over X, for when the prediction kernel could not tell.

    True for integer and bool data, and for float32 or float64 data (dense
    C- or Fortran-ordered, or CSR values) without NaN or infinity. False
    otherwise, also for data this check does not read (other dtypes, other
    layouts): the caller then runs scikit-learn's check, which raises its
    error for non-finite data.

    Parameters
    ----------
    X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features)
    n_threads : int

    Returns
    -------
    finite : bool
    """
    values = X.data if sp.issparse(X) else X
    if values.dtype.kind in "iub":
        return True
    if values.dtype not in _FLOATS:
        return False
    if sp.issparse(X):
        if not values.flags.c_contiguous:
            return False
    elif values.flags.c_contiguous or values.flags.f_contiguous:
        values = values.ravel(order="K")  # a view
    else:
        return False
    return reductions.all_finite(values, n_threads)


def prediction_dtype(X_dtype, coef_dtype, intercept_dtype):
    """The output dtype scikit-learn's linear models give: float32 or float64.

    Parameters
    ----------
    X_dtype, coef_dtype, intercept_dtype : numpy dtype

    Returns
    -------
    dtype : numpy dtype
        ``np.result_type`` of the three, float64 unless that is float32.
    """
    dtype = np.result_type(X_dtype, coef_dtype, intercept_dtype)
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def check_prediction_structure(X):
    """Check the index structure of sparse X before prediction converts it.

    As :func:`skcce._sparse.check_sparse_structure`, except for a CSR
    matrix's column indices: :func:`predict_linear`'s kernel checks those in
    its own pass over them, so a NumPy pass here would read them once more.

    Parameters
    ----------
    X : object
        The data as given to a prediction method; anything but a scipy
        sparse matrix or array is ignored.

    Raises
    ------
    ValueError
        If the sparse structure is malformed.
    """
    check_sparse_structure(X, csr_indices=False)


def predict_linear(X, coef, intercept, *, mode, n_threads):
    """Logits ``X @ coef.T + intercept``, or their softmax or log-softmax.

    Parameters
    ----------
    X : ndarray or scipy CSR matrix of shape (n_samples, n_features)
        Validated numeric data with ``n_features`` columns.
    coef : ndarray of shape (n_classes, n_features)
    intercept : array-like of shape (n_classes,) or scalar
    mode : {DECISION, PROBA, LOG_PROBA, LABELS}
        Logits, probabilities (rows sum to 1), log-probabilities, or
        ``predict``'s class indices (see
        :func:`skcce._kernels.predict.dense_predict_labels`).
    n_threads : int
        OpenMP threads (>= 1); the result is bitwise identical for every value.

    Returns
    -------
    out : ndarray of shape (n_samples, n_classes), float32 or float64, C order
        See :func:`prediction_dtype` for the dtype. For LABELS, of shape
        (n_samples,), intp.
    X_finite : bool or None
        Whether X is free of NaN and infinity, as the kernel saw it while
        computing the logits, or None when it could not tell (X read by BLAS,
        which may skip multiplications by zero): see :func:`known_finite`.
        Rows of X with a NaN or infinity get NaN (log-)probabilities (and
        logits as computed).
    """
    coef = np.asarray(coef)
    n_classes, n_features = coef.shape
    intercept = np.asarray(intercept)
    dtype = prediction_dtype(X.dtype, coef.dtype, intercept.dtype)
    # The model is small (n_features x n_classes): cast and transpose freely.
    weights_t = np.ascontiguousarray(coef.T, dtype=dtype)
    intercept = np.ascontiguousarray(
        np.broadcast_to(np.ravel(intercept), (n_classes,)), dtype=dtype)
    labels = mode == LABELS
    if labels:
        out = np.empty(X.shape[0], dtype=np.intp)
    else:
        out = np.empty((X.shape[0], n_classes), dtype=dtype)
    n_threads = max(1, int(n_threads))

    if sp.issparse(X):
        X = X.tocsr()  # no copy for CSR
        data = X.data if X.data.dtype in _FLOATS else X.data.astype(dtype)
        indices, indptr = X.indices, X.indptr
        if indices.dtype != indptr.dtype or indices.dtype not in (np.int32, np.int64):
            indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
        try:
            if labels:
                X_finite = predict.csr_predict_labels(data, indices, indptr, weights_t,
                                                      intercept, n_threads, out)
            else:
                X_finite = predict.csr_predict(data, indices, indptr, weights_t, intercept,
                                               mode, n_threads, out)
        except predict.ColumnIndexError as error:
            column_error = error
        else:
            return out, X_finite
        check_sparse_structure(X)  # raises the fit's message
        raise column_error

    X = _dense_operand(X, dtype)
    # Each thread calls GEMM on its own chunks.
    with single_threaded_blas():
        if labels:
            X_finite = predict.dense_predict_labels(X, weights_t, intercept, n_threads, out)
        else:
            X_finite = predict.dense_predict(X, weights_t, intercept, mode, n_threads, out)
    return out, X_finite


def _dense_operand(X, dtype):
    """X as the kernel reads it: float32/float64 with one unit stride.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    dtype : numpy dtype
        The output dtype, which non-float data is converted to (once).

    Returns
    -------
    X : ndarray
        ``X`` itself when its dtype is float32 or float64 and the GEMM can
        read it in place (C- or Fortran-like strides), else a C-ordered copy.
    """
    X = np.asarray(X)
    if X.dtype not in _FLOATS:
        return np.asarray(X, dtype=dtype, order="C")
    n, d = X.shape
    if n == 0 or d == 0:
        return X
    item = X.itemsize
    row_stride, col_stride = X.strides
    if row_stride % item == 0 and col_stride % item == 0:
        row_stride, col_stride = row_stride // item, col_stride // item
        # What the GEMM accepts: one unit stride, the other a valid leading
        # dimension (this excludes negative, zero and overlapping strides).
        if max(row_stride, col_stride) <= _BLAS_INT_MAX and (
                (col_stride == 1 and row_stride >= d)
                or (row_stride == 1 and col_stride >= n)):
            return X
    return np.ascontiguousarray(X)
