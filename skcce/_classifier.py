"""SoftmaxClassifier: multinomial logistic regression fitted by L-BFGS (OWL-QN with L1)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from skcce._base import SoftmaxModelBase
from skcce._callbacks import (
    CallbackSupportMixin,
    LbfgsCallbackBridge,
    end_fit_callbacks,
    start_fit_callbacks,
)
from skcce._dask import dask_data_term, is_dask_collection
from skcce._fit import run_solver
from skcce._layout import CoefLayout
from skcce._objective import CrossEntropyObjective, InMemoryData, penalty_strengths
from skcce._precondition import rescaled
from skcce._threads import effective_n_threads
from skcce._weights import effective_sample_weight


class SoftmaxClassifier(CallbackSupportMixin, SoftmaxModelBase):
    """Multinomial logistic (softmax) regression with a fused Cython kernel.

    Minimizes the regularized mean categorical crossentropy::

        (1/S) sum_i s_i (logsumexp(W x_i + b) - (W x_i + b)_{y_i})
            + (l1_ratio ||W||_1 + (1 - l1_ratio) ||W||_F^2 / 2) / (C S),
                                             S = sum_i s_i

    where the loss and its gradient are computed together in one
    multithreaded pass over ``X``: with L-BFGS for the default L2 penalty
    (``l1_ratio=0``), with OWL-QN, its orthant-wise variant, for L1 and
    elastic-net penalties (``l1_ratio > 0``). This is the objective of
    scikit-learn's ``LogisticRegression(l1_ratio=l1_ratio)`` on multiclass
    problems (fitted there by ``solver="lbfgs"`` for ``l1_ratio=0`` and
    ``solver="saga"`` otherwise), so both fit the same model.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength (> 0); ``np.inf`` means no penalty
        (then ``l1_ratio`` has no effect, as in ``LogisticRegression``).
    l1_ratio : float, default=0.0
        The elastic-net mixing parameter, in [0, 1], as in
        ``LogisticRegression``: 0 is the L2 penalty ``||W||_F^2 / 2``, 1 the
        L1 penalty ``||W||_1``, and values between mix them. Any
        ``l1_ratio > 0`` gives sparse coefficients (exact zeros) and is fitted
        by OWL-QN.
    fit_intercept : bool, default=True
        Whether to fit an (unpenalized) intercept per class.
    tol : float, default=1e-4
        The optimizer stops when the largest absolute gradient entry is <= tol
        (with ``l1_ratio > 0``: of the pseudo-gradient, the smallest
        subgradient of the objective, zero exactly at the optimum; see
        ``final_gradient_norm_`` for the coordinates), or, as in
        scikit-learn, when an iteration decreases the objective by less than
        64 machine epsilons relative to its value (which can happen first at
        a very small tol).
    max_iter : int, default=100
        Maximum number of L-BFGS (OWL-QN) iterations.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights, as in
        scikit-learn (``"balanced"``: ``n_samples / (n_classes * counts)``).
        With soft targets, a sample's weight is multiplied by its expected
        class weight ``sum_k q_ik w_k``.
    label_smoothing : float, default=0.0
        ``eps`` in [0, 1): each target distribution q (one-hot for a label)
        becomes ``(1 - eps) q + eps / K``, as in PyTorch's
        ``CrossEntropyLoss(label_smoothing=eps)`` and Keras's
        ``CategoricalCrossentropy(label_smoothing=eps)``. Computed inside the
        kernel; no n_samples x K target matrix is built for labels.
    warm_start : bool, default=False
        Start from the previous solution when refitting data with the same
        classes and features.
    n_jobs : int, default=None
        Number of OpenMP threads: None for all usable cores (respecting
        ``OMP_NUM_THREADS`` and cgroup limits), -1 for all, negative values
        count back (-2: all but one). The fitted model is bitwise identical for
        every value.
    verbose : int, default=0
        If > 0, print one line per iteration: iteration, objective, largest
        absolute gradient entry, elapsed time.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (n_classes, n_features) or (1, n_features)
        Coefficients; for two classes, the row of class ``classes_[1]``.
    intercept_ : ndarray of shape (n_classes,) or (1,)
        Intercepts; for two classes, that of class ``classes_[1]``.
    n_iter_ : ndarray of shape (1,)
        Number of L-BFGS (OWL-QN) iterations.
    loss_curve_ : list of float
        Objective value (penalties included) after each iteration.
    final_gradient_norm_ : float
        Largest absolute entry of the objective's gradient at the solution
        (with ``l1_ratio > 0``: of its pseudo-gradient), in the optimizer's
        coordinates: what the optimizer compares with ``tol``. These are the
        coefficients themselves, unless feature scales differ by orders of
        magnitude; then the optimizer works on coefficients rescaled per
        feature (the objective and its optimum are unchanged). With
        ``l1_ratio > 0`` it always works on rescaled coefficients, feature j's
        multiplied by ``sqrt(1 / (mean(x_j^2) + 4 l2))`` (``l2`` the L2
        factor ``(1 - l1_ratio) / (C S)``), which are the coefficients of
        standardized features when the features are centered.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when they are all strings.

    Notes
    -----
    **Two classes.** The full two-class softmax is fitted with the penalty on
    both rows, as ``LogisticRegression(multi_class="multinomial")`` did in
    scikit-learn <= 1.4. Its solution is symmetric, ``W = [-w, w]`` and
    ``b = [-c, c]``; ``coef_`` and ``intercept_`` hold ``w`` and ``c``,
    ``decision_function`` returns ``d = w.x + c`` and ``predict_proba``
    returns ``softmax([-d, d])``, i.e. ``P(class 1) = sigmoid(2 d)``. With
    ``v = 2 w`` the objective becomes the binary logistic loss plus
    ``||v||^2 / (4 C S)``, so the probabilities equal those of today's
    binary ``LogisticRegression(C=2 * C)``, whose coefficients are ``2 w``.
    The L1 penalty on both rows is ``2 ||w||_1 = ||v||_1``: with
    ``l1_ratio=1`` the probabilities equal those of the binary
    ``LogisticRegression(C=C, l1_ratio=1)``.

    **Sparsity.** With ``l1_ratio > 0``, OWL-QN keeps every coefficient in an
    orthant (sign pattern) during each line search and sets to exactly 0 the
    coefficients whose step would change sign, so coefficients that are zero
    at the optimum are exact zeros in ``coef_``. A feature is unused by the
    model when its column of ``coef_`` is zero for every class. See the user
    guide's section on sparse models.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skcce import SoftmaxClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxClassifier(max_iter=1000).fit(X, y)
    >>> clf.predict(X[:2])
    array([0, 0])
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="right")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "warm_start": ["boolean"],
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "verbose": ["verbose"],
    }

    def __init__(self, C=1.0, *, l1_ratio=0.0, fit_intercept=True, tol=1e-4, max_iter=100,
                 class_weight=None, label_smoothing=0.0, warm_start=False, n_jobs=None,
                 verbose=0):
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data.

        The fit is transactional: if it fails or is interrupted, the estimator
        is left exactly as it was before the call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 data is used without conversion. Dense
            data in C order is used in place; Fortran-ordered or strided data
            is copied once to C order. Sparse CSR data (int32 or int64
            indices) is used in place; other sparse formats are converted to
            CSR once (a copy of the non-zeros).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels, or soft targets: rows of non-negative probabilities
            summing to 1 (within 1e-6; they are renormalized), K >= 2 columns.
            With soft targets ``classes_`` is ``np.arange(K)`` and ``predict``
            returns column indices. Exactly one-hot rows give bitwise the model
            of the equivalent labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; None means unit weights.

        Returns
        -------
        self : SoftmaxClassifier
            The fitted estimator.
        """
        return self._transactional_fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        """Fit without touching ``self``'s model; return the new attributes."""
        if is_dask_collection(X):
            # The row blocks stay on the Dask workers; L-BFGS runs here.
            with dask_data_term(self, X, y, sample_weight) as (data, classes, dtype):
                metadata = None if sample_weight is None else {"sample_weight": sample_weight}
                return self._fit_data(data, classes, dtype, X, y, metadata)
        X, y, classes, targets = self._validate_fit_data(X, y)
        sample_weight = effective_sample_weight(
            self.class_weight, X, targets, classes, sample_weight)
        # A fit evaluates the objective many times: sparse X is sorted into
        # the kernel's tiles once.
        data = InMemoryData(
            X, targets, CoefLayout(classes.shape[0], X.shape[1], self.fit_intercept),
            sample_weight=sample_weight, label_smoothing=self.label_smoothing,
            n_threads=effective_n_threads(self.n_jobs), cache_tiles=True,
        )
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        return self._fit_data(data, classes, X.dtype, X, y, metadata)

    def _fit_data(self, data, classes, dtype, X, y, metadata):
        """Minimize the objective over a data term; the fitted attributes.

        ``X``, ``y`` and ``metadata`` are what the callbacks receive.
        """
        layout = data.layout
        objective = CrossEntropyObjective(
            data, *penalty_strengths(self.C, self.l1_ratio, data.weight_sum))
        params0 = self._initial_params(layout, classes)
        # Badly scaled features: the optimizer works on rescaled coefficients,
        # the objective stays identical (see _precondition).
        problem = rescaled(objective)

        def model_attributes(params):
            return layout.model_attributes(params, classes, dtype)

        callback_context = start_fit_callbacks(self, self.max_iter, X, y, metadata)
        bridge = None
        if callback_context is not None:
            bridge = LbfgsCallbackBridge(
                callback_context, self, X, y, metadata, model_attributes, params0)
        result = run_solver(
            problem, params0, l1_weights=objective.l1_weights(), max_iter=self.max_iter,
            tol=self.tol, verbose=self.verbose,
            on_iteration=None if bridge is None else bridge.iteration_done,
        )
        if bridge is not None:
            bridge.close()
        result.warn_if_not_converged(stacklevel=4)
        fitted = model_attributes(result.params)
        fitted.update({
            "n_iter_": np.array([result.n_iter], dtype=np.int32),
            "loss_curve_": result.loss_curve,
            "final_gradient_norm_": result.final_gradient_norm,
        })
        end_fit_callbacks(callback_context, self, X, y, metadata, fitted)
        return fitted

    def _initial_params(self, layout, classes):
        """Starting point, in the flat layout.

        A warm start reuses the previous solution. Otherwise zeros, as
        LogisticRegression: with the same optimizer and options the fit then
        follows LogisticRegression's path and stops where it stops, so default
        fits agree to many digits, not only at the optimum. (The log class
        priors as intercepts, the optimum for W = 0, saved no iterations on the
        benchmark problems and reached a lower objective at tol=1e-4 on some,
        a higher one on others.) sum_k b_k = 0 holds at the start, and L-BFGS
        preserves it (every gradient sums to zero over classes), so two-class
        solutions are exactly symmetric.
        """
        if self.warm_start and self._warm_start_compatible(classes, layout.n_features):
            return layout.from_model(self.coef_, self.intercept_)
        return layout.zeros()

    def _warm_start_compatible(self, classes, n_features):
        return (
            hasattr(self, "coef_")
            and hasattr(self, "classes_")
            and np.array_equal(self.classes_, classes)
            and self.coef_.shape[1] == n_features
        )
