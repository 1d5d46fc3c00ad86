"""SoftmaxClassifier: multinomial logistic regression fitted by L-BFGS (OWL-QN with L1)."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from skcce._array_api import ArrayAPIData, array_namespace
from skcce._base import (
    COMPATIBILITY_CONSTRAINTS,
    SoftmaxModelBase,
    _as_numpy,
    check_solver,
    resolve_penalty,
)
from skcce._callbacks import (
    CallbackSupportMixin,
    LbfgsCallbackBridge,
    end_fit_callbacks,
    start_fit_callbacks,
)
from skcce._dask import dask_data_term, is_dask_collection
from skcce._fit import check_finite_attributes, run_solver
from skcce._layout import CoefLayout
from skcce._metrics import categorical_crossentropy
from skcce._objective import CrossEntropyObjective, InMemoryData, penalty_strengths
from skcce._precondition import rescaled
from skcce._targets import encode_targets, is_soft_targets
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
        ``fit`` raises a ValueError when the penalty factor
        ``1 / (C * sum(sample_weight))`` is not finite in float64 (C below
        ~1e-308 for unit weights).
    l1_ratio : float, default=0.0
        The elastic-net mixing parameter, in [0, 1], as in
        ``LogisticRegression``: 0 is the L2 penalty ``||W||_F^2 / 2``, 1 the
        L1 penalty ``||W||_1``, and values between mix them. Any
        ``l1_ratio > 0`` gives sparse coefficients (exact zeros) and is fitted
        by OWL-QN.
    fit_intercept : bool, default=True
        Whether to fit an (unpenalized) intercept per class.
    tol : float, default=1e-4
        The optimizer stops when the largest absolute entry of the gradient
        with respect to ``coef_`` and ``intercept_`` is <= tol, as in
        ``LogisticRegression`` (with ``l1_ratio > 0``: of the pseudo-gradient,
        the smallest subgradient of the objective, zero exactly at the
        optimum, in the optimizer's coordinates), or when an iteration decreases the objective
        by less than 64 machine epsilons relative to its value (which can
        happen first at a very small tol, or for features of very large
        magnitude, whose coefficients' gradient cannot get below tol in
        floating point). For badly scaled features, the gradient of the
        rescaled coefficients the optimizer works on (see Notes) must also be
        <= tol.
    max_iter : int, default=100
        Maximum number of L-BFGS (OWL-QN) iterations.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights, as in
        scikit-learn (``"balanced"``: ``n_samples / (n_classes * counts)``;
        a class whose samples all have zero weight gets weight 0). Dict
        values must be finite and non-negative, and not all zero. With soft
        targets, a sample's weight is multiplied by its expected class weight
        ``sum_k q_ik w_k``.
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
    penalty : {'l1', 'l2', 'elasticnet', None}, default='l2'
        Accepted for code written for ``LogisticRegression``, with its
        meaning and its deprecation (scikit-learn 1.8): setting it warns
        (FutureWarning). ``'l2'`` means ``l1_ratio=0``, ``'l1'`` means
        ``l1_ratio=1``, ``'elasticnet'`` the given ``l1_ratio``; ``None``
        means no penalty, as ``C=np.inf`` (and warns if C was set too).
    solver : {'lbfgs'}, default='lbfgs'
        Accepted for code written for ``LogisticRegression``. L-BFGS is the
        only solver; LogisticRegression's other solver names raise a
        ValueError (they minimize the same objective).
    random_state : int, RandomState instance or None, default=None
        Accepted for code written for ``LogisticRegression`` and unused: the
        solver is deterministic (as ``LogisticRegression``'s lbfgs, which
        ignores it too).

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
        Largest absolute entry of the objective's gradient with respect to
        ``coef_`` and ``intercept_`` at the solution: what is compared with
        ``tol``, as in ``LogisticRegression``. With ``l1_ratio > 0``, of its
        pseudo-gradient in the optimizer's coordinates: OWL-QN always works on
        coefficients rescaled per feature by a power of two near
        ``1 / sqrt(mean(x_j^2) + 4 l2)`` (``l2`` the L2 factor
        ``(1 - l1_ratio) / (C S)``), about the coefficients of standardized
        features when the features are centered.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when they are all strings.

    Notes
    -----
    **Badly scaled features.** When the features' scales differ by orders
    of magnitude (more than ~1e3 between the root mean squares of columns
    that vary, the penalty included), L-BFGS works on coefficients rescaled
    per feature by powers of two; the objective and its optimum are
    unchanged. All-zero columns, and constant columns when an intercept is
    fitted, never turn this on, so ordinary data are optimized exactly as
    ``LogisticRegression`` optimizes them. Any finite X gives a finite model:
    columns beyond ~1e±120 (~1e±19 for float32 X) are handed to the kernel
    scaled by a power of two (a copy of X), and a column too small for any
    finite coefficient to matter (below ~1e-300) is left at a negligible
    coefficient. A fit that would end with a non-finite model raises a
    ValueError instead, leaving the estimator as it was.

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
        **COMPATIBILITY_CONSTRAINTS,
    }

    def __init__(self, C=1.0, *, l1_ratio=0.0, fit_intercept=True, tol=1e-4, max_iter=100,
                 class_weight=None, label_smoothing=0.0, warm_start=False, n_jobs=None,
                 verbose=0, penalty="deprecated", solver="lbfgs", random_state=None):
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
        self.penalty = penalty
        self.solver = solver
        self.random_state = random_state

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
            summing to 1 (within 1e-6 for float64, 1e-4 for float32 and 4
            machine epsilons for float16; they are renormalized), K >= 2
            columns.
            With soft targets ``classes_`` is ``np.arange(K)`` and ``predict``
            returns column indices. Exactly one-hot rows give bitwise the model
            of the equivalent labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; None means unit weights. Any finite
            magnitude works (multiplying every weight by c is the same as
            multiplying C by c), as long as their sum S (times the class
            weights) is finite.

        Returns
        -------
        self : SoftmaxClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            Besides scikit-learn's input checks: if the sum of the sample
            weights overflows, if ``1 / (C * sum(sample_weight))`` is not
            finite, if ``class_weight`` holds a non-finite or negative value
            or only zeros, or if the fit would end with a non-finite model;
            for a solver other than ``'lbfgs'``.
        """
        C, l1_ratio = resolve_penalty(self, self.C)
        if l1_ratio is None:
            l1_ratio = self.l1_ratio
        check_solver(self)
        return self._transactional_fit(X, y, sample_weight, C, l1_ratio)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    def _fit(self, X, y, sample_weight, C, l1_ratio):
        """Fit without touching ``self``'s model; return the new attributes."""
        namespace = array_namespace(X)
        if namespace is not None:
            return self._fit_array_api(X, y, sample_weight, C, l1_ratio, *namespace)
        if is_dask_collection(X):
            # The row blocks stay on the Dask workers; L-BFGS runs here.
            with dask_data_term(self, X, y, sample_weight) as (data, classes, dtype):
                metadata = None if sample_weight is None else {"sample_weight": sample_weight}
                return self._fit_data(data, classes, dtype, X, y, metadata, C, l1_ratio)
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
        return self._fit_data(data, classes, X.dtype, X, y, metadata, C, l1_ratio)

    def _fit_array_api(self, X, y, sample_weight, C, l1_ratio, xp, device):
        """Fit an array of another namespace: loss and gradient computed there.

        L-BFGS runs on NumPy copies of the parameters; ``coef_`` and
        ``intercept_`` are returned in X's namespace and on its device,
        ``classes_`` in y's namespace (NumPy for NumPy labels), as
        ``LogisticRegression`` does.
        """
        X, y = validate_data(self, X, y, dtype=[xp.float64, xp.float32],
                             multi_output=True, reset=True)
        # y and the weights may come in another namespace: labels are encoded,
        # and weights combined, in NumPy (n-vectors), then moved to X's device.
        y_is_array_api = array_namespace(y) is not None
        classes, targets = encode_targets(_as_numpy(y))
        sample_weight = _as_numpy(sample_weight)
        n_samples = X.shape[0]
        # The weights are n-vectors: computed in NumPy (X only gives their number).
        sample_weight = effective_sample_weight(
            self.class_weight, np.empty((n_samples, 0)), targets, classes, sample_weight)
        data = ArrayAPIData(
            X, targets, CoefLayout(classes.shape[0], X.shape[1], self.fit_intercept), xp,
            device, sample_weight=sample_weight, label_smoothing=self.label_smoothing,
        )
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        fitted = self._fit_data(data, classes, data.dtype, X, y, metadata, C, l1_ratio)
        for name in ("coef_", "intercept_", "n_iter_"):
            fitted[name] = xp.asarray(fitted[name], device=device)
        if y_is_array_api:  # numeric labels: classes_ follows X, as LogisticRegression's
            fitted["classes_"] = xp.asarray(classes, device=device)
        return fitted

    def _fit_data(self, data, classes, dtype, X, y, metadata, C, l1_ratio):
        """Minimize the objective over a data term; the fitted attributes.

        ``X``, ``y`` and ``metadata`` are what the callbacks receive; ``C`` and
        ``l1_ratio`` are the penalty that ``penalty`` resolved to.
        """
        layout = data.layout
        objective = CrossEntropyObjective(data, *penalty_strengths(C, l1_ratio, data))
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
        check_finite_attributes(fitted)
        fitted.update({
            "n_iter_": np.array([result.n_iter], dtype=np.int32),
            "loss_curve_": result.loss_curve,
            "final_gradient_norm_": result.final_gradient_norm,
        })
        end_fit_callbacks(callback_context, self, X, y, metadata, fitted)
        return fitted

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on class labels; minus the mean crossentropy on soft targets.

        Greater is better in both cases, so ``cross_val_score`` and
        ``GridSearchCV`` with their default ``scoring=None`` work for models
        fitted to soft targets too. (scikit-learn's named scorers, such as
        ``"neg_log_loss"``, take class labels only: for soft targets use
        ``scoring=None`` or a scorer made from
        :func:`skcce.categorical_crossentropy`.)

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            True labels, or soft targets: rows of probabilities over
            ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ``accuracy_score(y, self.predict(X))`` for labels;
            ``-categorical_crossentropy(y, self.predict_proba(X))`` for soft
            targets.
        """
        if is_soft_targets(y):
            # (computed in NumPy for array API inputs: a mean over n values)
            return -categorical_crossentropy(_as_numpy(y), _as_numpy(self.predict_proba(X)),
                                             sample_weight=_as_numpy(sample_weight),
                                             n_jobs=self.n_jobs)
        return super().score(X, y, sample_weight=sample_weight)

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
        if self.warm_start and hasattr(self, "coef_") and hasattr(self, "classes_"):
            change = self._warm_start_change(classes, layout.n_features)
            if change is None:
                return layout.from_model(self._dense_coef(), _as_numpy(self.intercept_))
            warnings.warn(
                f"warm_start=True cannot reuse the previous solution: {change}. "
                "The fit starts from zeros.", UserWarning, stacklevel=7)
        return layout.zeros()

    def _warm_start_change(self, classes, n_features):
        """What makes the previous fit unusable as a start, or None."""
        previous = _as_numpy(self.classes_)
        if not np.array_equal(previous, classes):
            return (f"the classes changed (previous fit: {_summary(previous)}; "
                    f"this fit: {_summary(classes)})")
        if self.coef_.shape[1] != n_features:
            return (f"the number of features changed (previous fit: "
                    f"{self.coef_.shape[1]}; this fit: {n_features})")
        return None


def _summary(values, limit=6):
    """A short text of an array of labels."""
    values = np.asarray(values)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    more = f", ... ({values.shape[0]} in all)" if values.shape[0] > limit else ""
    return f"[{shown}{more}]"
