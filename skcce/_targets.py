"""Validation of targets: class indices and soft (probability) targets."""

import numpy as np
from scipy import sparse
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets


def soft_target_tolerance(dtype):
    """How far from 1 a row of soft targets may sum (then it is renormalized).

    1e-6 for float64, 1e-4 for float32, and at least 4 machine epsilons of
    the dtype: rounding each probability of a row to float16 alone moves the
    row's sum by up to half an epsilon (4.9e-4).
    """
    dtype = np.dtype(dtype)
    tolerance = 1e-6 if dtype == np.float64 else 1e-4
    if dtype.kind == "f":
        tolerance = max(tolerance, 4 * float(np.finfo(dtype).eps))
    return tolerance


def is_soft_targets(y):
    """Whether y holds soft targets (a 2-D array with K >= 2 columns)."""
    return np.ndim(y) == 2 and np.shape(y)[1] > 1


def check_soft_targets(Y, n_classes=None, input_name="y", row_offset=0):
    """Validate an (n_samples, K) matrix of target distributions.

    Parameters
    ----------
    Y : array-like of shape (n_samples, K)
        Non-negative rows summing to 1 within :func:`soft_target_tolerance`.
    n_classes : int, default=None
        Required number of columns, if known.
    input_name : str, default="y"
        Name used in error messages.
    row_offset : int, default=0
        Index of Y's first row in the whole target matrix (for the rows named
        in error messages, when Y is a block of it).

    Returns
    -------
    Y : ndarray of shape (n_samples, K), float64, C order
        The rows renormalized to sum to 1 exactly (up to rounding); one-hot
        rows are unchanged.

    Raises
    ------
    ValueError
        If Y has fewer than 2 columns, the wrong number of columns, non-finite
        or negative entries, or a row that does not sum to 1 (for instance a
        multilabel indicator matrix).
    """
    if sparse.issparse(Y):
        raise ValueError(
            f"A 2-D {input_name} of soft targets must be dense; got a sparse matrix."
        )
    Y_in = check_array(Y, dtype=None, ensure_2d=True, input_name=input_name,
                       ensure_all_finite=False)
    if not (np.issubdtype(Y_in.dtype, np.number) or Y_in.dtype == bool):
        raise ValueError(
            f"A 2-D {input_name} must hold target probabilities (soft targets); "
            f"got dtype {Y_in.dtype}."
        )
    tolerance = soft_target_tolerance(Y_in.dtype if Y_in.dtype.kind == "f" else np.float64)
    Y = check_array(Y_in, dtype=np.float64, order="C", input_name=input_name)
    K = Y.shape[1]
    if K < 2:
        raise ValueError(
            f"A 2-D {input_name} of soft targets needs at least 2 columns (classes); "
            f"got {K}."
        )
    if n_classes is not None and K != n_classes:
        raise ValueError(
            f"{input_name} has {K} columns (classes) but {n_classes} were expected."
        )
    if np.any(Y < 0):
        row = int(np.nonzero(np.any(Y < 0, axis=1))[0][0])
        raise ValueError(
            f"Soft targets {input_name} must be non-negative probabilities; row "
            f"{row + row_offset} has a negative entry."
        )
    row_sums = Y.sum(axis=1)
    bad = np.abs(row_sums - 1.0) > tolerance
    if np.any(bad):
        row = int(np.nonzero(bad)[0][0])
        raise ValueError(
            f"Each row of a 2-D {input_name} must be a probability distribution "
            f"summing to 1 (soft targets); row {row + row_offset} sums to "
            f"{row_sums[row]:.6g}, more than {tolerance:.2g} (for {Y_in.dtype}) away "
            "from 1. Multilabel indicator matrices are not supported."
        )
    not_exact = row_sums != 1.0
    if np.any(not_exact):
        Y = Y.copy() if Y is Y_in else Y
        Y[not_exact] /= row_sums[not_exact, None]
    return Y


def one_hot_labels(Y):
    """Class indices if every row of ``Y`` is exactly one-hot, else None.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, K), float64

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32, or None
    """
    is_binary = np.all((Y == 0.0) | (Y == 1.0))
    if is_binary and np.all(Y.sum(axis=1) == 1.0):
        return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.int32)
    return None


def check_class_indices(y, n_classes, input_name="y"):
    """Integer class indices in ``[0, n_classes)`` as an int32 array.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    n_classes : int
    input_name : str, default="y"

    Returns
    -------
    y : ndarray of shape (n_samples,), int32
    """
    y = column_or_1d(y, warn=True)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(
            f"{input_name} must hold integer class indices, got dtype {y.dtype}."
        )
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"Input {input_name} contains NaN or infinity.")
    y_int = np.asarray(y).astype(np.int64, copy=False)
    # Signed integers and booleans are int64 exactly; unsigned ones past
    # int64's range wrap to negative values, which the range check refuses.
    exact = y.dtype.kind in "bi" or y.dtype.kind == "u" and y.dtype.itemsize < 8
    if y.size and not exact and not np.array_equal(y_int, y):
        raise ValueError(
            f"{input_name} must hold integer class indices 0..K-1 "
            "(non-integer values found)."
        )
    if y.size and (y_int.min() < 0 or y_int.max() >= n_classes):
        raise ValueError(
            f"{input_name} must hold class indices in [0, {n_classes}); got values "
            f"in [{y_int.min()}, {y_int.max()}]."
        )
    return np.ascontiguousarray(y_int, dtype=np.int32)


def check_targets_for_classes(y, n_classes, input_name="y"):
    """Class indices (1-D) or soft targets (2-D) for a K-class objective.

    Returns
    -------
    targets : ndarray
        int32 of shape (n_samples,), or float64 of shape (n_samples, K).
    """
    if sparse.issparse(y) or np.ndim(y) == 2 and np.shape(y)[1] != 1:
        return check_soft_targets(y, n_classes=n_classes, input_name=input_name)
    return check_class_indices(y, n_classes, input_name=input_name)


def check_at_least_two_classes(classes):
    """Raise scikit-learn's error when the labels hold fewer than 2 classes."""
    if classes.shape[0] < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but "
            f"the data contains only one class: {classes[0]!r}"
        )


def encode_targets(y):
    """``classes_`` and the kernel's targets: int32 indices or float64 (n, K).

    Parameters
    ----------
    y : ndarray of shape (n_samples,) or (n_samples, K)
        Validated labels, or soft targets when 2-D with K >= 2 columns.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        The sorted labels, or ``arange(K)`` for soft targets.
    targets : ndarray
        int32 class indices, or the float64 target distributions. Exactly
        one-hot rows are turned into indices, so they give bitwise the model
        of the equivalent labels.
    """
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if y.ndim == 2:
        proba = check_soft_targets(y)
        labels = one_hot_labels(proba)
        return np.arange(proba.shape[1]), (proba if labels is None else labels)
    check_classification_targets(y)
    classes, y_encoded = np.unique(y, return_inverse=True)
    check_at_least_two_classes(classes)
    return classes, np.ascontiguousarray(y_encoded, dtype=np.int32)
