"""The shape sweep's arithmetic: grid sampling, sizes, the physical roofline, targets.

No timings here: only the pure helpers of ``benchmarks/suite``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from suite import roofline, shapes, targets, timing  # noqa: E402


def test_sample_grid_covers_corners_middle_and_every_row():
    cells = shapes.sample_grid(7, 9, 25)
    assert len(cells) == len(set(cells)) == 25
    assert {(0, 0), (0, 8), (6, 0), (6, 8), (3, 4)} <= set(cells)
    assert {row for row, _ in cells} == set(range(7))
    assert {column for _, column in cells} == set(range(9))
    assert shapes.sample_grid(7, 9, 25) == cells  # deterministic


@pytest.mark.parametrize("n_points", [4, 64])
def test_sample_grid_rejects_impossible_counts(n_points):
    with pytest.raises(ValueError):
        shapes.sample_grid(7, 9, n_points)


def test_dense_rows_caps():
    # n · d = values when no cap binds
    assert shapes.dense_rows(100, 10, 24_000_000, 24e9, 24_000_000, 2_000) == 240_000
    # the flop cap: 4 · n · 2000 · 1000 <= 24e9
    assert shapes.dense_rows(2000, 1000, 24_000_000, 24e9, 24_000_000, 2_000) == 3_000
    # the logits cap: n · 1000 <= 24e6
    assert shapes.dense_rows(8, 1000, 24_000_000, 24e9, 24_000_000, 2_000) == 24_000
    # at least min_rows
    assert shapes.dense_rows(2000, 1000, 24_000_000, 1e9, 24_000_000, 2_000) == 2_000


def test_sweep_points_fit_shapes_are_sampled():
    for quick in (False, True):
        points = shapes.sweep_points(quick)
        names = [point.name for point in points]
        assert len(names) == len(set(names))
        rules = shapes.sizing(quick)
        fitted = {point.name for point in points if point.fit_rows}
        expected = {f"dense-d{d}-K{k}" for d, k in rules["fit_shapes"]} | set(shapes.FIT_SPARSE)
        assert fitted == expected
        dense = [point.problem for point in points if not point.problem.is_sparse]
        assert len(dense) == rules["n_points"]
        for problem in dense:
            assert problem.n_samples >= rules["min_rows"]
            assert problem.n_samples * problem.n_features <= rules["dense_values"]


def test_gathered_coefficient_bytes():
    counts = np.array([1, 50, 3, 20, 0, 7])
    # the whole matrix (6 rows of 4 float64) fits: nothing is gathered
    assert roofline.gathered_coefficient_bytes(counts, 4, 8, 6 * 32) == 0
    # room for two rows: the two hottest columns (50 and 20 non-zeros) stay cached
    assert roofline.gathered_coefficient_bytes(counts, 4, 8, 2 * 32 + 5) == (1 + 3 + 7) * 32
    # unknown cache: nothing counted
    assert roofline.gathered_coefficient_bytes(counts, 4, 8, None) == 0


def test_roofline_seconds_is_the_larger_time():
    # (100 + 20) MB at 40 GB/s; 0.1 GFLOP at 100 GFLOP/s
    memory = roofline.roofline_seconds(100e6, 20e6, 1e8, 40e9, 100e9)
    assert memory["seconds"] == pytest.approx(3e-3)
    assert memory["bound"] == "memory"
    assert memory["compute_seconds"] == pytest.approx(1e-3)
    compute = roofline.roofline_seconds(1e6, 0, 4e9, 40e9, 100e9)
    assert compute["seconds"] == pytest.approx(0.04)
    assert compute["bound"] == "compute"


def _result(dtype, times, roof_seconds, fits=None):
    entries = {name: {"median": seconds} for name, seconds in times.items()}
    result = {"point": "p", "dtype": dtype, "evaluation": entries,
              "roofline": {"all": {"seconds": roof_seconds}}}
    if fits is not None:
        result["fits"] = fits
    return result


def test_targets_met_and_missed():
    result = _result("float32", {"skcce_all": 1.0, "skcce_1": 1.8, "sklearn": 2.5,
                                 "torch": 1.5}, roof_seconds=0.45)
    found = targets.evaluate(result)
    assert found["roofline"]["met"] is False  # 1 / 0.45 > 2 (float32)
    assert found["peer:sklearn"]["met"] is True
    assert found["peer:torch"]["met"] is False
    assert "peer:jax" not in found  # not measured
    assert found["threads"]["met"] is True
    assert targets.best_peer(result) == ("torch", 1.5)
    assert targets.evaluate(_result("float64", {"skcce_all": 1.0}, 0.7))["roofline"]["met"]


def test_fit_targets():
    fits = {"skcce": {"median": 1.0, "gap": 1e-6, "objective": 0.5},
            "sklearn": {"median": 3.5, "gap": 2e-6, "objective": 0.5},
            "sklearnex": {"median": 1.5, "gap": 0.0, "objective": 0.5}}
    result = _result("float64", {"skcce_all": 1.0}, 1.0, fits)
    result["targets"] = found = targets.evaluate(result)
    assert found["fit:sklearn"]["met"] and found["fit:gap"]["met"]
    assert not found["fit:sklearnex"]["met"]
    missed, measured = targets.misses([result])
    assert missed["fit:sklearnex"] == ["p float64 (1.50×)"]
    assert measured["fit:gap"] == 1 and missed["fit:gap"] == []


def test_interleaved_times_rewarm_runs_each_call_untimed_first(monkeypatch):
    """With rewarm, every timed run of a contender directly follows an untimed
    one of the same contender, outside the timed interval; without, each round
    runs each call once."""
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    log = []

    def call(name):
        log.append(name)
        clock[0] += 1.0  # every run "takes" one second of the fake clock

    calls = {"a": lambda: call("a"), "b": lambda: call("b")}
    times, _ = timing.interleaved_times(calls, 2, warmup_rounds=1, rewarm=True)
    assert log == ["a", "a", "b", "b"] * 3
    assert times == {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    log.clear()
    timing.interleaved_times(calls, 2, warmup_rounds=1)
    assert log == ["a", "b"] * 3
