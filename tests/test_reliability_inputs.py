"""Reliability: bad inputs are rejected with clear errors, and a failed fit is
transactional (the estimator is left exactly as it was).

Reference for the error messages: scikit-learn's LogisticRegression. For each
bad input the test runs LogisticRegression on the same data and requires it to
raise a ValueError matching the same key phrase (where it rejects the input);
the few places where the two differ are stated next to the case.

Not repeated here (already in tests/test_estimator.py): the basic
"fit raises ValueError and the model is kept" loop over ten bad inputs. This
file checks the *wording*, more inputs, that a fresh estimator gets no fitted
attribute at all, late failures (after the targets were encoded or
``n_features_in_``/``feature_names_in_`` were set) and interruptions raised from
inside the optimizer.
"""

import copy

import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

import skcce
from skcce import SoftmaxClassifier
from skcce import _objective
from _reference import REFERENCE_SKLEARN, sklearn_at_least

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # a one-column y is converted with this warning by both estimators
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning"),
    # LogisticRegression(n_jobs=...) is deprecated in scikit-learn >= 1.8
    pytest.mark.filterwarnings("ignore:'n_jobs' has no effect:FutureWarning"),
]

N, D, K = 60, 4, 3


def _data(seed=0, n=N, d=D, k=K):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d)) + 1.5 * np.eye(k, d)[y]
    return X, y


def _with(X, i, j, value):
    X = np.array(X, dtype=np.float64, copy=True)
    X[i, j] = value
    return X


def _soft(y, k=K):
    return np.full((len(y), k), 1.0 / k)


def _bad_inputs():
    """id -> (X, y, sample_weight, key phrase, what LogisticRegression does).

    ``lr`` is "same" when LogisticRegression raises a ValueError matching the
    same phrase, otherwise a short description of its (different) behaviour.
    """
    X, y = _data()
    n = len(y)
    y_nan = y.astype(float)
    y_nan[4] = np.nan
    soft = _soft(y)
    soft_neg = soft.copy()
    soft_neg[2] = [1.2, -0.2, 0.0]
    multilabel = np.eye(K)[y]
    multilabel[1] = [1, 1, 0]
    soft_nan = soft.copy()
    soft_nan[3, 1] = np.nan
    return {
        "nan in X": (_with(X, 3, 1, np.nan), y, None, "Input X contains NaN", "same"),
        "inf in X": (_with(X, 5, 0, np.inf), y, None, "Input X contains infinity", "same"),
        "-inf in X": (_with(X, 5, 0, -np.inf), y, None, "Input X contains infinity",
                      "same"),
        "nan in y": (X, y_nan, None, "Input y contains NaN", "same"),
        "continuous y": (X, np.linspace(0, 1, n), None, "Unknown label type", "same"),
        "single class": (X, np.zeros(n), None, "at least 2 classes", "same"),
        "X/y length mismatch": (X, y[:-1], None, "inconsistent numbers of samples",
                                "same"),
        "sample_weight wrong length": (X, y, np.ones(n - 1), r"sample_weight\.shape",
                                       "same"),
        "sample_weight 2-D": (X, y, np.ones((n, 1)), "Sample weights must be 1D",
                              "same"),
        "sample_weight NaN": (X, y, np.r_[np.nan, np.ones(n - 1)],
                              "Input sample_weight contains NaN", "same"),
        "sample_weight inf": (X, y, np.r_[np.inf, np.ones(n - 1)],
                              "Input sample_weight contains infinity", "same"),
        # LogisticRegression (sklearn 1.9.1) silently fits with a negative weight;
        # we reject it with the wording of sklearn's _check_sample_weight.
        "sample_weight negative": (X, y, np.r_[-1.0, np.ones(n - 1)],
                                   "Negative values in data passed to `sample_weight`",
                                   "fits (no error)"),
        "sample_weight all zero": (X, y, np.zeros(n), "at least one non-zero", "same"),
        "complex X": (X + 1j, y, None, "Complex data not supported", "same"),
        "empty X (0 samples)": (X[:0], y[:0], None, "0 sample", "same"),
        "zero features": (X[:, :0], y, None, "0 feature", "same"),
        "1-D X": (X[:, 0], y, None, "Expected 2D array, got 1D array", "same"),
        "3-D X": (X[:, :, None], y, None, "Found array with dim 3", "same"),
        "string X": (np.full((n, D), "a"), y, None, "could not convert string to float",
                     "same"),
        "object X with None": (np.where(np.eye(n, D, dtype=bool), None, X.astype(object)),
                               y, None, "Input X contains NaN", "same"),
        "y is None": (X, None, None, "requires y to be passed", "same"),
        # 2-D y: LogisticRegression rejects every 2-D y ("y should be a 1d
        # array"); we accept soft targets but reject malformed ones.
        "soft targets negative": (X, soft_neg, None, "non-negative", "rejects any 2-D y"),
        "soft targets multilabel": (X, multilabel, None, "summing to 1",
                                    "rejects any 2-D y"),
        "soft targets NaN": (X, soft_nan, None, "Input y contains NaN", "rejects any 2-D y"),
        "soft targets 1 column": (X, np.ones((n, 1)), None, "at least 2 classes",
                                  "same (column vector, single class)"),
    }


