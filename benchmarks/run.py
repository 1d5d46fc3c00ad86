"""skcce benchmark suite: per-evaluation time against a roofline, fits, memory.

Usage::

    python benchmarks/run.py [--quick] [--out DIR] [--docs]
                             [--problems dense-200k,sparse] [--dtypes float64,float32]
                             [--peers torch,jax,sklearnex | none]
                             [--repeats 7] [--fit-repeats 5] [--tight-fit-repeats 3]
    python benchmarks/run.py --l1 [--quick] [--out DIR] [--docs]
                             [--problems dense-200k,text-100k] [--l1-ratios 0.5,1]
                             [--fit-repeats 5]
    python benchmarks/run.py --sweep [--quick] [--out DIR] [--docs]
                             [--problems dense-d100,csr] [--dtypes ...] [--peers ...]
                             [--repeats 5] [--fit-repeats 3]
    python benchmarks/run.py --predict [--quick] [--out DIR] [--docs]
                             [--problems dense-d100,csr] [--dtypes ...] [--peers torch|none]
                             [--repeats 5]

For each problem (``benchmarks/suite/problems.py``) and dtype, in one process:

1. the BLAS roofline of one evaluation of the loss and gradient,
   ``max(bytes of X / read bandwidth, 4 · nnz(X) · K / GEMM rate)``, for one
   thread and for all cores, with both rates measured in this run; the GEMM
   rate is BLAS's on the kernel's own skinny shapes, far below the machine's
   peak, so this bound is lax (the sweep's physical roofline is not);
2. the median time of one evaluation: skcce with one thread and all cores,
   scikit-learn's ``LinearModelLoss.loss_gradient``, PyTorch and JAX (when
   installed);
3. fits at default and tight settings: skcce, LogisticRegression,
   scikit-learn-intelex and PyTorch LBFGS (when installed): median wall time,
   iterations, and the objective gap to a reference optimum;
4. the peak traced memory of a default fit of skcce and LogisticRegression.

Writes ``results.md``, ``results.json`` and ``results.png`` to ``--out``
(default ``benchmarks/results``); ``--docs`` also writes them into the
documentation (``docs/_benchmark_results.inc`` and ``docs/_static/``).
``--quick`` runs tiny versions of the problems once each, as CI does.

``--l1`` runs the sparse-model benchmark instead (``suite/sparse_models.py``):
L1 and elastic-net fits of ``SoftmaxClassifier(l1_ratio=...)`` (OWL-QN) and
``LogisticRegression(solver="saga")`` on ``dense-200k`` and ``text-100k``
(TF-IDF of generated documents), their objective gaps, and saga's wall time
over skcce's at an equal or smaller gap. It writes ``sparse_models.md`` and
``sparse_models.json`` (``--docs``: ``docs/_sparse_models_results.inc``).

``--sweep`` runs the shape sweep instead (``benchmarks/suite/sweep.py``):
about 25 dense shapes over (n_features, n_classes) and a few CSR problems,
each against the physical roofline and the peers, with fits on a few of
them; it writes ``sweep.md``, ``sweep.json`` and two heatmaps per run.

``--predict`` runs the prediction benchmark instead (``suite/prediction.py``):
``predict``, ``predict_proba`` and ``decision_function`` on the sweep's
points, skcce (one thread and all cores) against LogisticRegression and
PyTorch holding the same model, and against the roofline of one call (X read
and the result written at the streaming bandwidth, or the products at the
GEMM peak). It writes ``predict.md`` and ``predict.json`` (``--docs``:
``docs/_predict_results.inc``).
"""

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

from suite import (evaluation, fitting, machine, prediction, prediction_report, report,
                   sparse_models, sweep, sweep_report, timing)
from suite.jax_peer import import_jax
from suite.problems import (L1_PROBLEMS, PROBLEMS, count_nonzeros, make_data,
                            select_problems, storage_bytes, with_dtype)
from suite.torch_peer import import_torch

