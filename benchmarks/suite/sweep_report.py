"""Reports of a sweep: heatmaps over (d, K), Markdown and reStructuredText tables, raw JSON."""

import math
from pathlib import Path

from suite import targets
from suite.evaluation import EVALUATION_LABELS, PEER_NAMES
from suite.fitting import SOLVER_LABELS
from suite.machine import blas_summary
from suite.report import (NOT_RUN, NOT_SUPPORTED, Table, markdown_report, megabytes,
                          milliseconds, rst_report, significant, write_docs_files,
                          write_report_files)

MET, MISSED = "✓", "✗"
DTYPES = ("float64", "float32")
# The heatmaps: file stem and what each plots.
HEATMAPS = {
    "sweep_roofline": "skcce / physical roofline",
    "sweep_peers": "fastest peer / skcce",
}
PEER_SHORT = {"sklearn": "sklearn", "torch": "PyTorch", "jax": "JAX"}
# Where --docs puts the outputs, relative to the documentation's source directory.
DOCS_INCLUDE = "_sweep_results.inc"
DOCS_STATIC = "_static"
DOCS_STEM = "sweep_results"


def _median(entries, name):
    """Median time of a contender, or None when it did not run."""
    return (entries.get(name) or {}).get("median")


def _marked(value, target):
    """``"1.23× ✓"``: a ratio and whether its target is met (no mark when none applies)."""
    if value is None:
        return NOT_RUN
    mark = "" if target is None else " " + (MET if target["met"] else MISSED)
    return f"{value:.2f}×{mark}"


def shape_label(result):
    """``"320,000 × 100, K=20"`` or ``"CSR 200,000 × 50,000, 48.7 nnz/row, Zipf(1), K=20"``."""
    n, d, k = result["n_samples"], result["n_features"], result["n_classes"]
    if not result["sparse"]:
        return f"{n:,} × {d:,}, K={k}"
    columns = "uniform" if result["column_skew"] is None else f"Zipf({result['column_skew']:g})"
    return f"CSR {n:,} × {d:,}, {result['nnz'] / n:.1f} nnz/row, {columns}, K={k}"


def time_table(run):
    """Medians of one evaluation, every contender, and the roofline."""
    headers = ["point", "shape", "dtype", "roofline (ms)", "bound",
               *(f"{label} (ms)" for label in EVALUATION_LABELS.values())]
    rows = []
    for result in run["results"]:
        roof = result["roofline"]["all"]
        row = [result["point"], shape_label(result), result["dtype"],
               milliseconds(roof["seconds"]), roof["bound"]]
        for name in EVALUATION_LABELS:
            entry = result["evaluation"].get(name)
            row.append(NOT_RUN if entry is None else NOT_SUPPORTED if "unsupported" in entry
                       else milliseconds(entry["median"]))
        rows.append(row)
    return Table("One evaluation of the loss and gradient, all cores (median, ms)",
                 headers, rows)


def ratio_table(run):
    """The ratios the targets are set on, each marked met or missed."""
    headers = ["point", "dtype", "skcce / roofline", "fastest peer / skcce",
               *(f"{EVALUATION_LABELS[peer]} / skcce" for peer in PEER_NAMES),
               "1 thread / all cores", "public / fit step", "load"]
    rows = []
    for result in run["results"]:
        times, found = result["evaluation"], result["targets"]
        ours = _median(times, "skcce_all")
        if ours is None:
            rows.append([result["point"], result["dtype"], *[NOT_SUPPORTED] * 7, ""])
            continue
        peer, best = targets.best_peer(result)
        row = [result["point"], result["dtype"],
               _marked(ours / result["roofline"]["all"]["seconds"], found.get("roofline")),
               NOT_RUN if peer is None else f"{best:.2f}× ({PEER_SHORT[peer]})"]
        for name in PEER_NAMES:
            theirs = _median(times, name)
            row.append(_marked(theirs / ours if theirs else None, found.get(f"peer:{name}")))
        row.append(_marked(_median(times, "skcce_1") / ours, found.get("threads")))
        public = _median(times, "skcce_public")
        row.append(f"{public / ours:.2f}×" if public else NOT_RUN)
        load = result["load_average"]
        row.append(NOT_RUN if load is None else f"{load[0]:.1f}")
        rows.append(row)
    return Table(f"Ratios and targets, all cores ({MET} met, {MISSED} missed)", headers, rows)


