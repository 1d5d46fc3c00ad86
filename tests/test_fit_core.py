"""The fit core and the parameter layout, against SciPy and NumPy directly.

:func:`skcce._fit.run_lbfgs` must be exactly scipy's L-BFGS-B with
scikit-learn's options (the iterates, the iteration count, the convergence
message), and :class:`skcce._layout.CoefLayout` exactly the layout the
kernels and scipy share: the flat vector is ``coef.ravel(order="F")``.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import optimize
from sklearn.exceptions import ConvergenceWarning

from skcce._fit import run_lbfgs
from skcce._layout import CoefLayout


class _Quadratic:
    """f(x) = 1/2 (x - c)' A (x - c) + sum(log cosh(x)), in the optimizer's
    coordinates with the identity rescaling: a smooth, non-quadratic problem."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        B = rng.normal(size=(n, n))
        self.A = B @ B.T / n + np.eye(n)
        self.c = rng.normal(size=n) * 3
        self.evaluations = 0

    def loss_gradient(self, x):
        self.evaluations += 1
        r = x - self.c
        return (0.5 * r @ self.A @ r + np.sum(np.log(np.cosh(x))),
                self.A @ r + np.tanh(x))

    rescaled = False

    @staticmethod
    def to_internal(x):
        return x

    @staticmethod
    def from_internal(x):
        return x

    @staticmethod
    def model_gradient(grad):
        return grad


SKLEARN_OPTIONS = {"maxls": 50, "ftol": 64 * np.finfo(float).eps}


@pytest.mark.parametrize("max_iter, tol", [(200, 1e-10), (3, 1e-10), (200, 1e-2)])
def test_run_lbfgs_is_scipy_lbfgsb_with_scikit_learn_options(max_iter, tol):
    problem = _Quadratic(12)
    x0 = np.zeros(12)
    iterates, seen = [], []

    def record(intermediate_result):
        iterates.append((intermediate_result.x.copy(), float(intermediate_result.fun)))

    reference = optimize.minimize(
        problem.loss_gradient, x0, method="L-BFGS-B", jac=True,
        options={"maxiter": max_iter, "gtol": tol, **SKLEARN_OPTIONS}, callback=record)
    result = run_lbfgs(problem, x0, max_iter=max_iter, tol=tol,
                       on_iteration=lambda x: seen.append(x.copy()))
    assert_array_equal(result.params, reference.x)
    assert result.n_iter == min(reference.nit, max_iter)
    assert result.loss_curve == [fun for _, fun in iterates]
    assert len(seen) == len(iterates)
    for x, (expected, _) in zip(seen, iterates):
        assert_array_equal(x, expected)
    _, grad = problem.loss_gradient(reference.x)
    assert result.final_gradient_norm == np.max(np.abs(grad))
    assert (result.failure is None) == (reference.status == 0)


def test_run_lbfgs_reports_non_convergence_as_scikit_learn_does():
    result = run_lbfgs(_Quadratic(12), np.zeros(12), max_iter=2, tol=1e-12)
    assert result.n_iter == 2
    assert "lbfgs failed to converge after 2 iteration(s)" in result.failure
    assert "Increase the number of iterations" in result.failure
    assert "max_iter=2" in result.failure
    with pytest.warns(ConvergenceWarning, match="Refit: lbfgs failed to converge"):
        result.warn_if_not_converged(prefix="Refit: ")


