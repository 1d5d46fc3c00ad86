"""Public face of the fused crossentropy kernel."""

import numbers

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_consistent_length

from skcce._objective import CrossEntropyObjective
from skcce._sparse import check_sparse_structure, is_sparse, kernel_csr
from skcce._targets import check_targets_for_classes
from skcce._threads import effective_n_threads, single_threaded_blas
from skcce._weights import check_non_negative_sample_weight


def crossentropy_loss_gradient(coef, X, y, *, sample_weight=None, l2_reg_strength=0.0,
                               fit_intercept=True, label_smoothing=0.0, n_jobs=None):
    """Regularized mean categorical crossentropy and its gradient, in one pass.

    Computes, with ``W = coef[:, :n_features]`` and ``b = coef[:, -1]`` (when
    ``fit_intercept``)::

        loss = (1/S) sum_i s_i (logsumexp(z_i) - sum_k q_ik z_ik)
               + l2_reg_strength / 2 * ||W||_F^2,      z_i = W x_i + b

    with ``S = sum_i s_i`` and targets ``q_i`` (one-hot for a label, or a
    given probability row; label smoothing ``eps`` replaces them by
    ``(1 - eps) q_i + eps / K``), and its gradient with respect to ``coef``.
    For labels without smoothing this is exactly what scikit-learn's private
    ``LinearModelLoss(HalfMultinomialLoss(n_classes=K), fit_intercept).loss_gradient``
    returns, computed by a fused multithreaded kernel that never allocates an
    n_samples x K array. Use it to drive your own optimizer.

    Parameters
    ----------
    coef : array-like of shape (n_classes, n_features + fit_intercept)
        Coefficients, intercepts in the last column when ``fit_intercept``.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Data, float64 or float32 (other dtypes are converted to float64).
        float32 data is used as is; loss and gradient are accumulated in
        float64. Sparse data is used in CSR format (other formats are
        converted once).
    y : array-like of shape (n_samples,) or (n_samples, n_classes)
        Class indices ``0 .. n_classes - 1``, or soft targets: rows of
        non-negative probabilities summing to 1.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative sample weights; None means unit weights.
    l2_reg_strength : float, default=0.0
        Strength of the L2 penalty on ``W`` (not on the intercepts).
    fit_intercept : bool, default=True
        Whether the last column of ``coef`` holds intercepts.
    label_smoothing : float, default=0.0
        ``eps`` in [0, 1): targets become ``(1 - eps) q + eps / K``, as in
        PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``.
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

    Raises
    ------
    ValueError
        If the loss or the gradient is not finite: X holds NaN or infinity,
        or the logits or the penalty overflow float64 at ``coef``. Sample
        weights of any finite magnitude are handled exactly (the weighted
        mean does not depend on their scale).

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
    # Finiteness of X is checked only if the result is not finite (below):
    # a separate pass over X would cost as much as the evaluation itself.
    check_sparse_structure(X)
    X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                    input_name="X", ensure_all_finite=False)
    if is_sparse(X):
        X = kernel_csr(X, structure_checked=True)
    coef = check_array(coef, dtype=np.float64, ensure_2d=True, input_name="coef",
                       ensure_min_samples=1, ensure_min_features=1)
    n_classes, n_dof = coef.shape
    n_features = X.shape[1]
    if n_dof != n_features + int(fit_intercept):
        raise ValueError(
            f"coef has {n_dof} columns; expected n_features + fit_intercept = "
            f"{n_features + int(fit_intercept)}."
        )
    if (not isinstance(l2_reg_strength, numbers.Real) or not l2_reg_strength >= 0
            or not np.isfinite(l2_reg_strength)):
        raise ValueError(
            f"l2_reg_strength must be a finite, non-negative number, got {l2_reg_strength!r}.")
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    check_consistent_length(X, y)
    y = check_targets_for_classes(y, n_classes)
    if sample_weight is not None:
        sample_weight = check_non_negative_sample_weight(sample_weight, X)
    objective = CrossEntropyObjective.in_memory(
        X, y, n_classes, sample_weight=sample_weight, fit_intercept=fit_intercept,
        l2_reg_strength=l2_reg_strength, label_smoothing=label_smoothing,
        n_threads=effective_n_threads(n_jobs),
    )
    params = np.asfortranarray(coef).ravel(order="F")
    with single_threaded_blas():
        loss, grad = objective.loss_gradient(params)
    if not (np.isfinite(loss) and np.all(np.isfinite(grad))):
        # NaN or inf in X make the result non-finite: report them as
        # scikit-learn's validation would.
        check_array(X, accept_sparse="csr", dtype=None, input_name="X")
        # Finite X: the logits or the penalty overflow at these coefficients.
        raise ValueError(
            "The loss or its gradient is not finite in float64 at these coefficients: "
            "the logits X @ coef.T (plus intercepts) or the penalty "
            "l2_reg_strength * ||W||^2 / 2 overflow. Use smaller coefficients, or "
            "rescale X."
        )
    return loss, grad.reshape(n_dof, n_classes).T
