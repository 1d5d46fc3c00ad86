"""Array API inputs (PyTorch, CuPy, array-api-strict, ...): the data term and predictions.

With ``sklearn.set_config(array_api_dispatch=True)``, :class:`~skcce.SoftmaxClassifier`
fits arrays of any namespace that scikit-learn's ``get_namespace`` supports, the
way ``LogisticRegression(solver="lbfgs")`` does: the loss and gradient are
computed with the namespace's own operations on the data's device, and L-BFGS
runs on NumPy copies of the O(K d) parameters. :class:`ArrayAPIData` is that
data term; it plugs under the same ``CrossEntropyObjective`` (penalty,
normalization) and fit core as the in-memory one. NumPy inputs never come here.

Unlike the compiled kernel, this data term materializes the n x K logits (in
X's dtype, as the namespace computes them) at each evaluation.
"""

import numpy as np

from skcce._columns import ColumnStatistics
from skcce._prediction import DECISION, LOG_PROBA


def array_namespace(*arrays):
    """The array API namespace and device of non-NumPy inputs, or None.

    None unless scikit-learn's array API dispatch is enabled and the inputs
    belong to a namespace other than NumPy (lists, NumPy arrays, sparse
    matrices and data frames take the compiled kernels).

    Returns
    -------
    namespace : tuple (xp, device) or None
    """
    from sklearn import get_config

    if not get_config().get("array_api_dispatch", False):
        return None
    from sklearn.utils._array_api import _is_numpy_namespace, get_namespace_and_device

    xp, is_array_api, device = get_namespace_and_device(*arrays)
    if not is_array_api or _is_numpy_namespace(xp):
        return None
    return xp, device


def to_numpy(array, xp):
    """A NumPy copy of an array of namespace ``xp`` (or the array, if not one)."""
    from sklearn.utils._array_api import _convert_to_numpy

    if array is None or isinstance(array, np.ndarray):
        return array
    return _convert_to_numpy(array, xp)


