"""Reports of a run: Markdown and reStructuredText tables, a PNG plot, raw JSON.

The suite's roofline is the *BLAS roofline*: its GEMM rate is BLAS's on the
kernel's own skinny shapes, far below the machine's peak, so it is a lax
bound and labelled as such. The shape sweep (``suite.sweep_report``) reports
the physical roofline.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from suite.evaluation import EVALUATION_LABELS
from suite.fitting import SETTINGS, SOLVER_LABELS
from suite.machine import GEMM_BLOCK_BYTES, blas_summary

NOT_SUPPORTED = "not supported"
SKIPPED = "skipped"
NOT_RUN = "—"
# Plot colours, one per per-evaluation contender.
EVALUATION_COLORS = {"skcce_1": "#9ecae1", "skcce_all": "#08519c", "skcce_public": "#6a51a3",
                     "sklearn": "#f16913", "torch": "#74c476", "jax": "#969696"}
# Where --docs puts the outputs, relative to the documentation's source directory.
DOCS_INCLUDE = "_benchmark_results.inc"
DOCS_STATIC = "_static"
DOCS_STEM = "benchmark_results"


@dataclass
class Table:
    """A titled table of already formatted cells."""

    title: str
    headers: list
    rows: list

    def to_markdown(self):
        """The table in GitHub Markdown, under a level-3 heading."""
        lines = [f"### {self.title}", "",
                 "| " + " | ".join(self.headers) + " |",
                 "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def to_rst(self):
        """The table as a reStructuredText ``list-table`` directive."""
        lines = [f".. list-table:: {rst_escape(self.title)}", "   :header-rows: 1", ""]
        for row in [self.headers, *self.rows]:
            first, *rest = [rst_escape(cell) or "\\ " for cell in row]
            lines.append(f"   * - {first}")
            lines += [f"     - {cell}" for cell in rest]
        return "\n".join(lines)


def rst_escape(text):
    """Backslash-escape the characters reStructuredText would read as markup."""
    for char in "\\*`|_":
        text = text.replace(char, "\\" + char)
    return text


def significant(value):
    """Three significant digits below 1,000; whole numbers with thousands separators above."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def milliseconds(seconds):
    """``0.01234`` -> ``"12.3"``."""
    return significant(seconds * 1e3)


def ratio(numerator, denominator):
    """``numerator / denominator`` as ``"2.50×"``."""
    return f"{numerator / denominator:.2f}×"


def megabytes(n_bytes):
    """Bytes as megabytes (10⁶), three significant digits."""
    return significant(n_bytes / 1e6)


def median_of(entry):
    """The median time of a timed entry, or None when it is missing, unsupported or skipped."""
    return None if entry is None else entry.get("median")


def cell(entry, text_of):
    """A table cell: ``text_of(entry)``, or why there is no number."""
    if entry is None:
        return NOT_RUN
    if "unsupported" in entry:
        return NOT_SUPPORTED
    return text_of(entry)


def evaluation_table(run):
    """Per-evaluation medians, the BLAS roofline and the ratios that matter."""
    headers = ["problem", "dtype", "BLAS roofline 1 thread / all cores (ms)", "bound",
               *(f"{label} (ms)" for label in EVALUATION_LABELS.values()),
               "skcce / BLAS roofline (1 thread; all cores)", "scikit-learn / skcce",
               "PyTorch / skcce", "JAX / skcce", "speedup 1 thread → all cores", "load"]
    rows = []
    for result in run["results"]:
        roof, times = result["roofline"], result["evaluation"]
        medians = {name: median_of(times.get(name)) for name in EVALUATION_LABELS}
        ours_1, ours_all = medians["skcce_1"], medians["skcce_all"]
        row = [result["problem"], result["dtype"],
               f"{milliseconds(roof['1']['seconds'])} / {milliseconds(roof['all']['seconds'])}",
               f"{roof['1']['bound']} / {roof['all']['bound']}"]
        row += [cell(times.get(name), lambda e: milliseconds(e["median"]))
                for name in EVALUATION_LABELS]
        if ours_all is None:
            row += [NOT_SUPPORTED] * 5
        else:
            row.append(f"{ratio(ours_1, roof['1']['seconds'])}; "
                       f"{ratio(ours_all, roof['all']['seconds'])}")
            row += [ratio(medians[name], ours_all) if medians[name] else NOT_RUN
                    for name in ("sklearn", "torch", "jax")]
            row.append(ratio(ours_1, ours_all))
        row.append(NOT_RUN if result["load_average"] is None
                   else f"{result['load_average'][0]:.1f}")
        rows.append(row)
    return Table("Loss and gradient, one evaluation (median)", headers, rows)


