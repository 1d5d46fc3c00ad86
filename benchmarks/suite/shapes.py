"""The shapes of the sweep: a sample of the (d, K) grid, and a few CSR problems.

Dense points sample the grid of :data:`FEATURES` × :data:`CLASSES` (7 × 9)
with a farthest-point design that starts from the four corners and the
middle, so few points cover the corners, the edges and the middle evenly.
Each point's rows hold about :data:`DENSE_VALUES` values of X; fewer where
one evaluation would exceed :data:`MAX_FLOPS` or the peers' n × K arrays
would exceed :data:`MAX_LOGITS` values (see :func:`dense_rows`).

CSR points: 200,000 × 50,000 with 50 non-zeros per row, columns uniform or
Zipf-distributed, with 20 and 100 classes.
"""

import itertools
import math
from dataclasses import dataclass, replace

from suite.problems import Problem

FEATURES = (8, 20, 54, 100, 300, 784, 2000)
CLASSES = (2, 3, 5, 10, 20, 50, 100, 300, 1000)
N_POINTS = 25
QUICK_N_POINTS = 5
# Values of X per dense point (n · d): 192 MB in float64.
DENSE_VALUES = 24_000_000
# Flops of one evaluation (4 · n · d · K) at most: about a quarter of a second
# at the peak of two cores, seconds for the slowest peers.
MAX_FLOPS = 24e9
# n · K at most: scikit-learn, PyTorch and JAX each hold a few n × K arrays.
MAX_LOGITS = 24_000_000
MIN_ROWS = 2_000
# --quick: tiny versions of the same points.
QUICK_DENSE_VALUES = 200_000
QUICK_MAX_FLOPS = 0.4e9
QUICK_MAX_LOGITS = 400_000
QUICK_MIN_ROWS = 100
# Fits run on the points of these (d, K) (all in the sample of N_POINTS) and
# on the Zipf CSR problem with 20 classes, each on the point's first rows:
# at most FIT_VALUES values of X and FIT_FLOPS flops per evaluation, so that
# LogisticRegression's fits fit in the sweep's time.
FIT_SHAPES = ((8, 5), (54, 10), (100, 20), (784, 10), (300, 100), (100, 1000))
QUICK_FIT_SHAPES = ((100, 20),)
FIT_SPARSE = ("csr-zipf-K20",)
FIT_VALUES = 2_000_000
FIT_FLOPS = 1e9
QUICK_FIT_VALUES = 100_000
# CSR problems: (n, d, non-zeros per row) and their tiny --quick versions.
SPARSE_SHAPE = (200_000, 50_000, 50)
QUICK_SPARSE_SHAPE = (2_000, 5_000, 10)
SPARSE_CLASSES = (20, 100)
QUICK_SPARSE_CLASSES = (20,)
# Zipf exponent of the skewed column frequencies (word frequencies in text are
# close to 1).
ZIPF_SKEW = 1.0


@dataclass(frozen=True)
class SweepPoint:
    """One problem of the sweep.

    Parameters
    ----------
    problem : Problem
        Its name is the point's name (``--problems``).
    fit_rows : int or None, default=None
        Fits run on the first ``fit_rows`` rows; None: no fits at this point.
    """

    problem: Problem
    fit_rows: int | None = None

    @property
    def name(self):
        """The problem's name, e.g. ``dense-d100-K20``."""
        return self.problem.name


