"""PyTorch on the CPU as a peer: the same objective with ``torch.nn.Linear``.

The objective is ``CrossEntropyLoss()(linear(X), y) + l2 / 2 · ||W||²``, the
mean crossentropy plus the penalty on the weights only, exactly skcce's and
scikit-learn's. Tensors share memory with the NumPy arrays where PyTorch
allows it (dense data); CSR data becomes a ``torch.sparse_csr_tensor``.
"""

import warnings

import numpy as np
import scipy.sparse as sp


def import_torch(n_threads):
    """PyTorch set to ``n_threads`` intra-op threads, or None when not installed.

    Parameters
    ----------
    n_threads : int

    Returns
    -------
    torch : module or None
    """
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(n_threads)
    return torch


def to_tensor(torch, X):
    """X as a tensor of its dtype: a view of dense data, a CSR tensor for CSR data."""
    if not sp.issparse(X):
        return torch.from_numpy(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(X.data), size=X.shape, check_invariants=False,
        )


def linear_layer(torch, coef, dtype):
    """``torch.nn.Linear`` holding ``coef`` (weights, then the intercepts in the last column)."""
    n_classes, n_dof = coef.shape
    layer = torch.nn.Linear(n_dof - 1, n_classes, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(coef[:, :-1]))
        layer.bias.copy_(torch.from_numpy(coef[:, -1]))
    return layer


def objective_with_gradient(torch, layer, X_tensor, y_tensor, l2_reg_strength):
    """Closure computing the objective and leaving its gradient in ``layer``.

    Returns
    -------
    closure : callable
        ``closure()`` zeroes the gradients, runs forward and backward and
        returns the objective as a 0-d tensor (the form ``torch.optim.LBFGS``
        expects).
    """
    crossentropy = torch.nn.CrossEntropyLoss()

    def closure():
        layer.zero_grad(set_to_none=False)
        loss = (crossentropy(layer(X_tensor), y_tensor)
                + 0.5 * l2_reg_strength * layer.weight.square().sum())
        loss.backward()
        return loss

    return closure


def loss_gradient_call(torch, X, y, coef, l2_reg_strength):
    """Zero-argument callable: one forward and backward pass, returning the loss.

    Parameters
    ----------
    torch : module
    X : ndarray or CSR matrix, float64 or float32
    y : ndarray of int
    coef : ndarray of shape (n_classes, n_features + 1)
    l2_reg_strength : float

    Returns
    -------
    call : callable
    """
    layer = linear_layer(torch, coef, X.dtype)
    closure = objective_with_gradient(torch, layer, to_tensor(torch, X),
                                      torch.from_numpy(y.astype(np.int64)), l2_reg_strength)
    return lambda: closure().item()


def fit_lbfgs(torch, X, y, n_classes, l2_reg_strength, max_iter, tolerance_grad,
              tolerance_change):
    """Minimize the objective with ``torch.optim.LBFGS`` (strong Wolfe line search).

    One ``step`` from zero coefficients (scikit-learn's start) runs up to
    ``max_iter`` iterations; the other LBFGS options keep PyTorch's defaults.

    Parameters
    ----------
    torch : module
    X : ndarray or CSR matrix, float64 or float32
    y : ndarray of int
    n_classes : int
    l2_reg_strength : float
    max_iter : int
    tolerance_grad, tolerance_change : float
        PyTorch's stopping tolerances (largest gradient entry; change of the
        objective or of the parameters).

    Returns
    -------
    coef : ndarray of shape (n_classes, n_features + 1), float64
    n_iter : int
    """
    layer = linear_layer(torch, np.zeros((n_classes, X.shape[1] + 1)), X.dtype)
    closure = objective_with_gradient(torch, layer, to_tensor(torch, X),
                                      torch.from_numpy(y.astype(np.int64)), l2_reg_strength)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=max_iter,
                                  tolerance_grad=tolerance_grad,
                                  tolerance_change=tolerance_change,
                                  line_search_fn="strong_wolfe")
    optimizer.step(closure)
    n_iter = optimizer.state[layer.weight]["n_iter"]
    coef = np.hstack([layer.weight.detach().numpy(), layer.bias.detach().numpy()[:, None]])
    return coef.astype(np.float64), int(n_iter)
