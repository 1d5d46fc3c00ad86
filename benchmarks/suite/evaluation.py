"""One evaluation of the loss and its gradient, per contender, at the same coefficients.

Contenders (keys of :func:`evaluation_calls`):

- ``skcce_1``: the evaluation a ``SoftmaxClassifier`` fit makes at each
  L-BFGS step (its objective's ``loss_gradient`` on the flat coefficient
  vector, data validated beforehand), one thread;
- ``skcce_all``: the same on every usable core;
- ``skcce_public``: ``skcce.crossentropy_loss_gradient(..., n_jobs=None)``,
  which also validates its inputs and transposes ``coef`` at every call;
- ``sklearn``: scikit-learn's ``LinearModelLoss(HalfMultinomialLoss(K),
  fit_intercept=True).loss_gradient`` with coefficients in LogisticRegression's
  layout and dtype, ``n_threads`` = all cores (its BLAS uses all cores too);
- ``torch``: ``torch.nn.Linear`` + ``CrossEntropyLoss`` forward and backward,
  PyTorch set to all cores (when PyTorch is installed);
- ``jax``: ``jax.jit(jax.value_and_grad(f))`` of the same objective at X's
  dtype, on every core (when JAX is installed).
"""

import numpy as np
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model._linear_loss import LinearModelLoss

from skcce import crossentropy_loss_gradient
from skcce._objective import CrossEntropyObjective
from skcce._sparse import is_sparse, kernel_csr
from skcce._threads import effective_n_threads, single_threaded_blas

from suite import fitting, jax_peer, timing, torch_peer

EVALUATION_LABELS = {
    "skcce_1": "skcce 1 thread",
    "skcce_all": "skcce all cores",
    "skcce_public": "crossentropy_loss_gradient all cores",
    "sklearn": "scikit-learn",
    "torch": "PyTorch",
    "jax": "JAX",
}
# The contenders that are not skcce.
PEER_NAMES = ("sklearn", "torch", "jax")


def starting_coefficients(n_classes, n_features, seed=1):
    """Fixed non-zero coefficients (weights and intercepts) at which all contenders evaluate.

    Returns
    -------
    coef : ndarray of shape (n_classes, n_features + 1), float64
    """
    rng = np.random.default_rng(seed)
    return rng.normal(scale=0.1, size=(n_classes, n_features + 1))


def sklearn_loss_gradient_call(X, y, coef, l2_reg_strength, n_threads):
    """Zero-argument callable: scikit-learn's loss and gradient, returning the loss.

    LogisticRegression hands ``LinearModelLoss`` the (n_classes, n_dof)
    coefficients raveled in Fortran order, in X's dtype, and float labels of
    X's dtype; so does this call.
    """
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=coef.shape[0]),
                           fit_intercept=True)
    flat_coef = coef.astype(X.dtype).ravel(order="F")
    y_float = y.astype(X.dtype)
    return lambda: loss.loss_gradient(flat_coef, X, y_float, sample_weight=None,
                                      l2_reg_strength=l2_reg_strength,
                                      n_threads=n_threads)[0]


def skcce_objective_call(X, y, coef, l2_reg_strength, n_jobs):
    """Zero-argument callable: skcce's loss and gradient as its fit evaluates
    them, returning the loss.

    Like LogisticRegression's, skcce's fit validates X and y once, then hands
    its objective the (n_classes, n_dof) coefficients raveled in Fortran
    order at every step; so does this call. On sparse X the fit sorts X into
    the kernel's tiles at its first evaluation and reuses them; here the
    first (untimed, warm-up) call builds them. The fit holds BLAS to one thread
    for all its steps, this call for each one (setting and restoring the
    limit takes microseconds).
    """
    if is_sparse(X):
        X = kernel_csr(X)
    objective = CrossEntropyObjective.in_memory(
        X, np.asarray(y, dtype=np.int32), coef.shape[0], l2_reg_strength=l2_reg_strength,
        n_threads=effective_n_threads(n_jobs), cache_tiles=True)
    flat_coef = np.asfortranarray(coef).ravel(order="F")

    def call():
        with single_threaded_blas():
            return objective.loss_gradient(flat_coef)[0]
    return call


def evaluation_calls(X, y, coef, l2_reg_strength, n_cores, torch=None, jax=None):
    """Every contender's evaluation as a zero-argument callable returning the loss.

    Parameters
    ----------
    X : ndarray or CSR matrix, float64 or float32
    y : ndarray of int
    coef : ndarray of shape (n_classes, n_features + 1), float64
    l2_reg_strength : float
    n_cores : int
        Threads for the all-cores contenders.
    torch : module or None
        PyTorch, when it takes part.
    jax : module or None
        JAX, when it takes part.

    Returns
    -------
    calls : dict of str to callable
        Keyed as :data:`EVALUATION_LABELS`.
    """
    calls = {
        "skcce_1": skcce_objective_call(X, y, coef, l2_reg_strength, 1),
        "skcce_all": skcce_objective_call(X, y, coef, l2_reg_strength, None),
        "skcce_public": lambda: crossentropy_loss_gradient(
            coef, X, y, l2_reg_strength=l2_reg_strength, n_jobs=None)[0],
        "sklearn": sklearn_loss_gradient_call(X, y, coef, l2_reg_strength, n_cores),
    }
    if torch is not None:
        calls["torch"] = torch_peer.loss_gradient_call(torch, X, y, coef, l2_reg_strength)
    if jax is not None and not is_sparse(X):  # (see jax_peer: dense data only)
        calls["jax"] = jax_peer.loss_gradient_call(jax, X, y, coef, l2_reg_strength)
    return calls


def measure_evaluations(X, y, n_classes, n_cores, repeats, pause, torch=None, jax=None,
                        rewarm=False):
    """Per-evaluation times of every contender at the same coefficients, round-robin
    (each timed evaluation right after an untimed one of the same contender
    with ``rewarm``, see :func:`suite.timing.interleaved_times`).

    Returns
    -------
    evaluations : dict
        Contender to ``{"times", "median", "loss"}``, or ``{"unsupported": reason}``.
    """
    coef = starting_coefficients(n_classes, X.shape[1])
    calls = evaluation_calls(X, y, coef, fitting.l2_reg_strength(X.shape[0]),
                             n_cores, torch, jax)
    supported, losses, unsupported = timing.keep_supported(calls, X)
    times, _ = timing.interleaved_times(supported, repeats, pause=pause, rewarm=rewarm)
    results = {name: {"unsupported": reason} for name, reason in unsupported.items()}
    for name in supported:
        results[name] = {"times": times[name], "median": timing.median(times[name]),
                         "loss": float(losses[name])}
    return results
