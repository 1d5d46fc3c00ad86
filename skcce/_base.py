"""The estimators' shared base: transactional fit, validation, tags and predictions."""

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Hidden, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from skcce._array_api import array_namespace, predict_linear_xp, to_numpy
from skcce._dask import dask_blockwise
from skcce._prediction import (
    DECISION,
    LABELS,
    LOG_PROBA,
    PROBA,
    check_prediction_structure,
    known_finite,
    predict_linear,
)
from skcce._sparse import check_sparse_structure, is_sparse, kernel_csr
from skcce._targets import encode_targets
from skcce._threads import effective_n_threads

# Attributes the callback machinery sets on the estimator during fit and
# removes after it; a rolled-back fit keeps them for that cleanup.
_CALLBACK_STATE = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")

# Where the API reference lives: the HTML repr links each estimator and each
# of its parameters there, as scikit-learn's estimators do.
DOC_LINK_TEMPLATE = (
    "https://skcce.readthedocs.io/en/stable/generated/{estimator_module}.{estimator_name}.html"
)

# LogisticRegression's solvers. They all minimize the same objective; skcce
# has one, and names the others only to say so.
LOGISTIC_REGRESSION_SOLVERS = {"lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"}

# LogisticRegression's ``penalty`` (deprecated in scikit-learn 1.8) in terms of
# its replacement, the mixing parameter l1_ratio (None: the l1_ratio
# parameter's own value). skcce fits the penalties in SUPPORTED_PENALTIES.
PENALTY_L1_RATIO = {"l2": 0.0, None: 0.0, "l1": 1.0, "elasticnet": None}
SUPPORTED_PENALTIES = set(PENALTY_L1_RATIO)

# The ``_parameter_constraints`` entries of the arguments code written for
# LogisticRegression passes.
COMPATIBILITY_CONSTRAINTS = {
    "penalty": [
        StrOptions({"l1", "l2", "elasticnet"}),
        None,
        Hidden(StrOptions({"deprecated"})),
    ],
    "solver": [StrOptions(LOGISTIC_REGRESSION_SOLVERS)],
    "random_state": ["random_state"],
}


def check_solver(estimator):
    """Raise a ValueError for a solver other than "lbfgs", saying why."""
    if estimator.solver != "lbfgs":
        raise ValueError(
            f"{type(estimator).__name__} has one solver, 'lbfgs'; got "
            f"solver={estimator.solver!r}. LogisticRegression's solvers all minimize "
            "the same objective, so solver='lbfgs' (the default) fits the same model."
        )


def resolve_penalty(estimator, C):
    """The C and l1_ratio that ``penalty`` means, with LogisticRegression's warnings.

    As ``LogisticRegression`` in scikit-learn >= 1.8: an explicit ``penalty``
    is deprecated in favour of ``C`` (and ``l1_ratio``) and warns;
    ``penalty=None`` means no penalty (``C=np.inf``) and warns if C was set
    too; ``"l1"`` means ``l1_ratio=1`` and ``"elasticnet"`` the estimator's
    own ``l1_ratio``.

    Parameters
    ----------
    estimator : SoftmaxClassifier or SoftmaxClassifierCV
        Its ``penalty``, and ``solver`` for the error message.
    C : float or None
        The estimator's C (None for an estimator without one).

    Returns
    -------
    C : float or None
        ``np.inf`` for ``penalty=None``, else ``C`` unchanged.
    l1_ratio : float or None
        What the penalty means as LogisticRegression's ``l1_ratio``
        (:data:`PENALTY_L1_RATIO`); None: the estimator's own (unset penalty,
        or ``"elasticnet"``).
    """
    penalty = estimator.penalty
    if isinstance(penalty, str) and penalty == "deprecated":
        return C, None
    warnings.warn(
        "'penalty' is accepted for code written for LogisticRegression, where it "
        "was deprecated in scikit-learn 1.8 (and is removed in 1.10). To avoid this "
        "warning, leave 'penalty' unset: l1_ratio chooses the penalty (0: L2, 1: L1, "
        "between: elastic net), and C=np.inf instead of penalty=None means no penalty.",
        FutureWarning, stacklevel=4,
    )
    if penalty not in SUPPORTED_PENALTIES:
        raise ValueError(
            f"{type(estimator).__name__} fits the L2 penalty only (penalty='l2', or "
            f"None for no penalty); got penalty={penalty!r}."
        )
    if penalty is None:
        if C is not None and C != 1.0:
            warnings.warn("Setting penalty=None will ignore the C parameter",
                          UserWarning, stacklevel=4)
        return np.inf, PENALTY_L1_RATIO[penalty]
    return C, PENALTY_L1_RATIO[penalty]


