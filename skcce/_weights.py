"""Sample and class weights, shared by the estimators, the loss, the metric and Dask."""

import inspect

import numpy as np
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight

ALL_ZERO_WEIGHT_MESSAGE = "Sample weights must contain at least one non-zero number."
# scikit-learn >= 1.8's check rejects all-zero weights unless told otherwise.
_CHECKS_ALL_ZERO = "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
ZERO_WEIGHTED_CLASSES_MESSAGE = (
    "sample_weight times class_weight is zero for every sample: the classes with a "
    "positive class weight have no sample of positive weight."
)


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
    options = {} if require_nonzero or not _CHECKS_ALL_ZERO else {"allow_all_zero_weights": True}
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=copy,
                                         **options)
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    if require_nonzero and not np.any(sample_weight > 0):
        raise ValueError(ALL_ZERO_WEIGHT_MESSAGE)
    return np.ascontiguousarray(sample_weight, dtype=np.float64)


# Weights whose largest value lies in [2**-100, 2**100] are used as given.
_WEIGHT_EXPONENT = 100


def weight_scale(sample_weight):
    """1, or a power of two to divide the sample weights by before the kernel sees them.

    When the largest weight lies outside ``[2**-100, 2**100]``, the power of
    two at or just below it: the weights divided by it (an exact scaling) have
    their largest value in [1, 2), so the kernel's weighted sums of losses and
    gradients cannot overflow, nor vanish into subnormal numbers. Dividing
    the weighted sums by the sum of the weights cancels the factor.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,)
        Finite and non-negative.

    Returns
    -------
    scale : float
    """
    largest = float(np.max(sample_weight)) if sample_weight.size else 0.0
    if largest == 0.0 or 2.0 ** -_WEIGHT_EXPONENT <= largest <= 2.0 ** _WEIGHT_EXPONENT:
        return 1.0
    _, exponent = np.frexp(largest)  # largest = m * 2**exponent, 0.5 <= m < 1
    return float(np.ldexp(1.0, int(exponent) - 1))


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
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            class_weight = mass.sum() / (n_classes * mass)
        # A class whose samples all have zero weight gets an infinite weight
        # (0/0 or x/0): it still carries no weight.
        return np.where(mass > 0, class_weight, 0.0)
    if isinstance(class_weight_param, dict):
        _check_class_weight_dict(class_weight_param)
    class_weight = compute_class_weight(
        class_weight_param, classes=classes,
        y=classes[targets] if targets.ndim == 1 else classes,
    )
    if not np.any(class_weight > 0):
        raise ValueError(
            "class_weight gives every class a weight of zero; at least one class "
            f"weight must be positive. Got class_weight={class_weight_param!r}."
        )
    return class_weight


def _check_class_weight_dict(class_weight):
    """Raise ValueError unless every value of a class_weight dict is finite and >= 0."""
    for label, value in class_weight.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not np.isfinite(number) or number < 0:
            raise ValueError(
                "class_weight must map each class to a finite, non-negative weight; "
                f"got {value!r} for class {label!r}."
            )


def apply_class_weight(sample_weight, targets, class_weight):
    """Multiply ``sample_weight`` in place by each sample's class weight.

    With soft targets a sample's class weight is its expected class weight,
    ``sum_k q_ik w_k``.

    Raises
    ------
    ValueError
        If a product overflows float64.
    """
    with np.errstate(over="ignore"):
        if targets.ndim == 1:
            sample_weight *= class_weight[targets]
        else:
            sample_weight *= targets @ class_weight
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError(
            "sample_weight times class_weight overflows float64 for some samples. "
            "Divide the weights by a common factor c and multiply C by c: the "
            "objective, and the model, stay the same."
        )
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
    sample_weight = apply_class_weight(sample_weight, targets, class_weight)
    if not np.any(sample_weight > 0):
        raise ValueError(ZERO_WEIGHTED_CLASSES_MESSAGE)
    return sample_weight