def test_run_lbfgs_rescaled_coordinates():
    """The problem is solved in its own coordinates (here x = 4 v); the result,
    the hook and the start are in the model's, and ``tol`` holds for the
    gradient in both coordinates at the solution."""
    base = _Quadratic(6, seed=1)

    class Rescaled:
        rescaled = True

        def loss_gradient(self, v):
            loss, grad = base.loss_gradient(4.0 * v)
            return loss, 4.0 * grad

        @staticmethod
        def to_internal(x):
            return x / 4.0

        @staticmethod
        def from_internal(v):
            return 4.0 * v

        @staticmethod
        def model_gradient(grad):
            return grad / 4.0

    tol = 1e-6
    seen = []
    result = run_lbfgs(Rescaled(), np.full(6, 0.5), max_iter=100, tol=tol,
                       on_iteration=seen.append)
    assert result.failure is None
    assert_array_equal(seen[-1], result.params)
    _, grad = base.loss_gradient(result.params)
    assert np.max(np.abs(grad)) <= tol and np.max(np.abs(4.0 * grad)) <= tol
    assert result.final_gradient_norm == np.max(np.abs(grad))
    reference = optimize.minimize(base.loss_gradient, np.zeros(6), method="L-BFGS-B",
                                  jac=True, options={"gtol": 1e-12, "ftol": 1e-15})
    np.testing.assert_allclose(result.params, reference.x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n_classes, n_features, fit_intercept",
                         [(4, 3, True), (4, 3, False), (2, 5, True), (3, 0, True)])
def test_layout_is_the_fortran_ravel_of_the_coefficient_matrix(n_classes, n_features,
                                                               fit_intercept):
    rng = np.random.default_rng(0)
    n_dof = n_features + fit_intercept
    coef = rng.normal(size=(n_classes, n_dof))
    layout = CoefLayout(n_classes, n_features, fit_intercept)
    flat = layout.flatten(coef)
    assert layout.n_params == coef.size
    assert_array_equal(flat, coef.ravel(order="F"))
    assert_array_equal(layout.matrix(flat), coef)
    assert_array_equal(layout.transposed(flat), coef.T)
    assert_array_equal(layout.weights_t(flat), coef[:, :n_features].T)
    if fit_intercept:
        assert_array_equal(layout.intercept(flat), coef[:, -1])
    else:
        assert layout.intercept(flat) is None
    # Views, not copies: the kernels write gradients through them.
    if n_features:
        assert np.shares_memory(layout.weights_t(flat), flat)
    assert_array_equal(layout.zeros(), np.zeros(coef.size))


def test_layout_model_attributes_and_warm_start():
    rng = np.random.default_rng(1)
    classes = np.array(["a", "b", "c"])
    layout = CoefLayout(3, 4, True)
    coef = rng.normal(size=(3, 5))
    fitted = layout.model_attributes(layout.flatten(coef), classes, np.float32)
    assert fitted["coef_"].dtype == np.float32 and fitted["coef_"].flags.c_contiguous
    assert_array_equal(fitted["coef_"], coef[:, :4].astype(np.float32))
    assert_array_equal(fitted["intercept_"], coef[:, 4].astype(np.float32))
    assert fitted["classes_"] is classes
    restored = layout.from_model(coef[:, :4], coef[:, 4])
    assert_array_equal(restored, coef.ravel(order="F"))


def test_layout_binary_keeps_the_class_one_row_of_the_symmetric_solution():
    w, c = np.array([0.5, -1.0, 2.0]), 0.25
    layout = CoefLayout(2, 3, True)
    symmetric = np.array([np.append(-w, -c), np.append(w, c)])
    fitted = layout.model_attributes(layout.flatten(symmetric), np.array([0, 1]),
                                     np.float64)
    assert_array_equal(fitted["coef_"], [w])
    assert_array_equal(fitted["intercept_"], [c])
    assert_array_equal(layout.from_model(fitted["coef_"], fitted["intercept_"]),
                       symmetric.ravel(order="F"))


def test_layout_prior_start_is_the_centered_log_prior():
    prior = np.array([0.5, 0.3, 0.2])
    layout = CoefLayout(3, 2, True)
    coef = layout.matrix(layout.from_prior(prior))
    assert_array_equal(coef[:, :2], 0.0)
    np.testing.assert_allclose(coef[:, 2], np.log(prior) - np.log(prior).mean(),
                               rtol=1e-15)
    assert_array_equal(CoefLayout(3, 2, False).from_prior(prior), 0.0)
