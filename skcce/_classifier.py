"""SoftmaxClassifier: multinomial logistic regression fitted by L-BFGS."""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils import column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from skcce._callbacks import (
    CallbackSupportMixin,
    LbfgsCallbackBridge,
    end_fit_callbacks,
    start_fit_callbacks,
)
from skcce._dask import dask_blockwise, fit_dask, is_dask_collection
from skcce._objective import CrossEntropyObjective
from skcce._precondition import rescaled
from skcce._prediction import DECISION, LOG_PROBA, PROBA, predict_linear
from skcce._sparse import check_sparse_structure, is_sparse, kernel_csr
from skcce._targets import check_soft_targets, one_hot_labels
from skcce._threads import effective_n_threads, single_threaded_blas
from skcce._weights import check_non_negative_sample_weight

_SCALING_HINT = (
    "\nYou might also want to scale the data as shown in:\n"
    "    https://scikit-learn.org/stable/modules/preprocessing.html"
)


class _SoftmaxProbaMixin:
    """decision_function, predict_proba and predict_log_proba of a softmax model.

    Shared by the estimators that store a softmax model as ``coef_`` and
    ``intercept_`` (two classes: the class-1 row of the symmetric solution).
    All three are computed by a chunked, multithreaded kernel (``n_jobs``
    threads, bitwise identical results for every value) straight into the
    returned array: no other n_samples x n_classes array is allocated. Dense
    and CSR ``X`` are supported (CSC and COO are converted to CSR).
    """

    # Dask arrays in, lazy Dask arrays out (the methods applied per row block).
    @dask_blockwise
    def predict(self, X):
        """Class labels: those of the largest logit (the most probable class).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``. Rows whose logits overflow the data's
            dtype (several classes at +inf) take the class ``predict_proba``
            ranks first, which the kernel computes from the exact logits.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        best = scores.argmax(axis=1)
        overflowed = ~np.isfinite(scores).all(axis=1)
        if np.any(overflowed):
            rows = np.flatnonzero(overflowed)
            best[rows] = self.predict_proba(_take_rows(X, rows)).argmax(axis=1)
        return self.classes_[best]

    @dask_blockwise
    def decision_function(self, X):
        """Logits of the samples (for two classes, of class ``classes_[1]``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples. float32 and float64 arrays are read in place.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            ``X @ coef_.T + intercept_``; for two classes the 1-D
            ``d = X @ coef_[0] + intercept_[0]``, where > 0 predicts
            ``classes_[1]``. The dtype is NumPy's result type of X and
            ``coef_`` (float32 only when both are), as for scikit-learn's
            linear models.
        """
        scores = self._linear_prediction(X, DECISION, full=False)
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    @dask_blockwise
    def predict_proba(self, X):
        """Class probabilities, softmax of the decision function.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``. For two classes,
            ``softmax([-d, d])`` with ``d`` the decision function.
        """
        return self._linear_prediction(X, PROBA, full=True)

    @dask_blockwise
    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably (log-softmax).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``z - max(z) - log(sum(exp(z - max(z))))`` per row of logits
            ``z``: finite for finite data, however large (values below the
            dtype's most negative finite number are saturated to it).
        """
        return self._linear_prediction(X, LOG_PROBA, full=True)

    def _linear_prediction(self, X, mode, full):
        """Validate X and run the prediction kernel in ``mode``.

        ``full``: for two classes, use the full softmax model
        ``W = [-w, w], b = [-c, c]`` instead of the stored class-1 row.
        """
        check_is_fitted(self)
        # scikit-learn's finiteness check first sums X; for finite data near
        # the float64 limit that sum overflows and warns, although the
        # element-wise check it falls back to passes.
        check_sparse_structure(X)
        with np.errstate(over="ignore", invalid="ignore"):
            X = validate_data(self, X, accept_sparse="csr", reset=False)
        coef, intercept = self.coef_, np.ravel(self.intercept_)
        if full and coef.shape[0] == 1:
            coef = np.concatenate([-coef, coef])
            intercept = np.concatenate([-intercept, intercept])
        return predict_linear(X, coef, intercept, mode=mode,
                              n_threads=effective_n_threads(self.n_jobs))


class SoftmaxClassifier(CallbackSupportMixin, _SoftmaxProbaMixin, LinearClassifierMixin,
                        ClassifierMixin, BaseEstimator):
    """Multinomial logistic (softmax) regression with a fused Cython kernel.

    Minimizes the L2-regularized mean categorical crossentropy::

        (1/S) sum_i s_i (logsumexp(W x_i + b) - (W x_i + b)_{y_i})
            + ||W||_F^2 / (2 C S),           S = sum_i s_i

    with L-BFGS, where the loss and its gradient are computed together in one
    multithreaded pass over ``X``. This is the objective of scikit-learn's
    ``LogisticRegression(solver="lbfgs")`` on multiclass problems, so both fit
    the same model.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength (> 0); ``np.inf`` means no penalty.
    fit_intercept : bool, default=True
        Whether to fit an (unpenalized) intercept per class.
    tol : float, default=1e-4
        L-BFGS stops when the largest absolute gradient entry is <= tol (see
        ``final_gradient_norm_`` for badly scaled features), or, as in
        scikit-learn, when an iteration decreases the objective by less than
        64 machine epsilons relative to its value (which can happen first at
        a very small tol).
    max_iter : int, default=100
        Maximum number of L-BFGS iterations.
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
        Number of L-BFGS iterations.
    loss_curve_ : list of float
        Objective value after each L-BFGS iteration.
    final_gradient_norm_ : float
        Largest absolute entry of the objective's gradient at the solution, in
        the optimizer's coordinates: what L-BFGS compares with ``tol``. These
        are the coefficients themselves, unless feature scales differ by
        orders of magnitude; then L-BFGS works on coefficients rescaled per
        feature (the objective and its optimum are unchanged).
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

    def __init__(self, C=1.0, *, fit_intercept=True, tol=1e-4, max_iter=100,
                 class_weight=None, label_smoothing=0.0, warm_start=False, n_jobs=None,
                 verbose=0):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

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
        state_before = self.__dict__.copy()
        try:
            fitted = self._fit(X, y, sample_weight)
        except BaseException:
            # validate_data sets n_features_in_/feature_names_in_ early:
            # roll everything back so a failed fit changes nothing, except the
            # callbacks' bookkeeping, which _fit_context tears down afterwards.
            in_flight = {k: v for k, v in self.__dict__.items() if k in _CALLBACK_STATE}
            self.__dict__.clear()
            self.__dict__.update(state_before)
            self.__dict__.update(in_flight)
            raise
        self.__dict__.update(fitted)
        return self

    def _fit(self, X, y, sample_weight):
        """Fit without touching ``self``'s model; return the new attributes."""
        if is_dask_collection(X):
            # The row blocks stay on the Dask workers; L-BFGS runs here.
            return fit_dask(self, X, y, sample_weight)
        check_sparse_structure(X)
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
            order="C", multi_output=True, reset=True,
        )
        if is_sparse(X):
            X = kernel_csr(X, structure_checked=True)
        classes, targets = self._encode_targets(y)
        n_classes = classes.shape[0]
        sample_weight = _effective_sample_weight(
            self.class_weight, X, targets, classes, sample_weight)

        # A fit evaluates the objective many times: sparse X is sorted into
        # the kernel's tiles once.
        objective = CrossEntropyObjective(
            X, targets, n_classes, sample_weight=sample_weight,
            fit_intercept=self.fit_intercept, label_smoothing=self.label_smoothing,
            n_threads=effective_n_threads(self.n_jobs), cache_tiles=True,
        )
        objective.l2_reg_strength = _l2_reg_strength(self.C, objective.weight_sum)
        coef0 = self._initial_coef(objective, classes)
        params0 = coef0.ravel(order="F")
        # Badly scaled features: L-BFGS works on rescaled coefficients, the
        # objective stays identical (see _precondition).
        problem = rescaled(objective, X, sample_weight)

        def model_attributes(params):
            return _model_attributes(params, objective, classes, X.dtype)

        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        return _fit_lbfgs(self, problem, params0, model_attributes, X, y, metadata)

    @staticmethod
    def _encode_targets(y):
        """``classes_`` and the kernel's targets: int32 indices or float64 (n, K).

        A 2-D y with K >= 2 columns holds soft targets: classes are
        ``arange(K)``; exactly one-hot rows are turned into indices, so they
        give bitwise the model of the equivalent labels.
        """
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 2:
            proba = check_soft_targets(y)
            labels = one_hot_labels(proba)
            return np.arange(proba.shape[1]), (proba if labels is None else labels)
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but "
                f"the data contains only one class: {classes[0]!r}"
            )
        return classes, np.ascontiguousarray(y_encoded, dtype=np.int32)

    def _initial_coef(self, objective, classes):
        """Starting point, (K, n_dof) in Fortran order.

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
        n_classes, n_features = classes.shape[0], objective.n_features
        if self.warm_start and self._warm_start_compatible(classes, n_features):
            coef = np.zeros((n_classes, objective.n_dof), order="F")
            if n_classes == 2:
                coef[1, :n_features], coef[0, :n_features] = self.coef_[0], -self.coef_[0]
                if self.fit_intercept:
                    coef[1, -1], coef[0, -1] = self.intercept_[0], -self.intercept_[0]
            else:
                coef[:, :n_features] = self.coef_
                if self.fit_intercept:
                    coef[:, -1] = self.intercept_
            return coef
        return np.zeros((n_classes, objective.n_dof), order="F")

    def _warm_start_compatible(self, classes, n_features):
        return (
            hasattr(self, "coef_")
            and hasattr(self, "classes_")
            and np.array_equal(self.classes_, classes)
            and self.coef_.shape[1] == n_features
        )

    def _check_convergence(self, result):
        """Iteration count; ConvergenceWarning worded like scikit-learn's."""
        n_iter, failure = _convergence_failure(result, self.max_iter)
        if failure is not None:
            warnings.warn(failure, ConvergenceWarning, stacklevel=3)
        return n_iter