REPOSITORY = Path(__file__).resolve().parents[1]
PEERS = ("torch", "jax", "sklearnex")
DTYPES = ("float64", "float32")
# Rows of the small slice every fit first runs on (warm-up, and a probe of
# whether the solver accepts the data).
WARMUP_ROWS = 2_000
# Seconds between timed calls of the full suite: longer than OpenBLAS's idle
# threads spin (2**28 cycles, about 0.1 s) before they sleep.
PAUSE_SECONDS = 0.15


def parse_arguments(argv):
    """Command-line options; ``--quick`` changes the defaults of the counts."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"problems: {', '.join(p.name + ' (' + p.label + ')' for p in PROBLEMS)}",
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny problems, one run each (for CI)")
    parser.add_argument("--sweep", action="store_true",
                        help="the shape sweep (dense (d, K) grid and CSR problems) instead "
                             "of the suite's problems")
    parser.add_argument("--predict", action="store_true",
                        help="the prediction benchmark on the sweep's shapes instead "
                             "(predict, predict_proba, decision_function)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "benchmarks" / "results",
                        help="directory for results.md, results.json, results.png "
                             "(sweep: sweep.md, sweep.json, sweep_*.png; predict: "
                             "predict.md, predict.json)")
    parser.add_argument("--docs", action="store_true",
                        help="also write the results into docs/")
    parser.add_argument("--problems", type=_comma_list, default=None,
                        help="comma-separated problem names or prefixes, or sweep points "
                             "with --sweep and --predict (default: all)")
    parser.add_argument("--dtypes", type=_comma_list, default=list(DTYPES),
                        help="comma-separated dtypes (default: float64,float32)")
    parser.add_argument("--peers", type=_comma_list, default=None,
                        help="optional peers to run when installed: torch,jax,sklearnex "
                             "or none (default: all three; --predict: torch, its only one)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed evaluations per contender (default 7, sweep 5; quick 1)")
    parser.add_argument("--fit-repeats", type=int, default=None,
                        help="timed fits at default settings (default 5, sweep 3; quick 1)")
    parser.add_argument("--tight-fit-repeats", type=int, default=None,
                        help="timed fits at the tight setting (default 3; quick 1)")
    parser.add_argument("--l1", action="store_true",
                        help="run the sparse-model benchmark (OWL-QN against saga) instead")
    parser.add_argument("--l1-ratios", type=_float_list, default=[0.5, 1.0],
                        help="l1_ratio values of --l1 (default: 0.5,1)")
    args = parser.parse_args(argv)
    quick_defaults = {"repeats": 1, "fit_repeats": 1, "tight_fit_repeats": 1}
    full_defaults = ({"repeats": 5, "fit_repeats": 3, "tight_fit_repeats": 0}
                     if args.sweep or args.predict
                     else {"repeats": 7, "fit_repeats": 5, "tight_fit_repeats": 3})
    for name, value in (quick_defaults if args.quick else full_defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.peers is None:
        args.peers = ["torch"] if args.predict else list(PEERS)
    unknown = set(args.dtypes) - set(DTYPES) | set(args.peers) - set(PEERS) - {"none"}
    if unknown:
        parser.error(f"unknown dtypes or peers: {sorted(unknown)}")
    if sum((args.sweep, args.predict, args.l1)) > 1:
        parser.error("choose at most one of --sweep, --predict and --l1")
    if args.predict and set(args.peers) - {"torch", "none"}:
        parser.error("--predict's only optional peer is torch")
    return args


def _comma_list(text):
    """``"a,b"`` -> ``["a", "b"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _float_list(text):
    """``"0.5,1"`` -> ``[0.5, 1.0]``."""
    return [float(item) for item in _comma_list(text)]


def pause_seconds(args):
    """Pause between timed calls: :data:`PAUSE_SECONDS`, none in ``--quick`` mode."""
    return 0.0 if args.quick else PAUSE_SECONDS


def log(message):
    """Progress line on standard output, flushed at once."""
    print(message, flush=True)


def measure_bandwidths(n_cores, quick):
    """Streaming-read bandwidth for one thread and for all cores.

    Returns
    -------
    bandwidths : dict
        ``{"1": {...}, "all": {...}}``, each with ``bytes_per_second``,
        ``method`` and ``threads``.
    """
    n_bytes = (64 if quick else 512) << 20
    repeats = 3 if quick else 15
    bandwidths = {}
    for key, threads in (("1", 1), ("all", n_cores)):
        rate, method = machine.streaming_read_bandwidth(n_bytes, threads, repeats)
        bandwidths[key] = {"bytes_per_second": rate, "method": method, "threads": threads,
                           "array_bytes": n_bytes}
        log(f"read bandwidth, {threads} thread(s): {rate / 1e9:.1f} GB/s ({method})")
    return bandwidths


def roofline(X, n_classes, dtype, bandwidths, n_cores, quick):
    """BLAS roofline of one evaluation, for one thread and all cores.

    All cores can do at least what one thread does, so the all-cores rates
    are at least the one-thread rates (on a busy machine, measuring with all
    threads can come out slower).

    Returns
    -------
    roofline : dict
        ``x_bytes``, ``nnz``, ``flops`` and, under ``"1"`` and ``"all"``:
        ``gemm_flops_per_second``, ``bytes_per_second``, ``seconds`` and
        ``bound`` ("memory" or "compute").
    """
    nnz = count_nonzeros(X)
    gemm_width = max(1, nnz // X.shape[0])  # n_features, or non-zeros per row for CSR
    x_bytes, flops = storage_bytes(X), 4 * nnz * n_classes
    result = {"x_bytes": x_bytes, "nnz": nnz, "flops": flops}
    gemm, bandwidth = {}, {}
    for key, threads in (("1", 1), ("all", n_cores)):
        gemm[key] = max(gemm.get("1", 0.0), machine.gemm_rate(
            gemm_width, n_classes, dtype, threads, repeats=3 if quick else 25))
        bandwidth[key] = max(bandwidth.get("1", 0.0), bandwidths[key]["bytes_per_second"])
        memory_seconds = x_bytes / bandwidth[key]
        compute_seconds = flops / gemm[key]
        result[key] = {
            "gemm_flops_per_second": gemm[key],
            "bytes_per_second": bandwidth[key],
            "seconds": max(memory_seconds, compute_seconds),
            "bound": "memory" if memory_seconds >= compute_seconds else "compute",
        }
    return result


def measure_evaluations(X, y, n_classes, n_cores, repeats, pause, torch, jax):
    """:func:`suite.evaluation.measure_evaluations`, with one log line per contender."""
    results = evaluation.measure_evaluations(X, y, n_classes, n_cores, repeats, pause,
                                             torch, jax)
    for name, entry in results.items():
        if "median" in entry:
            log(f"  evaluation {evaluation.EVALUATION_LABELS[name]}: "
                f"{entry['median'] * 1e3:.2f} ms")
    return results


def measure_fits(X, y, X64, problem, args, torch, sklearnex_class):
    """Wall time, iterations and objective of every solver at both settings.

    Every solver first fits the first :data:`WARMUP_ROWS` rows (a warm-up,
    and the probe of whether it accepts X); then each setting's fits run
    round-robin, ``--fit-repeats`` (default) or ``--tight-fit-repeats``
    (tight) times, at most ``problem.max_fit_repeats``; the problem's
    ``skipped_fits`` do not run.

    Returns
    -------
    fits : dict
        ``"solver/setting"`` to ``{"times", "median", "n_iter", "objective",
        "note"}``, ``{"unsupported": reason}`` or ``{"skipped": reason}``.
    """
    rows = min(WARMUP_ROWS, X.shape[0])
    warmup = fitting.fit_functions("default", problem.n_classes, torch, sklearnex_class)
    warmup_calls = {solver: (lambda fit=fit: fit(X[:rows], y[:rows]))
                    for solver, fit in warmup.items()}
    _, _, unsupported = timing.keep_supported(warmup_calls, X)
    results = {}
    for setting, rounds in (("default", args.fit_repeats), ("tight", args.tight_fit_repeats)):
        rounds = min(rounds, problem.max_fit_repeats or rounds)
        fits = fitting.fit_functions(setting, problem.n_classes, torch, sklearnex_class)
        calls = {solver: (lambda fit=fit: fit(X, y)) for solver, fit in fits.items()
                 if solver not in unsupported
                 and f"{solver}/{setting}" not in problem.skipped_fits}
        times, models = timing.interleaved_times(calls, rounds, warmup_rounds=0,
                                                 pause=pause_seconds(args))
        for solver in fits:
            key = f"{solver}/{setting}"
            if solver in unsupported:
                results[key] = {"unsupported": unsupported[solver]}
                continue
            if key in problem.skipped_fits:
                results[key] = {"skipped": "not run on this problem, to bound the suite's time"}
                continue
            model = models[solver]
            results[key] = {"times": times[solver], "median": timing.median(times[solver]),
                            "n_iter": model.n_iter, "note": model.note,
                            "objective": fitting.objective_value(model.coef, X64, y)}
            log(f"  fit {key}: {results[key]['median']:.2f} s, {model.n_iter} iterations")
    return results


def measure_memory(X, y, fits):
    """Peak traced memory of a default fit of skcce and LogisticRegression.

    Parameters
    ----------
    fits : dict
        Output of :func:`measure_fits`: solvers it found unsupported are skipped.

    Returns
    -------
    memory : dict
        Solver to peak bytes, or None when the solver does not accept X.
    """
    memory = {}
    for solver, fit in (("skcce", fitting.skcce_fit(False)),
                        ("sklearn", fitting.sklearn_fit(False))):
        supported = "unsupported" not in fits[f"{solver}/default"]
        memory[solver] = fitting.peak_traced_memory(fit, X, y) if supported else None
    return memory


def add_objective_gaps(results, reference):
    """Set ``gap`` of every fit of one problem: objective minus the best known optimum.

    The best known optimum is the lowest of the reference fit's objective and
    every fit's objective (a fit can beat the reference; then the gap is
    measured from that fit).

    Returns
    -------
    best : float
        The objective the gaps are measured from.
    """
    objectives = [fit["objective"] for result in results for fit in result["fits"].values()
                  if "objective" in fit]
    if reference is not None:
        objectives.append(reference["objective"])
    best = min(objectives)
    for result in results:
        for fit in result["fits"].values():
            if "objective" in fit:
                fit["gap"] = fit["objective"] - best
    return best


def measure_reference(X64, y):
    """Reference optimum on float64 data, or None when skcce does not accept X."""
    start = time.perf_counter()
    model = fitting.reference_fit(X64, y)
    if model is None:
        log("  reference: skcce does not accept this X; the best fit is the reference")
        return None
    reference = {"objective": fitting.objective_value(model.coef, X64, y),
                 "n_iter": model.n_iter, "seconds": time.perf_counter() - start}
    log(f"  reference: {model.n_iter} iterations, {reference['seconds']:.1f} s")
    return reference


def benchmark_problem(problem, args, context):
    """All measurements of one problem, for every selected dtype.

    Returns
    -------
    results : list of dict
        One per dtype.
    references : dict
        ``reference_fit`` (:func:`measure_reference`) and ``best_objective``,
        the objective the gaps are measured from.
    """
    X64, y = make_data(problem)
    log(f"{problem.name}: {problem.label}")
    reference = measure_reference(X64, y)
    results = []
    for dtype in args.dtypes:
        log(f" {problem.name} {dtype}")
        X = with_dtype(X64, dtype)
        result = {"problem": problem.name, "label": problem.label, "dtype": dtype,
                  "n_samples": problem.n_samples, "n_features": problem.n_features,
                  "n_classes": problem.n_classes, "load_average": machine.load_average()}
        result["roofline"] = roofline(X, problem.n_classes, dtype, context["bandwidths"],
                                      context["n_cores"], args.quick)
        result["evaluation"] = measure_evaluations(X, y, problem.n_classes,
                                                   context["n_cores"], args.repeats,
                                                   pause_seconds(args), context["torch"],
                                                   context["jax"])
        result["fits"] = measure_fits(X, y, X64, problem, args, context["torch"],
                                      context["sklearnex_class"])
        result["memory"] = measure_memory(X, y, result["fits"])
        results.append(result)
    best = add_objective_gaps(results, reference)
    return results, {"reference_fit": reference, "best_objective": best}


def load_peers(requested, n_cores):
    """The optional peers that are requested and importable.

    Returns
    -------
    torch : module or None
    jax : module or None
    sklearnex_class : type or None
    """
    torch = import_torch(n_cores) if "torch" in requested else None
    jax = import_jax() if "jax" in requested else None
    sklearnex_class = (fitting.import_sklearnex_logistic_regression()
                       if "sklearnex" in requested else None)
    return torch, jax, sklearnex_class


def run_header(args, argv, context):
    """The fields every run's record starts with: when, the command, counts, peers, machine."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "counts": {"repeats": args.repeats, "fit_repeats": args.fit_repeats,
                   "tight_fit_repeats": args.tight_fit_repeats},
        "peers": {"torch": context["torch"] is not None, "jax": context["jax"] is not None,
                  "sklearnex": context["sklearnex_class"] is not None},
        "machine": context["info"],
    }


def run_sparse_models(args, argv):
    """The sparse-model benchmark (``--l1``): OWL-QN against saga; writes its reports."""
    problems = select_problems(args.problems, quick=args.quick, problems=L1_PROBLEMS)
    started = time.perf_counter()
    info = machine.machine_info()
    info["threads"] = {"all_cores": machine.usable_cores()}
    log(f"machine: {machine.machine_summary(info)}")
    run = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "counts": {"fit_repeats": args.fit_repeats},
        "machine": info,
        "results": [],
    }
    for problem in problems:
        X, y = make_data(problem)
        log(f"{problem.name}: {problem.label}")
        for l1_ratio in args.l1_ratios:
            result = sparse_models.measure(X, y, l1_ratio, args.fit_repeats,
                                           pause_seconds(args), log)
            result.update({"problem": problem.name, "label": problem.label})
            run["results"].append(result)
    run["machine"]["load_average_after"] = machine.load_average()
    run["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sparse_models.md", out / "sparse_models.json"]
    written[0].write_text(sparse_models.render_markdown(run), encoding="utf-8")
    written[1].write_text(json.dumps(run, indent=1), encoding="utf-8")
    if args.docs:
        include = REPOSITORY / "docs" / "_sparse_models_results.inc"
        include.write_text(sparse_models.render_rst(run), encoding="utf-8")
        written.append(include)
    log(f"done in {run['seconds']:.0f} s; wrote {', '.join(str(path) for path in written)}")


def main(argv=None):
    """Run the selected benchmarks and write the reports."""
    args = parse_arguments(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)  # default settings stop early on purpose
    if args.l1:
        run_sparse_models(args, argv)
        return
    if args.sweep or args.predict:
        points = sweep.select(args.problems, quick=args.quick)
    else:
        problems = select_problems(args.problems, quick=args.quick)
    started = time.perf_counter()
    n_cores = machine.usable_cores()
    torch, jax, sklearnex_class = load_peers(args.peers, n_cores)
    info = machine.machine_info()
    info["threads"] = {"all_cores": n_cores,
                       "torch": torch.get_num_threads() if torch is not None else None}
    log(f"machine: {machine.machine_summary(info)}")
    context = {"n_cores": n_cores, "torch": torch, "jax": jax,
               "sklearnex_class": sklearnex_class, "info": info}
    run = run_header(args, argv, context)
    if args.sweep:
        run.update(sweep.run_points(points, args, context, log))
    elif args.predict:
        run.update(prediction.run_points(points, args, context, log))
    else:
        context["bandwidths"] = run["bandwidths"] = measure_bandwidths(n_cores, args.quick)
        run.update({"results": [], "references": {}})
        for problem in problems:
            results, run["references"][problem.name] = benchmark_problem(problem, args, context)
            run["results"].extend(results)
    run["machine"]["load_average_after"] = machine.load_average()
    run["seconds"] = time.perf_counter() - started
    report_module = (sweep_report if args.sweep else prediction_report if args.predict
                     else report)
    written = report_module.write_outputs(run, args.out)
    if args.docs:
        written += report_module.write_docs(run, REPOSITORY / "docs")
    log(f"done in {run['seconds']:.0f} s; wrote {', '.join(str(path) for path in written)}")


if __name__ == "__main__":
    main()
