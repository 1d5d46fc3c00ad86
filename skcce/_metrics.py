"""The categorical crossentropy as a metric, computed by the Cython kernel."""

import numbers
import warnings

import numpy as np
from scipy import sparse
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_consistent_length

from skcce._kernels import reductions
from skcce._targets import check_soft_targets
from skcce._threads import effective_n_threads
from skcce._weights import check_non_negative_sample_weight


def _check_predictions(y_pred, from_logits):
    """2-D float32/float64 C-ordered predictions; a 1-D input is the positive class."""
    y_pred = check_array(y_pred, dtype=[np.float64, np.float32], order="C",
                         ensure_2d=False, input_name="y_pred",
                         ensure_all_finite=not from_logits)
    if from_logits and np.isnan(y_pred).any():
        raise ValueError("Input y_pred contains NaN.")
    # -inf logits are allowed (a class with probability 0, e.g. masked), but a
    # +inf logit or a row of only -inf has no softmax: the kernel would
    # silently return NaN (inf - inf), so reject them like a NaN.
    if from_logits and np.isposinf(y_pred).any():
        raise ValueError("Input y_pred contains +infinity; logits must be < +inf.")
    # (1-D or one-column y_pred holds binary log-odds: -inf is then valid.)
    if (from_logits and y_pred.ndim == 2 and y_pred.shape[1] >= 2
            and np.isneginf(y_pred).all(axis=1).any()):
        raise ValueError(
            "Input y_pred has a row of logits that are all -infinity (no probability).")
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_pred.ndim != 2:
        raise ValueError(f"y_pred must be 1-D or 2-D; got {y_pred.ndim} dimensions.")
    if y_pred.shape[1] == 1:
        # Binary: the positive class's probability, or its log-odds.
        other = np.zeros_like(y_pred) if from_logits else 1 - y_pred
        y_pred = np.ascontiguousarray(np.hstack([other, y_pred]))
    if not from_logits:
        if y_pred.max() > 1:
            raise ValueError(f"y_pred contains values greater than 1: {y_pred.max()}")
        if y_pred.min() < 0:
            raise ValueError(f"y_pred contains values lower than 0: {y_pred.min()}")
        sums = y_pred.sum(axis=1, dtype=np.float64)
        if not np.allclose(sums, 1.0, rtol=np.sqrt(np.finfo(y_pred.dtype).eps), atol=0):
            warnings.warn(
                "The y_pred values do not sum to one. Make sure to pass probabilities.",
                UserWarning,
            )
    return y_pred


def _encode_true_labels(y_true, labels, n_columns):
    """Column index of each label, as ``sklearn.metrics.log_loss`` orders them."""
    y_true = column_or_1d(y_true)
    classes = unique_labels(y_true) if labels is None else unique_labels(labels)
    # One label cannot be mapped to a column without guessing which it is:
    # log_loss raises here too.
    if classes.shape[0] == 1:
        if labels is None:
            raise ValueError(
                f"y_true contains only one label ({classes[0]}). Please provide the "
                "list of all expected class labels explicitly through the labels argument."
            )
        raise ValueError(
            f"The labels array needs to contain at least two labels, got {classes}."
        )
    if classes.shape[0] != n_columns:
        if labels is None:
            raise ValueError(
                "y_true and y_pred contain different number of classes: "
                f"{classes.shape[0]} vs {n_columns}. Please provide the true labels "
                f"explicitly through the labels argument. Classes found in y_true: {classes}"
            )
        raise ValueError(
            "The number of classes in labels is different from that in y_pred. "
            f"Classes found in labels: {classes}"
        )
    index = np.searchsorted(classes, y_true)
    index = np.clip(index, 0, classes.shape[0] - 1)
    if np.any(classes[index] != y_true):
        unknown = y_true[classes[index] != y_true][0]
        raise ValueError(f"y_true contains a label not in labels: {unknown!r}")
    return np.ascontiguousarray(index, dtype=np.int32)


def categorical_crossentropy(y_true, y_pred, *, from_logits=False, label_smoothing=0.0,
                             sample_weight=None, labels=None, n_jobs=None):
    """Mean categorical crossentropy between targets and predictions.

    ``CE_i = -sum_k q_ik log p_ik``, averaged over samples (weighted by
    ``sample_weight``), where ``q_i`` is the one-hot encoding of a label or a
    given probability row, label-smoothed to ``(1 - eps) q_i + eps / K``.
    Computed by the compiled kernel, multithreaded; the result does not
    depend on ``n_jobs``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_classes)
        Labels, or target distributions (non-negative rows summing to 1).
        Labels are mapped to the columns of ``y_pred`` in sorted order, as
        ``sklearn.metrics.log_loss`` does.
    y_pred : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities or, with ``from_logits=True``, unnormalized
        log-probabilities (logits). A 1-D array holds the positive class's
        probability (or log-odds) of a binary problem. Probabilities are
        clipped to ``[eps, 1 - eps]`` (eps: the dtype's machine epsilon), as
        in ``log_loss``.
    from_logits : bool, default=False
        Whether ``y_pred`` holds logits. The crossentropy is then computed
        as ``log(sum_k exp(z_k - m)) - sum_k q_k (z_k - m)``, ``m = max_k z_k``:
        exact for any finite logits, never through exp then log.
    label_smoothing : float, default=0.0
        ``eps`` in [0, 1), as in PyTorch's ``cross_entropy`` and Keras's
        ``CategoricalCrossentropy``.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights.
    labels : array-like, default=None
        All class labels, when ``y_true`` does not contain every class
        (required, as in ``log_loss``, when ``y_true`` holds a single label).
    n_jobs : int, default=None
        OpenMP threads (None: all usable cores).

    Returns
    -------
    loss : float
        The (weighted) mean crossentropy.

    Examples
    --------
    >>> from skcce import categorical_crossentropy
    >>> y_true = [0, 1, 2]
    >>> proba = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]
    >>> print(f"{categorical_crossentropy(y_true, proba):.6f}")
    0.267654
    >>> logits = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
    >>> print(f"{categorical_crossentropy(y_true, logits, from_logits=True):.6f}")
    0.239545

    As a scorer (greater is better, hence the sign flip)::

        from sklearn.metrics import make_scorer
        scorer = make_scorer(categorical_crossentropy, greater_is_better=False,
                             response_method="predict_proba")
    """
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    y_pred = _check_predictions(y_pred, from_logits)
    n_classes = y_pred.shape[1]
    check_consistent_length(y_pred, y_true)
    if sparse.issparse(y_true) or (np.ndim(y_true) == 2 and np.shape(y_true)[1] != 1):
        y_proba = check_soft_targets(y_true, n_classes=n_classes, input_name="y_true")
        y_index = None
    else:
        y_proba = None
        y_index = _encode_true_labels(y_true, labels, n_classes)
    if sample_weight is not None:
        sample_weight = check_non_negative_sample_weight(sample_weight, y_pred)
        weight_sum = float(sample_weight.sum())
    else:
        weight_sum = float(y_pred.shape[0])
    total = reductions.rows_crossentropy(
        y_pred, y_index, y_proba, float(label_smoothing), sample_weight,
        bool(from_logits), effective_n_threads(n_jobs),
    )
    return total / weight_sum