def roofline_table(run):
    """What each roofline is made of."""
    headers = ["point", "dtype", "X (MB)", "gathered coefficients (MB)", "GFLOP",
               "memory time (ms)", "compute time (ms)", "roofline 1 thread (ms)",
               "1 thread / all cores (roofline)"]
    rows = []
    for result in run["results"]:
        roof = result["roofline"]
        rows.append([result["point"], result["dtype"], megabytes(roof["x_bytes"]),
                     megabytes(roof["gathered_bytes"]), f"{roof['flops'] / 1e9:.3g}",
                     milliseconds(roof["all"]["memory_seconds"]),
                     milliseconds(roof["all"]["compute_seconds"]),
                     milliseconds(roof["1"]["seconds"]),
                     f"{roof['1']['seconds'] / roof['all']['seconds']:.2f}×"])
    return Table("Physical roofline, all cores: max(memory time, compute time)",
                 headers, rows)


def fit_table(run):
    """Default fits on the fitted points: wall time, iterations, objective gap."""
    headers = ["point", "dtype", "rows", "solver", "wall time (s)", "runs", "time / skcce",
               "iterations", "objective gap", "note"]
    rows = []
    for result in run["results"]:
        fits = result.get("fits")
        if not fits:
            continue
        ours = _median(fits, "skcce")
        for solver, entry in fits.items():
            row = [result["point"], result["dtype"], f"{result['fit_rows']:,}",
                   SOLVER_LABELS[solver]]
            if "median" not in entry:
                rows.append(row + [NOT_SUPPORTED] * 5 + [entry.get("unsupported", "")])
                continue
            target = result["targets"].get(f"fit:{solver}")
            rows.append(row + [
                significant(entry["median"]), str(len(entry["times"])),
                _marked(entry["median"] / ours, target) if ours else NOT_RUN,
                str(entry["n_iter"]), f"{entry['gap']:.3g}", entry["note"],
            ])
    return Table("Fit at default settings, C = 1 (median wall time; objective gap to the "
                 "lowest objective of the point's fits)", headers, rows)


def target_table(run):
    """Each target: on how many points it was measured, and the points that miss it."""
    missed, measured = targets.misses(run["results"])
    rows = [[label, str(measured[name]), str(measured[name] - len(missed[name])),
             "; ".join(missed[name]) or "none"]
            for name, label in targets.TARGET_LABELS.items()]
    return Table("Targets: points that miss them", ["target", "measured", "met", "missed by"],
                 rows)


def loss_agreement(run):
    """Largest relative difference of any contender's loss from skcce's, per dtype."""
    differences = {}
    for result in run["results"]:
        reference = result["evaluation"].get("skcce_all", {}).get("loss")
        if reference is None:
            continue
        losses = [entry["loss"] for entry in result["evaluation"].values() if "loss" in entry]
        largest = max(abs(loss / reference - 1.0) for loss in losses)
        differences[result["dtype"]] = max(differences.get(result["dtype"], 0.0), largest)
    return differences


