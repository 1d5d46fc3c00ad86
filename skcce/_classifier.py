"""SoftmaxClassifier: multinomial logistic regression fitted by L-BFGS."""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import optimize
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, validate_data

from skcce._objective import CrossEntropyObjective
from skcce._threads import effective_n_threads, single_threaded_blas

_SCALING_HINT = (
    "\nYou might also want to scale the data as shown in:\n"
    "    https://scikit-learn.org/stable/modules/preprocessing.html"
)


class SoftmaxClassifier(LinearClassifierMixin, ClassifierMixin, BaseEstimator):
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
        L-BFGS stops when the largest absolute gradient entry is <= tol.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights, as in
        scikit-learn (``"balanced"``: ``n_samples / (n_classes * counts)``).
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
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
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
        "warm_start": ["boolean"],
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "verbose": ["verbose"],
    }

    def __init__(self, C=1.0, *, fit_intercept=True, tol=1e-4, max_iter=100,
                 class_weight=None, warm_start=False, n_jobs=None, verbose=0):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data.

        The fit is transactional: if it fails or is interrupted, the estimator
        is left exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (float32 data is used without conversion).
        y : array-like of shape (n_samples,)
            Class labels.
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
            # roll everything back so a failed fit changes nothing.
            self.__dict__.clear()
            self.__dict__.update(state_before)
            raise
        self.__dict__.update(fitted)
        return self

    def _fit(self, X, y, sample_weight):
        """Fit without touching ``self``'s model; return the new attributes."""
        X, y = validate_data(
            self, X, y, accept_sparse=False, dtype=[np.float64, np.float32],
            order="C", reset=True,
        )
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        n_classes = classes.shape[0]
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but "
                f"the data contains only one class: {classes[0]!r}"
            )
        y_encoded = np.ascontiguousarray(y_encoded, dtype=np.int32)
        sample_weight = self._effective_sample_weight(X, y, y_encoded, classes, sample_weight)

        n_threads = effective_n_threads(self.n_jobs)
        objective = CrossEntropyObjective(
            X, y_encoded, n_classes, sample_weight=sample_weight,
            fit_intercept=self.fit_intercept, n_threads=n_threads,
        )
        if objective.weight_sum <= 0:
            raise ValueError("Sample weights must contain at least one non-zero number.")
        objective.l2_reg_strength = (
            0.0 if np.isinf(self.C) else 1.0 / (self.C * objective.weight_sum)
        )
        coef0 = self._initial_coef(objective, classes, y_encoded, sample_weight)
        # Built before `objective.loss_gradient` is read: it wraps that method.
        callback = self._progress_printer(objective) if self.verbose else None

        with single_threaded_blas():
            result = optimize.minimize(
                objective.loss_gradient,
                coef0.ravel(order="F"),
                method="L-BFGS-B",
                jac=True,
                options={
                    "maxiter": self.max_iter,
                    "maxls": 50,
                    "gtol": self.tol,
                    "ftol": 64 * np.finfo(float).eps,
                },
                callback=callback,
            )
        n_iter = self._check_convergence(result)

        coef = result.x.reshape(objective.n_dof, n_classes).T
        weights = coef[:, : X.shape[1]]
        intercepts = coef[:, -1] if self.fit_intercept else np.zeros(n_classes)
        if n_classes == 2:
            weights, intercepts = weights[1:], intercepts[1:]
        return {
            "classes_": classes,
            "coef_": np.array(weights, dtype=X.dtype, order="C"),
            "intercept_": np.array(intercepts, dtype=X.dtype),
            "n_iter_": np.array([n_iter], dtype=np.int32),
        }

    def _effective_sample_weight(self, X, y, y_encoded, classes, sample_weight):
        """Sample weights times class weights, float64; None if all ones."""
        if sample_weight is None and self.class_weight is None:
            return None
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, copy=True)
        if np.any(sample_weight < 0):
            raise ValueError("Negative values in data passed to `sample_weight`")
        if self.class_weight is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                class_weight = compute_class_weight(
                    self.class_weight, classes=classes, y=y, sample_weight=sample_weight
                )
            # "balanced" gives an infinite weight to a class whose samples all
            # have zero weight; the class still carries no weight.
            class_weight = np.where(np.isfinite(class_weight), class_weight, 0.0)
            sample_weight *= class_weight[y_encoded]
        return np.ascontiguousarray(sample_weight, dtype=np.float64)

    def _initial_coef(self, objective, classes, y_encoded, sample_weight):
        """Starting point, (K, n_dof) in Fortran order.

        A warm start reuses the previous solution. Otherwise W = 0 and the
        intercepts are the centered log class priors: the exact optimum for
        W = 0. Centering keeps sum_k b_k = 0, which L-BFGS then preserves
        (every gradient sums to zero over classes), so two-class solutions are
        exactly symmetric.
        """
        n_classes, n_features = classes.shape[0], objective.n_features
        coef = np.zeros((n_classes, objective.n_dof), order="F")
        if self.warm_start and self._warm_start_compatible(classes, n_features):
            if n_classes == 2:
                coef[1, :n_features], coef[0, :n_features] = self.coef_[0], -self.coef_[0]
                if self.fit_intercept:
                    coef[1, -1], coef[0, -1] = self.intercept_[0], -self.intercept_[0]
            else:
                coef[:, :n_features] = self.coef_
                if self.fit_intercept:
                    coef[:, -1] = self.intercept_
        elif self.fit_intercept:
            weights = np.ones_like(y_encoded, dtype=np.float64) if sample_weight is None else sample_weight
            class_mass = np.bincount(y_encoded, weights=weights, minlength=n_classes)
            if np.all(class_mass > 0):
                log_prior = np.log(class_mass / class_mass.sum())
                coef[:, -1] = log_prior - log_prior.mean()
        return coef

    def _warm_start_compatible(self, classes, n_features):
        return (
            hasattr(self, "coef_")
            and hasattr(self, "classes_")
            and np.array_equal(self.classes_, classes)
            and self.coef_.shape[1] == n_features
        )

    def _progress_printer(self, objective):
        """L-BFGS callback printing one line per iteration.

        The accepted iterate is the last point L-BFGS-B evaluated, so the
        objective and gradient are taken from the last evaluation.
        """
        start = time.perf_counter()
        state = {"iteration": 0}
        original = objective.loss_gradient

        def loss_gradient(params):
            loss, grad = original(params)
            state["loss"], state["grad_max"] = loss, float(np.max(np.abs(grad)))
            return loss, grad

        objective.loss_gradient = loss_gradient

        def callback(intermediate_result):
            state["iteration"] += 1
            print(
                f"iter {state['iteration']:5d}  objective {state['loss']:.12e}  "
                f"max|grad| {state['grad_max']:.3e}  "
                f"elapsed {time.perf_counter() - start:.3f}s",
                flush=True,
            )

        return callback

    def _check_convergence(self, result):
        """Iteration count; ConvergenceWarning worded like scikit-learn's."""
        n_iter = min(int(result.nit), self.max_iter)
        if result.status != 0:
            message = result.message
            if isinstance(message, bytes):
                message = message.decode("latin1")
            warning = (
                f"lbfgs failed to converge after {n_iter} iteration(s) "
                f"(status={result.status}):\n{message}\n"
            )
            if n_iter == self.max_iter:
                warning += (
                    "\nIncrease the number of iterations to improve the "
                    f"convergence (max_iter={self.max_iter})."
                )
            warnings.warn(warning + _SCALING_HINT, ConvergenceWarning, stacklevel=3)
        return n_iter

    def predict_proba(self, X):
        """Class probabilities, softmax of the decision function.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return softmax(self._full_decision(X), axis=1)

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably (log-softmax).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return log_softmax(self._full_decision(X), axis=1)

    def _full_decision(self, X):
        """Logits of every class, (n_samples, n_classes); [-d, d] for two."""
        decision = self.decision_function(X)
        if decision.ndim == 1:
            decision = np.column_stack([-decision, decision])
        return decision
