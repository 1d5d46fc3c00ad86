"""Sample and class weights, shared by the estimators, the loss, the metric and Dask."""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight

ALL_ZERO_WEIGHT_MESSAGE = "Sample weights must contain at least one non-zero number."


def check_non_negative_sample_weight(sample_weight, X, copy=False, require_nonzero=True):
    """Validate sample weights as a float64 array of non-negative values.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or scalar
    X : array-like of shape (n_samples, ...)
        Only its length is used.
    copy : bool, default=False
        Return a copy the caller may modify.
    require_nonzero : bool, default=True
        Whether all-zero weights are an error (a block of a larger data set may
        have them; the whole may not).

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,), float64

    Raises
    ------
    ValueError
        On a wrong length or shape, NaN or infinite values, a negative value, or
        weights that are all zero (scikit-learn's wording for each).
    """
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=copy)
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    if require_nonzero and not np.any(sample_weight > 0):
        raise ValueError(ALL_ZERO_WEIGHT_MESSAGE)
    return np.ascontiguousarray(sample_weight, dtype=np.float64)


def class_mass(targets, sample_weight, n_classes):
    """Total (weighted) target probability of each class.

    Parameters
    ----------
    targets : ndarray of shape (n_samples,), int, or (n_samples, n_classes), float
        Class indices or target distributions.
    sample_weight : ndarray of shape (n_samples,) or None
    n_classes : int

    Returns
    -------
    mass : ndarray of shape (n_classes,), float64
    """
    if targets.ndim == 1:
        return np.bincount(targets, weights=sample_weight, minlength=n_classes)
    if sample_weight is None:
        return targets.sum(axis=0)
    return sample_weight @ targets


def class_weights(class_weight_param, targets, classes, sample_weight):
    """Weight of each class, (n_classes,) float64, for a ``class_weight`` parameter.

    Parameters
    ----------
    class_weight_param : dict, "balanced" or ndarray
        The estimator's ``class_weight``; an array is taken as already
        resolved. "balanced" counts each class by its total (weighted)
        target probability.
    targets : ndarray
        Class indices or target distributions (see :func:`class_mass`).
    classes : ndarray of shape (n_classes,)
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    class_weight : ndarray of shape (n_classes,), float64
    """
    if isinstance(class_weight_param, np.ndarray):
        return class_weight_param
    n_classes = classes.shape[0]
    if isinstance(class_weight_param, str) and class_weight_param == "balanced":
        mass = class_mass(targets, sample_weight, n_classes)
        with np.errstate(divide="ignore", invalid="ignore"):
            class_weight = mass.sum() / (n_classes * mass)
    else:
        class_weight = compute_class_weight(
            class_weight_param, classes=classes,
            y=classes[targets] if targets.ndim == 1 else classes,
        )
    # "balanced" gives an infinite weight to a class whose samples all
    # have zero weight; the class still carries no weight.
    return np.where(np.isfinite(class_weight), class_weight, 0.0)


def apply_class_weight(sample_weight, targets, class_weight):
    """Multiply ``sample_weight`` in place by each sample's class weight.

    With soft targets a sample's class weight is its expected class weight,
    ``sum_k q_ik w_k``.
    """
    if targets.ndim == 1:
        sample_weight *= class_weight[targets]
    else:
        sample_weight *= targets @ class_weight
    return sample_weight


def effective_sample_weight(class_weight_param, X, targets, classes, sample_weight):
    """Sample weights times class weights, float64; None if all ones.

    Parameters
    ----------
    class_weight_param : dict, "balanced", ndarray or None
        The estimator's ``class_weight``, or per-class weights already
        resolved by :func:`class_weights`.
    X : array-like of shape (n_samples, ...)
    targets : ndarray
    classes : ndarray of shape (n_classes,)
    sample_weight : array-like of shape (n_samples,) or None

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,), float64, or None
    """
    if sample_weight is None and class_weight_param is None:
        return None
    sample_weight = check_non_negative_sample_weight(sample_weight, X, copy=True)
    if class_weight_param is None:
        return sample_weight
    class_weight = class_weights(class_weight_param, targets, classes, sample_weight)
    return apply_class_weight(sample_weight, targets, class_weight)
