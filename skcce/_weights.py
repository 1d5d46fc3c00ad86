"""Sample weight validation shared by the estimator, the loss and the metric."""

import numpy as np
from sklearn.utils.validation import _check_sample_weight


def check_non_negative_sample_weight(sample_weight, X, copy=False):
    """Validate sample weights as a float64 array of non-negative values.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or scalar
    X : array-like of shape (n_samples, ...)
        Only its length is used.
    copy : bool, default=False
        Return a copy the caller may modify.

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
    if not np.any(sample_weight > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return np.ascontiguousarray(sample_weight, dtype=np.float64)