class ArrayAPIData:
    """The crossentropy data term on an array of any array API namespace.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), float32 or float64
        In namespace ``xp``, on ``device``.
    targets : ndarray of shape (n_samples,), int, or (n_samples, n_classes), float64
        NumPy class indices or target distributions; moved to the device once,
        as the (smoothed) target distributions in X's dtype.
    layout : CoefLayout
    xp : namespace
    device : device
    sample_weight : ndarray of shape (n_samples,), float64, or None
    label_smoothing : float
    """

    weight_scale = 1.0
    # The data term's prescaling of extreme columns is the compiled path's only.
    shift = None

    def __init__(self, X, targets, layout, xp, device, *, sample_weight=None,
                 label_smoothing=0.0):
        self.X, self.xp, self.device = X, xp, device
        self.layout = layout
        self.n_threads = 1  # read by the objective; the namespace has its own threads
        self.label_smoothing = float(label_smoothing)
        n_samples, K = X.shape[0], layout.n_classes
        if targets.ndim == 1:
            q = np.zeros((n_samples, K))
            q[np.arange(n_samples), targets] = 1.0
        else:
            q = np.asarray(targets, dtype=np.float64)
        if self.label_smoothing:
            q = (1.0 - self.label_smoothing) * q + self.label_smoothing / K
        self.targets = targets
        self._q = xp.asarray(q, dtype=X.dtype, device=device)
        if sample_weight is None:
            self.sample_weight = None
            self._weights = None
            self.weight_sum = float(n_samples)
        else:
            self.sample_weight = np.asarray(sample_weight, dtype=np.float64)
            self._weights = xp.asarray(self.sample_weight, dtype=X.dtype, device=device)
            self.weight_sum = float(np.sum(self.sample_weight))
        self._statistics = None

    @property
    def dtype(self):
        """X's dtype as a NumPy dtype (the rescaling's range of multipliers)."""
        return np.dtype("float32") if self.X.dtype == self.xp.float32 else np.dtype("float64")

    def loss_gradient_sum(self, params):
        """Unnormalized data term: ``sum_i s_i CE_i`` and its gradient.

        Computed in X's namespace, dtype and device; returned in float64 NumPy.

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,), float64

        Returns
        -------
        loss_sum : float
        grad_t : ndarray of shape (n_dof, n_classes), float64, C order
        """
        xp, layout = self.xp, self.layout
        weights_t = xp.asarray(np.ascontiguousarray(layout.weights_t(params)),
                               dtype=self.X.dtype, device=self.device)
        logits = self.X @ weights_t
        if layout.fit_intercept:
            intercept = xp.asarray(np.ascontiguousarray(layout.intercept(params)),
                                   dtype=self.X.dtype, device=self.device)
            logits = logits + intercept
        # CE_i = log sum_k exp(z_k - m) - sum_k q_k (z_k - m), m = max_k z_k: no
        # cancellation when every logit shares a large offset.
        shifted = logits - xp.max(logits, axis=1, keepdims=True)
        exp = xp.exp(shifted)
        sums = xp.sum(exp, axis=1, keepdims=True)
        losses = xp.log(sums[:, 0]) - xp.sum(self._q * shifted, axis=1)
        residual = exp / sums - self._q
        if self._weights is not None:
            losses = losses * self._weights
            residual = residual * self._weights[:, None]
        grad_t = np.empty((layout.n_dof, layout.n_classes))
        grad_t[: layout.n_features] = to_numpy(self.X.T @ residual, xp)
        if layout.fit_intercept:
            grad_t[-1] = to_numpy(xp.sum(residual, axis=0), xp)
        return float(to_numpy(xp.sum(losses), xp)), grad_t

    def column_statistics(self):
        """Per-column statistics of X for the rescaling, computed once on the device."""
        if self._statistics is None:
            xp, X = self.xp, self.X
            if X.shape[0] == 0:
                zeros = np.zeros(X.shape[1])
                self._statistics = ColumnStatistics(rms=zeros, max_abs=zeros,
                                                    constant=np.ones(X.shape[1], dtype=bool))
                return self._statistics
            minimum, maximum = xp.min(X, axis=0), xp.max(X, axis=0)
            max_abs = xp.maximum(xp.abs(minimum), xp.abs(maximum))
            # Squares of the columns divided by their largest |x|: no overflow.
            scale = xp.where(max_abs > 0, max_abs, xp.ones_like(max_abs))
            squares = (X / scale) ** 2
            if self._weights is not None:
                squares = squares * self._weights[:, None]
            mean_squares = to_numpy(xp.sum(squares, axis=0), xp).astype(np.float64)
            mean_squares /= self.weight_sum
            max_abs_np = to_numpy(max_abs, xp).astype(np.float64)
            rms = np.where(max_abs_np > 0, max_abs_np, 1.0) * np.sqrt(mean_squares)
            self._statistics = ColumnStatistics(
                rms=np.where(np.isfinite(rms), rms, 0.0), max_abs=max_abs_np,
                constant=to_numpy(minimum == maximum, xp).astype(bool))
        return self._statistics

    def prescaled(self):
        """None: this data term works on X as given."""
        return None


def predict_linear_xp(X, coef, intercept, mode, xp, device):
    """Logits ``X @ coef.T + intercept``, or their softmax or log-softmax, in ``xp``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), in ``xp`` on ``device``
    coef : array of shape (n_classes, n_features)
    intercept : array of shape (n_classes,)
        NumPy or ``xp`` arrays; moved to the device in X's floating dtype.
    mode : {DECISION, PROBA, LOG_PROBA}

    Returns
    -------
    out : array of shape (n_samples, n_classes), in ``xp`` on ``device``
    """
    dtype = X.dtype if X.dtype in (xp.float32, xp.float64) else xp.float64
    X = xp.asarray(X, dtype=dtype, device=device)
    coef = _on_device(coef, xp, dtype, device)
    intercept = _on_device(intercept, xp, dtype, device)
    logits = X @ coef.T + intercept
    if mode == DECISION:
        return logits
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    if mode == LOG_PROBA:
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    exp = xp.exp(shifted)
    return exp / xp.sum(exp, axis=1, keepdims=True)


def _on_device(array, xp, dtype, device):
    """``array`` (NumPy or ``xp``) as an ``xp`` array of ``dtype`` on ``device``."""
    if isinstance(array, np.ndarray):
        return xp.asarray(np.ascontiguousarray(array), dtype=dtype, device=device)
    return xp.asarray(xp.astype(array, dtype), device=device)