def _take_rows(X, rows):
    """Rows of array-like or sparse X (validated again by the caller)."""
    if is_sparse(X):
        return X.tocsr()[rows]
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    return np.asarray(X)[rows]


# Attributes the callback machinery sets on the estimator during fit and
# removes after it; a rolled-back fit keeps them for that cleanup.
_CALLBACK_STATE = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")


def _model_attributes(params, objective, classes, dtype):
    """Fitted attributes (classes_, coef_, intercept_) for a parameter vector.

    Two classes keep the class-1 row of the symmetric solution W = [-w, w].
    """
    n_classes = classes.shape[0]
    coef = params.reshape(objective.n_dof, n_classes).T
    weights = coef[:, : objective.n_features]
    intercepts = coef[:, -1] if objective.fit_intercept else np.zeros(n_classes)
    if n_classes == 2:
        weights, intercepts = weights[1:], intercepts[1:]
    return {
        "classes_": classes,
        "coef_": np.array(weights, dtype=dtype, order="C"),
        "intercept_": np.array(intercepts, dtype=dtype),
    }


def _effective_sample_weight(class_weight_param, X, targets, classes, sample_weight):
    """Sample weights times class weights, float64; None if all ones.

    ``class_weight_param`` is the estimator's ``class_weight`` parameter, or
    the per-class weights :func:`_class_weights` resolved it to. With soft
    targets a sample's class weight is its expected class weight,
    ``sum_k q_ik w_k``.
    """
    if sample_weight is None and class_weight_param is None:
        return None
    sample_weight = check_non_negative_sample_weight(sample_weight, X, copy=True)
    if class_weight_param is None:
        return sample_weight
    class_weight = _class_weights(class_weight_param, targets, classes, sample_weight)
    if targets.ndim == 1:
        sample_weight *= class_weight[targets]
    else:
        sample_weight *= targets @ class_weight
    return sample_weight


