"""Reports of the prediction benchmark: Markdown and reStructuredText tables, raw JSON."""

import math
import statistics

from suite import targets
from suite.machine import blas_summary
from suite.prediction import METHODS, PEER_NAMES, PREDICTION_LABELS
from suite.report import (NOT_RUN, NOT_SUPPORTED, Table, markdown_report, milliseconds,
                          rst_report, write_docs_files, write_report_files)
from suite.sweep_report import MET, MISSED, shape_label

# Where --docs puts the outputs, relative to the documentation's source directory.
DOCS_INCLUDE = "_predict_results.inc"
DOCS_STEM = "predict_results"
# The loss kernel's targets that apply to prediction (scikit-learn's peer here
# is LogisticRegression).
TARGET_LABELS = {
    "roofline": targets.TARGET_LABELS["roofline"],
    "peer:sklearn": targets.TARGET_LABELS["peer:sklearn"].replace("scikit-learn",
                                                                  "LogisticRegression"),
    "peer:torch": targets.TARGET_LABELS["peer:torch"],
    "threads": targets.TARGET_LABELS["threads"],
}


def _entries(run):
    """``(result, method, entry)`` for every point, dtype and method, in run order."""
    for result in run["results"]:
        for method in METHODS:
            if method in result["methods"]:
                yield result, method, result["methods"][method]


def _median(entry, name):
    """Median seconds of a contender, or None when it did not run."""
    return (entry["times"].get(name) or {}).get("median")


def _marked(target):
    """``"1.23× ✓"`` for a measured target, else :data:`NOT_RUN`."""
    if target is None:
        return NOT_RUN
    return f"{target['value']:.2f}× {MET if target['met'] else MISSED}"


def _time_cell(entry, name):
    """A contender's median in ms, or why there is none."""
    times = entry["times"].get(name)
    if times is None:
        return NOT_RUN
    return NOT_SUPPORTED if "unsupported" in times else milliseconds(times["median"])


def summary_table(run):
    """Per method and dtype: on how many points each target is met."""
    headers = ["method", "dtype", *TARGET_LABELS.values(), "median skcce / roofline"]
    counts = {}
    for result, method, entry in _entries(run):
        row = counts.setdefault((method, result["dtype"]), {"ratios": []})
        for name in TARGET_LABELS:
            target = entry["targets"].get(name)
            if target is not None:
                met, measured = row.get(name, (0, 0))
                row[name] = (met + target["met"], measured + 1)
        if "roofline" in entry["targets"]:
            row["ratios"].append(entry["targets"]["roofline"]["value"])
    rows = []
    for (method, dtype), row in counts.items():
        median = f"{statistics.median(row['ratios']):.2f}×" if row["ratios"] else NOT_RUN
        rows.append([method, dtype,
                     *(f"{row[name][0]} of {row[name][1]}" if name in row else NOT_RUN
                       for name in TARGET_LABELS), median])
    return Table("Targets met, per method (points where it was measured)", headers, rows)


def point_table(run):
    """Every point, dtype and method: medians, the roofline and the ratios."""
    headers = ["point", "shape", "dtype", "method", "roofline (ms)", "bound",
               *(f"{label} (ms)" for label in PREDICTION_LABELS.values()),
               "skcce / roofline", *(f"{PREDICTION_LABELS[peer]} / skcce" for peer in PEER_NAMES),
               "1 thread / all cores", "load"]
    rows = []
    for result, method, entry in _entries(run):
        roof = entry["roofline"]["all"]
        found = entry["targets"]
        load = result["load_average"]
        rows.append([result["point"], shape_label(result), result["dtype"], method,
                     milliseconds(roof["seconds"]), roof["bound"],
                     *(_time_cell(entry, name) for name in PREDICTION_LABELS),
                     _marked(found.get("roofline")),
                     *(_marked(found.get(f"peer:{peer}")) for peer in PEER_NAMES),
                     _marked(found.get("threads")),
                     NOT_RUN if load is None else f"{load[0]:.1f}"])
    return Table(f"Prediction, all cores (median; {MET} met, {MISSED} missed)", headers, rows)


def agreement_table(run):
    """The largest difference of each contender's output from skcce's, per method and dtype."""
    largest = {}
    for result, method, entry in _entries(run):
        for name, found in entry["agreement"].items():
            key = (method, result["dtype"], name)
            value = next(iter(found.values()))
            largest[key] = max(largest.get(key, 0.0), value)
    headers = ["method", "dtype", *PREDICTION_LABELS.values()]
    rows = []
    for method in METHODS:
        for dtype in ("float64", "float32"):
            if not any(key[:2] == (method, dtype) for key in largest):
                continue
            kind = "share of labels that differ" if method == "predict" else "max abs difference"
            rows.append([f"{method} ({kind})", dtype,
                         *(f"{largest[(method, dtype, name)]:.2g}"
                           if (method, dtype, name) in largest else NOT_RUN
                           for name in PREDICTION_LABELS)])
    return Table("Same model: each contender's output against skcce's (all cores), on the "
                 "first rows of every point (LogisticRegression's two-class decision "
                 "function halved)", headers, rows)


def run_facts(run):
    """The run's conditions as one-line strings."""
    info, rates = run["machine"], run["rates"]
    loads = [result["load_average"][0] for result in run["results"] if result["load_average"]]
    load = NOT_RUN if info["load_average"] is None else (
        f"{info['load_average'][0]:.2f} at the start, {info['load_average_after'][0]:.2f} at "
        f"the end, {min(loads, default=math.nan):.2f}–{max(loads, default=math.nan):.2f} "
        f"over the points (the load column)")
    bandwidth, peak = rates["bandwidth"], rates["peak"]
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items()
                         if version)
    return [
        f"Run: {run['created']}, {run['seconds'] / 60:.1f} min",
        f"CPU: {info['cpu']}; {info['usable_cores']} usable cores of {info['cpu_count']}; "
        f"1-minute load average {load}",
        f"BLAS: {blas_summary(info)}",
        f"Threads: skcce n_jobs=None (all cores) and n_jobs=1; LogisticRegression's BLAS "
        f"(dense X; SciPy's CSR product is one thread) and PyTorch use "
        f"{info['threads']['all_cores']}; PyTorch gets tensors made from X beforehand",
        f"Roofline: max((bytes of X + gathered coefficient bytes + bytes of the result) / "
        f"streaming-read bandwidth, 2 · nnz · K / peak GEMM rate); all cores "
        f"{bandwidth['all'] / 1e9:.1f} GB/s, "
        + "; ".join(f"{dtype} {peak[dtype]['all'] / 1e9:.1f} GFLOP/s"
                    for dtype in ("float64", "float32")),
        "Points: the shape sweep's (same sizes); every contender holds the same Gaussian "
        "model in X's dtype (two classes: LogisticRegression holds 2 w, skcce's symmetric "
        "softmax model [-w, w] as its w)",
        f"Timings: medians of {run['counts']['repeats']} calls after a warm-up call, "
        f"contenders round-robin, each call after a pause (a single call after idle time: "
        f"threads wake inside the timed call)",
        f"Versions: Python {info['python']}, {versions}",
    ]


def omission_notes(run):
    """One line per contender that rejected a point's data, and why."""
    return [f"{result['point']} {result['dtype']} {method}, {PREDICTION_LABELS[name]}: "
            f"{times['unsupported']}"
            for result, method, entry in _entries(run)
            for name, times in entry["times"].items() if "unsupported" in times]


def tables(run):
    """Every table of the report, in order."""
    return [summary_table(run), point_table(run), agreement_table(run)]


def render_markdown(run):
    """The whole report in Markdown."""
    return markdown_report("# skcce prediction benchmark", run["command"], run_facts(run),
                           tables(run), omission_notes(run), "Not supported")


def render_rst(run):
    """The whole report as reStructuredText, for inclusion in the documentation."""
    return rst_report(run["command"], run_facts(run), tables(run), omission_notes(run),
                      "Not supported")


def write_outputs(run, directory):
    """Write ``predict.md`` and ``predict.json`` into ``directory``.

    Returns
    -------
    paths : list of pathlib.Path
    """
    return write_report_files(run, directory, "predict", render_markdown(run))


def write_docs(run, docs_directory):
    """Write ``_predict_results.inc`` (included by ``benchmarks.rst``) and, under
    ``_static/``, the raw JSON and the Markdown report.

    Returns
    -------
    paths : list of pathlib.Path
    """
    return write_docs_files(run, docs_directory, DOCS_INCLUDE, DOCS_STEM, render_rst(run),
                            render_markdown(run))