BAD = _bad_inputs()

# Every attribute a fit may set (besides the hyper-parameters).
FITTED = ("classes_", "coef_", "intercept_", "n_iter_", "n_features_in_",
          "feature_names_in_", "loss_curve_", "final_gradient_norm_")


def _snapshot(est):
    return copy.deepcopy(vars(est))


def _assert_same_state(est, snapshot):
    state = vars(est)
    assert state.keys() == snapshot.keys()
    for key, value in snapshot.items():
        if isinstance(value, np.ndarray):
            assert state[key].dtype == value.dtype, key
            assert np.array_equal(state[key], value), key
        else:
            assert type(state[key]) is type(value), key
            assert state[key] == value or (state[key] is value), key


def _assert_fresh(est):
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not [k for k in vars(est) if k in FITTED or k.endswith("_")]


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_raises_value_error_like_logistic_regression(case):
    X, y, sw, match, lr = BAD[case]
    clf = SoftmaxClassifier()
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y, sample_weight=sw)
    _assert_fresh(clf)
    ref = LogisticRegression()
    if not sklearn_at_least(REFERENCE_SKLEARN) and case == "sample_weight all zero":
        return  # older LogisticRegression fits all-zero weights
    if lr == "same" or lr.startswith("same "):
        with pytest.raises(ValueError, match=match):
            ref.fit(X, y, sample_weight=sw)
    elif lr == "fits (no error)":
        ref.fit(X, y, sample_weight=sw)  # documented difference
        check_is_fitted(ref)
    else:  # 2-D targets
        with pytest.raises(ValueError, match="y should be a 1d array"):
            ref.fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_leaves_fitted_model_bitwise_unchanged(case):
    """A failed refit keeps every attribute (bitwise) and the predictions."""
    X0, y0 = _data(seed=1)
    clf = SoftmaxClassifier(warm_start=True).fit(X0, y0)
    snapshot = _snapshot(clf)
    proba, pred = clf.predict_proba(X0), clf.predict(X0)
    X, y, sw, match, _ = BAD[case]
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y, sample_weight=sw)
    _assert_same_state(clf, snapshot)
    assert np.array_equal(clf.predict_proba(X0), proba)
    assert np.array_equal(clf.predict(X0), pred)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_sparse_X_is_rejected_like_logistic_regression(bad_value):
    """NaN or inf among the non-zeros of sparse X: scikit-learn's error, nothing fitted."""
    X, y = _data()
    Xs = sparse.csr_matrix(X)
    Xs.data[3] = bad_value
    clf = SoftmaxClassifier()
    with pytest.raises(ValueError) as ours:
        clf.fit(Xs, y)
    _assert_fresh(clf)
    with pytest.raises(ValueError) as theirs:
        LogisticRegression().fit(Xs, y)
    expected = str(theirs.value).replace("LogisticRegression", "SoftmaxClassifier")
    assert str(ours.value) == expected


