"""The L2-regularized crossentropy objective: a penalty over a pluggable data term.

The objective, for coefficients ``W`` (K x d) and intercepts ``b`` (K)::

    f(W, b) = (1/S) sum_i s_i CE_i + l2_reg_strength/2 * ||W||_F^2
    CE_i    = -sum_k q_ik log softmax(z_i)_k = logsumexp(z_i) - sum_k q_ik z_ik
    z_i     = W x_i + b,   S = sum_i s_i

where the target distribution q_i is one-hot for a label y_i, or a given
probability row (soft targets), optionally label-smoothed:
q_i <- (1 - eps) q_i + eps / K. For labels without smoothing,
CE_i = logsumexp(z_i) - z_{i, y_i}

which is scikit-learn's ``LinearModelLoss(HalfMultinomialLoss)`` convention;
the estimators use ``l2_reg_strength = 1 / (C * S)``. The intercept is not
penalized.

A *data term* computes the unnormalized ``sum_i s_i CE_i`` and its gradient
(``loss_gradient_sum``) and knows ``S`` (``weight_sum``): :class:`InMemoryData`
for NumPy and CSR data, ``skcce._dask`` for row blocks on a Dask cluster.
:class:`CrossEntropyObjective` normalizes it and adds the penalty, the same
way for every data term. The parameter layout is :class:`~skcce._layout.CoefLayout`'s.
"""

import numpy as np

from skcce._columns import column_sums, prescale_shifts, shifted
from skcce._kernels import dense, reductions, sparse
from skcce._layout import CoefLayout
from skcce._sparse import is_sparse, kernel_csr
from skcce._weights import weight_scale


def l2_reg_strength(C, weight_sum):
    """The penalty factor for C: ``1 / (C * S)``, 0 for C = inf.

    Parameters
    ----------
    C : float
        Inverse regularization strength, > 0.
    weight_sum : float
        S, the sum of the sample weights (see :func:`total_weight`).

    Returns
    -------
    l2_reg_strength : float
        Finite and >= 0 (0 also when ``C * S`` overflows: the penalty is then
        below the smallest double).

    Raises
    ------
    ValueError
        If S is not finite, or ``1 / (C * S)`` is not (C times S too small).
    """
    check_weight_sum(weight_sum)
    if np.isinf(C):
        return 0.0
    product = float(C) * float(weight_sum)
    strength = np.inf if product == 0.0 else 1.0 / product
    if not np.isfinite(strength):
        raise ValueError(
            f"C * sum(sample_weight) = {float(C)!r} * {float(weight_sum):.6g} is too "
            "small: the penalty 1 / (C * sum(sample_weight)) is not finite in float64. "
            "Use a larger C or larger sample weights (multiplying every weight by a "
            "factor c is the same as multiplying C by c)."
        )
    return strength


def check_weight_sum(weight_sum):
    """Raise ValueError if S, the sum of the sample weights, is not finite."""
    if not np.isfinite(weight_sum):
        raise ValueError(
            "The sample weights sum to infinity in float64 (sum(sample_weight) "
            "overflows; class_weight multiplies the sample weights). Divide every "
            "weight by a common factor c and multiply C by c: the objective, and "
            "the model, stay the same."
        )


def total_weight(data):
    """S, the sum of the sample weights of a data term, as given by the user.

    A data term may hold its weights divided by a power of two
    (``weight_scale``, see :func:`skcce._weights.weight_scale`); S is then
    ``weight_sum * weight_scale``, exact unless it overflows.
    """
    return data.weight_sum * data.weight_scale


def penalty_strength(C, data):
    """:func:`l2_reg_strength` of C for the sample weights of ``data``."""
    return l2_reg_strength(C, total_weight(data))