def run_facts(run):
    """The run's conditions as one-line strings."""
    info, rates, sizing = run["machine"], run["rates"], run["sweep"]
    loads = [result["load_average"][0] for result in run["results"] if result["load_average"]]
    load = NOT_RUN if info["load_average"] is None else (
        f"{info['load_average'][0]:.2f} at the start, {info['load_average_after'][0]:.2f} at "
        f"the end, {min(loads, default=math.nan):.2f}–{max(loads, default=math.nan):.2f} "
        f"over the points (the load column)")
    bandwidth = rates["bandwidth"]
    peak = rates["peak"]
    cache = rates["last_level_cache"]
    cache_size = "unknown" if cache["bytes"] is None else f"{cache['bytes'] >> 20} MiB"
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items()
                         if version)
    counts = run["counts"]
    return [
        f"Run: {run['created']}, {run['seconds'] / 60:.1f} min",
        f"CPU: {info['cpu']}; {info['usable_cores']} usable cores of {info['cpu_count']}; "
        f"last-level cache {cache_size} ({cache['source']}); 1-minute load average {load}",
        f"BLAS: {blas_summary(info)}",
        f"Threads: skcce n_jobs=None (the fit step holds BLAS to one thread), scikit-learn "
        f"n_threads, its BLAS and PyTorch use {info['threads']['all_cores']}; JAX: XLA's CPU "
        f"backend (all cores); environment: {info['environment'] or 'no thread variables set'}",
        f"Streaming-read bandwidth ({bandwidth['array_bytes'] >> 20} MiB array): 1 thread "
        f"{bandwidth['1'] / 1e9:.1f} GB/s ({bandwidth['method']['1']}), all cores "
        f"{bandwidth['all'] / 1e9:.1f} GB/s ({bandwidth['method']['all']})",
        f"Peak GEMM ({peak['gemm_size']} × {peak['gemm_size']}, SciPy's BLAS): "
        + "; ".join(f"{dtype} {peak[dtype]['1'] / 1e9:.1f} (1 thread) / "
                    f"{peak[dtype]['all'] / 1e9:.1f} (all cores) GFLOP/s" for dtype in DTYPES),
        f"Dense points: n = {sizing['dense_values']:,} / d rows, fewer where one evaluation "
        f"would exceed {sizing['max_flops'] / 1e9:g} GFLOP or n · K would exceed "
        f"{sizing['max_logits']:,}, at least {sizing['min_rows']:,}; Gaussian features, "
        f"labels drawn from the softmax of a random linear model",
        f"Fits: on the point's first rows, at most {sizing['fit_values']:,} values of X "
        f"and {sizing['fit_flops'] / 1e9:g} GFLOP per evaluation",
        f"Timings: medians of {counts['repeats']} evaluations after a warm-up (each timed "
        f"one right after an untimed one of the same contender, as in a fit) and of "
        f"{counts['fit_repeats']} fits after a warm-up fit on a slice, contenders round-robin",
        f"Versions: Python {info['python']}, {versions}",
        "Same objective: every contender's loss agrees with skcce's within "
        + ", ".join(f"{difference:.1e} ({dtype})"
                    for dtype, difference in loss_agreement(run).items()) + " (relative)",
    ]


def omission_notes(run):
    """One line per contender that rejected a point's data, and why."""
    notes = []
    for result in run["results"]:
        entries = {**{EVALUATION_LABELS[name]: entry
                      for name, entry in result["evaluation"].items()},
                   **{SOLVER_LABELS[name]: entry for name, entry in result.get("fits", {}).items()}}
        notes += [f"{result['point']} {result['dtype']}, {label}: {entry['unsupported']}"
                  for label, entry in entries.items() if "unsupported" in entry]
    return notes


def tables(run):
    """Every table of the report, in order."""
    return [target_table(run), ratio_table(run), time_table(run), roofline_table(run),
            fit_table(run)]


def render_markdown(run):
    """The whole report in Markdown."""
    return markdown_report("# skcce shape sweep", run["command"], run_facts(run), tables(run),
                           omission_notes(run), "Not supported")


def render_rst(run):
    """The whole report as reStructuredText, for inclusion in the documentation."""
    return rst_report(run["command"], run_facts(run), tables(run), omission_notes(run),
                      "Not supported")


def heatmap_cells(run, dtype, kind):
    """The dense points of one dtype as ``{(d, K): (value, met, note)}``.

    ``kind`` is ``"sweep_roofline"`` (skcce / roofline) or ``"sweep_peers"``
    (fastest peer / skcce, note: which peer).
    """
    cells = {}
    for result in run["results"]:
        if result["sparse"] or result["dtype"] != dtype:
            continue
        key = (result["n_features"], result["n_classes"])
        if kind == "sweep_roofline":
            target = result["targets"].get("roofline")
            if target:
                cells[key] = (target["value"], target["met"], "")
        else:
            peer, best = targets.best_peer(result)
            if peer is not None:
                cells[key] = (best, best >= run["targets"]["peer"], PEER_SHORT[peer])
    return cells