def _class_weights(class_weight_param, targets, classes, sample_weight):
    """Weight of each class, (n_classes,) float64, for a ``class_weight`` parameter.

    "balanced" counts each class by its total (weighted) target probability;
    an array is taken as already resolved.
    """
    if isinstance(class_weight_param, np.ndarray):
        return class_weight_param
    n_classes = classes.shape[0]
    if isinstance(class_weight_param, str) and class_weight_param == "balanced":
        class_mass = _class_mass(targets, sample_weight, n_classes)
        with np.errstate(divide="ignore", invalid="ignore"):
            class_weight = class_mass.sum() / (n_classes * class_mass)
    else:
        class_weight = compute_class_weight(
            class_weight_param, classes=classes,
            y=classes[targets] if targets.ndim == 1 else classes,
        )
    # "balanced" gives an infinite weight to a class whose samples all
    # have zero weight; the class still carries no weight.
    return np.where(np.isfinite(class_weight), class_weight, 0.0)


def _l2_reg_strength(C, weight_sum):
    """The objective's penalty factor for C: ``1 / (C * S)``, 0 for C = inf."""
    return 0.0 if np.isinf(C) else 1.0 / (C * weight_sum)


def _fit_lbfgs(estimator, problem, params0, model_attributes, X, y, metadata):
    """Minimize ``problem`` from ``params0``; the fitted attributes.

    The L-BFGS run of :meth:`SoftmaxClassifier.fit`, shared by the in-memory
    and the Dask fits: scikit-learn callbacks around it, the iteration
    recorder (``loss_curve_``, verbose output), BLAS held to one thread, the
    convergence warning.

    Parameters
    ----------
    estimator : SoftmaxClassifier
        Supplies ``max_iter``, ``tol``, ``verbose`` and the callbacks; not
        modified.
    problem : object
        The objective in the optimizer's coordinates (see
        :func:`skcce._precondition.rescaled`).
    params0 : ndarray
        Starting point, in the objective's flat layout.
    model_attributes : callable
        Flat parameters -> dict of fitted attributes (``coef_``, ...).
    X, y, metadata
        Passed to the callbacks.

    Returns
    -------
    fitted : dict
        ``model_attributes`` at the solution, plus ``n_iter_``,
        ``loss_curve_`` and ``final_gradient_norm_``.
    """
    callback_context = start_fit_callbacks(estimator, estimator.max_iter, X, y, metadata)
    bridge = None
    if callback_context is not None:
        bridge = LbfgsCallbackBridge(
            callback_context, estimator, X, y, metadata, model_attributes, params0)
    recorder = _IterationRecorder(
        problem, verbose=estimator.verbose,
        on_iteration=None if bridge is None else bridge.iteration_done,
    )
    with single_threaded_blas():
        result = _minimize_lbfgs(
            recorder.loss_gradient, problem.to_internal(params0),
            max_iter=estimator.max_iter, tol=estimator.tol, callback=recorder.callback,
        )
        final_gradient_norm = recorder.gradient_norm_at(result.x)
    if bridge is not None:
        bridge.close()
    n_iter = estimator._check_convergence(result)

    fitted = model_attributes(problem.from_internal(result.x))
    fitted.update({
        "n_iter_": np.array([n_iter], dtype=np.int32),
        "loss_curve_": list(recorder.loss_curve),
        "final_gradient_norm_": final_gradient_norm,
    })
    end_fit_callbacks(callback_context, estimator, X, y, metadata, fitted)
    return fitted


