"""Sparse models: L1 and elastic-net fits, skcce's OWL-QN against scikit-learn's saga.

Every solver minimizes, at ``C = 1`` and a given ``l1_ratio``::

    f(W, b) = (1/n) sum_i CE_i(W x_i + b)
              + (l1_ratio ||W||_1 + (1 - l1_ratio) ||W||^2 / 2) / (C n)

``SoftmaxClassifier(l1_ratio=...)`` (OWL-QN, all cores) runs at several
tolerances, each the median of ``--fit-repeats`` fits;
``LogisticRegression(l1_ratio=..., solver="saga")`` (single-threaded, the only
scikit-learn solver for multinomial L1) runs once per tolerance: a saga fit of
the full problems takes minutes. Every model's objective is computed in
float64 and compared with the lowest known (a tight skcce fit, or any fit that
got lower). For each saga fit, the speedup is its wall time over that of the
fastest skcce setting whose objective gap is at most saga's: the comparison
"at equal or smaller objective gap".
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skcce import SoftmaxClassifier, crossentropy_loss_gradient

from suite import timing
from suite.machine import blas_summary
from suite.report import NOT_RUN, Table, rst_escape, significant

C = 1.0
# skcce's settings: the default tolerance and tighter ones.
SKCCE_TOLS = {"tol=1e-4 (default)": 1e-4, "tol=1e-5": 1e-5, "tol=1e-6": 1e-6,
              "tol=1e-8": 1e-8}
# saga's settings: a loose tolerance and its default.
SAGA_TOLS = {"tol=1e-3": 1e-3, "tol=1e-4 (default)": 1e-4}
MAX_ITER = 10_000
SAGA_MAX_ITER = 1_000
REFERENCE_TOL = 1e-10


def skcce_fit(l1_ratio, tol, max_iter=MAX_ITER):
    """Fit function ``(X, y) -> fitted SoftmaxClassifier``."""
    return lambda X, y: SoftmaxClassifier(C=C, l1_ratio=l1_ratio, tol=tol,
                                          max_iter=max_iter).fit(X, y)


def saga_fit(l1_ratio, tol):
    """Fit function ``(X, y) -> fitted LogisticRegression(solver="saga")``."""
    return lambda X, y: LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=tol,
                                           max_iter=SAGA_MAX_ITER).fit(X, y)


def objective(estimator, X, y, l1_ratio):
    """The penalized objective of a fitted model, in float64."""
    coef = np.hstack([estimator.coef_, np.reshape(estimator.intercept_, (-1, 1))])
    coef = coef.astype(np.float64)
    n = X.shape[0]
    data_term = crossentropy_loss_gradient(coef, X, y)[0]
    W = coef[:, :-1]
    return float(data_term + (l1_ratio * np.abs(W).sum()
                              + 0.5 * (1 - l1_ratio) * np.sum(W * W)) / (C * n))


def _record(estimator, X, y, l1_ratio, times):
    return {"times": times, "median": timing.median(times),
            "n_iter": int(np.max(estimator.n_iter_)),
            "nonzero": int(np.count_nonzero(estimator.coef_)),
            "coefficients": int(estimator.coef_.size),
            "objective": objective(estimator, X, y, l1_ratio)}


def measure(X, y, l1_ratio, fit_repeats, pause, log):
    """All fits of one problem at one l1_ratio.

    Returns
    -------
    result : dict
        ``fits`` (``"solver/setting"`` to times, iterations, non-zeros,
        objective and gap), ``reference`` and ``speedups``.
    """
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.perf_counter()
    reference = skcce_fit(l1_ratio, REFERENCE_TOL)(X, y)
    reference = {"objective": objective(reference, X, y, l1_ratio),
                 "n_iter": int(reference.n_iter_[0]),
                 "seconds": time.perf_counter() - start}
    log(f"  l1_ratio={l1_ratio}: reference {reference['n_iter']} iterations, "
        f"{reference['seconds']:.1f} s")
    # Warm-up on a slice, then skcce's settings round-robin.
    skcce_fit(l1_ratio, 1e-4)(X[:2000], y[:2000])
    calls = {setting: (lambda fit=skcce_fit(l1_ratio, tol): fit(X, y))
             for setting, tol in SKCCE_TOLS.items()}
    times, models = timing.interleaved_times(calls, fit_repeats, warmup_rounds=0,
                                             pause=pause)
    fits = {}
    for setting in SKCCE_TOLS:
        fits[f"skcce/{setting}"] = _record(models[setting], X, y, l1_ratio, times[setting])
        log(f"  skcce {setting}: {fits[f'skcce/{setting}']['median']:.2f} s")
    for setting, tol in SAGA_TOLS.items():
        time.sleep(pause)
        begin = time.perf_counter()
        model = saga_fit(l1_ratio, tol)(X, y)
        fits[f"saga/{setting}"] = _record(model, X, y, l1_ratio,
                                          [time.perf_counter() - begin])
        log(f"  saga {setting}: {fits[f'saga/{setting}']['median']:.1f} s, "
            f"{fits[f'saga/{setting}']['n_iter']} epochs")
    best = min([reference["objective"]] + [fit["objective"] for fit in fits.values()])
    for fit in fits.values():
        fit["gap"] = fit["objective"] - best
    return {"l1_ratio": l1_ratio, "reference": reference, "best_objective": best,
            "fits": fits, "speedups": speedups(fits)}


def speedups(fits):
    """For each saga fit: the fastest skcce setting at an equal or smaller gap.

    Returns
    -------
    speedups : dict
        saga setting to ``{"skcce": setting or None, "ratio": float or None}``.
    """
    ours = [(fit["median"], key.split("/", 1)[1], fit["gap"])
            for key, fit in fits.items() if key.startswith("skcce/")]
    result = {}
    for key, fit in fits.items():
        if not key.startswith("saga/"):
            continue
        eligible = sorted((seconds, setting) for seconds, setting, gap in ours
                          if gap <= fit["gap"])
        if eligible:
            seconds, setting = eligible[0]
            result[key.split("/", 1)[1]] = {"skcce": setting, "ratio": fit["median"] / seconds}
        else:
            result[key.split("/", 1)[1]] = {"skcce": None, "ratio": None}
    return result


def fit_table(results):
    """Every fit: wall time, iterations, non-zero coefficients, objective gap."""
    headers = ["problem", "l1_ratio", "solver", "setting", "wall time (s)", "runs",
               "iterations", "non-zero coef", "objective gap"]
    rows = []
    for result in results:
        for key, fit in result["fits"].items():
            solver, setting = key.split("/", 1)
            label = ("skcce SoftmaxClassifier (OWL-QN)" if solver == "skcce"
                     else "LogisticRegression (saga)")
            rows.append([result["problem"], f"{result['l1_ratio']:g}", label, setting,
                         significant(fit["median"]), str(len(fit["times"])),
                         str(fit["n_iter"]), f"{fit['nonzero']:,} of {fit['coefficients']:,}",
                         f"{fit['gap']:.1e}"])
    return Table(f"L1 and elastic-net fits at C = {C:g}", headers, rows)


def speedup_table(results):
    """saga's wall time over skcce's at an equal or smaller objective gap."""
    headers = ["problem", "l1_ratio", "saga setting", "saga time (s)", "saga gap",
               "fastest skcce setting at ≤ gap", "skcce time (s)", "skcce gap",
               "saga / skcce"]
    rows = []
    for result in results:
        for setting, speedup in result["speedups"].items():
            saga = result["fits"][f"saga/{setting}"]
            row = [result["problem"], f"{result['l1_ratio']:g}", setting,
                   significant(saga["median"]), f"{saga['gap']:.1e}"]
            if speedup["skcce"] is None:
                rows.append(row + ["none reached it", NOT_RUN, NOT_RUN, NOT_RUN])
                continue
            ours = result["fits"][f"skcce/{speedup['skcce']}"]
            rows.append(row + [speedup["skcce"], significant(ours["median"]),
                               f"{ours['gap']:.1e}", f"{speedup['ratio']:.1f}×"])
    return Table("Wall time at equal or smaller objective gap", headers, rows)


def reference_table(results):
    headers = ["problem", "l1_ratio", "objective", "reference fit", "iterations", "time (s)"]
    rows = [[result["problem"], f"{result['l1_ratio']:g}",
             f"{result['best_objective']:.12g}",
             f"SoftmaxClassifier(l1_ratio, tol={REFERENCE_TOL:g})",
             str(result["reference"]["n_iter"]), significant(result["reference"]["seconds"])]
            for result in results]
    return Table("Reference optima (lowest of the reference fit and every fit)",
                 headers, rows)


def tables(run):
    """The sparse-model report's tables, in order."""
    results = run["results"]
    return [speedup_table(results), fit_table(results), reference_table(results)]


def facts(run):
    """The run's conditions as one-line strings."""
    info = run["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items()
                         if version)
    load = NOT_RUN if info["load_average"] is None else (
        f"{info['load_average'][0]:.2f} before, {info['load_average_after'][0]:.2f} after")
    return [
        f"Command: `{run['command']}`",
        f"Run: {run['created']}, {run['seconds'] / 60:.1f} min",
        f"CPU: {info['cpu']}; {info['usable_cores']} usable cores of {info['cpu_count']}; "
        f"1-minute load average {load}",
        f"BLAS: {blas_summary(info)}",
        f"Threads: skcce n_jobs=None ({info['threads']['all_cores']} threads); saga is "
        "single-threaded",
        f"Timings: skcce, median of {run['counts']['fit_repeats']} fits per setting, "
        "settings round-robin after a warm-up fit on a slice; saga, one fit per setting",
        f"Versions: Python {info['python']}, {versions}",
    ]


def render_markdown(run):
    """The sparse-model report in Markdown."""
    parts = ["# skcce sparse models (L1, elastic net): OWL-QN and saga", ""]
    parts += [f"- {fact}" for fact in facts(run)]
    parts += ["", *(table.to_markdown() + "\n" for table in tables(run))]
    return "\n".join(parts)


def render_rst(run):
    """The sparse-model report as reStructuredText, for the documentation."""
    parts = [f"- {rst_escape(fact).replace(chr(92) + '`', '``')}" for fact in facts(run)]
    parts.append("")
    for table in tables(run):
        parts += [table.to_rst(), ""]
    return "\n".join(parts)