def _draw_heatmap(axis, figure, cells, features, classes, threshold, lower_is_better, title):
    """One annotated heatmap: colour = how far from the target, green met, red missed."""
    import numpy as np
    from matplotlib.colors import Normalize

    # Colour by log10 of the distance to the threshold, positive when met.
    limit = math.log10(4.0)
    grid = np.full((len(features), len(classes)), np.nan)
    for (d, k), (value, _, _) in cells.items():
        score = math.log10(threshold / value if lower_is_better else value / threshold)
        grid[features.index(d), classes.index(k)] = max(-limit, min(limit, score))
    axis.set_facecolor("#e8e8e8")  # shapes not in the sample
    image = axis.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn",
                        norm=Normalize(-limit, limit), aspect="auto")
    for (d, k), (value, met, note) in cells.items():
        text = f"{value:.2f}" + (f"\n{note}" if note else "")
        axis.text(classes.index(k), features.index(d), text, ha="center", va="center",
                  fontsize=7.5, fontweight="normal" if met else "bold")
    axis.set_xticks(range(len(classes)), [str(k) for k in classes])
    axis.set_yticks(range(len(features)), [str(d) for d in features])
    axis.set_xlabel("classes K")
    axis.set_ylabel("features d")
    axis.set_title(title, fontsize=10)
    ratios = [0.25, 0.5, 1.0, 2.0, 4.0]
    bar = figure.colorbar(image, ax=axis, fraction=0.04,
                          ticks=[math.log10(r) for r in ratios])
    # Tick labels in the plotted ratio itself.
    bar.ax.set_yticklabels([f"{threshold / r:.3g}" if lower_is_better else f"{threshold * r:.3g}"
                            for r in ratios])


def plot(run, kind, path):
    """One heatmap per dtype over (d, K), side by side, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features, classes = list(run["sweep"]["features"]), list(run["sweep"]["classes"])
    dtypes = [dtype for dtype in DTYPES if any(r["dtype"] == dtype for r in run["results"])]
    figure, axes = plt.subplots(1, max(1, len(dtypes)), figsize=(7.2 * max(1, len(dtypes)), 5.2),
                                squeeze=False)
    for axis, dtype in zip(axes[0], dtypes):
        if kind == "sweep_roofline":
            threshold, lower = run["targets"]["roofline"][dtype], True
            title = (f"{dtype}: skcce / physical roofline, all cores\n"
                     f"(target ≤ {threshold:g}; bold: missed)")
        else:
            threshold, lower = run["targets"]["peer"], False
            title = (f"{dtype}: fastest peer / skcce, all cores\n"
                     f"(target ≥ {threshold:g}; bold: missed)")
        _draw_heatmap(axis, figure, heatmap_cells(run, dtype, kind), features, classes,
                      threshold, lower, title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_outputs(run, directory):
    """Write ``sweep.md``, ``sweep.json`` and the heatmaps into ``directory``.

    Returns
    -------
    paths : list of pathlib.Path
    """
    paths = write_report_files(run, directory, "sweep", render_markdown(run))
    return [*paths, *(plot(run, kind, Path(directory) / f"{kind}.png") for kind in HEATMAPS)]


def write_docs(run, docs_directory):
    """Write the report into the documentation's source directory.

    ``_sweep_results.inc`` (reStructuredText, included by ``benchmarks.rst``)
    and, under ``_static/``, the raw JSON, the Markdown report and the heatmaps.

    Returns
    -------
    paths : list of pathlib.Path
    """
    paths = write_docs_files(run, docs_directory, DOCS_INCLUDE, DOCS_STEM, render_rst(run),
                             render_markdown(run))
    static = Path(docs_directory) / DOCS_STATIC
    return [*paths, *(plot(run, kind, static / f"{kind}.png") for kind in HEATMAPS)]
