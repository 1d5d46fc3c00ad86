"""JAX on the CPU as a peer: ``jax.jit(jax.value_and_grad(f))`` of the same objective.

``f(W, b) = mean_i (logsumexp(z_i) - z_{i, y_i}) + l2 / 2 · ||W||²`` with
``z = X @ W + b``: skcce's and scikit-learn's objective. JAX computes in X's
dtype (64-bit types are enabled on import, else JAX would compute float64
data in float32). Dense data only: ``jax.experimental.sparse`` (BCSR) runs the
objective and gradient, but at the sweep's CSR sizes one evaluation took
seconds and gigabytes, an order of magnitude beyond the other peers, so JAX
is reported as not run on CSR data.
"""

import numpy as np
import scipy.sparse as sp


def import_jax():
    """JAX with 64-bit types enabled, or None when not installed.

    XLA's CPU backend runs its operations on every core; JAX has no
    per-call thread count.

    Returns
    -------
    jax : module or None
    """
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def _objective(jax):
    """The objective as a function of ``((W, b), X, y, l2)``, ``W`` of shape (d, K)."""
    import jax.numpy as jnp

    def objective(params, X, y, l2_reg_strength):
        weights, intercepts = params
        logits = X @ weights + intercepts
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        crossentropy = jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)
        return crossentropy + 0.5 * l2_reg_strength * jnp.sum(weights * weights)

    return objective


def loss_gradient_call(jax, X, y, coef, l2_reg_strength):
    """Zero-argument callable: the jitted objective and gradient, returning the loss.

    The first call compiles (the suite's warm-up round); each call waits until
    the gradient is computed (JAX dispatches asynchronously).

    Parameters
    ----------
    jax : module
    X : ndarray or CSR matrix, float64 or float32
    y : ndarray of int
    coef : ndarray of shape (n_classes, n_features + 1)
        Weights, intercepts in the last column.
    l2_reg_strength : float

    Returns
    -------
    call : callable

    Raises
    ------
    NotImplementedError
        For CSR data (see the module's docstring).
    """
    if sp.issparse(X):
        raise NotImplementedError("not run on CSR data: jax.experimental.sparse takes "
                                  "seconds and gigabytes per evaluation at these sizes")
    jnp = jax.numpy
    params = (jnp.asarray(np.ascontiguousarray(coef[:, :-1].T), dtype=X.dtype),
              jnp.asarray(coef[:, -1], dtype=X.dtype))
    data, labels = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    penalty = jnp.asarray(l2_reg_strength, dtype=X.dtype)
    value_and_grad = jax.jit(jax.value_and_grad(_objective(jax)))

    def call():
        value, gradient = value_and_grad(params, data, labels, penalty)
        jax.block_until_ready(gradient)
        return float(value)

    return call
