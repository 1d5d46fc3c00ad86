"""Prediction on the sweep's shapes: skcce against LogisticRegression, PyTorch and the roofline.

For each point of :func:`suite.shapes.sweep_points`, each dtype and each
method (``predict``, ``predict_proba``, ``decision_function``), in one
process, contenders round-robin:

- ``skcce_1`` / ``skcce_all``: ``SoftmaxClassifier`` with ``n_jobs=1`` and
  ``n_jobs=None`` (every usable core);
- ``sklearn``: ``LogisticRegression`` holding the same model (dense X: its
  BLAS on every core; CSR X: SciPy's product, one thread);
- ``torch``: ``torch.nn.functional.linear``, then ``softmax`` or ``argmax``
  over the classes, in inference mode on every core (when PyTorch is
  installed), on tensors made from X beforehand (skcce and scikit-learn
  validate X inside each timed call).

Each timed call follows a pause of PAUSE_SECONDS, as a single call after
idle time: every multithreaded contender wakes its threads inside the timed
call (the sweep's evaluations instead follow an untimed one, as in a fit).

Every contender holds the same coefficients, in X's dtype (a model fitted on
float32 data keeps float32 coefficients, in skcce as in scikit-learn):
Gaussian weights scaled so that the logits spread over a few units. For two
classes, skcce stores the class-1 row ``w`` of its symmetric softmax model
``[-w, w]``, whose class-1 probability is ``expit(2 d)``;
LogisticRegression's is ``expit(d)``, so it holds ``2 w`` (the same
probabilities and labels, a decision function twice as large, halved before
the comparison), and PyTorch the full ``[-w, w]``. Each point records how far
the contenders' outputs are from skcce's.

The roofline of one call is ``max((bytes of X + gathered coefficient bytes +
bytes of the result) / B, 2 · nnz(X) · K / P)`` with the streaming-read
bandwidth ``B`` and the GEMM peak ``P`` of :mod:`suite.roofline`, measured in
the same run. Writing the result at the read bandwidth is optimistic (a
store usually costs a read of the line as well), so this is a lower bound.
"""

import copy
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skcce import SoftmaxClassifier

from suite import machine, roofline, shapes, targets, timing, torch_peer
from suite.problems import count_nonzeros, make_data, storage_bytes, with_dtype

METHODS = ("predict", "predict_proba", "decision_function")
PREDICTION_LABELS = {
    "skcce_1": "skcce 1 thread",
    "skcce_all": "skcce all cores",
    "sklearn": "LogisticRegression",
    "torch": "PyTorch",
}
PEER_NAMES = ("sklearn", "torch")
# Spread of the logits: the coefficients are Gaussian times this over sqrt(nnz per row).
LOGIT_SCALE = 2.0
# Rows on which the contenders' outputs are compared with skcce's.
AGREEMENT_ROWS = 2_000
# Seconds between timed calls (see suite.sweep); none in --quick mode.
PAUSE_SECONDS = 0.15


def model_coefficients(n_classes, n_features, nnz_per_row, dtype, seed=2):
    """The model every contender holds, in skcce's layout.

    Returns
    -------
    coef : ndarray of shape (n_rows, n_features)
        ``n_rows`` is 1 for two classes (the class-1 row), else ``n_classes``.
    intercept : ndarray of shape (n_rows,)
    """
    rng = np.random.default_rng(seed)
    n_rows = 1 if n_classes == 2 else n_classes
    coef = rng.standard_normal((n_rows, n_features + 1)) * (LOGIT_SCALE / np.sqrt(nnz_per_row))
    return coef[:, :-1].astype(dtype), coef[:, -1].astype(dtype)


