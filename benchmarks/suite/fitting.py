"""Fits: wall time, iterations, objective gap to a tight optimum, and peak memory.

Every solver minimizes the same objective at ``C = 1``::

    f(W, b) = (1/n) sum_i CE_i(W x_i + b) + ||W||² / (2 · C · n)

Each runs at its default settings and at a tight setting (tolerance
:data:`TIGHT_TOL`, at most :data:`TIGHT_MAX_ITER` iterations). The objective of
every fitted model is computed in float64 on the float64 data (the float32
data holds the same numbers), and compared with a reference optimum:
``SoftmaxClassifier(tol=1e-10, max_iter=10000)`` on float64 data, or any fit
that got lower.
"""

import logging
import tracemalloc
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss

from skcce import SoftmaxClassifier, crossentropy_loss_gradient

from suite import torch_peer

C = 1.0
TIGHT_TOL = 1e-8
TIGHT_MAX_ITER = 10_000
REFERENCE_TOL = 1e-10
# PyTorch's LBFGS has no iteration budget of its own (one step runs 20 by
# default); it gets scikit-learn's default budget.
TORCH_DEFAULT_MAX_ITER = 100
TORCH_DEFAULT_TOLERANCE_GRAD = 1e-7  # PyTorch's default
TORCH_TOLERANCE_CHANGE = 1e-9  # PyTorch's default

SETTINGS = ("default", "tight")
SOLVER_LABELS = {
    "skcce": "skcce SoftmaxClassifier",
    "sklearn": "scikit-learn LogisticRegression",
    "sklearnex": "sklearnex LogisticRegression",
    "torch": "PyTorch LBFGS",
}


@dataclass
class FittedModel:
    """What a fit produced.

    Attributes
    ----------
    coef : ndarray of shape (n_classes, n_features + 1), float64
        Weights, intercepts in the last column.
    n_iter : int
        Iterations the solver reports.
    note : str
        Anything the reader should know (e.g. which code path ran).
    """

    coef: np.ndarray
    n_iter: int
    note: str = ""


def l2_reg_strength(n_samples):
    """The penalty strength ``1 / (C · n)`` of scikit-learn's convention."""
    return 1.0 / (C * n_samples)


def _estimator_params(tight):
    """Keyword arguments of an estimator's default or tight setting."""
    return {"C": C, **({"tol": TIGHT_TOL, "max_iter": TIGHT_MAX_ITER} if tight else {})}


def _fitted_model(estimator, note=""):
    """A :class:`FittedModel` from a fitted scikit-learn-style estimator."""
    coef = np.hstack([estimator.coef_, np.reshape(estimator.intercept_, (-1, 1))])
    return FittedModel(coef.astype(np.float64), int(np.max(estimator.n_iter_)), note)


def skcce_fit(tight):
    """Fit function ``(X, y) -> FittedModel`` of ``SoftmaxClassifier`` (all cores)."""
    return lambda X, y: _fitted_model(SoftmaxClassifier(**_estimator_params(tight)).fit(X, y))


def sklearn_fit(tight):
    """Fit function ``(X, y) -> FittedModel`` of ``LogisticRegression`` (lbfgs)."""
    return lambda X, y: _fitted_model(LogisticRegression(**_estimator_params(tight)).fit(X, y))


