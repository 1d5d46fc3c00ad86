"""Synthetic benchmark problems with a fixed seed.

Features are standard Gaussian (dense, or the non-zeros of a CSR matrix with a
fixed number of non-zeros per row, in columns drawn uniformly or with
Zipf-distributed frequencies). Labels are sampled from the softmax of a
random linear model, so no problem is separable and every fit has a finite
optimum. The values are rounded to float32 once, so the float64 and float32
versions of a problem hold exactly the same numbers: one reference optimum
serves both.
"""

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

# Standard deviation of the true model's logits: classes overlap, labels are noisy.
LOGIT_SCALE = 2.0


@dataclass(frozen=True)
class Problem:
    """Size and kind of one synthetic classification problem.

    Parameters
    ----------
    name : str
        Name used on the command line (``--problems``).
    n_samples, n_features, n_classes : int
        Shape of X and number of classes.
    nnz_per_row : int or None, default=None
        Non-zeros per row of a CSR matrix; None for dense data.
    max_fit_repeats : int or None, default=None
        At most this many timed fits per solver and setting (None: as many
        as the command line asks), to keep the suite's time in bounds.
    skipped_fits : tuple of str, default=()
        Fits (``"solver/setting"``) not run on this problem, for the same
        reason; the report says so.
    column_skew : float or None, default=None
        For CSR data: the exponent ``s`` of Zipf-distributed column
        frequencies (the column of rank ``r`` is drawn with probability
        proportional to ``r**-s``; ranks are shuffled over the columns). None
        draws columns uniformly.
    """

    name: str
    n_samples: int
    n_features: int
    n_classes: int
    nnz_per_row: int | None = None
    max_fit_repeats: int | None = None
    skipped_fits: tuple = ()
    column_skew: float | None = None

    @property
    def is_sparse(self):
        """Whether X is a CSR matrix."""
        return self.nnz_per_row is not None

    @property
    def label(self):
        """Human-readable shape, e.g. ``dense 200,000 × 100, K=10``."""
        columns = "" if self.column_skew is None else f", Zipf({self.column_skew:g}) columns"
        kind = f"CSR ({self.nnz_per_row} nnz/row{columns})" if self.is_sparse else "dense"
        return f"{kind} {self.n_samples:,} × {self.n_features:,}, K={self.n_classes}"

    def shrunk(self):
        """The tiny version of this problem used by ``--quick``.

        Returns
        -------
        problem : Problem
            Same name and number of classes, 1/1000 of the rows (at least 10
            per class); sparse problems also get 1/50 of the columns and 1/5 of
            the non-zeros per row. Every fit runs.
        """
        tiny = replace(self, n_samples=max(10 * self.n_classes, self.n_samples // 1000),
                       max_fit_repeats=None, skipped_fits=())
        if not self.is_sparse:
            return tiny
        return replace(tiny, n_features=self.n_features // 50,
                       nnz_per_row=self.nnz_per_row // 5)


PROBLEMS = (
    Problem("dense-200k", 200_000, 100, 10),
    Problem("dense-500k", 500_000, 54, 7),
    Problem("dense-60k", 60_000, 784, 10),
    Problem("dense-20k", 20_000, 300, 100),
    # The largest problem (2 million coefficients): a tight fit takes 150
    # iterations and minutes, PyTorch's CSR backward is slow, and sklearnex falls
    # back to scikit-learn on sparse data (so its tight fit would repeat
    # scikit-learn's). Its fits run once.
    Problem("sparse-100k", 100_000, 100_000, 20, nnz_per_row=100, max_fit_repeats=1,
            skipped_fits=("sklearnex/tight", "torch/default", "torch/tight")),
)


def select_problems(names, quick=False):
    """Problems by command-line name, in the order of :data:`PROBLEMS`.

    Parameters
    ----------
    names : list of str or None
        Names or unambiguous prefixes (``sparse`` selects ``sparse-100k``);
        None selects every problem.
    quick : bool, default=False
        Return the tiny versions (:meth:`Problem.shrunk`).

    Returns
    -------
    problems : list of Problem
    """
    chosen = []
    for problem in PROBLEMS:
        if names is None or any(problem.name.startswith(name) for name in names):
            chosen.append(problem.shrunk() if quick else problem)
    unknown = [name for name in names or []
               if not any(p.name.startswith(name) for p in PROBLEMS)]
    if unknown:
        raise ValueError(f"unknown problems {unknown}; choose from "
                         f"{[p.name for p in PROBLEMS]}")
    return chosen


def make_data(problem, seed=0):
    """Features and labels of a problem, in float64 holding float32 values.

    Parameters
    ----------
    problem : Problem
    seed : int, default=0

    Returns
    -------
    X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features), float64
        Every value is exactly representable in float32.
    y : ndarray of shape (n_samples,), int64
        Class indices ``0 .. n_classes - 1``.
    """
    rng = np.random.default_rng(seed)
    if problem.is_sparse:
        X = _random_csr(problem, rng)
        active_per_row = problem.nnz_per_row
    else:
        X = rng.standard_normal((problem.n_samples, problem.n_features),
                                dtype=np.float32).astype(np.float64)
        active_per_row = problem.n_features
    true_coef = rng.standard_normal((problem.n_classes, problem.n_features))
    true_coef *= LOGIT_SCALE / np.sqrt(active_per_row)
    logits = np.asarray(X @ true_coef.T)
    # Gumbel-max: argmax(z + Gumbel noise) is a sample from softmax(z).
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    return X, y


def _random_csr(problem, rng):
    """CSR matrix with ``nnz_per_row`` random columns per row, Gaussian values.

    Columns are drawn uniformly, or with Zipf-distributed frequencies when the
    problem has a ``column_skew``. Columns drawn twice in one row are merged,
    so some rows hold fewer non-zeros (many, under a strong skew: the hottest
    columns come up several times in a row).
    """
    n, per_row = problem.n_samples, problem.nnz_per_row
    if problem.column_skew is None:
        drawn = rng.integers(0, problem.n_features, size=(n, per_row))
    else:
        drawn = _zipf_columns(problem.n_features, problem.column_skew, (n, per_row), rng)
    columns = np.sort(drawn, axis=1)
    values = rng.standard_normal(n * per_row, dtype=np.float32).astype(np.float64)
    indptr = np.arange(0, n * per_row + 1, per_row)
    X = sp.csr_matrix((values, columns.ravel(), indptr),
                      shape=(n, problem.n_features))
    X.sum_duplicates()
    return X


def _zipf_columns(n_features, skew, size, rng):
    """Column indices with Zipf-distributed frequencies, hot columns spread at random.

    The column of frequency rank ``r`` (1-based) is drawn with probability
    proportional to ``r**-skew``; which column has which rank is a random
    permutation, so hot columns are not the first ones.
    """
    weights = np.arange(1, n_features + 1, dtype=np.float64) ** -skew
    ranks = rng.choice(n_features, size=size, p=weights / weights.sum())
    return rng.permutation(n_features)[ranks]


def with_dtype(X, dtype):
    """X in ``dtype`` (no copy when it already has it).

    Parameters
    ----------
    X : ndarray or sparse matrix
    dtype : str or numpy dtype

    Returns
    -------
    X : same type as the input
    """
    return X.astype(dtype, copy=False)


def count_nonzeros(X):
    """Stored entries of a sparse matrix, or all entries of a dense array."""
    return X.nnz if sp.issparse(X) else X.size


def storage_bytes(X):
    """Bytes one pass over X reads: values, plus indices and row pointers for CSR."""
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes
