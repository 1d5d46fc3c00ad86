"""The shape sweep: every contender on every shape, against the physical roofline.

For each point of :func:`suite.shapes.sweep_points` and each dtype, in one
process:

1. the physical roofline (:mod:`suite.roofline`), from rates measured once
   at the start of the run;
2. the median time of one evaluation of the loss and gradient: skcce's fit
   step with one thread and all cores, the public
   ``crossentropy_loss_gradient``, scikit-learn's ``LinearModelLoss``,
   PyTorch and JAX (:mod:`suite.evaluation`), round-robin;
3. on a few points, fits at default settings: ``SoftmaxClassifier``,
   ``LogisticRegression`` and scikit-learn-intelex's, round-robin: wall time,
   iterations and the objective gap to the lowest objective any of them
   reached on that point (either dtype);
4. the targets (:mod:`suite.targets`), met or missed.
"""

import numpy as np

from suite import evaluation, fitting, machine, roofline, shapes, targets, timing
from suite.problems import count_nonzeros, make_data, with_dtype

# Rows of the slice every fit first runs on (warm-up, and the probe of
# whether the solver accepts the data).
WARMUP_ROWS = 2_000
# Seconds between timed calls: longer than OpenBLAS's idle threads spin
# (about 0.1 s) before they sleep. None in --quick mode.
PAUSE_SECONDS = 0.15


def select(names, quick=False):
    """The sweep's points by name or prefix (None: all); raises ValueError on an unknown name."""
    return shapes.select_points(shapes.sweep_points(quick), names)


def measure_evaluations(X, y, n_classes, context, repeats, pause, log):
    """:func:`suite.evaluation.measure_evaluations` for a point, logged on one line."""
    results = evaluation.measure_evaluations(X, y, n_classes, context["n_cores"], repeats,
                                             pause, context["torch"], context["jax"],
                                             rewarm=True)
    log("  " + ", ".join(f"{name} {entry['median'] * 1e3:.3g} ms" for name, entry
                         in results.items() if "median" in entry))
    return results


def measure_fits(X, y, X64, context, repeats, pause, log):
    """Wall time, iterations and objective of each solver's default fit.

    Labels are renumbered to the classes present in these rows, so every
    solver fits the same classes.

    Returns
    -------
    fits : dict
        Solver to ``{"times", "median", "n_iter", "objective", "note"}`` or
        ``{"unsupported": reason}``.
    """
    _, y = np.unique(y, return_inverse=True)
    n_classes = int(y.max()) + 1
    rows = min(WARMUP_ROWS, X.shape[0])
    fits = fitting.fit_functions("default", n_classes, None, context["sklearnex_class"])
    warmups = {solver: (lambda fit=fit: fit(X[:rows], y[:rows])) for solver, fit in fits.items()}
    _, _, unsupported = timing.keep_supported(warmups, X)
    calls = {solver: (lambda fit=fit: fit(X, y)) for solver, fit in fits.items()
             if solver not in unsupported}
    times, models = timing.interleaved_times(calls, repeats, warmup_rounds=0, pause=pause)
    results = {solver: {"unsupported": reason} for solver, reason in unsupported.items()}
    for solver, model in models.items():
        results[solver] = {"times": times[solver], "median": timing.median(times[solver]),
                           "n_iter": model.n_iter, "note": model.note,
                           "objective": fitting.objective_value(model.coef, X64, y),
                           "n_classes": n_classes}
        log(f"  fit {solver}: {results[solver]['median']:.3g} s, {model.n_iter} iterations")
    return results


def add_fit_gaps(results):
    """Set every fit's ``gap``: its objective minus the lowest of the point's fits (both dtypes)."""
    objectives = [fit["objective"] for result in results
                  for fit in result.get("fits", {}).values() if "objective" in fit]
    if not objectives:
        return
    best = min(objectives)
    for result in results:
        for fit in result.get("fits", {}).values():
            if "objective" in fit:
                fit["gap"] = fit["objective"] - best


def measure_point(point, args, context, rates, log):
    """Every measurement of one point, for each selected dtype.

    Returns
    -------
    results : list of dict
        One per dtype: the point's shape, ``load_average``, ``roofline``,
        ``evaluation``, ``fits`` (on fitted points) and ``targets``.
    """
    problem = point.problem
    X64, y = make_data(problem)
    log(f"{point.name}: {problem.label}")
    pause = 0.0 if args.quick else PAUSE_SECONDS
    results = []
    for dtype in args.dtypes:
        X = with_dtype(X64, dtype)
        log(f" {point.name} {dtype}")
        result = {"point": point.name, "label": problem.label, "dtype": dtype,
                  "sparse": problem.is_sparse, "n_samples": problem.n_samples,
                  "n_features": problem.n_features, "n_classes": problem.n_classes,
                  "nnz": count_nonzeros(X), "column_skew": problem.column_skew,
                  "load_average": machine.load_average()}
        result["roofline"] = roofline.physical_roofline(X, problem.n_classes, rates)
        result["evaluation"] = measure_evaluations(X, y, problem.n_classes, context,
                                                   args.repeats, pause, log)
        if point.fit_rows:
            rows = point.fit_rows
            result["fit_rows"] = rows
            result["fits"] = measure_fits(X[:rows], y[:rows], X64[:rows], context,
                                          args.fit_repeats, pause, log)
        results.append(result)
        del X
    add_fit_gaps(results)
    for result in results:
        result["targets"] = targets.evaluate(result)
    return results


def run_points(points, args, context, log=print):
    """Measure the machine's rates, then every point.

    Parameters
    ----------
    points : list of SweepPoint
    args : argparse.Namespace
        ``quick``, ``dtypes``, ``repeats``, ``fit_repeats``.
    context : dict
        ``n_cores``, ``torch``, ``jax``, ``sklearnex_class``.
    log : callable, default=print

    Returns
    -------
    record : dict
        ``sweep`` (the sizing rules), ``rates`` (:func:`suite.roofline.measure_rates`),
        ``targets`` (the thresholds) and ``results`` (one entry per point and dtype).
    """
    rates = roofline.measure_rates(context["n_cores"], args.quick, log)
    results = []
    for point in points:
        results.extend(measure_point(point, args, context, rates, log))
    return {"sweep": shapes.sizing(args.quick), "rates": rates, "targets": targets.THRESHOLDS,
            "results": results}
