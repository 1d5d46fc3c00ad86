"""L1 and elastic-net penalties (``l1_ratio > 0``), fitted by OWL-QN.

The references are independent of skcce: scikit-learn's saga solver, and a
NumPy/SciPy solver of the same objective (``_reference.elastic_net_reference``:
L-BFGS-B on the split ``W = P - N``, P, N >= 0). Optimality is also checked
directly through the KKT conditions, with a NumPy gradient.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize_scalar
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from _reference import (REFERENCE_SKLEARN, sklearn_at_least, elastic_net_kkt, elastic_net_objective, elastic_net_reference,
                        full_coef, ref_objective)
from skcce import SoftmaxClassifier, SoftmaxClassifierCV
from skcce._objective import penalty_minimizing_shifts
from skcce._owlqn import minimize_owlqn, pseudo_gradient

L1_RATIOS = (0.1, 0.5, 1.0)
TIGHT = dict(tol=1e-10, max_iter=10_000)


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _synthetic_dense(n_redundant=2):
    """Two of the features are linear combinations of others (collinear)."""
    X, y = make_classification(n_samples=300, n_features=20, n_informative=6,
                               n_redundant=n_redundant, n_classes=4, random_state=0)
    return X, y


def _synthetic_sparse():
    rng = np.random.default_rng(1)
    X = sp.random(300, 60, density=0.15, format="csr", random_state=2,
                  data_rvs=lambda n: rng.normal(size=n))
    W = rng.normal(size=(4, 60)) * (rng.random((4, 60)) < 0.2) * 3
    logits = X @ W.T
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return X, y


PROBLEMS = {
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: _standardized(load_wine),
    "digits": lambda: (lambda X, y: (X[:400], y[:400]))(*_standardized(load_digits)),
    "dense": _synthetic_dense,
    "sparse": _synthetic_sparse,
}


def _saga(l1_ratio, **params):
    """``LogisticRegression(l1_ratio, solver="saga")``; before scikit-learn 1.8,
    ``l1_ratio`` counts only with ``penalty="elasticnet"``."""
    if not sklearn_at_least("1.8"):
        params["penalty"] = "elasticnet"
    return LogisticRegression(l1_ratio=l1_ratio, solver="saga", **params)


def _strengths(C, l1_ratio, n):
    return l1_ratio / (C * n), (1 - l1_ratio) / (C * n)


@pytest.fixture(scope="module")
def reference_solutions():
    """Reference minimizers, computed once per (problem, l1_ratio)."""
    cache = {}

    def get(name, l1_ratio, C=1.0):
        key = (name, l1_ratio, C)
        if key not in cache:
            X, y = PROBLEMS[name]()
            l1, l2 = _strengths(C, l1_ratio, X.shape[0])
            cache[key] = elastic_net_reference(X, y, len(np.unique(y)), l1, l2)
        return cache[key]

    return get


def _assert_kkt(coef, X, y, l1, l2, atol, **kwargs):
    r = elastic_net_kkt(coef, X, y, l1, l2, **kwargs)
    assert np.all(r["zero_excess"] <= atol), r["zero_excess"].max()
    assert np.all(r["nonzero_stationarity"] <= atol), r["nonzero_stationarity"].max()
    assert np.all(r["intercept"] <= atol), r["intercept"].max()


def _clear_pattern(coef, X, y, l1, l2, **kwargs):
    """Zero pattern of ``coef`` (W part) and the entries that are not near a tie.

    An entry is near a tie when it is 0 with |gradient| within 1e-3 of l1, or
    non-zero with magnitude below 1e-6.
    """
    d = np.shape(X)[1]
    W = coef[:, :d]
    r = elastic_net_kkt(coef, X, y, l1, l2, **kwargs)
    clear = np.ones(W.shape, dtype=bool)
    zero = W == 0
    margin = np.zeros(W.shape)
    margin[zero] = r["margin"]
    clear[zero] = margin[zero] < 1 - 1e-3
    clear[~zero] = np.abs(W[~zero]) > 1e-6
    return zero, clear


@pytest.mark.parametrize("l1_ratio", L1_RATIOS)
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_optimum_matches_reference_solver(name, l1_ratio, reference_solutions):
    """The objective at convergence is within 1e-9 (relative) of an independent
    solver's, the KKT conditions hold, and the zero pattern is the reference's
    away from ties."""
    X, y = PROBLEMS[name]()
    l1, l2 = _strengths(1.0, l1_ratio, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=l1_ratio, **TIGHT).fit(X, y)
    coef = full_coef(clf)
    reference = reference_solutions(name, l1_ratio)
    f_skcce = elastic_net_objective(coef, X.toarray() if sp.issparse(X) else X, y, l1, l2)
    f_ref = elastic_net_objective(reference, X.toarray() if sp.issparse(X) else X, y, l1, l2)
    assert f_skcce <= f_ref * (1 + 1e-9)
    # The optimizer's stopping test is on coefficients rescaled per feature
    # (to unit curvature): in the raw coefficients the residuals are a
    # feature's scale larger.
    _assert_kkt(coef, X, y, l1, l2, atol=1e-5)
    zero, clear = _clear_pattern(coef, X, y, l1, l2)
    zero_ref, clear_ref = _clear_pattern(reference, X, y, l1, l2)
    both = clear & clear_ref
    assert both.mean() > 0.9
    assert_array_equal(zero[both], zero_ref[both])
    if l1_ratio == 1.0 and name != "digits":
        assert zero.any()  # the problems are chosen so that L1 zeroes something


@pytest.mark.parametrize("l1_ratio", L1_RATIOS)
@pytest.mark.parametrize("name", ["iris", "wine"])
def test_optimum_matches_saga(name, l1_ratio):
    """Same objective (1e-8 relative) and zero pattern as LogisticRegression's saga."""
    X, y = PROBLEMS[name]()
    l1, l2 = _strengths(1.0, l1_ratio, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=l1_ratio, **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        saga = _saga(l1_ratio, tol=1e-10,
                                  max_iter=100_000).fit(X, y)
    saga_coef = np.hstack([saga.coef_, saga.intercept_[:, None]])
    f_skcce = elastic_net_objective(full_coef(clf), X, y, l1, l2)
    f_saga = elastic_net_objective(saga_coef, X, y, l1, l2)
    assert abs(f_skcce - f_saga) <= 1e-8 * f_saga
    zero, clear = _clear_pattern(full_coef(clf), X, y, l1, l2)
    zero_saga = saga.coef_ == 0
    assert_array_equal(zero[clear], zero_saga[clear])


@pytest.mark.parametrize(
    "variant", ["float32", "csr_float32", "soft", "smoothing", "sample_weight",
                "class_weight", "no_intercept"])
def test_variants_reach_the_reference_optimum(variant):
    """Float32 and CSR data, soft targets, label smoothing, weights, no intercept:
    the KKT conditions and the reference objective."""
    X, y = _synthetic_dense(n_redundant=0)
    K, n = 4, X.shape[0]
    rng = np.random.default_rng(3)
    kwargs, fit_kwargs, ref = {}, {}, {}
    targets = y
    X_fit = X
    if variant == "float32":
        X_fit = X = X.astype(np.float32).astype(np.float64)
        X_fit = X.astype(np.float32)
    elif variant == "csr_float32":
        X = X * (rng.random(X.shape) < 0.4)
        X = X.astype(np.float32).astype(np.float64)
        X_fit = sp.csr_matrix(X.astype(np.float32))
    elif variant == "soft":
        targets = 0.7 * np.eye(K)[y] + 0.3 * rng.dirichlet(np.ones(K), size=n)
    elif variant == "smoothing":
        kwargs["label_smoothing"] = ref["label_smoothing"] = 0.1
    elif variant == "sample_weight":
        fit_kwargs["sample_weight"] = ref["sample_weight"] = rng.uniform(0.2, 3.0, n)
    elif variant == "class_weight":
        kwargs["class_weight"] = {0: 3.0, 2: 0.5}
        ref["sample_weight"] = np.select([y == 0, y == 2], [3.0, 0.5], 1.0)
    elif variant == "no_intercept":
        kwargs["fit_intercept"] = ref["fit_intercept"] = False
    weight_sum = n if "sample_weight" not in ref else ref["sample_weight"].sum()
    l1, l2 = _strengths(1.0, 0.5, weight_sum)
    clf = SoftmaxClassifier(l1_ratio=0.5, **TIGHT, **kwargs).fit(X_fit, targets, **fit_kwargs)
    coef = full_coef(clf)
    # float32 coefficients: the KKT residuals carry their rounding.
    atol = 1e-6 if clf.coef_.dtype == np.float64 else 1e-4
    _assert_kkt(coef, X, targets, l1, l2, atol=atol, **ref)
    reference = elastic_net_reference(X, targets, K, l1, l2, **ref)
    f_skcce = elastic_net_objective(coef, X, targets, l1, l2, **ref)
    f_ref = elastic_net_objective(reference, X, targets, l1, l2, **ref)
    rtol = 1e-9 if clf.coef_.dtype == np.float64 else 1e-6
    assert f_skcce <= f_ref * (1 + rtol)
    assert np.any(clf.coef_ == 0)


def test_badly_scaled_features():
    """With feature scales over 10 orders of magnitude the optimizer works on
    rescaled coefficients (and per-coefficient L1 weights); the fit is still the
    objective's optimum. The KKT residuals are measured in the coordinates of
    the standardized features (V_j = W_j * scale_j), where they are comparable."""
    X, y = _synthetic_dense()
    X = StandardScaler().fit_transform(X)
    scale = np.logspace(-5, 5, X.shape[1])
    X_bad = X * scale
    l1, l2 = _strengths(1.0, 0.5, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=0.5, **TIGHT).fit(X_bad, y)
    coef = full_coef(clf)
    W = coef[:, :-1]
    _, grad = ref_objective(coef, X_bad, y, l2=l2)
    G = grad[:, :-1]
    # d/dV_j = (d/dW_j) / scale_j, and the L1 weight of V_j is l1 / scale_j.
    zero = W == 0
    excess = np.maximum(np.abs(G) - l1, 0.0) / scale
    stationarity = np.abs(G + l1 * np.sign(W)) / scale
    assert zero.any() and (~zero).any()
    assert np.all(excess[zero] <= 1e-6), excess[zero].max()
    assert np.all(stationarity[~zero] <= 1e-6), stationarity[~zero].max()
    assert np.all(np.abs(grad[:, -1]) <= 1e-6)


def test_two_classes_match_binary_logistic_regression_with_l1():
    """Two classes, l1_ratio=1: the L1 penalty on both rows of W = [-w, w] is
    ||2w||_1, so the probabilities are those of the binary LogisticRegression(C)."""
    X, y = make_classification(n_samples=200, n_features=8, n_informative=3,
                               random_state=4)
    clf = SoftmaxClassifier(l1_ratio=1.0, C=0.5, **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = _saga(1.0, C=0.5, tol=1e-12,
                                 max_iter=100_000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert_array_equal(clf.coef_ == 0, ref.coef_ == 0)
    assert_allclose(2 * clf.coef_, ref.coef_, atol=1e-5)


def test_two_class_solution_is_symmetric():
    """The fitted two-class model is W = [-w, w] (coef_ holds w): the KKT
    conditions hold for that full matrix."""
    X, y = make_classification(n_samples=200, n_features=8, random_state=5)
    l1, l2 = _strengths(1.0, 0.5, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=0.5, **TIGHT).fit(X, y)
    _assert_kkt(full_coef(clf), X, y, l1, l2, atol=1e-6)


def test_stronger_penalty_gives_sparser_models():
    X, y = _standardized(load_digits)
    nonzero = [np.count_nonzero(SoftmaxClassifier(C=C, l1_ratio=1.0, max_iter=500)
                                .fit(X, y).coef_) for C in (0.01, 0.1, 1.0)]
    assert nonzero[0] < nonzero[1] < nonzero[2]
    # A strong enough penalty zeroes every coefficient; the intercepts are then
    # the log of the class frequencies (centered).
    clf = SoftmaxClassifier(C=1e-4, l1_ratio=1.0, **TIGHT).fit(X, y)
    assert not np.any(clf.coef_)
    prior = np.log(np.bincount(y) / len(y))
    assert_allclose(clf.intercept_, prior - prior.mean(), atol=1e-6)


@pytest.mark.parametrize("l1_ratio", [-0.1, 1.5, "0.5", None])
def test_invalid_l1_ratio(l1_ratio):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(InvalidParameterError, match="l1_ratio"):
        SoftmaxClassifier(l1_ratio=l1_ratio).fit(X, y)


def test_C_inf_ignores_l1_ratio():
    """C=np.inf means no penalty whatever l1_ratio, as in LogisticRegression."""
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifier(C=np.inf, l1_ratio=0.7, tol=1e-8, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=np.inf, l1_ratio=0.7, tol=1e-8, max_iter=2000).fit(X, y)
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    assert np.all(clf.coef_ != 0)


def test_loss_curve_is_the_objective():
    """loss_curve_ holds the whole objective (L1 term included) after each
    iteration: it does not increase, and its last value is the NumPy objective
    at the fitted model."""
    X, y = _standardized(load_wine)
    l1, l2 = _strengths(1.0, 0.5, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=0.5, **TIGHT).fit(X, y)
    curve = np.asarray(clf.loss_curve_)
    assert len(curve) == clf.n_iter_[0]
    assert np.all(np.diff(curve) <= 0)
    assert_allclose(curve[-1], elastic_net_objective(full_coef(clf), X, y, l1, l2),
                    rtol=1e-12)


def test_final_gradient_norm_is_the_pseudo_gradient():
    """final_gradient_norm_ is max |minimum-norm subgradient| at the solution, in
    the optimizer's coordinates: with an L1 term, coefficients rescaled per
    feature j by c_j, the power of two nearest sqrt(0.25 / (0.25 mean(x_j^2) + l2))
    in the log scale (the intercepts by 1), where the subgradient is c_j times
    the raw one. Computed here with NumPy."""
    X, y = load_wine(return_X_y=True)
    l1, l2 = _strengths(1.0, 0.5, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=0.5, tol=1e-6, max_iter=5000).fit(X, y)
    coef = full_coef(clf)
    _, grad = ref_objective(coef, X, y, l2=l2)
    W, G = coef[:, :-1], grad[:, :-1]
    pg = np.where(W != 0, G + l1 * np.sign(W), np.sign(G) * np.maximum(np.abs(G) - l1, 0))
    c = 2.0 ** np.round(np.log2(np.sqrt(0.25 / (0.25 * np.mean(X ** 2, axis=0) + l2))))
    expected = max(np.max(np.abs(pg) * c), np.max(np.abs(grad[:, -1])))
    assert_allclose(clf.final_gradient_norm_, expected, rtol=1e-6)
    assert clf.final_gradient_norm_ <= 1e-6


def test_max_iter_reached_warns():
    X, y = _standardized(load_digits)
    with pytest.warns(ConvergenceWarning, match="OWL-QN failed to converge after 3 "):
        clf = SoftmaxClassifier(l1_ratio=0.5, max_iter=3).fit(X, y)
    assert clf.n_iter_[0] == 3 and len(clf.loss_curve_) == 3


def test_warm_start_continues_to_the_same_optimum():
    """A fit stopped early and continued with warm_start reaches the optimum of
    a single tight fit (checked through the KKT conditions)."""
    X, y = _standardized(load_wine)
    l1, l2 = _strengths(1.0, 1.0, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=1.0, warm_start=True, max_iter=5, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    first = clf.n_iter_[0]
    clf.set_params(max_iter=10_000).fit(X, y)
    _assert_kkt(full_coef(clf), X, y, l1, l2, atol=1e-6)
    # Continuing from a converged model takes few iterations.
    n_iter = clf.fit(X, y).n_iter_[0]
    assert first == 5 and n_iter <= 2


def test_reproducible_across_n_jobs():
    """Bitwise the same model for every thread count (the driver is sequential
    NumPy over a deterministic kernel)."""
    X, y = _synthetic_sparse()
    fits = [SoftmaxClassifier(l1_ratio=0.5, n_jobs=n_jobs, tol=1e-8, max_iter=500).fit(X, y)
            for n_jobs in (1, 2, 3)]
    for other in fits[1:]:
        assert_array_equal(other.coef_, fits[0].coef_)
        assert_array_equal(other.intercept_, fits[0].intercept_)
        assert other.loss_curve_ == fits[0].loss_curve_


def test_callbacks_see_every_iteration():
    """scikit-learn callbacks (>= 1.9): one sub-task per OWL-QN iteration, each
    with its intermediate model."""
    callback = pytest.importorskip("sklearn.callback")
    X, y = _standardized(load_wine)
    monitor = callback.ScoringMonitor(scoring="neg_log_loss")
    clf = SoftmaxClassifier(l1_ratio=1.0, C=1e6, max_iter=200).set_callbacks(monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    rows = [row for row in monitor.get_logs().data if row["task_name"] == "lbfgs-iter"]
    assert len(rows) == clf.n_iter_[0]
    # The scored models are the iterates whose objective loss_curve_ records:
    # the two differ by the penalty, below 1e-6 at C=1e6.
    assert_allclose([-row["neg_log_loss"] for row in rows], clf.loss_curve_, rtol=0, atol=1e-6)
    assert np.all(np.array(clf.loss_curve_) >= [-row["neg_log_loss"] for row in rows])


def test_verbose_prints_pseudo_gradient(capsys):
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifier(l1_ratio=0.5, verbose=1, max_iter=500).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iter")]
    assert len(lines) == clf.n_iter_[0]
    assert "max|pg|" in lines[0]


def test_dask_input_reaches_the_reference_optimum():
    """The Dask data term goes through the same OWL-QN driver."""
    da = pytest.importorskip("dask.array")
    X, y = _synthetic_dense()
    l1, l2 = _strengths(1.0, 0.5, X.shape[0])
    clf = SoftmaxClassifier(l1_ratio=0.5, **TIGHT).fit(
        da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100))
    _assert_kkt(full_coef(clf), X, y, l1, l2, atol=1e-6)


# ----------------------------------------------------------------------------
# Working sets: many features, few of them in the model


def _wide_sparse(n_samples=300, n_features=1500, n_classes=3, seed=7):
    """Sparse data where a few dozen of thousands of features carry the classes."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=0.02, format="csr", random_state=seed,
                  data_rvs=lambda n: rng.uniform(0.5, 1.5, size=n))
    W = np.zeros((n_classes, n_features))
    informative = rng.choice(n_features, size=40, replace=False)
    W[:, informative] = rng.normal(size=(n_classes, 40)) * 6
    logits = X @ W.T
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return X, y


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("l1_ratio, last_set_only", [(0.5, False), (1.0, False), (1.0, True)])
def test_working_sets_reach_the_reference_optimum(l1_ratio, dense, last_set_only,
                                                  monkeypatch):
    """With thousands of features OWL-QN runs on sets of features, each solution
    checked on all of them: the result is the whole problem's optimum (reference
    solver, KKT conditions), and the sets were used. ``last_set_only``: only a
    set that takes in every offender is allowed."""
    import skcce._fit
    from skcce._objective import CrossEntropyObjective

    X, y = _wide_sparse()
    if dense:
        X = X.toarray()
    if last_set_only:
        # A first set large enough to take in every offender, and costing
        # more than a set with offenders left outside may.
        monkeypatch.setattr(skcce._fit, "WORKING_SET_MAX_COST", 0.0)
        monkeypatch.setattr(skcce._fit, "WORKING_SET_INITIAL", X.shape[1] // 3)
    l1, l2 = _strengths(0.5, l1_ratio, X.shape[0])
    sizes = []
    restricted = CrossEntropyObjective.restricted

    def spy(self, features):
        sizes.append(len(features))
        return restricted(self, features)

    monkeypatch.setattr(CrossEntropyObjective, "restricted", spy)
    clf = SoftmaxClassifier(C=0.5, l1_ratio=l1_ratio, **TIGHT).fit(X, y)
    assert sizes and max(sizes) < X.shape[1] / 2
    coef = full_coef(clf)
    _assert_kkt(coef, X, y, l1, l2, atol=1e-5)
    reference = elastic_net_reference(X, y, 3, l1, l2)
    X = X if dense else X.toarray()
    assert elastic_net_objective(coef, X, y, l1, l2) <= (
        elastic_net_objective(reference, X, y, l1, l2) * (1 + 1e-9))
    assert_allclose(clf.loss_curve_[-1], elastic_net_objective(coef, X, y, l1, l2),
                    rtol=1e-12)
    assert len(clf.loss_curve_) == clf.n_iter_[0]


def test_working_sets_reproducible_and_warm_started():
    """Bitwise the same model for every n_jobs; a warm start from the solution
    starts at the optimum."""
    X, y = _wide_sparse(seed=8)
    fits = [SoftmaxClassifier(l1_ratio=1.0, n_jobs=n_jobs, tol=1e-8, max_iter=1000).fit(X, y)
            for n_jobs in (1, 2)]
    assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    cold_iterations, cold_objective = fits[0].n_iter_[0], fits[0].loss_curve_[-1]
    clf = fits[0].set_params(warm_start=True).fit(X, y)
    # Continuing from the solution: a few iterations, no higher objective.
    assert clf.n_iter_[0] <= cold_iterations / 10
    assert cold_objective * (1 - 1e-12) <= clf.loss_curve_[-1] <= cold_objective


def test_working_sets_respect_max_iter():
    X, y = _wide_sparse(seed=9)
    with pytest.warns(ConvergenceWarning, match="OWL-QN failed to converge after 4 "):
        clf = SoftmaxClassifier(l1_ratio=1.0, max_iter=4, tol=1e-12).fit(X, y)
    assert clf.n_iter_[0] == 4 and len(clf.loss_curve_) == 4


# ----------------------------------------------------------------------------
# The building blocks, against closed forms and brute force


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("K", [2, 3, 4, 7])
def test_penalty_minimizing_shifts_brute_force(K, l2):
    """Per row, the shift minimizing l1 |v + t| + l2/2 (v + t)^2 summed over the
    row, against a bounded scalar minimization; rows with ties and zeros too."""
    rng = np.random.default_rng(K)
    values = rng.normal(size=(40, K))
    values[:5] = 0.0
    values[5:10, : K // 2 + 1] = 0.7  # a tie at the median
    values[10:15] = np.round(values[10:15])
    l1 = 0.25
    shifts = penalty_minimizing_shifts(values, l1, l2)

    def penalty(v, t):
        return l1 * np.sum(np.abs(v + t)) + 0.5 * l2 * np.sum((v + t) ** 2)

    for v, t in zip(values, shifts):
        best = minimize_scalar(lambda t: penalty(v, t), bounds=(-5, 5), method="bounded",
                               options={"xatol": 1e-12})
        assert penalty(v, t) <= best.fun + 1e-12
        if l2 > 0:  # unique minimizer
            assert_allclose(t, best.x, atol=1e-6)
    if l2 == 0:
        # Without L2 part, the minimizer nearest 0 (0 itself when optimal).
        assert_array_equal(shifts[:5], 0.0)


def test_owlqn_separable_quadratic_closed_form():
    """f(x) = sum a_i (x_i - c_i)^2 / 2 + w_i |x_i| has the solution
    soft_threshold(c_i, w_i / a_i); entries with weight 0 are not penalized."""
    rng = np.random.default_rng(0)
    n = 50
    a = rng.uniform(0.5, 5.0, n)
    c = rng.normal(size=n)
    w = rng.uniform(0.0, 1.0, n)
    w[:5] = 0.0

    def fun(x):
        return 0.5 * float(np.sum(a * (x - c) ** 2)), a * (x - c)

    result = minimize_owlqn(fun, np.zeros(n), w, max_iter=1000, tol=1e-12, ftol=0.0)
    expected = np.sign(c) * np.maximum(np.abs(c) - w / a, 0.0)
    assert result.status == 0
    # The line search compares objective values (~16 here): x is resolved to
    # about sqrt(machine epsilon) of its scale.
    assert_allclose(result.x, expected, atol=1e-6)
    assert_array_equal(result.x == 0, expected == 0)


def test_pseudo_gradient_is_the_minimum_norm_subgradient():
    x = np.array([1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    g = np.array([0.5, 0.5, 2.0, -2.0, 0.5, 1.0, 0.0])
    w = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # Subdifferential at 0: [g - w, g + w]; the element of least magnitude.
    expected = np.array([1.5, -0.5, 1.0, -1.0, 0.0, 0.0, 0.0])
    assert_array_equal(pseudo_gradient(x, g, w), expected)


# ----------------------------------------------------------------------------
# SoftmaxClassifierCV over a (C, l1_ratio) grid


@pytest.fixture(scope="module")
def wine_cv():
    X, y = _standardized(load_wine)
    Cs, l1_ratios = [0.05, 0.5, 5.0], [0.2, 0.6, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    clf = SoftmaxClassifierCV(Cs=Cs, l1_ratios=l1_ratios, cv=cv, scoring="neg_log_loss",
                              **TIGHT).fit(X, y)
    return X, y, Cs, l1_ratios, cv, clf


@pytest.mark.skipif(not sklearn_at_least(REFERENCE_SKLEARN),
                    reason="written for LogisticRegressionCV's attributes of scikit-learn >= 1.9")
def test_cv_attributes_are_shaped_like_logistic_regression_cv(wine_cv):
    """The shapes of LogisticRegressionCV(l1_ratios=..., use_legacy_attributes=False)."""
    X, y, Cs, l1_ratios, cv, clf = wine_cv
    ref = LogisticRegressionCV(Cs=Cs, l1_ratios=l1_ratios, cv=cv, solver="saga",
                               max_iter=5, use_legacy_attributes=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(X, y)
    for name in ("scores_", "coefs_paths_", "n_iter_", "Cs_", "l1_ratios_", "coef_",
                 "intercept_"):
        assert np.shape(getattr(clf, name)) == np.shape(getattr(ref, name)), name
    assert isinstance(clf.C_, float) and isinstance(clf.l1_ratio_, float)
    assert_array_equal(clf.l1_ratios_, l1_ratios)


def test_cv_every_path_point_is_optimal(wine_cv):
    """Each (fold, l1_ratio, C) of coefs_paths_ satisfies the KKT conditions of
    its training fold's objective (NumPy gradient)."""
    X, y, Cs, l1_ratios, cv, clf = wine_cv
    for f, (train, _) in enumerate(cv.split(X, y)):
        for i, l1_ratio in enumerate(l1_ratios):
            for j, C in enumerate(Cs):
                l1, l2 = _strengths(C, l1_ratio, len(train))
                _assert_kkt(clf.coefs_paths_[f, i, j], X[train], y[train], l1, l2, atol=1e-6)


def test_cv_scores_and_selection(wine_cv):
    """scores_ is the test-fold neg_log_loss of each path model (scikit-learn's
    log_loss), the selected (C, l1_ratio) maximizes the mean score, and the
    refit is the optimum on all the data at that point."""
    X, y, Cs, l1_ratios, cv, clf = wine_cv
    for f, (_, test) in enumerate(cv.split(X, y)):
        for i in range(len(l1_ratios)):
            for j in range(len(Cs)):
                coef = clf.coefs_paths_[f, i, j]
                logits = X[test] @ coef[:, :-1].T + coef[:, -1]
                proba = np.exp(logits - logits.max(axis=1, keepdims=True))
                proba /= proba.sum(axis=1, keepdims=True)
                assert_allclose(clf.scores_[f, i, j], -log_loss(y[test], proba), rtol=1e-9)
    mean = clf.scores_.mean(axis=0)
    i, j = np.unravel_index(np.argmax(mean), mean.shape)
    assert (clf.l1_ratio_, clf.C_) == (l1_ratios[i], Cs[j])
    l1, l2 = _strengths(clf.C_, clf.l1_ratio_, X.shape[0])
    _assert_kkt(full_coef(clf), X, y, l1, l2, atol=1e-6)


@pytest.mark.skipif(not sklearn_at_least(REFERENCE_SKLEARN),
                    reason="written for LogisticRegressionCV's attributes of scikit-learn >= 1.9")
def test_cv_matches_logistic_regression_cv():
    """Same scores and selection as LogisticRegressionCV with saga on a small,
    well-conditioned problem where saga converges."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Cs, l1_ratios = [0.1, 1.0, 10.0], [0.25, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    ours = SoftmaxClassifierCV(Cs=Cs, l1_ratios=l1_ratios, cv=cv, scoring="neg_log_loss",
                               **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegressionCV(Cs=Cs, l1_ratios=l1_ratios, cv=cv, solver="saga",
                                   scoring="neg_log_loss", tol=1e-10, max_iter=100_000,
                                   use_legacy_attributes=False).fit(X, y)
    assert_allclose(ours.scores_, ref.scores_, atol=1e-6)
    assert (ours.C_, ours.l1_ratio_) == (ref.C_, ref.l1_ratio_)
    # The weakly penalized end of the path is flat (coefficients agree to
    # ~1e-4 there): compare each path point's training objective.
    for f, (train, _) in enumerate(cv.split(X, y)):
        for i, l1_ratio in enumerate(l1_ratios):
            for j, C in enumerate(Cs):
                l1, l2 = _strengths(C, l1_ratio, len(train))
                f_ours = elastic_net_objective(ours.coefs_paths_[f, i, j], X[train],
                                               y[train], l1, l2)
                f_saga = elastic_net_objective(ref.coefs_paths_[f, i, j], X[train],
                                               y[train], l1, l2)
                assert abs(f_ours - f_saga) <= 1e-9 * f_saga


def test_cv_refit_false_averages_each_folds_best():
    X, y = _standardized(load_wine)
    Cs, l1_ratios = [0.05, 1.0], [0.5, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=2)
    clf = SoftmaxClassifierCV(Cs=Cs, l1_ratios=l1_ratios, cv=cv, refit=False,
                              scoring="neg_log_loss").fit(X, y)
    best = [np.unravel_index(np.argmax(s.T), s.T.shape)[::-1] for s in clf.scores_]
    coef = np.mean([clf.coefs_paths_[f, i, j] for f, (i, j) in enumerate(best)], axis=0)
    assert_allclose(clf.coef_, coef[:, :-1])
    assert_allclose(clf.intercept_, coef[:, -1])
    assert clf.C_ == pytest.approx(np.mean([Cs[j] for _, j in best]))
    assert clf.l1_ratio_ == pytest.approx(np.mean([l1_ratios[i] for i, _ in best]))


def test_cv_without_l1_ratios_has_no_l1_ratio_axis():
    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifierCV(Cs=3, cv=3).fit(X, y)
    assert clf.scores_.shape == (3, 3) and clf.coefs_paths_.shape == (3, 3, 3, 5)
    assert clf.l1_ratio_ == 0.0
    assert_array_equal(clf.l1_ratios_, [0.0])
    with_axis = SoftmaxClassifierCV(Cs=3, cv=3, l1_ratios=[0.0]).fit(X, y)
    assert with_axis.scores_.shape == (3, 1, 3)


@pytest.mark.parametrize("l1_ratios", [[], [0.5, 1.5], [[0.5]], ["a"]])
def test_cv_invalid_l1_ratios(l1_ratios):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="l1_ratios must be an array-like of numbers"):
        SoftmaxClassifierCV(Cs=2, l1_ratios=l1_ratios).fit(X, y)


def test_cv_convergence_warning_names_the_grid_point():
    X, y = _standardized(load_digits)
    with pytest.warns(ConvergenceWarning, match=r"folds x l1_ratios x Cs.*l1_ratio="):
        SoftmaxClassifierCV(Cs=[1.0], l1_ratios=[0.5], cv=2, max_iter=2).fit(X, y)


def test_cv_failed_fits_name_the_grid():
    """A C that cannot be fitted fails at every l1_ratio: 3 folds x 2 l1_ratios of
    the 12 fits, scored NaN; the warning counts them over the whole grid."""
    from sklearn.exceptions import FitFailedWarning

    X, y = _standardized(load_iris)
    with pytest.warns(FitFailedWarning,
                      match=r"6 of 12 regularization-path fits \(folds x l1_ratios x Cs\)"):
        cv = SoftmaxClassifierCV(Cs=[1e-320, 1.0], l1_ratios=[0.5, 1.0], cv=3).fit(X, y)
    assert np.isnan(cv.scores_[:, :, 0]).all() and np.isfinite(cv.scores_[:, :, 1]).all()
    assert cv.C_ == 1.0


@parametrize_with_checks(
    [SoftmaxClassifierCV(Cs=[0.1, 10.0], l1_ratios=[0.5, 1.0], cv=3)],
    expected_failed_checks=lambda estimator: {
        name: "sample_weight is not equivalent to repeating samples: the CV folds differ."
        for name in ("check_sample_weight_equivalence_on_dense_data",
                     "check_sample_weight_equivalence_on_sparse_data")
    },
)
def test_cv_sklearn_compatible_estimator(estimator, check):
    check(estimator)
