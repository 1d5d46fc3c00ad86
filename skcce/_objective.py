"""The regularized crossentropy objective: a penalty over a pluggable data term.

The objective, for coefficients ``W`` (K x d) and intercepts ``b`` (K)::

    f(W, b) = (1/S) sum_i s_i CE_i + l2_reg_strength/2 * ||W||_F^2
                                   + l1_reg_strength * ||W||_1
    CE_i    = -sum_k q_ik log softmax(z_i)_k = logsumexp(z_i) - sum_k q_ik z_ik
    z_i     = W x_i + b,   S = sum_i s_i

where the target distribution q_i is one-hot for a label y_i, or a given
probability row (soft targets), optionally label-smoothed:
q_i <- (1 - eps) q_i + eps / K. For labels without smoothing,
CE_i = logsumexp(z_i) - z_{i, y_i}

which is scikit-learn's ``LinearModelLoss(HalfMultinomialLoss)`` convention;
the estimators use ``l2_reg_strength = (1 - l1_ratio) / (C * S)`` and
``l1_reg_strength = l1_ratio / (C * S)`` (:func:`penalty_strengths`), the
elastic net of ``LogisticRegression(l1_ratio=...)``. The intercept is not
penalized.

The L1 term is not differentiable where a coefficient is zero, so the
objective splits in two: :meth:`CrossEntropyObjective.loss_gradient` is the
smooth part (data term and L2 penalty) with its gradient, and
:meth:`CrossEntropyObjective.l1_weights` the weight of ``|w|`` per
coefficient, which the orthant-wise optimizer (``skcce._fit.run_owlqn``)
adds itself.

The crossentropy does not change when the same number is added to every
class's coefficient of one feature (the softmax of ``z + t x_j`` is that of
``z``): only the penalty sees such a shift. With an L2 penalty alone the
optimum has zero-sum columns and L-BFGS finds them. With an L1 term, the
penalty along this direction is piecewise linear with curvature only from
the (small) L2 part, a valley a quasi-Newton method crosses in many small
steps; :meth:`CrossEntropyObjective.class_shift` solves it exactly instead,
for every feature at once and without a pass over the data.

A *data term* computes the unnormalized ``sum_i s_i CE_i`` and its gradient
(``loss_gradient_sum``) and knows ``S`` (``weight_sum``): :class:`InMemoryData`
for NumPy and CSR data, ``skcce._dask`` for row blocks on a Dask cluster.
:class:`CrossEntropyObjective` normalizes it and adds the penalty, the same
way for every data term. The parameter layout is :class:`~skcce._layout.CoefLayout`'s.
"""

import numpy as np

from skcce._columns import ColumnSums, column_sums, prescale_shifts, shifted
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


