"""The speed targets of every sweep point, met or missed.

Per evaluation, all cores, medians side by side in one run:

- ``roofline``: skcce's fit step within 1.5× of the physical roofline in
  float64, 2× in float32;
- ``peer:<name>``: at least 2× faster than each peer at the same dtype
  (scikit-learn, PyTorch, JAX);
- ``threads``: all cores at least 1.7× faster than one thread.

Fits at default settings, on the fitted points:

- ``fit:sklearn``: at least 3× less wall time than LogisticRegression;
- ``fit:sklearnex``: at least 2× less than scikit-learn-intelex's;
- ``fit:gap``: an objective gap no worse than LogisticRegression's.
"""

from suite.evaluation import PEER_NAMES

THRESHOLDS = {
    "roofline": {"float64": 1.5, "float32": 2.0},
    "peer": 2.0,
    "threads": 1.7,
    "fit": {"sklearn": 3.0, "sklearnex": 2.0},
    # Objective differences below this (relative) are rounding, not a worse fit.
    "gap_tolerance": 1e-12,
}
TARGET_LABELS = {
    "roofline": "skcce ≤ 1.5× roofline (float64), 2× (float32)",
    "peer:sklearn": "scikit-learn ≥ 2× skcce",
    "peer:torch": "PyTorch ≥ 2× skcce",
    "peer:jax": "JAX ≥ 2× skcce",
    "threads": "all cores ≥ 1.7× faster than 1 thread",
    "fit:sklearn": "LogisticRegression fit ≥ 3× skcce",
    "fit:sklearnex": "sklearnex fit ≥ 2× skcce",
    "fit:gap": "skcce's objective gap ≤ LogisticRegression's",
}


def _median(entries, name):
    """Median time of a contender, or None when it did not run."""
    return (entries.get(name) or {}).get("median")


def _ratio(numerator, denominator):
    """``numerator / denominator``, or None when the numerator was not measured."""
    return None if numerator is None else numerator / denominator


def ratio_target(value, threshold, at_most=False):
    """``{"value", "threshold", "met"}`` for a ratio, or None when it was not measured."""
    if value is None:
        return None
    met = value <= threshold if at_most else value >= threshold
    return {"value": value, "threshold": threshold, "met": bool(met)}


def evaluate(result):
    """Every target that applies to one point and dtype.

    Parameters
    ----------
    result : dict
        ``dtype``, ``roofline`` (with ``"all"`` seconds), ``evaluation``
        (contender medians) and, on fitted points, ``fits`` (with ``gap``).

    Returns
    -------
    targets : dict
        Target name (keys of :data:`TARGET_LABELS`) to ``{"value",
        "threshold", "met"}``; a target whose inputs were not measured (a
        peer not installed, no fits at this point) is left out.
    """
    times = result["evaluation"]
    ours, ours_1 = _median(times, "skcce_all"), _median(times, "skcce_1")
    found = {}
    if ours is not None:
        found["roofline"] = ratio_target(ours / result["roofline"]["all"]["seconds"],
                                         THRESHOLDS["roofline"][result["dtype"]], at_most=True)
        for peer in PEER_NAMES:
            theirs = _median(times, peer)
            found[f"peer:{peer}"] = ratio_target(_ratio(theirs, ours), THRESHOLDS["peer"])
        found["threads"] = ratio_target(_ratio(ours_1, ours), THRESHOLDS["threads"])
    fits = result.get("fits", {})
    fit_ours = _median(fits, "skcce")
    if fit_ours is not None:
        for solver, threshold in THRESHOLDS["fit"].items():
            theirs = _median(fits, solver)
            found[f"fit:{solver}"] = ratio_target(_ratio(theirs, fit_ours), threshold)
        if "gap" in fits.get("sklearn", {}):
            ours_gap, their_gap = fits["skcce"]["gap"], fits["sklearn"]["gap"]
            slack = THRESHOLDS["gap_tolerance"] * max(1.0, abs(fits["skcce"]["objective"]))
            found["fit:gap"] = {"value": ours_gap, "threshold": their_gap,
                                "met": bool(ours_gap <= their_gap + slack)}
    return {name: target for name, target in found.items() if target is not None}


def best_peer(result):
    """The fastest peer of one point and dtype, and its time over skcce's.

    Returns
    -------
    peer : str or None
        Key of :data:`suite.evaluation.EVALUATION_LABELS`; None when no peer ran.
    ratio : float or None
    """
    times = result["evaluation"]
    ours = _median(times, "skcce_all")
    medians = {peer: _median(times, peer) for peer in PEER_NAMES}
    medians = {peer: value for peer, value in medians.items() if value is not None}
    if not medians or ours is None:
        return None, None
    peer = min(medians, key=medians.get)
    return peer, medians[peer] / ours


def misses(results):
    """Points that miss each target.

    Returns
    -------
    missed : dict
        Target name to a list of ``"point dtype (value)"`` strings, for every
        target of :data:`TARGET_LABELS` (empty lists: met everywhere it was
        measured).
    measured : dict
        Target name to the number of points and dtypes it was measured on.
    """
    missed = {name: [] for name in TARGET_LABELS}
    measured = dict.fromkeys(TARGET_LABELS, 0)
    for result in results:
        for name, target in result["targets"].items():
            measured[name] += 1
            if not target["met"]:
                value = (f"gap {target['value']:.3g} vs {target['threshold']:.3g}"
                         if name == "fit:gap" else f"{target['value']:.2f}×")
                missed[name].append(f"{result['point']} {result['dtype']} ({value})")
    return missed, measured