def test_malformed_csr_structure_is_rejected_before_the_kernel_reads_it():
    """Column indices out of range would make the kernel read out of bounds."""
    X, y = _data()
    Xs = sparse.csr_matrix(X)
    Xs.indices[5] = D + 10  # scipy does not check this on mutation
    clf = SoftmaxClassifier()
    with pytest.raises(ValueError, match="column indices"):
        clf.fit(Xs, y)
    _assert_fresh(clf)


@pytest.mark.parametrize("bad", [D, D + 10, -1])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba",
                                    "decision_function"])
def test_prediction_rejects_csr_column_indices_out_of_range(method, bad):
    """Prediction leaves the range check of CSR column indices to the kernel's
    own pass: the error is the one the structure check gives for a fit."""
    X, y = _data()
    clf = SoftmaxClassifier().fit(X, y)
    Xs = sparse.csr_matrix(X)
    Xs.indices[-1] = bad  # the last row's last stored value
    with pytest.raises(ValueError) as fit_error:
        SoftmaxClassifier().fit(Xs, y)
    with pytest.raises(ValueError) as ours:
        getattr(clf, method)(Xs)
    assert str(ours.value) == str(fit_error.value)
    assert str(ours.value) == f"Malformed CSR matrix: column indices must lie in [0, {D})."


def test_structure_check_leaves_only_csr_column_indices_to_the_kernel():
    """``csr_indices=False`` skips only the range check of a CSR matrix's
    column indices: indptr is still checked, and so are the indices of every
    format that scipy converts (CSC, BSR, COO)."""
    from skcce._sparse import check_sparse_structure

    X, _ = _data()
    bad_csr = sparse.csr_matrix(X)
    bad_csr.indices[3] = D + 10
    check_sparse_structure(bad_csr, csr_indices=False)
    with pytest.raises(ValueError, match=r"column indices must lie in \[0, "):
        check_sparse_structure(bad_csr)
    bad_indptr = sparse.csr_matrix(X)
    bad_indptr.indptr[2] = bad_indptr.indptr[1] - 1
    with pytest.raises(ValueError, match="indptr must be non-decreasing"):
        check_sparse_structure(bad_indptr, csr_indices=False)
    bad_csc = sparse.csc_matrix(X)
    bad_csc.indices[3] = X.shape[0] + 10
    bad_bsr = sparse.bsr_matrix(X)
    bad_bsr.indices[0] = X.shape[1] + 10
    bad_coo = sparse.coo_matrix(X)
    bad_coo.col[3] = D + 10
    for bad in (bad_csc, bad_bsr, bad_coo):
        with pytest.raises(ValueError, match="Malformed"):
            check_sparse_structure(bad, csr_indices=False)


# ---------------------------------------------------------------------------
# Hyper-parameter validation
# ---------------------------------------------------------------------------

# (params, parameter name, LogisticRegression's behaviour with the same value)
BAD_PARAMS = [
    (dict(n_jobs=0), "n_jobs", "ignored: fits (n_jobs unused by lbfgs here)"),
    (dict(C=0), "C", "same"),
    (dict(C=-1), "C", "same"),
    (dict(C=np.nan), "C", "same"),
    (dict(label_smoothing=-0.1), "label_smoothing", "no such parameter"),
    (dict(label_smoothing=1.0), "label_smoothing", "no such parameter"),
    (dict(max_iter=1.5), "max_iter", "same"),
    (dict(tol=-1e-4), "tol", "same"),
    (dict(class_weight=[1.0, 2.0, 3.0]), "class_weight", "same"),
    (dict(class_weight="auto"), "class_weight", "same"),
    (dict(verbose="yes"), "verbose", "same"),
    (dict(verbose=1.5), "verbose", "same"),
]


