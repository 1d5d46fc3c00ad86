"""Synthetic benchmark problems with a fixed seed.

Features are standard Gaussian (dense, or the non-zeros of a CSR matrix with a
fixed number of non-zeros per row, in columns drawn uniformly or with
Zipf-distributed frequencies). Labels are sampled from the softmax of a
random linear model, so no problem is separable and every fit has a finite
optimum. Text-like problems (``text=True``) are generated as documents
instead: word counts from a Zipf vocabulary mixed with class-specific topic
words, as TF-IDF rows of unit norm (see :func:`_text_like`). The values are
rounded to float32 once, so the float64 and float32 versions of a problem hold
exactly the same numbers: one reference optimum serves both.
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
    text : bool, default=False
        A text-like CSR problem (TF-IDF of generated documents); then
        ``nnz_per_row`` is the mean document length in words.
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
    text: bool = False
    column_skew: float | None = None

    @property
    def is_sparse(self):
        """Whether X is a CSR matrix."""
        return self.nnz_per_row is not None

    @property
    def label(self):
        """Human-readable shape, e.g. ``dense 200,000 × 100, K=10``."""
        if self.text:
            kind = f"CSR text-like TF-IDF ({self.nnz_per_row} words/doc)"
        else:
            columns = ("" if self.column_skew is None
                       else f", Zipf({self.column_skew:g}) columns")
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


# The sparse-model (L1) benchmark: OWL-QN against saga (``run.py --l1``).
L1_PROBLEMS = (
    PROBLEMS[0],  # dense-200k
    Problem("text-100k", 100_000, 50_000, 20, nnz_per_row=80, text=True),
)


def select_problems(names, quick=False, problems=PROBLEMS):
    """Problems by command-line name, in the order of ``problems``.

    Parameters
    ----------
    names : list of str or None
        Names or unambiguous prefixes (``sparse`` selects ``sparse-100k``);
        None selects every problem.
    quick : bool, default=False
        Return the tiny versions (:meth:`Problem.shrunk`).
    problems : tuple of Problem, default=PROBLEMS
        The problems to choose from (:data:`L1_PROBLEMS` for ``--l1``).

    Returns
    -------
    problems : list of Problem
    """
    chosen = []
    for problem in problems:
        if names is None or any(problem.name.startswith(name) for name in names):
            chosen.append(problem.shrunk() if quick else problem)
    unknown = [name for name in names or []
               if not any(p.name.startswith(name) for p in problems)]
    if unknown:
        raise ValueError(f"unknown problems {unknown}; choose from "
                         f"{[p.name for p in problems]}")
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
    if problem.text:
        return _text_like(problem, rng)
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


# Text-like problems: Zipf exponent of the vocabulary, share of the words drawn
# from the document's class topic, words per topic.
ZIPF_EXPONENT = 1.07
TOPIC_SHARE = 0.25
TOPIC_WORDS = 200


def _text_like(problem, rng):
    """TF-IDF rows of generated documents, and their classes.

    Each document has a class drawn uniformly and a log-normal length (mean
    ``nnz_per_row`` words). Each word is drawn from a Zipf distribution over
    the vocabulary, or, with probability :data:`TOPIC_SHARE`, from its
    class's topic: :data:`TOPIC_WORDS` words of middling frequency, Zipf
    within the topic (topics may share words). Counts become
    ``log(1 + count) * idf`` with ``idf = log((1 + n) / (1 + df)) + 1``, and
    rows are scaled to unit Euclidean norm, as scikit-learn's
    ``TfidfVectorizer(sublinear_tf=True)`` does. Most words are rare, so most
    columns have few non-zeros; frequent words carry little information.
    """
    n, vocabulary, K = problem.n_samples, problem.n_features, problem.n_classes
    y = rng.integers(0, K, size=n)
    lengths = np.maximum(5, rng.lognormal(np.log(problem.nnz_per_row), 0.6, size=n)
                         .astype(np.int64))
    document = np.repeat(np.arange(n), lengths)
    word_cdf = np.cumsum(1.0 / (np.arange(1, vocabulary + 1) + 2.7) ** ZIPF_EXPONENT)
    words = np.searchsorted(word_cdf / word_cdf[-1], rng.random(document.size), side="right")
    words = np.minimum(words, vocabulary - 1)
    topics = np.stack([rng.choice(np.arange(50, max(51 + TOPIC_WORDS, vocabulary // 4)),
                                  size=TOPIC_WORDS, replace=False) for _ in range(K)])
    topic_cdf = np.cumsum(1.0 / np.arange(1, TOPIC_WORDS + 1))
    on_topic = rng.random(document.size) < TOPIC_SHARE
    pick = np.searchsorted(topic_cdf / topic_cdf[-1], rng.random(on_topic.sum()), side="right")
    words[on_topic] = topics[y[document[on_topic]], np.minimum(pick, TOPIC_WORDS - 1)]
    X = sp.csr_matrix((np.ones(document.size), (document, words)), shape=(n, vocabulary))
    X.sum_duplicates()
    df = np.bincount(X.indices, minlength=vocabulary)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    X.data = np.log1p(X.data) * idf[X.indices]
    norms = np.sqrt(np.add.reduceat(X.data ** 2, X.indptr[:-1]))
    X.data /= np.repeat(norms, np.diff(X.indptr))
    X.data = X.data.astype(np.float32).astype(np.float64)
    return X, y


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
