"""skcce._lbfgs against scipy's L-BFGS-B: the same iteration without bounds.

Every case runs scipy's L-BFGS-B with scikit-learn's options and
:func:`skcce._lbfgs.minimize_lbfgs` from the same start, and compares the
iteration counts, the evaluations, the stopping status and message, the
objective after each iteration and the solution.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy import optimize
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import skcce._fit
from _reference import two_loop_direction
from skcce import SoftmaxClassifier
from skcce._kernels.reductions import lbfgs_direction
from skcce._lbfgs import minimize_lbfgs

FTOL = 64 * np.finfo(float).eps


class _LogCoshQuadratic:
    """1/2 (x - c)' A (x - c) + sum(log cosh(x)): smooth, not quadratic."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        B = rng.normal(size=(n, n))
        self.A = B @ B.T / n + np.eye(n)
        self.c = rng.normal(size=n) * 3

    def __call__(self, x):
        r = x - self.c
        return 0.5 * r @ self.A @ r + np.sum(np.log(np.cosh(x))), self.A @ r + np.tanh(x)


def _rosenbrock(x):
    return optimize.rosen(x), optimize.rosen_der(x)


def _outcome(message):
    """The stopping reason of a message, in the words of any scipy version
    (before 1.15: "REL_REDUCTION_OF_F", "NO. of ITERATIONS",
    "ABNORMAL_TERMINATION_IN_LNSRCH")."""
    words = message.upper().replace("_", " ")
    for reason in ("GRADIENT", "REDUCTION OF F", "ITERATIONS", "EVALUATIONS", "ABNORMAL",
                   "STOPITERATION"):
        if reason in words:
            return reason
    raise AssertionError(f"unknown stopping message {message!r}")


def _both(fun, x0, max_iter=15000, gtol=1e-10, maxls=50):
    """scipy's run and ours: (result, objective after each iteration) each."""
    scipy_curve, our_curve = [], []

    def record(intermediate_result):
        scipy_curve.append(float(intermediate_result.fun))

    reference = optimize.minimize(
        fun, x0, method="L-BFGS-B", jac=True, callback=record,
        options={"maxiter": max_iter, "gtol": gtol, "ftol": FTOL, "maxls": maxls})
    ours = minimize_lbfgs(fun, x0, max_iter=max_iter, gtol=gtol, ftol=FTOL, maxls=maxls,
                          callback=lambda r: our_curve.append(r.fun))
    return reference, scipy_curve, ours, our_curve


@pytest.mark.parametrize("name, fun, x0", [
    ("log-cosh quadratic, 12", _LogCoshQuadratic(12), np.zeros(12)),
    ("log-cosh quadratic, 40", _LogCoshQuadratic(40, seed=3), np.ones(40)),
    ("Rosenbrock, 8", _rosenbrock, np.full(8, -1.2)),
    ("Rosenbrock, 20", _rosenbrock, np.linspace(-2.0, 2.0, 20)),
])
def test_same_iterations_as_scipy(name, fun, x0):
    reference, scipy_curve, ours, our_curve = _both(fun, x0)
    assert ours.nit == reference.nit
    assert ours.nfev == reference.nfev  # the same line search steps
    assert ours.status == reference.status == 0
    assert _outcome(ours.message) == _outcome(reference.message)
    # (Rosenbrock's valley amplifies rounding: up to 1e-6 relative late in
    # the run, on values 1e-9 of the start's)
    assert_allclose(our_curve, scipy_curve, rtol=0, atol=1e-8 * fun(x0)[0])
    assert_allclose(ours.x, reference.x, rtol=0, atol=1e-9)
    assert_allclose(ours.jac, fun(ours.x)[1])


def test_iteration_limit_as_scipy():
    fun = _LogCoshQuadratic(30, seed=5)
    reference, scipy_curve, ours, our_curve = _both(fun, np.zeros(30), max_iter=4)
    assert ours.nit == reference.nit == 4
    assert ours.status == reference.status == 1
    assert _outcome(ours.message) == _outcome(reference.message)
    assert_allclose(our_curve, scipy_curve, rtol=1e-12)
    assert_allclose(ours.x, reference.x, rtol=1e-10)