@pytest.mark.parametrize("params, name, lr", BAD_PARAMS, ids=[repr(p[0]) for p in BAD_PARAMS])
def test_invalid_hyper_parameter_wording(params, name, lr):
    X, y = _data()
    clf = SoftmaxClassifier(**params)
    with pytest.raises(InvalidParameterError,
                       match=f"The '{name}' parameter of SoftmaxClassifier must be"):
        clf.fit(X, y)
    _assert_fresh(clf)
    if not sklearn_at_least(REFERENCE_SKLEARN):
        return  # older LogisticRegression validates differently (n_jobs=0 in joblib)
    if lr == "same":
        with pytest.raises(InvalidParameterError,
                           match=f"The '{name}' parameter of LogisticRegression must be"):
            LogisticRegression(**params).fit(X, y)
    elif name == "n_jobs":
        check_is_fitted(LogisticRegression(**params).fit(X, y))


def test_invalid_hyper_parameter_keeps_fitted_model():
    X, y = _data()
    clf = SoftmaxClassifier().fit(X, y)
    snapshot = _snapshot(clf)
    for params, _, _ in BAD_PARAMS:
        clf.set_params(**params)
        with pytest.raises(InvalidParameterError):
            clf.fit(X, y)
        clf.set_params(**SoftmaxClassifier().get_params())
        _assert_same_state(clf, snapshot)


# ---------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------


def _loss_cases():
    X, y = _data()
    coef = np.zeros((K, D + 1))
    return {
        "nan X": (coef, _with(X, 0, 0, np.nan), y, {}, "Input X contains NaN"),
        "inf X": (coef, _with(X, 0, 0, np.inf), y, {}, "Input X contains infinity"),
        "coef too few columns": (np.zeros((K, D)), X, y, {}, "coef has 4 columns"),
        "coef too many columns": (np.zeros((K, D + 2)), X, y, {}, "coef has 6 columns"),
        "coef 1-D": (np.zeros(D + 1), X, y, {}, "Expected 2D array"),
        "coef nan": (np.full((K, D + 1), np.nan), X, y, {}, "Input coef contains NaN"),
        "label >= K": (coef, X, y + 1, {}, r"class indices in \[0, 3\)"),
        "label < 0": (coef, X, y - 1, {}, r"class indices in \[0, 3\)"),
        "non-integer label": (coef, X, y + 0.5, {}, "non-integer"),
        "nan label": (coef, X, np.r_[np.nan, y[1:]], {}, "NaN"),
        "uint64 label past int64": (coef, X, np.r_[np.uint64(2**63), y[1:].astype(np.uint64)],
                                    {}, "non-integer"),
        "int8 label < 0": (coef, X, (y - 1).astype(np.int8), {}, r"class indices in \[0, 3\)"),
        "string labels": (coef, X, y.astype(str), {}, "integer class indices"),
        "length mismatch": (coef, X, y[:-1], {}, "inconsistent numbers of samples"),
        "soft targets wrong K": (coef, X, _soft(y, K + 1), {}, "columns"),
        "negative sample_weight": (coef, X, y, {"sample_weight": -np.ones(N)}, "Negative"),
        "negative l2": (coef, X, y, {"l2_reg_strength": -1.0}, "non-negative"),
        "label_smoothing 1": (coef, X, y, {"label_smoothing": 1.0}, r"\[0, 1\)"),
        "n_jobs 0": (coef, X, y, {"n_jobs": 0}, "n_jobs"),
        "n_jobs 1.5": (coef, X, y, {"n_jobs": 1.5}, "n_jobs"),  # was silently 1
        "n_jobs str": (coef, X, y, {"n_jobs": "2"}, "n_jobs"),  # was a TypeError
    }


LOSS_CASES = _loss_cases()


@pytest.mark.parametrize("case", list(LOSS_CASES), ids=list(LOSS_CASES))
def test_crossentropy_loss_gradient_rejects(case):
    coef, X, y, kwargs, match = LOSS_CASES[case]
    with pytest.raises(ValueError, match=match):
        skcce.crossentropy_loss_gradient(coef, X, y, **kwargs)
    # the same arguments, repaired, are accepted: log(K) at coef = 0
    X_ok, y_ok = _data()
    loss, grad = skcce.crossentropy_loss_gradient(np.zeros((K, D + 1)), X_ok, y_ok)
    assert loss == pytest.approx(np.log(K), rel=1e-15)
    assert grad.shape == (K, D + 1)


