"""The estimators' shared base: transactional fit, validation, tags and predictions."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from skcce._dask import dask_blockwise
from skcce._prediction import DECISION, LOG_PROBA, PROBA, predict_linear
from skcce._sparse import check_sparse_structure, is_sparse, kernel_csr
from skcce._targets import encode_targets
from skcce._threads import effective_n_threads

# Attributes the callback machinery sets on the estimator during fit and
# removes after it; a rolled-back fit keeps them for that cleanup.
_CALLBACK_STATE = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")


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


def _take_rows(X, rows):
    """Rows of array-like or sparse X (validated again by the caller)."""
    if is_sparse(X):
        return X.tocsr()[rows]
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    return np.asarray(X)[rows]
