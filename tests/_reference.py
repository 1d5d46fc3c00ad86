"""Independent reference implementations shared by the skcce tests.

The references are *independent* of skcce: plain NumPy/SciPy formulas and
scikit-learn's own private LinearModelLoss, which is the documented semantic
reference for ``skcce.crossentropy_loss_gradient``. (LARGE_SLOT_SHAPE alone
describes skcce: a shape its dense kernel treats in a particular way.)
"""

from fractions import Fraction

import numpy as np
from scipy.special import log_softmax


def exact_csr_row_logits(values, columns, weights_t, intercept, fused):
    """A CSR row's float64 logits computed exactly in Python, term by term
    in the order of the non-zeros: each ``acc + x * w`` rounded once
    (``fused``: from the exact rational value) or twice, as Python's floats
    do."""
    z = []
    for k in range(weights_t.shape[1]):
        acc = float(intercept[k])
        for x, c in zip(np.asarray(values).tolist(), np.asarray(columns).tolist()):
            w = float(weights_t[c, k])
            acc = float(Fraction(x) * Fraction(w) + Fraction(acc)) if fused else acc + x * w
        z.append(acc)
    return np.array(z)


def numpy_loss_gradient(
    coef, X, y, sample_weight=None, l2_reg_strength=0.0, fit_intercept=True
):
    """Plain NumPy (float64) reference for the weighted, L2-penalised softmax CE.

    loss = (1/sum(s)) sum_i s_i (logsumexp(z_i) - z_{i, y_i}) + 0.5 * l2 * ||W||_F^2
    with z_i = W x_i + b; the intercept b (last column of coef) is not penalised.
    """
    coef = np.asarray(coef, dtype=np.float64)
    n, d = np.shape(X)
    W = coef[:, :d]
    intercept = coef[:, d] if fit_intercept else np.zeros(coef.shape[0])
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    loss_sum, grad_t = kernel_loss_gradient(X, y, W.T, intercept, s)
    total_weight = s.sum()
    loss = loss_sum / total_weight + 0.5 * l2_reg_strength * np.sum(W * W)
    grad = np.empty_like(coef)
    grad[:, :d] = grad_t[:d].T / total_weight + l2_reg_strength * W
    if fit_intercept:
        grad[:, d] = grad_t[d] / total_weight
    return loss, grad


def kernel_loss_gradient(X, targets, weights_t, intercept, sample_weight=None):
    """The dense kernels' unnormalized objective in plain NumPy (float64).

    Returns ``sum_i s_i CE_i`` with ``CE_i = -sum_k t_ik log softmax(z_i)_k``
    and ``z = X @ weights_t + intercept``, and its gradient as the kernels lay
    it out: ``(d + 1, K)``, the intercept's row last. ``targets`` is ``(n, K)``
    or class labels ``(n,)`` (one-hot rows).
    """
    X = np.asarray(X, dtype=np.float64)
    weights_t = np.asarray(weights_t, dtype=np.float64)
    targets = _targets_matrix(targets, weights_t.shape[1])
    n = X.shape[0]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    log_p = log_softmax(X @ weights_t + intercept, axis=1)
    # 0 * log(0) counts as 0 (a zero target where the probability underflows).
    loss = -(s * np.where(targets == 0, 0.0, targets * log_p).sum(axis=1)).sum()
    residuals = s[:, None] * (np.exp(log_p) - targets)
    return loss, np.vstack([X.T @ residuals, residuals.sum(axis=0)])


def sklearn_loss_gradient(
    coef, X, y, sample_weight=None, l2_reg_strength=0.0, fit_intercept=True
):
    """scikit-learn's own LinearModelLoss + HalfMultinomialLoss (the spec reference)."""
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    K = coef.shape[0]
    lml = LinearModelLoss(
        base_loss=HalfMultinomialLoss(n_classes=K), fit_intercept=fit_intercept
    )
    sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    loss, grad = lml.loss_gradient(
        np.asarray(coef, dtype=np.float64),
        np.ascontiguousarray(X, dtype=np.float64),
        np.asarray(y, dtype=np.float64),
        sw,
        l2_reg_strength,
    )
    return float(loss), np.asarray(grad).reshape(coef.shape)