class InMemoryData:
    """The crossentropy data term on a NumPy array or a CSR matrix.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features), float32 or float64
        Dense X in C order; sparse X as returned by
        :func:`skcce._sparse.kernel_csr` (checked index structure).
    targets : ndarray of shape (n_samples,), int32, or (n_samples, n_classes), float64
        Class indices in ``[0, n_classes)``, or target distributions (rows
        summing to 1).
    layout : CoefLayout
    sample_weight : ndarray of shape (n_samples,), float64, or None
        None means unit weights (the kernel then skips the multiplications).
    label_smoothing : float
    n_threads : int
        OpenMP threads of each evaluation; may be changed between evaluations
        (the result does not depend on it).
    cache_tiles : bool, default=False
        For sparse X: sort X's non-zeros into the kernel's tiles at the first
        evaluation and keep them for the later ones (``skcce._kernels.sparse.csr_tile_cache``),
        which then skip the sort. Costs as much memory as X's data and indices
        for the data term's lifetime; worth it for the many evaluations of a
        fit, not for one. Results are bitwise the same.
    """

    def __init__(self, X, targets, layout, *, sample_weight=None, label_smoothing=0.0,
                 n_threads=1, cache_tiles=False):
        self.X = X
        self.layout = layout
        self.labels = targets if targets.ndim == 1 else None
        self.target_proba = targets if targets.ndim == 2 else None
        self.sample_weight = sample_weight
        self.label_smoothing = float(label_smoothing)
        self.n_threads = int(n_threads)
        self.cache_tiles = bool(cache_tiles)
        self._tile_cache = None
        self._sums = None
        self._prescaled = None
        # The shift of X's columns this data term was built with (see prescaled()).
        self.shift = None
        # Weights far from 1 are divided by a power of two near their largest
        # value (exact), so that the kernel's weighted sums cannot overflow or
        # underflow; S is then weight_sum * weight_scale (the loss divides by
        # weight_sum, so the objective is unchanged).
        self.weight_scale = 1.0
        if sample_weight is None:
            self.weight_sum = float(X.shape[0])
        else:
            self.weight_scale = weight_scale(sample_weight)
            if self.weight_scale != 1.0:
                sample_weight = sample_weight / self.weight_scale
                self.sample_weight = sample_weight
            self.weight_sum = float(np.sum(sample_weight))
        # Dense float32 data keeps the kernel's weighted residuals s_i (p - q)
        # in float32: weights are passed divided by a power of two near their
        # largest value (exact, and a no-op for weights of order 1), and the
        # sums multiplied back in float64.
        self._weight_scale = 1.0
        self._kernel_weight = sample_weight
        if (sample_weight is not None and not is_sparse(X) and X.dtype == np.float32
                and sample_weight.size and np.max(sample_weight) > 0):
            scale = 2.0 ** np.round(np.log2(np.max(sample_weight)))
            if scale != 1.0:
                self._weight_scale = float(scale)
                self._kernel_weight = sample_weight / scale

    @property
    def targets(self):
        """The class indices or the target distributions."""
        return self.labels if self.labels is not None else self.target_proba

    def loss_gradient_sum(self, params):
        """Unnormalized data term: ``sum_i s_i CE_i`` and its gradient.

        No division by the weight sum and no penalty, so sums over disjoint
        row blocks of the data add up to the sum over all rows (what a
        distributed fit reduces).

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,), float64

        Returns
        -------
        loss_sum : float
        grad_t : ndarray of shape (n_dof, n_classes), float64, C order
            Gradient of ``loss_sum``; ``grad_t.ravel()`` is in the layout of
            ``params``.
        """
        layout = self.layout
        weights_t = layout.weights_t(params)
        intercept = layout.intercept(params)
        grad_t = np.empty((layout.n_dof, layout.n_classes), dtype=np.float64)
        if is_sparse(self.X):
            # The sparse kernel gathers float64 coefficients whatever X's dtype.
            loss_sum = sparse.csr_loss_gradient(
                self.X.data, self.X.indices, self.X.indptr, layout.n_features,
                self.labels, self.target_proba, self.label_smoothing,
                self.sample_weight, np.ascontiguousarray(weights_t),
                intercept, self.n_threads, grad_t, self._sparse_tiles(),
            )
        else:
            loss_sum = dense.dense_loss_gradient(
                self.X, self.labels, self.target_proba, self.label_smoothing,
                self._kernel_weight, np.ascontiguousarray(weights_t, dtype=self.X.dtype),
                intercept, self.n_threads, grad_t,
            )
            if self._weight_scale != 1.0:
                loss_sum *= self._weight_scale
                grad_t *= self._weight_scale
        return loss_sum, grad_t

    @property
    def dtype(self):
        """X's dtype: the kernel's working precision."""
        return self.X.dtype

    def column_statistics(self):
        """Per-column statistics of X for the rescaling, computed once.

        Returns
        -------
        statistics : skcce._columns.ColumnStatistics
        """
        return self._column_sums().statistics()

    def _column_sums(self):
        if self._sums is None:
            self._sums = column_sums(self.X, self.sample_weight, self.n_threads)
        return self._sums

    def prescaled(self):
        """This data term over X with its extreme columns scaled, or None.

        Columns outside the range the kernel sums safely
        (:func:`skcce._columns.prescale_shifts`) are multiplied by a power of
        two that brings them into [0.5, 1); the returned data term (built
        once, a copy of X) takes coefficients divided by the same powers and
        computes exactly the same logits. None if no column needs it.
        """
        if self._prescaled is None:
            sums = self._column_sums()
            shift = prescale_shifts(
                np.maximum(np.abs(sums.minimum), np.abs(sums.maximum)), self.dtype)
            if shift is None:
                self._prescaled = False
            else:
                X = shifted(self.X, shift)
                if is_sparse(X):
                    X = kernel_csr(X, structure_checked=True)
                data = InMemoryData(
                    X, self.targets, self.layout, sample_weight=self.sample_weight,
                    label_smoothing=self.label_smoothing, n_threads=self.n_threads,
                    cache_tiles=self.cache_tiles)
                data.weight_scale *= self.weight_scale
                data.shift = shift
                self._prescaled = data
        return self._prescaled or None

    def _sparse_tiles(self):
        """X's cached tiles when ``cache_tiles``, built at the first call; else None."""
        if self.cache_tiles and self._tile_cache is None:
            self._tile_cache = sparse.csr_tile_cache(
                self.X.data, self.X.indices, self.X.indptr, self.layout.n_features,
                self.layout.n_classes, self.n_threads)
        return self._tile_cache