def penalty_strengths(C, l1_ratio, data):
    """The elastic-net factors ``(l2_reg_strength, l1_reg_strength)`` for (C, l1_ratio).

    ``((1 - l1_ratio) / (C * S), l1_ratio / (C * S))``, as
    ``LogisticRegression(C=C, l1_ratio=l1_ratio)``, from :func:`penalty_strength`
    (same checks); for ``l1_ratio = 0`` the L2 factor is bitwise
    :func:`penalty_strength`'s. ``C = inf`` means no penalty at all, whatever
    ``l1_ratio`` (``LogisticRegression`` also drops the penalty then).
    """
    strength = penalty_strength(C, data)
    if l1_ratio == 0:
        return strength, 0.0
    return (1.0 - l1_ratio) * strength, l1_ratio * strength


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
        (and, with more than 32 classes and 32 non-zeros per feature, room for
        a copy of the coefficients, reused by every evaluation: evaluations
        must not run concurrently) for the data term's lifetime; worth it for
        the many evaluations of a fit, not for one. Results are bitwise the
        same.
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
        self._column_costs = None
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

    def column_costs(self):
        """Stored entries per column of X: the share of an evaluation each column costs."""
        if self._column_costs is None:
            if is_sparse(self.X):
                self._column_costs = np.bincount(self.X.indices,
                                                 minlength=self.layout.n_features)
            else:
                self._column_costs = np.full(self.layout.n_features, self.X.shape[0])
        return self._column_costs

    def restricted(self, features):
        """The data term on the columns ``features`` of X (a copy of those columns).

        Same rows, targets, weights (and weight scale), smoothing and threads;
        the column statistics are those of this data term. The layout has
        ``len(features)`` features. Its value and gradient at coefficients
        that are zero outside ``features`` are those of this data term.

        Parameters
        ----------
        features : ndarray of int, increasing

        Returns
        -------
        data : InMemoryData
        """
        if is_sparse(self.X):
            X = kernel_csr(self.X[:, features], structure_checked=True)
            X.sort_indices()
        else:
            # take() copies row by row into a C-ordered array; X[:, features]
            # would come out transposed and need a second, strided copy.
            X = np.ascontiguousarray(np.take(self.X, features, axis=1))
        layout = CoefLayout(self.layout.n_classes, len(features), self.layout.fit_intercept)
        data = InMemoryData(X, self.targets, layout, sample_weight=self.sample_weight,
                            label_smoothing=self.label_smoothing, n_threads=self.n_threads,
                            cache_tiles=self.cache_tiles)
        data.weight_scale *= self.weight_scale
        if self._sums is not None:
            sums = self._sums
            data._sums = ColumnSums(sums.weight_sum, sums.minimum[features],
                                    sums.maximum[features], sums.square_sums[features],
                                    sums.shift[features])
        return data

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
    l1_reg_strength : float, default=0.0
        Weight of ``||W||_1``; may be changed between runs of the optimizer.
        Not part of :meth:`loss_gradient` (see :meth:`l1_weights`).
    """

    def __init__(self, data, l2_reg_strength=0.0, l1_reg_strength=0.0):
        self.data = data
        self.layout = data.layout
        self.l2_reg_strength = float(l2_reg_strength)
        self.l1_reg_strength = float(l1_reg_strength)

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
    def can_restrict(self):
        """Whether :meth:`restricted` is available (the data term can select columns)."""
        return hasattr(self.data, "restricted")

    def restricted(self, features):
        """The same objective on the columns ``features`` of X only.

        Equal to this objective at coefficients that are zero outside
        ``features`` (the data term of those columns, the same penalties).
        """
        return CrossEntropyObjective(self.data.restricted(features), self.l2_reg_strength,
                                     self.l1_reg_strength)

    def restriction_cost(self, features):
        """The cost of an evaluation of :meth:`restricted` over that of this objective."""
        costs = self.data.column_costs()
        total = costs.sum()
        return float(costs[features].sum() / total) if total else 1.0

    @property
    def n_threads(self):
        """OpenMP threads of the data term and of the penalty pass."""
        return self.data.n_threads

    @n_threads.setter
    def n_threads(self, value):
        self.data.n_threads = int(value)

    def l1_weights(self):
        """Weight of ``|w|`` per entry of the flat parameters, or None without L1.

        Returns
        -------
        weights : ndarray of shape (n_classes * n_dof,), float64, or None
            ``l1_reg_strength`` for the coefficients, 0 for the intercepts;
            None when ``l1_reg_strength`` is 0 (a smooth objective).
        """
        if self.l1_reg_strength == 0:
            return None
        weights = np.zeros(self.layout.n_params)
        self.layout.weights_t(weights)[...] = self.l1_reg_strength
        return weights

    def class_shift(self, params):
        """The penalty-minimizing shift of every feature's coefficients across classes.

        For each feature j, the ``t_j`` that minimizes the penalty of
        ``W[:, j] + t_j``,
        ``sum_k l1_reg_strength |W_kj + t_j| + l2_reg_strength / 2 (W_kj + t_j)^2``,
        which lowers the objective by as much as it lowers the penalty: the
        crossentropy is invariant to the shift. Without L2 part the minimizers
        form an interval (a median interval); the one nearest 0 is taken.

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,)

        Returns
        -------
        shift : ndarray of shape (n_classes * n_dof,) or None
            ``t_j`` at every class's coefficient of feature j, 0 at the
            intercepts; None if no feature moves (also without L1 term).
        loss_change : float
            Change of the smooth part (the L2 term) ``loss_gradient`` sees.
        grad_change : ndarray of shape (n_classes * n_dof,) or None
            Change of its gradient.
        """
        if self.l1_reg_strength == 0:
            return None, 0.0, None
        layout = self.layout
        weights_t = layout.weights_t(params)
        shifts = penalty_minimizing_shifts(weights_t, self.l1_reg_strength,
                                           self.l2_reg_strength)
        if not np.any(shifts):
            return None, 0.0, None
        shift = np.zeros(layout.n_params)
        shift_t = layout.weights_t(shift)
        shift_t[...] = shifts[:, None]
        l2 = self.l2_reg_strength
        # ||W + T||^2 - ||W||^2 = 2 W.T + ||T||^2, per column.
        column_sums = weights_t.sum(axis=1)
        loss_change = l2 * float(np.dot(shifts, column_sums)
                                 + 0.5 * layout.n_classes * np.dot(shifts, shifts))
        return shift, loss_change, l2 * shift

    def loss_gradient(self, params):
        """Smooth part of the objective and its gradient at ``params``.

        The data term and the L2 penalty: the whole objective unless
        ``l1_reg_strength`` > 0 (see :meth:`l1_weights`).

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


