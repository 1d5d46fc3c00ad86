"""Public face of the fused crossentropy kernel."""

import numbers

import numpy as np
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.validation import _check_sample_weight, check_consistent_length

from skcce._objective import CrossEntropyObjective
from skcce._threads import effective_n_threads, single_threaded_blas


def _check_labels(y, n_classes):
    """Integer class indices in [0, n_classes) as int32, or a ValueError."""
    y = column_or_1d(y, warn=True)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
            or y.dtype == bool):
        raise ValueError(f"y must hold integer class indices, got dtype {y.dtype}.")
    y_int = np.asarray(y).astype(np.int64, copy=False)
    if y.size and not np.array_equal(y_int, y):
        raise ValueError("y must hold integer class indices 0..K-1 (non-integer values found).")
    if y.size and (y_int.min() < 0 or y_int.max() >= n_classes):
        raise ValueError(
            f"y must hold class indices in [0, {n_classes}) for coef with "
            f"{n_classes} rows; got values in [{y_int.min()}, {y_int.max()}]."
        )
    return np.ascontiguousarray(y_int, dtype=np.int32)


def crossentropy_loss_gradient(coef, X, y, *, sample_weight=None, l2_reg_strength=0.0,
                               fit_intercept=True, n_jobs=None):
    """Regularized mean categorical crossentropy and its gradient, in one pass.

    Computes, with ``W = coef[:, :n_features]`` and ``b = coef[:, -1]`` (when
    ``fit_intercept``)::

        loss = (1/S) sum_i s_i (logsumexp(z_i) - z_{i, y_i})
               + l2_reg_strength / 2 * ||W||_F^2,      z_i = W x_i + b

    with ``S = sum_i s_i``, and its gradient with respect to ``coef``. This is
    exactly what scikit-learn's private
    ``LinearModelLoss(HalfMultinomialLoss(n_classes=K), fit_intercept).loss_gradient``
    returns, computed by a fused multithreaded kernel that never allocates an
    n_samples x K array. Use it to drive your own optimizer.

    Parameters
    ----------
    coef : array-like of shape (n_classes, n_features + fit_intercept)
        Coefficients, intercepts in the last column when ``fit_intercept``.
    X : ndarray of shape (n_samples, n_features)
        Dense data, float64 or float32 (other dtypes are converted to float64).
        float32 data is used as is; loss and gradient are accumulated in float64.
    y : array-like of shape (n_samples,)
        Class indices ``0 .. n_classes - 1``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; None means unit weights.
    l2_reg_strength : float, default=0.0
        Strength of the L2 penalty on ``W`` (not on the intercepts).
    fit_intercept : bool, default=True
        Whether the last column of ``coef`` holds intercepts.
    n_jobs : int, default=None
        Number of OpenMP threads: None for all usable cores, -1 for all,
        negative values count back. The result is bitwise identical for
        every value.

    Returns
    -------
    loss : float
        The objective value.
    grad : ndarray of shape (n_classes, n_features + fit_intercept), float64
        Its gradient with respect to ``coef``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcce import crossentropy_loss_gradient
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> y = np.array([0, 1, 2])
    >>> coef = np.zeros((3, 3))          # 3 classes, 2 features + intercept
    >>> loss, grad = crossentropy_loss_gradient(coef, X, y)
    >>> print(f"{loss:.6f}")   # log(3): a uniform prediction over 3 classes
    1.098612
    >>> grad.shape
    (3, 3)
    """
    X = check_array(X, dtype=[np.float64, np.float32], order="C", input_name="X")
    coef = check_array(coef, dtype=np.float64, ensure_2d=True, input_name="coef",
                       ensure_min_samples=1, ensure_min_features=1)
    n_classes, n_dof = coef.shape
    n_features = X.shape[1]
    if n_dof != n_features + int(fit_intercept):
        raise ValueError(
            f"coef has {n_dof} columns; expected n_features + fit_intercept = "
            f"{n_features + int(fit_intercept)}."
        )
    if not isinstance(l2_reg_strength, numbers.Real) or not l2_reg_strength >= 0:
        raise ValueError(f"l2_reg_strength must be a non-negative number, got {l2_reg_strength!r}.")
    check_consistent_length(X, y)
    y = _check_labels(y, n_classes)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if np.any(sample_weight < 0):
            raise ValueError("Negative values in data passed to `sample_weight`")
        if not np.any(sample_weight > 0):
            raise ValueError("Sample weights must contain at least one non-zero number.")
    objective = CrossEntropyObjective(
        X, y, n_classes, sample_weight=sample_weight, fit_intercept=fit_intercept,
        l2_reg_strength=l2_reg_strength, n_threads=effective_n_threads(n_jobs),
    )
    params = np.asfortranarray(coef).ravel(order="F")
    with single_threaded_blas():
        loss, grad = objective.loss_gradient(params)
    return loss, grad.reshape(n_dof, n_classes).T