class SoftmaxModelBase(ClassifierMixin, BaseEstimator):
    """What the softmax estimators share: the transactional fit, tags, predictions.

    Subclasses implement ``_fit``, which returns the fitted attributes
    without touching ``self``, and call :meth:`_transactional_fit` from their
    ``fit``. They store the model as ``coef_`` and ``intercept_`` (two
    classes: the class-1 row of the symmetric solution).

    The predictions are computed by a chunked, multithreaded kernel
    (``n_jobs`` threads, bitwise identical results for every value) straight into the
    returned array: no other n_samples x n_classes array is allocated. Dense
    and CSR ``X`` are supported (CSC and COO are converted to CSR).
    """

    # Attributes only some fits produce: a fit that does not drops stale ones.
    _fit_may_drop = ()

    # The HTML repr's link to the API reference, and its parameter tooltips.
    _doc_link_module = "skcce"
    _doc_link_template = DOC_LINK_TEMPLATE

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _transactional_fit(self, *args):
        """``self._fit(*args)``, assigned only if it succeeds; returns self.

        If the fit fails or is interrupted, the estimator is left exactly as
        it was (``validate_data`` sets ``n_features_in_`` early), except for
        the callbacks' bookkeeping, which ``_fit_context`` tears down
        afterwards.
        """
        state_before = self.__dict__.copy()
        try:
            fitted = self._fit(*args)
        except BaseException:
            in_flight = {k: v for k, v in self.__dict__.items() if k in _CALLBACK_STATE}
            self.__dict__.clear()
            self.__dict__.update(state_before)
            self.__dict__.update(in_flight)
            raise
        for name in self._fit_may_drop:
            self.__dict__.pop(name, None)
        self.__dict__.update(fitted)
        return self

    def _validate_fit_data(self, X, y):
        """Validated X (C order or kernel CSR), y, ``classes`` and the kernel's targets."""
        check_sparse_structure(X)
        # scikit-learn's finiteness check sums X first, which overflows (and
        # warns) for finite data near the largest double; see _linear_prediction.
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(
                self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
                order="C", multi_output=True, reset=True,
            )
        if is_sparse(X):
            X = kernel_csr(X, structure_checked=True)
        classes, targets = encode_targets(y)
        return X, y, classes, targets


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
            The kernel picks each row's label as it computes its logits,
            without an n_samples x n_classes array.
        """
        check_is_fitted(self)
        _check_same_namespace(X, self, attribute="coef_", method="predict")
        namespace = array_namespace(X)
        if namespace is not None:
            return self._predict_array_api(X, *namespace)
        return self.classes_[self._linear_prediction(X, LABELS, full=False)]

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
        if scores.shape[1] != 1:
            return scores
        namespace = array_namespace(scores)
        return scores.reshape(-1) if namespace is None else namespace[0].reshape(scores, (-1,))

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
        _check_same_namespace(X, self, attribute="coef_", method=_PREDICTION_METHODS[mode])
        namespace = array_namespace(X)
        if namespace is not None:
            return self._linear_prediction_array_api(X, mode, full, *namespace)
        check_prediction_structure(X)
        # scikit-learn's finiteness check first sums X; for finite data near
        # the float64 limit that sum overflows and warns, although the
        # element-wise check it falls back to passes (so does a conversion
        # from values beyond float64, which the check then rejects).
        with np.errstate(over="ignore", invalid="ignore"):
            X = validate_data(self, X, accept_sparse="csr", reset=False,
                              ensure_all_finite=False)
        n_threads = effective_n_threads(self.n_jobs)
        coef, intercept = self._dense_coef(), np.ravel(self.intercept_)
        if full and coef.shape[0] == 1:
            coef = np.concatenate([-coef, coef])
            intercept = np.concatenate([-intercept, intercept])
        # The kernel mostly sees whether X is finite as it computes the logits
        # (a separate pass would cost about as much as the prediction).
        out, X_finite = predict_linear(X, coef, intercept, mode=mode, n_threads=n_threads)
        if X_finite is not True and not get_config()["assume_finite"]:
            if X_finite is None and known_finite(X, n_threads):
                return out
            with np.errstate(over="ignore", invalid="ignore"):
                # scikit-learn's check, for its error.
                check_array(X, accept_sparse="csr", input_name="X", estimator=self)
        return out


    def _dense_coef(self):
        """``coef_`` as an ndarray, also after :meth:`sparsify` or an array API fit."""
        if sp.issparse(self.coef_):
            return self.coef_.toarray()
        return _as_numpy(self.coef_)

    def _linear_prediction_array_api(self, X, mode, full, xp, device):
        """:meth:`_linear_prediction` of an array API X, computed in its namespace."""
        X = validate_data(self, X, reset=False)
        coef, intercept = self.coef_, self.intercept_
        if sp.issparse(coef):
            coef = coef.toarray()
        dtype = X.dtype if X.dtype in (xp.float32, xp.float64) else xp.float64
        coef = xp.asarray(_as_numpy(coef), dtype=dtype, device=device)
        intercept = xp.asarray(np.ravel(_as_numpy(intercept)), dtype=dtype, device=device)
        if full and coef.shape[0] == 1:
            coef = xp.concat([-coef, coef])
            intercept = xp.concat([-intercept, intercept])
        return predict_linear_xp(X, coef, intercept, mode, xp, device)

    def _predict_array_api(self, X, xp, device):
        """Labels of an array API X: in its namespace (or NumPy, for NumPy classes_)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            indices = xp.astype(scores > 0, xp.int64)
        else:
            indices = xp.argmax(scores, axis=1)
        if isinstance(self.classes_, np.ndarray):
            return self.classes_[to_numpy(indices, xp)]
        return xp.take(self.classes_, indices)

    def densify(self):
        """Convert the coefficient matrix to a dense array, as ``LogisticRegression``.

        Converts ``coef_`` (back) to a numpy.ndarray, its format after a
        fit; a no-op unless :meth:`sparsify` was called.

        Returns
        -------
        self
            Fitted estimator.
        """
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before densifying.")
        if sp.issparse(self.coef_):
            self.coef_ = self.coef_.toarray()
        return self

    def sparsify(self):
        """Convert the coefficient matrix to a sparse CSR matrix, as ``LogisticRegression``.

        ``coef_`` becomes a scipy.sparse CSR matrix (a ``csr_array`` when
        scikit-learn's ``sparse_interface`` is ``"sparray"``); ``intercept_``
        stays dense. Predictions are unchanged, and a warm-started fit starts
        from the same coefficients. Worth it only when most coefficients are
        zero: the L2 penalty does not make them so.

        Returns
        -------
        self
            Fitted estimator.
        """
        check_is_fitted(self, msg="Estimator, %(name)s, must be fitted before sparsifying.")
        if get_config().get("sparse_interface") == "sparray":
            self.coef_ = sp.csr_array(self.coef_)
        else:
            self.coef_ = sp.csr_matrix(self.coef_)
        return self


def _as_numpy(array):
    """A NumPy array of an array of any namespace (array-likes, None: unchanged)."""
    if array is None or isinstance(array, np.ndarray) or array_namespace(array) is None:
        return array
    from sklearn.utils._array_api import get_namespace

    return to_numpy(array, get_namespace(array)[0])


_PREDICTION_METHODS = {DECISION: "decision_function", PROBA: "predict_proba",
                       LOG_PROBA: "predict_log_proba", LABELS: "predict"}


def _check_same_namespace(X, estimator, *, attribute, method):
    """scikit-learn's check that X and a fitted attribute share namespace and device.

    A no-op with scikit-learn < 1.9, which has no such check.
    """
    try:
        from sklearn.utils._array_api import check_same_namespace
    except ImportError:
        return
    check_same_namespace(X, estimator, attribute=attribute, method=method)