def test_converged_start_takes_no_iteration():
    fun = _LogCoshQuadratic(5)
    x_star = optimize.minimize(fun, np.zeros(5), jac=True, method="L-BFGS-B",
                               options={"gtol": 1e-12, "ftol": 0.0}).x
    reference, _, ours, our_curve = _both(fun, x_star, gtol=1e-6)
    assert ours.nit == reference.nit == 0
    assert ours.status == reference.status == 0
    assert our_curve == []
    assert np.array_equal(ours.x, x_star)


@pytest.mark.parametrize("limits", [{"max_iter": 1}, {"maxfun": 1}])
def test_callback_halt_at_a_limit_is_a_halt(limits):
    """scipy's minimize reports a halt by the callback as such (status 99),
    even on the iteration that reaches a limit."""
    fun = _LogCoshQuadratic(4)

    def halt(intermediate_result):
        raise StopIteration

    options = {"maxiter": limits.get("max_iter", 100), "maxfun": limits.get("maxfun", 15000)}
    reference = optimize.minimize(fun, np.zeros(4), method="L-BFGS-B", jac=True,
                                  callback=halt, options=options)
    ours = minimize_lbfgs(fun, np.zeros(4), max_iter=options["maxiter"], gtol=1e-12,
                          ftol=FTOL, maxfun=options["maxfun"], callback=halt)
    assert ours.status == reference.status == 99
    assert ours.nit == reference.nit == 1


def test_callback_halt_as_scipy():
    fun = _LogCoshQuadratic(10)
    calls = []

    def halt_at_three(intermediate_result):
        calls.append(intermediate_result.fun)
        if len(calls) == 3:
            raise StopIteration

    reference = optimize.minimize(fun, np.zeros(10), method="L-BFGS-B", jac=True,
                                  callback=halt_at_three, options={"gtol": 1e-12})
    scipy_calls = list(calls)
    calls.clear()
    ours = minimize_lbfgs(fun, np.zeros(10), max_iter=100, gtol=1e-12, ftol=FTOL,
                          callback=halt_at_three)
    assert len(calls) == len(scipy_calls) == 3
    assert ours.nit == reference.nit == 3
    assert ours.status == reference.status == 99
    assert _outcome(ours.message) == _outcome(reference.message)
    assert_allclose(ours.x, reference.x, rtol=1e-12)


def _wrong_gradient(x):
    f, g = _LogCoshQuadratic(6)(x)
    return f, -g


def _log_barrier(x):
    """-10 x - log(1 - x) summed: +inf at x = 1, NaN beyond."""
    with np.errstate(all="ignore"):
        return float(np.sum(-10.0 * x - np.log1p(-x))), -10.0 + 1.0 / (1.0 - x)


@pytest.mark.parametrize("fun, x0, maxls", [
    (_wrong_gradient, np.zeros(6), 50),  # the search shrinks to nothing
    # infinite and NaN trial values: the search falls back to its best step
    (_log_barrier, np.zeros(1), 50),
    (_log_barrier, np.zeros(3), 50),
    (_rosenbrock, np.full(8, -1.2), 1),  # searches fail: restart, then abnormal end
    (_rosenbrock, np.full(8, -1.2), 2),
])
def test_failing_searches_end_as_scipy(fun, x0, maxls):
    reference, scipy_curve, ours, our_curve = _both(fun, x0, maxls=maxls)
    assert ours.status == reference.status
    assert _outcome(ours.message) == _outcome(reference.message)
    assert (ours.nit, ours.nfev) == (reference.nit, reference.nfev)
    scale = max(abs(fun(x0)[0]), 1.0)
    assert_allclose(our_curve, scipy_curve, rtol=0, atol=1e-8 * scale)
    assert_allclose(ours.x, reference.x, rtol=0, atol=1e-9)


def test_abnormal_end_keeps_the_last_accepted_iterate():
    reference, scipy_curve, ours, our_curve = _both(_rosenbrock, np.full(8, -1.2), maxls=1)
    assert ours.status == 2 and ours.message.startswith("ABNORMAL")
    assert ours.fun == our_curve[-1]
    assert_allclose(ours.fun, _rosenbrock(ours.x)[0], rtol=1e-15)