def penalty_minimizing_shifts(values, l1, l2):
    """Per row of ``values``, the ``t`` minimizing ``sum_k l1 |v_k + t| + l2/2 (v_k + t)^2``.

    The function of ``t`` is convex and piecewise quadratic with kinks at
    ``t = -v_k``; its right derivative at the m-th smallest kink ``b_m``
    (1-based) is ``l1 (2m - K) + l2 (S + K b_m)``, ``S = sum_k v_k``. The
    minimizer is the first kink where that is >= 0, if the left derivative
    there is <= 0, else the zero of the linear derivative on the segment below
    it. Without L2 (``l2 = 0``) the minimizers are the median of the kinks
    (odd K) or the interval between the two middle ones (even K); the point of
    it nearest 0 is returned. Ties are handled by the same formulas.

    Parameters
    ----------
    values : ndarray of shape (n_rows, K)
    l1 : float
        > 0.
    l2 : float
        >= 0.

    Returns
    -------
    shifts : ndarray of shape (n_rows,)
    """
    n_rows, K = values.shape
    kinks = np.sort(-values, axis=1)
    if l2 == 0:
        if K % 2:
            return kinks[:, K // 2].copy()
        return np.clip(0.0, kinks[:, K // 2 - 1], kinks[:, K // 2])
    total = values.sum(axis=1)
    m = np.arange(1, K + 1)
    slope_at_kink = l2 * (total[:, None] + K * kinks)
    right = l1 * (2 * m - K) + slope_at_kink
    left = l1 * (2 * (m - 1) - K) + slope_at_kink
    rising = right >= 0
    first = np.argmax(rising, axis=1)  # 0-based: ``first`` kinks lie below
    rows = np.arange(n_rows)
    # The zero of l1 (2 first - K) + l2 (S + K t) on the segment below the kink.
    shifts = -(l1 * (2 * first - K) / l2 + total) / K
    at_kink = rising[rows, first] & (left[rows, first] <= 0)
    shifts[at_kink] = kinks[rows, first][at_kink]
    # Past the last kink (every derivative negative): all K terms positive.
    beyond = ~rising[:, -1]
    shifts[beyond] = -(l1 * K / l2 + total[beyond]) / K
    return shifts