def _fitted_shell(estimator, n_classes, n_features, dtype):
    """``estimator`` fitted for one iteration on two random rows per class, so that
    it has every fitted attribute for K classes and d features (its model is
    then replaced)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2 * n_classes, n_features)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, np.arange(2 * n_classes) % n_classes)


def prediction_models(n_classes, n_features, nnz_per_row, dtype):
    """``SoftmaxClassifier`` (all cores and one thread) and ``LogisticRegression``
    holding the same model (see the module's docstring for two classes).

    Returns
    -------
    models : dict
        ``skcce_all``, ``skcce_1``, ``sklearn``, and ``coef`` / ``intercept``
        (skcce's).
    """
    coef, intercept = model_coefficients(n_classes, n_features, nnz_per_row, dtype)
    ours = _fitted_shell(SoftmaxClassifier(max_iter=1), n_classes, n_features, dtype)
    ours.coef_, ours.intercept_ = coef.copy(), intercept.copy()
    one_thread = copy.deepcopy(ours).set_params(n_jobs=1)
    theirs = _fitted_shell(LogisticRegression(max_iter=1), n_classes, n_features, dtype)
    scale = 2 if n_classes == 2 else 1
    theirs.coef_, theirs.intercept_ = scale * coef, scale * intercept
    return {"skcce_all": ours, "skcce_1": one_thread, "sklearn": theirs,
            "coef": coef, "intercept": intercept}


def torch_calls(torch, X, coef, intercept):
    """PyTorch's prediction of each method, as zero-argument callables.

    ``predict`` returns class indices (the classes are ``0 .. K - 1``); for two
    classes ``predict`` and ``predict_proba`` use the full model ``[-w, w]``.
    """
    if coef.shape[0] == 1:
        full_coef = np.vstack([-coef, coef])
        full_intercept = np.concatenate([-intercept, intercept])
    else:
        full_coef, full_intercept = coef, intercept
    X_tensor = torch_peer.to_tensor(torch, X)
    tensors = {name: (torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(b))
               for name, (w, b) in {"decision": (coef, intercept),
                                    "full": (full_coef, full_intercept)}.items()}

    def logits(which):
        weight, bias = tensors[which]
        if X_tensor.layout == torch.strided:
            return torch.nn.functional.linear(X_tensor, weight, bias)
        return torch.addmm(bias, X_tensor, weight.T)

    def run(function):
        def call():
            with torch.inference_mode():
                return function()
        return call

    return {
        "predict": run(lambda: logits("full").argmax(dim=1)),
        "predict_proba": run(lambda: logits("full").softmax(dim=1)),
        # (two classes: one column, returned 1-D as scikit-learn does)
        "decision_function": run(lambda: logits("decision").squeeze(1) if coef.shape[0] == 1
                                 else logits("decision")),
    }


def method_calls(models, X, method, torch=None):
    """Every contender's call of one method on X, as zero-argument callables."""
    calls = {name: (lambda model=models[name]: getattr(model, method)(X))
             for name in ("skcce_1", "skcce_all", "sklearn")}
    if torch is not None:
        calls["torch"] = torch_calls(torch, X, models["coef"], models["intercept"])[method]
    return calls


def _as_numpy(result):
    """A contender's result as an ndarray (PyTorch returns tensors)."""
    return result.numpy() if hasattr(result, "numpy") else np.asarray(result)


def agreement(method, results, n_classes):
    """How far each contender's output is from skcce's, on the same rows.

    Returns
    -------
    agreement : dict
        Contender to ``{"mismatched_labels": fraction}`` (``predict``) or
        ``{"max_abs_difference": value}``; LogisticRegression's two-class
        decision function is halved first (it holds ``2 w``).
    """
    reference = _as_numpy(results["skcce_all"])
    found = {}
    for name, result in results.items():
        value = _as_numpy(result)
        if method == "predict":
            found[name] = {"mismatched_labels": float(np.mean(value != reference))}
            continue
        if method == "decision_function" and name == "sklearn" and n_classes == 2:
            value = value / 2
        found[name] = {"max_abs_difference": float(np.max(np.abs(
            value.astype(np.float64) - reference.astype(np.float64))))}
    return found


def result_bytes(method, n_samples, n_classes, dtype):
    """Bytes of a method's result: int64 labels, or n x K (n for a two-class decision)."""
    if method == "predict":
        return n_samples * np.dtype(np.int64).itemsize
    columns = 1 if method == "decision_function" and n_classes == 2 else n_classes
    return n_samples * columns * np.dtype(dtype).itemsize


def prediction_roofline(X, n_classes, method, rates):
    """The roofline of one call of ``method`` on X, for one thread and all cores.

    Returns
    -------
    roofline : dict
        ``x_bytes``, ``gathered_bytes``, ``result_bytes``, ``flops`` and,
        under ``"1"`` and ``"all"``, :func:`suite.roofline.roofline_seconds`.
    """
    gathered = 0
    if sp.issparse(X):
        gathered = roofline.gathered_coefficient_bytes(
            np.bincount(X.indices, minlength=X.shape[1]), n_classes, X.dtype.itemsize,
            rates["last_level_cache"]["bytes"])
    written = result_bytes(method, X.shape[0], n_classes, X.dtype)
    result = {"x_bytes": storage_bytes(X), "gathered_bytes": gathered,
              "result_bytes": written, "flops": 2 * count_nonzeros(X) * n_classes}
    for key in ("1", "all"):
        result[key] = roofline.roofline_seconds(
            result["x_bytes"] + written, gathered, result["flops"],
            rates["bandwidth"][key], rates["peak"][X.dtype.name][key])
    return result


def prediction_targets(entry, dtype):
    """The speed targets of the loss kernel, applied to one method's times.

    Returns
    -------
    targets : dict
        ``roofline``, ``peer:<name>`` and ``threads``, each
        ``{"value", "threshold", "met"}``, for those measured.
    """
    thresholds = targets.THRESHOLDS
    medians = {name: times.get("median") for name, times in entry["times"].items()}
    ours = medians.get("skcce_all")
    if ours is None:
        return {}
    found = {"roofline": targets.ratio_target(ours / entry["roofline"]["all"]["seconds"],
                                              thresholds["roofline"][dtype], at_most=True)}
    if medians.get("skcce_1") is not None:
        found["threads"] = targets.ratio_target(medians["skcce_1"] / ours,
                                                thresholds["threads"])
    for name in PEER_NAMES:
        if medians.get(name) is not None:
            found[f"peer:{name}"] = targets.ratio_target(medians[name] / ours,
                                                         thresholds["peer"])
    return found


def measure_method(models, X, method, torch, rates, repeats, pause):
    """Times, roofline, agreement and targets of one method on one point and dtype."""
    n_classes = len(models["skcce_all"].classes_)
    supported, _, unsupported = timing.keep_supported(
        method_calls(models, X, method, torch), X)
    head = X[:min(AGREEMENT_ROWS, X.shape[0])]
    outputs = {name: call() for name, call in method_calls(models, head, method, torch).items()
               if name in supported}
    times, _ = timing.interleaved_times(supported, repeats, pause=pause)
    entry = {"roofline": prediction_roofline(X, n_classes, method, rates),
             "times": {name: {"unsupported": reason} for name, reason in unsupported.items()},
             "agreement": agreement(method, outputs, n_classes)}
    for name in supported:
        entry["times"][name] = {"times": times[name], "median": timing.median(times[name])}
    entry["targets"] = prediction_targets(entry, X.dtype.name)
    return entry


def measure_point(point, args, context, rates, log):
    """Every method of one point, for each selected dtype.

    Returns
    -------
    results : list of dict
        One per dtype: the point's shape, ``load_average`` and ``methods``
        (method to :func:`measure_method`'s entry).
    """
    problem = point.problem
    X64, _ = make_data(problem)
    log(f"{point.name}: {problem.label}")
    pause = 0.0 if args.quick else PAUSE_SECONDS
    nnz_per_row = problem.nnz_per_row or problem.n_features
    results = []
    for dtype in args.dtypes:
        X = with_dtype(X64, dtype)
        models = prediction_models(problem.n_classes, problem.n_features, nnz_per_row, dtype)
        result = {"point": point.name, "label": problem.label, "dtype": dtype,
                  "sparse": problem.is_sparse, "n_samples": problem.n_samples,
                  "n_features": problem.n_features, "n_classes": problem.n_classes,
                  "nnz": count_nonzeros(X), "column_skew": problem.column_skew,
                  "load_average": machine.load_average(), "methods": {}}
        for method in METHODS:
            entry = measure_method(models, X, method, context["torch"], rates, args.repeats,
                                   pause)
            result["methods"][method] = entry
            log(f"  {dtype} {method}: " + ", ".join(
                f"{name} {times['median'] * 1e3:.3g} ms"
                for name, times in entry["times"].items() if "median" in times)
                + f" (roofline {entry['roofline']['all']['seconds'] * 1e3:.3g} ms)")
        results.append(result)
        del X, models
    return results


def run_points(points, args, context, log=print):
    """Measure the machine's rates, then every point.

    Returns
    -------
    record : dict
        ``sweep`` (the sizing rules), ``rates``, ``targets`` (the thresholds)
        and ``results`` (one entry per point and dtype).
    """
    rates = roofline.measure_rates(context["n_cores"], args.quick, log)
    results = []
    for point in points:
        results.extend(measure_point(point, args, context, rates, log))
    return {"sweep": shapes.sizing(args.quick), "rates": rates,
            "targets": targets.THRESHOLDS, "results": results}