def sample_grid(n_rows, n_columns, n_points):
    """Cells of an ``n_rows`` × ``n_columns`` grid spread evenly over it.

    A farthest-point design on the grid's indices scaled to [0, 1]: the four
    corners and the middle, then, one at a time, the cell farthest from every
    cell chosen so far (ties: the first in row-major order).

    Parameters
    ----------
    n_rows, n_columns : int
        At least 2 each.
    n_points : int
        At least 5 (the corners and the middle), at most the number of cells.

    Returns
    -------
    cells : list of (int, int)
        ``(row, column)`` indices, in the order chosen.
    """
    if n_rows < 2 or n_columns < 2 or not 5 <= n_points <= n_rows * n_columns:
        raise ValueError(f"cannot choose {n_points} cells of a {n_rows} × {n_columns} grid")

    def position(cell):
        return cell[0] / (n_rows - 1), cell[1] / (n_columns - 1)

    chosen = [(0, 0), (0, n_columns - 1), (n_rows - 1, 0), (n_rows - 1, n_columns - 1),
              (n_rows // 2, n_columns // 2)]
    distance = {cell: min(math.dist(position(cell), position(c)) for c in chosen)
                for cell in itertools.product(range(n_rows), range(n_columns))}
    while len(chosen) < n_points:
        # max() keeps the first of equal distances: row-major order.
        cell = max((c for c in distance if c not in chosen), key=distance.get)
        chosen.append(cell)
        for other in distance:
            distance[other] = min(distance[other], math.dist(position(other), position(cell)))
    return chosen


def dense_rows(n_features, n_classes, values, max_flops, max_logits, min_rows):
    """Rows of a dense point: ``values / d``, capped by the flops and the logits.

    Parameters
    ----------
    n_features, n_classes : int
    values : int
        Target n · d.
    max_flops : float
        At most ``4 · n · d · K`` flops per evaluation.
    max_logits : int
        At most ``n · K``.
    min_rows : int
        At least this many rows, whatever the caps.

    Returns
    -------
    n_samples : int
    """
    rows = min(values // n_features, int(max_flops // (4 * n_features * n_classes)),
               max_logits // n_classes)
    return max(min_rows, rows)


def fit_rows(point, values, max_flops):
    """Rows the fits of a point run on: at most ``values`` of X, ``max_flops`` per evaluation.

    For CSR data, ``values`` bounds the non-zeros.
    """
    problem = problem_of(point)
    per_row = problem.nnz_per_row or problem.n_features
    rows = min(problem.n_samples, values // per_row,
               int(max_flops // (4 * per_row * problem.n_classes)))
    return max(rows, 1)


def problem_of(point):
    """The :class:`Problem` of a point or a problem."""
    return point.problem if isinstance(point, SweepPoint) else point


def sizing(quick=False):
    """The rules that size the points (full run, or ``--quick``).

    Returns
    -------
    sizing : dict
        ``features``, ``classes``, ``n_points``, ``dense_values``,
        ``max_flops``, ``max_logits``, ``min_rows`` (:func:`dense_rows`),
        ``fit_values`` and ``fit_flops`` (:func:`fit_rows`), ``fit_shapes``,
        ``sparse_shape``, ``sparse_classes`` and ``zipf_skew``.
    """
    common = {"features": FEATURES, "classes": CLASSES, "zipf_skew": ZIPF_SKEW,
              "fit_sparse": FIT_SPARSE}
    if quick:
        return {**common, "n_points": QUICK_N_POINTS, "dense_values": QUICK_DENSE_VALUES,
                "max_flops": QUICK_MAX_FLOPS, "max_logits": QUICK_MAX_LOGITS,
                "min_rows": QUICK_MIN_ROWS, "fit_values": QUICK_FIT_VALUES,
                "fit_flops": QUICK_MAX_FLOPS, "fit_shapes": QUICK_FIT_SHAPES,
                "sparse_shape": QUICK_SPARSE_SHAPE, "sparse_classes": QUICK_SPARSE_CLASSES}
    return {**common, "n_points": N_POINTS, "dense_values": DENSE_VALUES,
            "max_flops": MAX_FLOPS, "max_logits": MAX_LOGITS, "min_rows": MIN_ROWS,
            "fit_values": FIT_VALUES, "fit_flops": FIT_FLOPS, "fit_shapes": FIT_SHAPES,
            "sparse_shape": SPARSE_SHAPE, "sparse_classes": SPARSE_CLASSES}


def sweep_points(quick=False):
    """Every point of the sweep, dense first.

    Parameters
    ----------
    quick : bool, default=False
        Tiny versions of :data:`QUICK_N_POINTS` points (for CI).

    Returns
    -------
    points : list of SweepPoint
    """
    rules = sizing(quick)
    points = []
    for row, column in sorted(sample_grid(len(FEATURES), len(CLASSES), rules["n_points"])):
        d, k = FEATURES[row], CLASSES[column]
        n = dense_rows(d, k, rules["dense_values"], rules["max_flops"], rules["max_logits"],
                       rules["min_rows"])
        points.append(SweepPoint(Problem(f"dense-d{d}-K{k}", n, d, k)))
    n, d, per_row = rules["sparse_shape"]
    for k in rules["sparse_classes"]:
        for kind, skew in (("uniform", None), ("zipf", ZIPF_SKEW)):
            points.append(SweepPoint(Problem(f"csr-{kind}-K{k}", n, d, k, nnz_per_row=per_row,
                                             column_skew=skew)))
    fitted = {f"dense-d{d}-K{k}" for d, k in rules["fit_shapes"]} | set(FIT_SPARSE)
    return [replace(point, fit_rows=fit_rows(point, rules["fit_values"], rules["fit_flops"]))
            if point.name in fitted else point for point in points]


def select_points(points, names):
    """The points whose names start with one of ``names`` (None: all).

    Raises
    ------
    ValueError
        If a name matches no point.
    """
    if names is None:
        return list(points)
    unknown = [name for name in names if not any(p.name.startswith(name) for p in points)]
    if unknown:
        raise ValueError(f"unknown sweep points {unknown}; choose from "
                         f"{[p.name for p in points]}")
    return [p for p in points if any(p.name.startswith(name) for name in names)]