def _metric_cases():
    _, y = _data()
    P = _soft(y)
    Z = np.random.default_rng(3).normal(size=(N, K))
    return {
        # sklearn.metrics.log_loss raises the same for the NaN probabilities
        "nan probabilities": (y, _with(P, 0, 0, np.nan), {}, "Input y_pred contains NaN",
                              "Input contains NaN"),
        "nan logits": (y, _with(Z, 0, 0, np.nan), {"from_logits": True}, "NaN", None),
        "+inf logit": (y, _with(Z, 0, 0, np.inf), {"from_logits": True}, r"\+infinity",
                       None),
        "row of -inf logits": (y, np.where(np.arange(N)[:, None] == 4, -np.inf, Z),
                               {"from_logits": True}, "all -infinity", None),
        # "wrong coef shape" for the metric: y_pred with the wrong number of classes
        "wrong number of columns": (y, _soft(y, K + 1), {}, "different number of classes",
                                    "different number of classes"),
        "label not in labels": (y, P, {"labels": [0, 1, 5]}, "not in labels",
                                "not belonging to the passed labels"),
        "length mismatch": (y[:-1], P, {}, "inconsistent numbers of samples",
                            "inconsistent numbers of samples"),
        "probability > 1": (y, P * 4, {}, "greater than 1", None),
        "soft targets multilabel": (np.eye(K)[y] * 2, P, {}, "summing to 1", None),
    }


METRIC_CASES = _metric_cases()


@pytest.mark.parametrize("case", list(METRIC_CASES), ids=list(METRIC_CASES))
def test_categorical_crossentropy_rejects(case):
    from sklearn.metrics import log_loss

    y_true, y_pred, kwargs, match, log_loss_match = METRIC_CASES[case]
    with pytest.raises(ValueError, match=match):
        skcce.categorical_crossentropy(y_true, y_pred, **kwargs)
    if log_loss_match is not None and sklearn_at_least(REFERENCE_SKLEARN):
        with pytest.raises(ValueError, match=log_loss_match):
            log_loss(y_true, y_pred, **kwargs)


def test_categorical_crossentropy_minus_inf_logits_are_valid():
    """-inf logits (masked classes) stay valid and exact; only +inf / all -inf
    rows are rejected. Reference: log-softmax by hand."""
    Z = np.array([[0.0, -np.inf, 1.0], [2.0, 0.0, -np.inf]])
    y = np.array([0, 1])
    expected = np.mean([np.log1p(np.e), np.log1p(np.exp(2.0))])
    got = skcce.categorical_crossentropy(y, Z, from_logits=True, labels=[0, 1, 2])
    assert got == pytest.approx(expected, rel=1e-14)
    # binary log-odds of -inf: P(class 1) = 0, exact zero loss for class 0
    assert skcce.categorical_crossentropy([0], [-np.inf], from_logits=True,
                                          labels=[0, 1]) == 0.0


# ---------------------------------------------------------------------------
# Transactional fit: late failures and interruptions
# ---------------------------------------------------------------------------


def _fitted():
    X, y = _data(seed=2)
    return SoftmaxClassifier(warm_start=True, max_iter=200).fit(X, y), X


def _late_failures():
    """Failures after validate_data/target encoding already ran."""
    X5, y5 = _data(seed=4, d=D + 3, k=K + 1)  # other features and classes
    return {
        # different n_features and classes; fails in class-weight computation
        "new shape, bad class_weight": (
            dict(class_weight={0: 1.0, 99: 2.0}), X5, y5, None, ValueError),
        # different classes; all weights zero after class weights
        "new classes, weights all zero": (
            dict(), X5, y5, np.zeros(len(y5)), ValueError),
    }