def _minimize_lbfgs(loss_gradient, x0, *, max_iter, tol, callback=None):
    """scipy's L-BFGS-B with the options of scikit-learn's LogisticRegression."""
    return optimize.minimize(
        loss_gradient,
        x0,
        method="L-BFGS-B",
        jac=True,
        options={
            "maxiter": max_iter,
            "maxls": 50,
            "gtol": tol,
            "ftol": 64 * np.finfo(float).eps,
        },
        callback=callback,
    )


def _convergence_failure(result, max_iter):
    """Iteration count and a ConvergenceWarning message (None if converged)."""
    n_iter = min(int(result.nit), max_iter)
    if result.status == 0:
        return n_iter, None
    message = result.message
    if isinstance(message, bytes):
        message = message.decode("latin1")
    warning = (
        f"lbfgs failed to converge after {n_iter} iteration(s) "
        f"(status={result.status}):\n{message}\n"
    )
    if n_iter == max_iter:
        warning += (
            "\nIncrease the number of iterations to improve the "
            f"convergence (max_iter={max_iter})."
        )
    return n_iter, warning + _SCALING_HINT


def _prior_coef(objective, targets, sample_weight, label_smoothing):
    """W = 0 and intercepts at the prior, (K, n_dof) in Fortran order.

    The intercepts are the centered log of the mean (weighted, smoothed)
    target: the exact optimum for W = 0. SoftmaxClassifierCV starts each
    fold's regularization path here (SoftmaxClassifier starts from zeros, see
    ``_initial_coef``).
    """
    n_classes = objective.n_classes
    coef = np.zeros((n_classes, objective.n_dof), order="F")
    if objective.fit_intercept:
        class_mass = _class_mass(targets, sample_weight, n_classes)
        prior = class_mass / class_mass.sum()
        eps = label_smoothing
        prior = (1.0 - eps) * prior + eps / n_classes
        if np.all(prior > 0):
            log_prior = np.log(prior)
            coef[:, -1] = log_prior - log_prior.mean()
    return coef


