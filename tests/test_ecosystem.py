"""The tools around LogisticRegression work on skcce's estimators, with the same results.

Each test runs a tool (persistence with joblib, skops and MLflow; scikit-learn's
CalibratedClassifierCV, stacking, SelectFromModel, permutation importance and
metadata routing of ``sample_weight``) on LogisticRegression and on
SoftmaxClassifier, which fit the same multinomial model, and compares. Tools
that are optional dependencies are skipped when they are not installed.
"""

import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import StackingClassifier
from sklearn.feature_selection import SelectFromModel
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from skcce import SoftmaxClassifier, SoftmaxClassifierCV

# Tight enough that both estimators stop at the same optimum to ~1e-8.
SETTINGS = dict(C=0.5, tol=1e-10, max_iter=2000)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=400, n_features=10, n_informative=6,
                               n_redundant=2, n_classes=3, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return (LogisticRegression(**SETTINGS).fit(X, y), SoftmaxClassifier(**SETTINGS).fit(X, y))


def test_import_skcce_imports_no_optional_dependency():
    code = ("import sys, skcce; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'onnx', 'skl2onnx', 'onnxruntime', 'torch', 'array_api_strict', 'mlflow', "
            "'skops', 'dask', 'distributed'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/")
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dump, load", [
    (joblib.dump, joblib.load),
    (lambda obj, path: open(path, "wb").write(pickle.dumps(obj)),
     lambda path: pickle.loads(open(path, "rb").read())),
])
def test_joblib_and_pickle_round_trip(fitted, data, tmp_path, dump, load):
    X, _ = data
    for model in fitted:
        dump(model, tmp_path / "model")
        loaded = load(tmp_path / "model")
        assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


# The types a skops file of skcce's estimators holds beyond scikit-learn's:
# what the documentation tells users to trust.
SKOPS_TRUSTED = ["skcce._classifier.SoftmaxClassifier", "skcce._cv.SoftmaxClassifierCV"]


def test_skops_needs_trusted_and_then_loads_the_same_model(data, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = data
    lr = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    sio.dump(lr, tmp_path / "lr.skops")
    assert_array_equal(sio.load(tmp_path / "lr.skops").predict_proba(X), lr.predict_proba(X))

    models = [make_pipeline(StandardScaler(), SoftmaxClassifier()).fit(X, y),
              SoftmaxClassifierCV(Cs=3, cv=3).fit(X, y)]
    for i, model in enumerate(models):
        path = tmp_path / f"skcce{i}.skops"
        sio.dump(model, path)
        untrusted = sio.get_untrusted_types(file=path)
        assert set(untrusted) <= set(SKOPS_TRUSTED) and untrusted
        with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
            sio.load(path)
        loaded = sio.load(path, trusted=SKOPS_TRUSTED)
        assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.fixture(scope="module")
def mlflow_sklearn():
    pytest.importorskip("mlflow")
    import mlflow.sklearn

    return mlflow.sklearn


def test_mlflow_default_refuses_skcce_as_it_accepts_logistic_regression(mlflow_sklearn,
                                                                        data, tmp_path):
    """mlflow's default (skops) format trusts scikit-learn's types only."""
    from mlflow.exceptions import MlflowException

    X, y = data
    lr = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    mlflow_sklearn.save_model(lr, tmp_path / "lr", pip_requirements=["scikit-learn"])
    loaded = mlflow_sklearn.load_model(str(tmp_path / "lr"))
    assert_array_equal(loaded.predict_proba(X), lr.predict_proba(X))
    pipe = make_pipeline(StandardScaler(), SoftmaxClassifier()).fit(X, y)
    with pytest.raises(MlflowException, match="untrusted types"):
        mlflow_sklearn.save_model(pipe, tmp_path / "refused", pip_requirements=["skcce"])


@pytest.mark.parametrize("options", [
    {"skops_trusted_types": SKOPS_TRUSTED},
    {"serialization_format": "cloudpickle"},
])
def test_mlflow_logs_skcce_with_the_documented_options(mlflow_sklearn, data, tmp_path,
                                                      options):
    X, y = data
    pipe = make_pipeline(StandardScaler(), SoftmaxClassifierCV(Cs=3, cv=3)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mlflow's advice on pickle formats
        mlflow_sklearn.save_model(pipe, tmp_path / "model", pip_requirements=["skcce"],
                                  **options)
    loaded = mlflow_sklearn.load_model(str(tmp_path / "model"))
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


# ---------------------------------------------------------------------------
# scikit-learn's tools
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_classifier_cv(data, method):
    X, y = data
    probas = [
        CalibratedClassifierCV(estimator, method=method, cv=3).fit(X, y).predict_proba(X)
        for estimator in (LogisticRegression(**SETTINGS), SoftmaxClassifier(**SETTINGS))
    ]
    assert_allclose(probas[1], probas[0], atol=1e-5)


def test_stacking_as_base_and_final_estimator(data):
    X, y = data
    probas = []
    for Estimator in (LogisticRegression, SoftmaxClassifier):
        stack = StackingClassifier(
            [("linear", Estimator(**SETTINGS)),
             ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
            final_estimator=Estimator(**SETTINGS), cv=3,
        ).fit(X, y)
        probas.append(stack.predict_proba(X))
    assert_allclose(probas[1], probas[0], atol=1e-6)


def test_select_from_model(data, fitted):
    X, y = data
    supports = [SelectFromModel(Estimator(**SETTINGS), threshold="mean").fit(X, y).get_support()
                for Estimator in (LogisticRegression, SoftmaxClassifier)]
    assert_array_equal(supports[1], supports[0])
    assert 0 < supports[0].sum() < X.shape[1]
    # Prefit models: the same selection.
    prefit = [SelectFromModel(model, prefit=True, threshold="mean").get_support()
              for model in fitted]
    assert_array_equal(prefit[1], prefit[0])


def test_permutation_importance(data, fitted):
    X, y = data
    results = [permutation_importance(model, X, y, scoring="neg_log_loss", n_repeats=3,
                                      random_state=0) for model in fitted]
    assert_allclose(results[1].importances, results[0].importances, atol=1e-6)


def test_metadata_routing_of_sample_weight(data):
    """Routed through a pipeline and cross_validate to the estimator's fit (and,
    when requested, to the scorer), as for LogisticRegression."""
    X, y = data
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=y.shape[0])
    results = []
    with config_context(enable_metadata_routing=True):
        scorer = make_scorer(log_loss, greater_is_better=False,
                             response_method="predict_proba").set_score_request(
                                 sample_weight=True)
        for Estimator in (LogisticRegression, SoftmaxClassifier):
            pipe = make_pipeline(
                StandardScaler().set_fit_request(sample_weight=False),
                Estimator(**SETTINGS).set_fit_request(sample_weight=True),
            )
            results.append(cross_validate(pipe, X, y, params={"sample_weight": weights},
                                          scoring=scorer, cv=3,
                                          return_estimator=True))
    lr, sk = results
    assert_allclose(sk["test_score"], lr["test_score"], rtol=1e-6)
    for a, b in zip(lr["estimator"], sk["estimator"]):
        assert_allclose(b[-1].coef_, a[-1].coef_, atol=1e-5)
    # The weights arrived: the unweighted fit is another model.
    unweighted = cross_validate(make_pipeline(StandardScaler(), SoftmaxClassifier(**SETTINGS)),
                                X, y, cv=3, return_estimator=True)
    assert not np.allclose(unweighted["estimator"][0][-1].coef_, sk["estimator"][0][-1].coef_,
                           atol=1e-3)