def roofline_table(run):
    """What each BLAS roofline is made of: bytes, flops, measured GEMM rates."""
    headers = ["problem", "dtype", "shape", "X (MB)", "GFLOP per evaluation",
               "GEMM rate 1 thread / all cores (GFLOP/s)"]
    rows = []
    for result in run["results"]:
        roof = result["roofline"]
        rows.append([result["problem"], result["dtype"], result["label"],
                     megabytes(roof["x_bytes"]), f"{roof['flops'] / 1e9:.3g}",
                     f"{roof['1']['gemm_flops_per_second'] / 1e9:.1f} / "
                     f"{roof['all']['gemm_flops_per_second'] / 1e9:.1f}"])
    return Table("BLAS roofline inputs (GEMM rate: SciPy's BLAS, dgemm or sgemm, the kernel's "
                 f"two GEMM shapes on a {GEMM_BLOCK_BYTES >> 20} MiB block of rows)",
                 headers, rows)


def fit_table(run):
    """Wall time, iterations and objective gap of every fit."""
    headers = ["problem", "dtype", "solver", "setting", "wall time (s)", "runs",
               "time / skcce", "iterations", "objective gap", "note"]
    rows = []
    for result in run["results"]:
        for setting in SETTINGS:
            ours = median_of(result["fits"].get(f"skcce/{setting}"))
            for solver, label in SOLVER_LABELS.items():
                entry = result["fits"].get(f"{solver}/{setting}")
                if entry is None:
                    continue
                row = [result["problem"], result["dtype"], label, setting]
                if "median" not in entry:
                    reason = NOT_SUPPORTED if "unsupported" in entry else SKIPPED
                    rows.append(row + [reason] * 5 + [""])
                    continue
                rows.append(row + [
                    significant(entry['median']), str(len(entry["times"])),
                    ratio(entry["median"], ours) if ours else NOT_RUN,
                    str(entry["n_iter"]), f"{entry['gap']:.1e}", entry["note"],
                ])
    return Table("Fit at C = 1 (median wall time)", headers, rows)


def memory_table(run):
    """Peak traced memory of a default fit, next to the size of X."""
    headers = ["problem", "dtype", "X (MB)", "skcce peak (MB)",
               "LogisticRegression peak (MB)", "LogisticRegression / skcce"]
    rows = []
    for result in run["results"]:
        peaks = result["memory"]
        ours, theirs = peaks["skcce"], peaks["sklearn"]
        rows.append([result["problem"], result["dtype"],
                     megabytes(result["roofline"]["x_bytes"]),
                     megabytes(ours) if ours is not None else NOT_SUPPORTED,
                     megabytes(theirs) if theirs is not None else NOT_SUPPORTED,
                     ratio(theirs, ours) if ours and theirs else NOT_RUN])
    return Table("Peak memory of a default fit (tracemalloc)", headers, rows)


def reference_table(run):
    """The optimum each problem's objective gaps are measured from."""
    headers = ["problem", "objective", "reference fit", "iterations", "time (s)"]
    rows = []
    for problem, entry in run["references"].items():
        fit = entry["reference_fit"]
        rows.append([problem, f"{entry['best_objective']:.12g}",
                     "SoftmaxClassifier(tol=1e-10), float64" if fit else
                     "none (skcce rejects this X): lowest objective of all fits",
                     str(fit["n_iter"]) if fit else NOT_RUN,
                     significant(fit["seconds"]) if fit else NOT_RUN])
    return Table("Reference optima (lowest of the reference fit and every fit)",
                 headers, rows)


def loss_agreement(run):
    """Largest relative difference from skcce's loss of any contender's, per dtype.

    Returns
    -------
    differences : dict of str to float
        dtype to the largest ``|loss / skcce's loss - 1|`` over problems and
        contenders: all compute the same objective at the same coefficients.
    """
    differences = {}
    for result in run["results"]:
        losses = [entry["loss"] for entry in result["evaluation"].values() if "loss" in entry]
        reference = result["evaluation"].get("skcce_all", {}).get("loss")
        if reference is None:
            continue
        largest = max(abs(loss / reference - 1.0) for loss in losses)
        differences[result["dtype"]] = max(differences.get(result["dtype"], 0.0), largest)
    return differences