def _class_mass(targets, sample_weight, n_classes):
    """Total (weighted) target probability of each class."""
    if targets.ndim == 1:
        return np.bincount(targets, weights=sample_weight, minlength=n_classes)
    if sample_weight is None:
        return targets.sum(axis=0)
    return sample_weight @ targets


class _IterationRecorder:
    """Wraps the objective for L-BFGS: records the loss curve, prints progress.

    scipy calls ``callback`` after each iteration with the accepted iterate,
    which is the last point evaluated; its gradient is taken from the cache.
    ``problem`` is the objective in the optimizer's (possibly rescaled)
    coordinates; iterates handed to ``on_iteration`` are the model's.
    """

    def __init__(self, problem, verbose=0, on_iteration=None):
        self.problem = problem
        self.verbose = verbose
        self.on_iteration = on_iteration
        self.loss_curve = []
        self._last = None  # (internal params, loss, internal grad) of the last evaluation
        self._start = time.perf_counter()

    def loss_gradient(self, internal):
        loss, grad = self.problem.loss_gradient(internal)
        self._last = (internal.copy(), loss, grad)
        return loss, grad

    def gradient_norm_at(self, internal):
        """max |gradient| in the optimizer's coordinates: what L-BFGS compares with tol."""
        if self._last is not None and np.array_equal(self._last[0], internal):
            grad = self._last[2]
        else:
            grad = self.problem.loss_gradient(internal)[1]
        return float(np.max(np.abs(grad))) if grad.size else 0.0

    def callback(self, intermediate_result):
        loss = float(intermediate_result.fun)
        self.loss_curve.append(loss)
        if self.verbose:
            print(
                f"iter {len(self.loss_curve):5d}  objective {loss:.12e}  "
                f"max|grad| {self.gradient_norm_at(intermediate_result.x):.3e}  "
                f"elapsed {time.perf_counter() - self._start:.3f}s",
                flush=True,
            )
        if self.on_iteration is not None:
            self.on_iteration(self.problem.from_internal(intermediate_result.x))