class CrossEntropyObjective:
    """Loss and gradient of the regularized crossentropy over a data term.

    Parameters
    ----------
    data : InMemoryData or another data term
        Provides ``layout``, ``weight_sum``, ``n_threads`` and
        ``loss_gradient_sum(params)``.
    l2_reg_strength : float, default=0.0
        May be changed between evaluations (a regularization path).
    """

    def __init__(self, data, l2_reg_strength=0.0):
        self.data = data
        self.layout = data.layout
        self.l2_reg_strength = float(l2_reg_strength)

    @classmethod
    def in_memory(cls, X, targets, n_classes, *, sample_weight=None, fit_intercept=True,
                  l2_reg_strength=0.0, label_smoothing=0.0, n_threads=1,
                  cache_tiles=False):
        """The objective on in-memory data (see :class:`InMemoryData`)."""
        layout = CoefLayout(n_classes, X.shape[1], fit_intercept)
        data = InMemoryData(X, targets, layout, sample_weight=sample_weight,
                            label_smoothing=label_smoothing, n_threads=n_threads,
                            cache_tiles=cache_tiles)
        return cls(data, l2_reg_strength)

    @property
    def weight_sum(self):
        """S, the sum of the sample weights."""
        return self.data.weight_sum

    @property
    def n_threads(self):
        """OpenMP threads of the data term and of the penalty pass."""
        return self.data.n_threads

    @n_threads.setter
    def n_threads(self, value):
        self.data.n_threads = int(value)

    def loss_gradient(self, params):
        """Objective and its gradient at the flat parameter vector ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,), float64
            In the layout of :class:`~skcce._layout.CoefLayout`.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_classes * n_dof,), float64
        """
        loss, grad = self.data_loss_gradient(params)
        return self.add_penalty(params, loss, grad)

    def data_loss_gradient(self, params):
        """The weighted mean crossentropy and its gradient, without the penalty.

        One pass of the data term. Same parameters and return values as
        :meth:`loss_gradient`.
        """
        loss_sum, grad_t = self.data.loss_gradient_sum(params)
        reductions.divide_inplace(grad_t, self.weight_sum, self.n_threads)
        return loss_sum / self.weight_sum, grad_t.ravel()

    def add_penalty(self, params, loss, grad):
        """Add the L2 penalty at ``params`` to a data term (``grad`` in place).

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,), float64
        loss : float
            The data term, from :meth:`data_loss_gradient`.
        grad : ndarray of shape (n_classes * n_dof,), float64
            Its gradient; modified in place.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_classes * n_dof,), float64
        """
        if self.l2_reg_strength > 0:
            # One multithreaded pass: the gradient update and ||W||^2.
            sum_squares = reductions.add_penalty_gradient(
                self.layout.weights_t(grad), self.layout.weights_t(params),
                self.l2_reg_strength, self.n_threads)
            loss += 0.5 * self.l2_reg_strength * sum_squares
        return loss, grad