@pytest.mark.parametrize("case", list(_late_failures()))
def test_late_failure_is_transactional(case):
    params, X, y, sw, exc = _late_failures()[case]
    clf, X0 = _fitted()
    snapshot = _snapshot(clf)
    proba = clf.predict_proba(X0)
    clf.set_params(**params)
    with pytest.raises(exc):
        clf.fit(X, y, sample_weight=sw)
    clf.set_params(class_weight=None)
    _assert_same_state(clf, snapshot)
    assert np.array_equal(clf.predict_proba(X0), proba)
    fresh = SoftmaxClassifier(**params)
    with pytest.raises(exc):
        fresh.fit(X, y, sample_weight=sw)
    _assert_fresh(fresh)


def test_failed_refit_keeps_feature_names():
    """validate_data sets/deletes feature_names_in_ before the failure: fitted
    on a DataFrame, a failed refit on an ndarray (and vice versa) keeps the
    names exactly as they were (LogisticRegression has no rollback at all)."""
    pd = pytest.importorskip("pandas")
    X, y = _data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(D)])
    clf = SoftmaxClassifier().fit(df, y)
    snapshot = _snapshot(clf)
    with pytest.raises(ValueError):
        clf.fit(X, np.zeros(N))  # ndarray, single class
    _assert_same_state(clf, snapshot)
    assert list(clf.feature_names_in_) == list(df.columns)
    clf2 = SoftmaxClassifier().fit(X, y)
    snapshot2 = _snapshot(clf2)
    with pytest.raises(ValueError):
        clf2.fit(df, np.zeros(N))
    _assert_same_state(clf2, snapshot2)
    assert not hasattr(clf2, "feature_names_in_")
    # reference: LogisticRegression is not transactional; its failed refit has
    # already dropped the names (documents why the rollback matters).
    ref = LogisticRegression().fit(df, y)
    with pytest.raises(ValueError):
        ref.fit(X, np.zeros(N))
    assert not hasattr(ref, "feature_names_in_")


@pytest.fixture
def raise_on_third_evaluation(monkeypatch):
    """Make the objective raise ``exc`` on the 3rd evaluation after arming
    (inside L-BFGS); ``state["armed"] = False`` disarms it."""
    original = _objective.CrossEntropyObjective.loss_gradient
    state = {"n": 0, "armed": False, "exc": None}

    def loss_gradient(self, params):
        state["n"] += 1
        if state["armed"] and state["n"] == 3:
            raise state["exc"]
        return original(self, params)

    monkeypatch.setattr(_objective.CrossEntropyObjective, "loss_gradient", loss_gradient)

    def arm(exc):
        state.update(n=0, armed=True, exc=exc)
        return state

    return arm


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError, RuntimeError("boom")],
                         ids=["KeyboardInterrupt", "MemoryError", "RuntimeError"])
def test_exception_inside_the_objective_is_transactional(raise_on_third_evaluation, exc):
    """An exception raised from inside the optimizer (3rd objective
    evaluation) while refitting different data (other features and classes)
    restores the old model bitwise; a fresh estimator stays unfitted; both
    then fit normally, bitwise like a fresh estimator."""
    clf, X0 = _fitted()
    snapshot = _snapshot(clf)
    proba = clf.predict_proba(X0)
    X5, y5 = _data(seed=5, d=D + 2, k=K + 2)
    expected = exc if isinstance(exc, type) else type(exc)

    state = raise_on_third_evaluation(exc)
    with pytest.raises(expected):
        clf.fit(X5, y5)
    assert state["n"] == 3  # really raised inside the optimizer loop
    _assert_same_state(clf, snapshot)
    assert np.array_equal(clf.predict_proba(X0), proba)

    fresh = SoftmaxClassifier()
    state = raise_on_third_evaluation(exc)
    with pytest.raises(expected):
        fresh.fit(X5, y5)
    _assert_fresh(fresh)

    state["armed"] = False
    reference = SoftmaxClassifier(max_iter=200).fit(X5, y5)
    for est in (clf.set_params(warm_start=False), fresh.set_params(max_iter=200)):
        est.fit(X5, y5)
        assert np.array_equal(est.coef_, reference.coef_)
        assert np.array_equal(est.intercept_, reference.intercept_)
        assert np.array_equal(est.classes_, np.arange(K + 2))