def test_softmax_fit_on_the_large_model_path_is_logistic_regression(monkeypatch):
    """With the threshold at one parameter, the estimator's L-BFGS runs
    skcce._lbfgs: the fit is LogisticRegression's to rounding."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    reference = LogisticRegression(C=10.0, max_iter=500).fit(X, y)
    scipy_path = SoftmaxClassifier(C=10.0, max_iter=500).fit(X, y)
    monkeypatch.setattr(skcce._fit, "LARGE_MODEL_PARAMS", 1)
    seen = []
    monkeypatch.setattr(skcce._fit, "minimize_lbfgs",
                        lambda *a, **k: seen.append(1) or minimize_lbfgs(*a, **k))
    ours = SoftmaxClassifier(C=10.0, max_iter=500).fit(X, y)
    assert seen
    assert abs(int(ours.n_iter_[0]) - int(reference.n_iter_[0])) <= 3
    assert abs(int(ours.n_iter_[0]) - int(scipy_path.n_iter_[0])) <= 3
    assert_allclose(ours.predict_proba(X), reference.predict_proba(X), rtol=0, atol=1e-4)
    assert ours.final_gradient_norm_ <= ours.tol


def test_large_model_is_fitted_as_scipy_would(monkeypatch):
    """A model above the threshold (100,000+ parameters) stops as scipy's
    L-BFGS-B does after a few iterations, with the same objective."""
    rng = np.random.default_rng(0)
    n, d, K = 300, 25_000, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, K, size=n)
    assert K * (d + 1) >= skcce._fit.LARGE_MODEL_PARAMS
    with pytest.warns(ConvergenceWarning):
        ours = SoftmaxClassifier(max_iter=5, tol=1e-12).fit(X, y)
    monkeypatch.setattr(skcce._fit, "LARGE_MODEL_PARAMS", 10**12)
    with pytest.warns(ConvergenceWarning):
        scipy_path = SoftmaxClassifier(max_iter=5, tol=1e-12).fit(X, y)
    assert ours.n_iter_[0] == scipy_path.n_iter_[0] == 5
    assert_allclose(ours.coef_, scipy_path.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.intercept_, scipy_path.intercept_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n", [1, 7, 16384, 16384 * 3 + 5])
@pytest.mark.parametrize("order", [[], [0], [1, 0], [2, 0, 1]])
def test_direction_kernel_is_the_two_loop_recursion(n, order):
    """Against plain NumPy; bitwise the same for every thread count."""
    rng = np.random.default_rng(n + len(order))
    memory = 3
    s = rng.normal(size=(memory, n))
    y = s + 0.5 * rng.normal(size=(memory, n))
    rho = 1.0 / np.einsum("ij,ij->i", s, y)
    g = rng.normal(size=n)
    order = np.array(order, dtype=np.intp)
    expected = two_loop_direction(s, y, rho, order, 0.8, g)
    results = []
    for n_threads in (1, 2, 3):
        out = np.full(n, np.nan)
        lbfgs_direction(s, y, rho, order, 0.8, g, out, n_threads)
        results.append(out)
    assert_allclose(results[0], expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    assert all(np.array_equal(results[0], r) for r in results[1:])
    if len(order) == 0:
        assert np.array_equal(results[0], -g)


def test_direction_kernel_checks_its_arguments():
    s = y = np.ones((2, 5))
    rho = np.ones(2)
    with pytest.raises(ValueError, match="same length"):
        lbfgs_direction(s, y, rho, np.array([0], dtype=np.intp), 1.0, np.ones(4),
                        np.empty(4), 1)
    with pytest.raises(ValueError, match="slot outside"):
        lbfgs_direction(s, y, rho, np.array([2], dtype=np.intp), 1.0, np.ones(5),
                        np.empty(5), 1)


def test_fit_is_bitwise_the_same_for_every_thread_count():
    """On the large-model path the direction runs in threads: the fit does
    not depend on their number."""
    rng = np.random.default_rng(3)
    n, d, K = 400, 26_000, 4
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.01)
    y = rng.integers(0, K, size=n)
    X = sp.csr_matrix(X)
    coefs = []
    for n_jobs in (1, 2, 3):
        with pytest.warns(ConvergenceWarning):
            coefs.append(SoftmaxClassifier(max_iter=8, tol=1e-12, n_jobs=n_jobs).fit(X, y).coef_)
    assert all(np.array_equal(coefs[0], c) for c in coefs[1:])