def assert_grad_close(actual, desired, rtol, atol_factor):
    """assert_allclose with an atol scaled to the largest gradient entry.

    Entries of a gradient can be near zero because of cancellation; a pure
    relative tolerance is meaningless for those, so atol = atol_factor*max|grad|.
    """
    desired = np.asarray(desired)
    atol = atol_factor * max(np.max(np.abs(desired)), np.finfo(float).tiny)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


# (n, d, K) whose row group's float64 gradient takes 16 MB: the dense kernel
# keeps one gradient slot per thread, not four (dense_merge_slots), and n
# gives more row groups than the tests' 2 or 3 threads.
LARGE_SLOT_SHAPE = (1024, 2_000, 1_000)


def make_loss_problem(n, d, K, dtype=np.float64, fit_intercept=True, weighted=False,
                      seed=0, scale=1.0):
    """Random data + random coef for the loss kernel tests."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, K, size=n)
    # make sure every class appears when possible (not required, but realistic)
    if n >= K:
        y[:K] = np.arange(K)
    coef = scale * rng.normal(size=(K, d + int(fit_intercept)))
    sw = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return coef, X, y, sw


def ref_objective(coef, X, Q, sample_weight=None, l2=0.0, fit_intercept=True,
                  label_smoothing=0.0):
    """f = (1/S) sum_i s_i CE_i + l2/2 ||W||^2 with CE_i = -sum_k q_ik log softmax(z_i)_k.

    Q: integer labels (n,) or target distributions (n, K); smoothing
    q <- (1 - eps) q + eps / K. Returns (loss, grad) with grad shaped like coef.
    Everything in float64.
    """
    coef = np.asarray(coef, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    K = coef.shape[0]
    Q = np.asarray(Q)
    if Q.ndim == 1:
        Q = np.eye(K)[Q.astype(int)]
    Q = Q.astype(np.float64)
    Q = (1.0 - label_smoothing) * Q + label_smoothing / K
    W = coef[:, :d]
    z = X @ W.T
    if fit_intercept:
        z = z + coef[:, d]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    S = s.sum()
    logp = log_softmax(z, axis=1)
    ce = -np.sum(Q * logp, axis=1)
    loss = np.dot(s, ce) / S + 0.5 * l2 * np.sum(W * W)
    R = (np.exp(logp) - Q) * (s / S)[:, None]
    grad = np.zeros_like(coef)
    grad[:, :d] = R.T @ X + l2 * W
    if fit_intercept:
        grad[:, d] = R.sum(axis=0)
    return float(loss), grad


def full_coef(clf):
    """(K, d + fit_intercept) coefficient matrix of a fitted SoftmaxClassifier,
    expanding the binary model to the symmetric W = [-w, w], b = [-c, c]."""
    W = np.asarray(clf.coef_, dtype=np.float64)
    b = np.asarray(clf.intercept_, dtype=np.float64)
    if len(clf.classes_) == 2:
        W = np.vstack([-W, W])
        b = np.concatenate([-b, b])
    if clf.fit_intercept:
        return np.hstack([W, b[:, None]])
    return W


def central_differences(loss, coef, h=1e-6):
    """Central finite differences of ``loss(coef)`` for every entry of ``coef``."""
    fd = np.zeros_like(coef)
    for idx in np.ndindex(coef.shape):
        cp, cm = coef.copy(), coef.copy()
        cp[idx] += h
        cm[idx] -= h
        fd[idx] = (loss(cp) - loss(cm)) / (2 * h)
    return fd


def scaled_columns_optimum(Xn, y, exponents, n_classes, C=np.inf, sample_weight=None,
                           fit_intercept=True):
    """The optimum of the softmax objective on ``X = Xn * 2**exponents``, solved on ``Xn``.

    Fitting X with coefficients ``W`` is fitting ``Xn`` with ``V = W * 2**exponents``
    and the penalty ``sum_j 4**(-e_j) ||V_j||^2 / (2 C S)``, so columns of any
    magnitude are handled without forming X. Columns whose penalty weight
    overflows float64 can only hold coefficients that change no logit; they are
    left out. Solved with scikit-learn's LinearModelLoss and SciPy's L-BFGS-B
    (tight tolerances) in coordinates ``V_j = U_j / sqrt(max(1, weight_j))``,
    where every direction is well conditioned.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        The optimum's probabilities on the training data.
    objective : float
    """
    from scipy import optimize
    from scipy.special import softmax
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    n, _ = Xn.shape
    S = n if sample_weight is None else float(np.sum(sample_weight))
    lam = 0.0 if np.isinf(C) else 1.0 / (C * S)
    with np.errstate(over="ignore"):
        weight = np.ldexp(lam, -2 * np.asarray(exponents))
    active = np.isfinite(weight)
    Xa, weight = np.ascontiguousarray(Xn[:, active]), weight[active]
    d = Xa.shape[1]
    K = n_classes
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=K), fit_intercept=fit_intercept)
    to_v = 1.0 / np.sqrt(np.maximum(1.0, weight))
    if fit_intercept:
        to_v = np.append(to_v, 1.0)
    flat = np.tile(to_v, K)
    sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)

    def fun(u):
        coef = (u * flat).reshape(K, -1)
        f, g = loss.loss_gradient(coef, Xa, np.asarray(y, np.float64), sw, 0.0)
        V = coef[:, :d]
        f += 0.5 * np.sum(weight * V**2)
        g = g.copy()
        g[:, :d] += weight * V
        return f, g.ravel() * flat

    result = optimize.minimize(fun, np.zeros(flat.shape[0]), jac=True, method="L-BFGS-B",
                               options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-16})
    coef = (result.x * flat).reshape(K, -1)
    logits = Xa @ coef[:, :d].T + (coef[:, d] if fit_intercept else 0.0)
    return softmax(logits, axis=1), float(result.fun)


# The scikit-learn whose behaviour the references follow. Older releases (down
# to the oldest supported) differ in some of LogisticRegression's and
# log_loss's behaviours and wordings; the tests compare with them only where
# they agree, and check skcce's own behaviour on every release.
def sklearn_at_least(version):
    """Whether the installed scikit-learn is ``version`` (e.g. "1.9") or newer."""
    import sklearn
    from sklearn.utils.fixes import parse_version

    return parse_version(sklearn.__version__).release >= parse_version(version).release


REFERENCE_SKLEARN = "1.9"


def _targets_matrix(Q, K, label_smoothing=0.0):
    """Targets as an (n, K) float64 matrix: one-hot rows for class labels
    ``(n,)``, then smoothed by ``label_smoothing``."""
    Q = np.asarray(Q)
    if Q.ndim == 1:
        Q = np.eye(K)[Q.astype(int)]
    return (1.0 - label_smoothing) * Q.astype(np.float64) + label_smoothing / K


def elastic_net_objective(coef, X, Q, l1, l2, sample_weight=None, fit_intercept=True,
                          label_smoothing=0.0):
    """``ref_objective`` plus ``l1 * ||W||_1`` (intercepts not penalized); float64."""
    d = np.shape(X)[1]
    loss, _ = ref_objective(coef, X, Q, sample_weight, l2, fit_intercept, label_smoothing)
    return loss + l1 * float(np.sum(np.abs(np.asarray(coef, np.float64)[:, :d])))


def elastic_net_reference(X, Q, K, l1, l2, sample_weight=None, fit_intercept=True,
                          label_smoothing=0.0, pgtol=1e-13):
    """Reference minimizer of the elastic-net softmax objective, independent of skcce.

    The L1 term is made smooth by splitting ``W = P - N`` with ``P, N >= 0``:
    ``min f(P - N) + l1 * sum(P + N)`` is a bound-constrained smooth problem,
    solved by scipy's L-BFGS-B on the NumPy loss of :func:`ref_objective`,
    to a projected-gradient tolerance of ``pgtol``, restarted until a run no
    longer lowers the objective.
    Dense NumPy only; meant for small problems.

    Returns
    -------
    coef : ndarray of shape (K, d + fit_intercept)
    """
    from scipy.optimize import minimize

    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    d = X.shape[1]
    n_w = K * d
    n_b = K if fit_intercept else 0

    def unpack(z):
        coef = np.zeros((K, d + int(fit_intercept)))
        coef[:, :d] = (z[:n_w] - z[n_w:2 * n_w]).reshape(K, d)
        if fit_intercept:
            coef[:, d] = z[2 * n_w:]
        return coef

    def fun(z):
        coef = unpack(z)
        loss, grad = ref_objective(coef, X, Q, sample_weight, l2, fit_intercept,
                                   label_smoothing)
        gw = grad[:, :d].ravel()
        value = loss + l1 * float(np.sum(z[:2 * n_w]))
        parts = [gw + l1, -gw + l1]
        if fit_intercept:
            parts.append(grad[:, d])
        return value, np.concatenate(parts)

    bounds = [(0.0, None)] * (2 * n_w) + [(None, None)] * n_b
    z, value = np.zeros(2 * n_w + n_b), np.inf
    # L-BFGS-B can stop at an iteration that makes no progress before the
    # optimum; restarting it (fresh curvature memory) goes on.
    for _ in range(20):
        result = minimize(fun, z, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": 100_000, "maxfun": 200_000, "ftol": 0.0,
                                   "gtol": pgtol})
        z, improvement = result.x, value - result.fun
        value = result.fun
        if improvement <= 1e-15 * abs(value):
            break
    return unpack(z)


def elastic_net_kkt(coef, X, Q, l1, l2, sample_weight=None, fit_intercept=True,
                    label_smoothing=0.0):
    """Optimality residuals of ``coef`` for the elastic-net softmax objective.

    With ``g`` the gradient of the smooth part (NumPy, :func:`ref_objective`):

    - at a zero coefficient, ``excess = max(|g| - l1, 0)`` (0 when optimal);
    - at a non-zero coefficient, ``stationarity = |g + l1 sign(w)|``;
    - at an intercept, ``|g|``.

    Returns
    -------
    residuals : dict
        ``zero_excess``, ``nonzero_stationarity``, ``intercept`` (arrays) and
        ``margin``: ``|g| / l1`` at the zero coefficients (how close each is
        to leaving 0; near 1 is a tie).
    """
    d = np.shape(X)[1]
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    _, grad = ref_objective(coef, X, Q, sample_weight, l2, fit_intercept, label_smoothing)
    W, G = np.asarray(coef, np.float64)[:, :d], grad[:, :d]
    zero = W == 0
    return {
        "zero_excess": np.maximum(np.abs(G[zero]) - l1, 0.0),
        "nonzero_stationarity": np.abs(G[~zero] + l1 * np.sign(W[~zero])),
        "intercept": np.abs(grad[:, d]) if fit_intercept else np.zeros(0),
        "margin": np.abs(G[zero]) / l1,
    }


def two_loop_direction(s, y, rho, order, gamma, g):
    """``-H g`` of L-BFGS by the textbook two-loop recursion, in plain NumPy.

    The pairs are ``(s[k], y[k])`` for k in ``order`` (oldest first),
    ``rho[k] = 1 / s[k]'y[k]``, and the initial inverse matrix ``gamma * I``.
    """
    q = -np.asarray(g, dtype=np.float64)
    alpha = {}
    for k in reversed(list(order)):
        alpha[k] = rho[k] * np.dot(s[k], q)
        q = q - alpha[k] * y[k]
    if len(order):
        q = q * float(gamma)
    for k in order:
        beta = rho[k] * np.dot(y[k], q)
        q = q + (alpha[k] - beta) * s[k]
    return q