class _MessageRecorder(logging.Handler):
    """Logging handler that keeps the messages it receives."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def sklearnex_fit(estimator_class, tight):
    """Fit function ``(X, y) -> FittedModel`` of scikit-learn-intelex's LogisticRegression.

    sklearnex logs (at level INFO) whether oneDAL ran or it fell back to
    scikit-learn; during the fit its log goes to a recorder instead of its own
    handlers, and the note of the fitted model says which path ran.
    """
    def fit(X, y):
        logger = logging.getLogger("sklearnex")
        recorder = _MessageRecorder()
        saved = logger.handlers, logger.level, logger.propagate
        logger.handlers, logger.propagate = [recorder], False
        logger.setLevel(logging.INFO)
        try:
            estimator = estimator_class(**_estimator_params(tight)).fit(X, y)
        finally:
            logger.handlers, _, logger.propagate = saved
            logger.setLevel(saved[1])
        fell_back = any("fallback" in message for message in recorder.messages)
        return _fitted_model(estimator, "fell back to scikit-learn" if fell_back else "oneDAL")
    return fit


def torch_fit(torch, n_classes, tight):
    """Fit function ``(X, y) -> FittedModel`` of ``torch.optim.LBFGS`` from zero."""
    def fit(X, y):
        coef, n_iter = torch_peer.fit_lbfgs(
            torch, X, y, n_classes, l2_reg_strength(X.shape[0]),
            max_iter=TIGHT_MAX_ITER if tight else TORCH_DEFAULT_MAX_ITER,
            tolerance_grad=TIGHT_TOL if tight else TORCH_DEFAULT_TOLERANCE_GRAD,
            tolerance_change=TORCH_TOLERANCE_CHANGE,
        )
        return FittedModel(coef, n_iter)
    return fit


def import_sklearnex_logistic_regression():
    """scikit-learn-intelex's LogisticRegression, or None when it does not import."""
    try:
        from sklearnex.linear_model import LogisticRegression as SklearnexLogisticRegression
    except ImportError:
        return None
    return SklearnexLogisticRegression


def fit_functions(setting, n_classes, torch=None, sklearnex_class=None):
    """Every solver's fit function at one setting.

    Parameters
    ----------
    setting : {"default", "tight"}
    n_classes : int
    torch : module or None
        PyTorch, when it takes part.
    sklearnex_class : type or None
        scikit-learn-intelex's LogisticRegression, when it takes part.

    Returns
    -------
    fits : dict of str to callable
        Solver (keys of :data:`SOLVER_LABELS`) to ``fit(X, y) -> FittedModel``.
    """
    tight = setting == "tight"
    fits = {"skcce": skcce_fit(tight), "sklearn": sklearn_fit(tight)}
    if sklearnex_class is not None:
        fits["sklearnex"] = sklearnex_fit(sklearnex_class, tight)
    if torch is not None:
        fits["torch"] = torch_fit(torch, n_classes, tight)
    return fits


def objective_value(coef, X, y):
    """The objective ``f`` at ``coef``, in float64.

    skcce's ``crossentropy_loss_gradient`` computes it; for sparse X that
    skcce does not accept, scikit-learn's ``LinearModelLoss`` (the same
    objective) does.

    Parameters
    ----------
    coef : ndarray of shape (n_classes, n_features + 1)
    X : ndarray or CSR matrix, float64
    y : ndarray of int

    Returns
    -------
    value : float
    """
    l2 = l2_reg_strength(X.shape[0])
    try:
        return float(crossentropy_loss_gradient(coef, X, y, l2_reg_strength=l2)[0])
    except TypeError:
        if not sp.issparse(X):
            raise
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=coef.shape[0]),
                           fit_intercept=True)
    return float(loss.loss(coef.ravel(order="F"), X, y.astype(np.float64),
                           l2_reg_strength=l2))


def reference_fit(X, y):
    """The reference optimum: ``SoftmaxClassifier(tol=1e-10, max_iter=10000)`` on float64 X.

    Returns
    -------
    model : FittedModel or None
        None when skcce does not accept this (sparse) X.
    """
    estimator = SoftmaxClassifier(C=C, tol=REFERENCE_TOL, max_iter=TIGHT_MAX_ITER)
    try:
        return _fitted_model(estimator.fit(X, y))
    except TypeError:
        if not sp.issparse(X):
            raise
        return None


def peak_traced_memory(fit, X, y):
    """Peak of the memory traced by :mod:`tracemalloc` during ``fit(X, y)``, in bytes.

    tracemalloc sees Python and NumPy allocations made during the fit (X and y
    exist before); not memory that compiled code takes with ``malloc``
    directly (skcce's per-thread kernel buffers, oneDAL, PyTorch).
    """
    tracemalloc.start()
    try:
        fit(X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