def run_facts(run):
    """The run's conditions (other than its command) as a list of one-line strings."""
    info = run["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items()
                         if version)
    bandwidth = "; ".join(
        f"{entry['threads']} thread(s) {entry['bytes_per_second'] / 1e9:.1f} GB/s "
        f"({entry['method']})" for entry in run["bandwidths"].values())
    counts = run["counts"]
    load = NOT_RUN if info["load_average"] is None else (
        f"{info['load_average'][0]:.2f} before, {info['load_average_after'][0]:.2f} after "
        f"(the load column: at the start of each row's measurements)")
    return [
        f"Run: {run['created']}, {run['seconds'] / 60:.1f} min",
        f"CPU: {info['cpu']}; {info['usable_cores']} usable cores of {info['cpu_count']}; "
        f"1-minute load average {load}",
        f"BLAS: {blas_summary(info)}",
        f"Threads: skcce n_jobs=None, scikit-learn n_threads, BLAS and PyTorch all use "
        f"{info['threads']['all_cores']}; JAX: XLA's CPU backend (all cores); environment: "
        f"{info['environment'] or 'no thread variables set'}",
        f"Streaming-read bandwidth: {bandwidth}",
        f"Timings: medians of {counts['repeats']} evaluations after a warm-up, and of "
        f"{counts['fit_repeats']} fits at default settings and {counts['tight_fit_repeats']} "
        f"at the tight setting after a warm-up fit on a slice (fewer where the fit table's "
        f"runs column says so), contenders round-robin",
        f"Versions: Python {info['python']}, {versions}",
        "Same objective: every contender's loss agrees with skcce's within "
        + ", ".join(f"{difference:.1e} ({dtype})"
                    for dtype, difference in loss_agreement(run).items())
        + " (relative)",
    ]


def omission_notes(run):
    """One line per contender that rejected a problem's data or was not run, and why."""
    notes = []
    for result in run["results"]:
        entries = {**{EVALUATION_LABELS[name]: entry
                      for name, entry in result["evaluation"].items()},
                   **{f"{SOLVER_LABELS[key.split('/')[0]]} ({key.split('/')[1]})": entry
                      for key, entry in result["fits"].items()}}
        for label, entry in entries.items():
            reason = entry.get("unsupported") or entry.get("skipped")
            if reason:
                notes.append(f"{result['problem']} {result['dtype']}, {label}: {reason}")
    return notes


def tables(run):
    """Every table of the report, in order."""
    return [evaluation_table(run), roofline_table(run), fit_table(run),
            reference_table(run), memory_table(run)]


def render_markdown(run):
    """The whole report in Markdown."""
    return markdown_report("# skcce benchmark results", run["command"], run_facts(run),
                           tables(run), omission_notes(run), "Not supported or not run")


def render_rst(run):
    """The whole report as reStructuredText, for inclusion in the documentation."""
    return rst_report(run["command"], run_facts(run), tables(run), omission_notes(run),
                      "Not supported or not run")


def markdown_report(title, command, facts, tables, notes, notes_heading):
    """A report in Markdown: title, command, facts, tables, then the notes if any."""
    parts = [title, "", f"- Command: `{command}`"]
    parts += [f"- {fact}" for fact in facts]
    parts += ["", *(table.to_markdown() + "\n" for table in tables)]
    if notes:
        parts += [f"### {notes_heading}", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(parts)


def rst_report(command, facts, tables, notes, notes_heading):
    """:func:`markdown_report` in reStructuredText, without the title (the page has one)."""
    parts = [f"- Command: ``{command}``"]
    parts += [f"- {rst_escape(fact)}" for fact in facts]
    parts.append("")
    for table in tables:
        parts += [table.to_rst(), ""]
    if notes:
        parts += [f"{notes_heading}:", "", *(f"- {rst_escape(note)}" for note in notes), ""]
    return "\n".join(parts)


def _evaluation_bars(results):
    """Label to (bar heights, colour): per-evaluation time over the matching BLAS roofline."""
    bars = {}
    for name, label in EVALUATION_LABELS.items():
        roof_key = "1" if name == "skcce_1" else "all"
        heights = []
        for result in results:
            seconds = median_of(result["evaluation"].get(name))
            heights.append(seconds / result["roofline"][roof_key]["seconds"] if seconds else 0.0)
        if name == "skcce_1":
            label += " (over the 1-thread BLAS roofline)"
        bars[label] = (heights, EVALUATION_COLORS[name])
    return bars


def _fit_bars(results):
    """Label to (bar heights, colour): default-settings fit time over skcce's."""
    bars = {}
    for index, solver in enumerate(s for s in SOLVER_LABELS if s != "skcce"):
        heights = []
        for result in results:
            ours, theirs = (median_of(result["fits"].get(f"{name}/default"))
                            for name in ("skcce", solver))
            heights.append(theirs / ours if ours and theirs else 0.0)
        bars[SOLVER_LABELS[solver]] = (heights, f"C{index}")
    return bars


def _grouped_bars(axis, bars, group_names):
    """Draw one bar per group for every series that has data, on a log scale."""
    bars = {label: series for label, series in bars.items() if any(series[0])}
    width = 0.8 / max(1, len(bars))
    for index, (label, (heights, color)) in enumerate(bars.items()):
        offset = (index - (len(bars) - 1) / 2) * width
        axis.bar([group + offset for group in range(len(group_names))], heights, width,
                 label=label, color=color)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xticks(range(len(group_names)), group_names, fontsize=8)


def plot(run, path):
    """Bar charts of per-evaluation time over the BLAS roofline and of fit time over skcce's.

    Per problem and dtype: skcce with one thread is divided by the one-thread
    roofline, the all-cores contenders by the all-cores roofline; below, the
    wall time of each peer's fit at default settings over skcce's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = run["results"]
    group_names = [f"{result['problem']}\n{result['dtype']}" for result in results]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(results)), 8))
    _grouped_bars(top, _evaluation_bars(results), group_names)
    top.axhline(1.5, color="black", linewidth=0.8, linestyle="--",
                label="1.5 × BLAS roofline")
    top.set_ylabel("time of one evaluation / BLAS roofline")
    top.set_title("Loss and gradient: time per evaluation relative to the BLAS roofline "
                  "(BLAS's rate on the kernel's GEMM shapes: a lax bound)")
    top.legend(fontsize=8, ncols=3)
    _grouped_bars(bottom, _fit_bars(results), group_names)
    bottom.set_ylabel("fit wall time / skcce")
    bottom.set_title("Fit at default settings: wall time relative to skcce SoftmaxClassifier")
    bottom.legend(fontsize=8, ncols=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_text(path, text):
    """Write text (UTF-8) and return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def write_report_files(run, directory, stem, markdown):
    """Write ``<stem>.md`` (the report) and ``<stem>.json`` (the raw run) into
    ``directory``, creating it.

    Returns
    -------
    paths : list of pathlib.Path
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_text(directory / f"{stem}.md", markdown),
            write_text(directory / f"{stem}.json", json.dumps(run, indent=1))]


def write_docs_files(run, docs_directory, include, stem, rst, markdown):
    """Write a report into the documentation's source directory: ``include``
    (reStructuredText) and, under ``_static/``, ``<stem>.json`` and
    ``<stem>.md``.

    Returns
    -------
    paths : list of pathlib.Path
    """
    return [write_text(Path(docs_directory) / include, rst),
            *write_report_files(run, Path(docs_directory) / DOCS_STATIC, stem, markdown)]


def write_outputs(run, directory):
    """Write ``results.md``, ``results.json`` and ``results.png`` into ``directory``.

    Returns
    -------
    paths : list of pathlib.Path
    """
    paths = write_report_files(run, directory, "results", render_markdown(run))
    png = Path(directory) / "results.png"
    plot(run, png)
    return [*paths, png]


def write_docs(run, docs_directory):
    """Write the report into the documentation's source directory.

    ``_benchmark_results.inc`` (reStructuredText, included by
    ``benchmarks.rst``) and, under ``_static/``, the raw JSON, the Markdown
    report and the plot.

    Returns
    -------
    paths : list of pathlib.Path
    """
    paths = write_docs_files(run, docs_directory, DOCS_INCLUDE, DOCS_STEM, render_rst(run),
                             render_markdown(run))
    png = Path(docs_directory) / DOCS_STATIC / f"{DOCS_STEM}.png"
    plot(run, png)
    return [*paths, png]
