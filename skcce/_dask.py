"""Fitting on Dask arrays, and predicting on them block by block.

**Fit.** The data stay on the Dask workers and L-BFGS runs on the client. The
row blocks of ``(X, targets, sample_weight)`` are validated, label-encoded and
persisted once per fit, where they are computed. Every evaluation of the
objective then runs the fused kernel on each block where it lives, through a
:class:`~skcce._objective.InMemoryData` term over that block, and ships
back only the block's unnormalized ``(loss_sum, grad)``: ``n_classes *
(n_features + 1)`` float64 numbers. The client adds these partial sums in
block order (never in order of completion, so the result does not depend on
task timing or placement), divides by the global weight sum and adds the
penalty exactly as the in-memory objective does. With a single block the fit
is bitwise that of the same data as NumPy arrays; with several, the sums are
merely associated differently (differences of the order of 1e-15).

**Threads.** A block task runs the kernel with
``max(1, effective_n_threads(n_jobs) // slots)`` OpenMP threads, where
``effective_n_threads`` is evaluated in the process that runs the task (its
cores, CPU affinity, cgroup quota and ``OMP_NUM_THREADS``) and ``slots`` is the
number of tasks its machine may run at once: on a distributed cluster the
worker threads of all workers on that host, for the local threaded or process
scheduler ``min(n_blocks, pool size)``, and 1 for the synchronous scheduler.
``n_jobs`` is thus the thread budget of a machine, shared by the tasks that
run on it at once, and the cores are not oversubscribed. (Dask's nanny starts
worker processes with ``OMP_NUM_THREADS=1``, so there ``n_jobs=None`` means one
thread per task.) The model does not depend on the thread counts.

**Predict.** :func:`dask_blockwise` makes a prediction method return a lazy
Dask array when given one, applying the NumPy method to each row block.

dask is imported only here, and only when a Dask collection arrives, so
``import skcce`` never imports it.
"""

import contextlib
import copy
import functools
import math
import numbers
import sys
import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from skcce._columns import ColumnSums, column_sums, prescale_shifts, shifted
from skcce._layout import CoefLayout
from skcce._objective import InMemoryData
from skcce._sparse import check_sparse_structure, is_sparse, kernel_csr
from skcce._targets import check_at_least_two_classes, check_soft_targets, one_hot_labels
from skcce._threads import effective_n_threads, single_threaded_blas
from skcce._weights import (
    ALL_ZERO_WEIGHT_MESSAGE,
    ZERO_WEIGHTED_CLASSES_MESSAGE,
    apply_class_weight,
    check_non_negative_sample_weight,
    class_mass,
    class_weights,
    weight_scale,
)

_INSTALL_HINT = (
    "Dask input needs dask[array] (and distributed for a cluster); install them "
    "with: pip install 'skcce[dask]'"
)

# Parameter vectors larger than this are scattered to the workers once per
# evaluation instead of travelling inside every block's task.
_SCATTER_BYTES = 1 << 20


def is_dask_collection(obj):
    """Whether ``obj`` is a Dask collection, without importing dask.

    Parameters
    ----------
    obj : object

    Returns
    -------
    is_dask : bool
    """
    dask = sys.modules.get("dask")
    if dask is None:
        # No Dask collection can exist before dask is imported; the module
        # name still routes one here (to an explicit ImportError) if it does.
        return type(obj).__module__.partition(".")[0] == "dask"
    return bool(dask.is_dask_collection(obj))


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return dask, da


def _check_dask_array(da, arr, name):
    if not isinstance(arr, da.Array):
        hint = ""
        if hasattr(arr, "to_dask_array"):
            hint = "; convert a Dask DataFrame or Series with .to_dask_array(lengths=True)"
        raise TypeError(
            f"{name} must be a dask.array.Array when it is a Dask collection; got "
            f"{type(arr).__module__}.{type(arr).__qualname__}{hint}."
        )
    if any(isinstance(s, float) and math.isnan(s) for s in arr.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )


def _check_X(da, X):
    """X as a 2-D Dask array with one chunk along the columns."""
    _check_dask_array(da, X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D Dask array X; got {X.ndim} dimension(s).")
    n_samples, n_features = X.shape
    if n_samples < 1:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={X.shape}) while a "
            "minimum of 1 is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with {n_features} feature(s) (shape={X.shape}) while a "
            "minimum of 1 is required."
        )
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.numblocks[1] > 1:
        # The kernel needs whole rows.
        X = X.rechunk({1: -1})
    return X


def _row_aligned(da, arr, row_chunks, name):
    """``arr`` as a Dask array chunked along its rows like X, whole along the rest."""
    if is_dask_collection(arr):
        _check_dask_array(da, arr, name)
    else:
        arr = np.asarray(arr)
    n_samples = sum(row_chunks)
    if arr.ndim == 0 or arr.shape[0] != n_samples:
        length = "a scalar" if arr.ndim == 0 else arr.shape[0]
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {length}]"
        )
    chunks = (tuple(row_chunks),) + tuple((s,) for s in arr.shape[1:])
    if isinstance(arr, np.ndarray):
        return da.from_array(arr, chunks=chunks)
    return arr if arr.chunks == chunks else arr.rechunk(chunks)


# ---------------------------------------------------------------------------
# Block tasks. Each takes a block (X, targets, sample_weight) and runs where
# the block lives; all are module-level functions so workers import them.


def _block_unique(y):
    return np.unique(np.asarray(y))


def _prepare_block(X, y, sample_weight, classes, row_offset=0):
    """A validated block: (X in C order, int32 labels or float64 soft targets, weights).

    ``row_offset``: the block's first row in the whole data (for error messages).
    """
    # Before check_array, whose conversion of a malformed CSC or COO block to
    # CSR would write out of bounds.
    check_sparse_structure(X)
    with np.errstate(over="ignore", invalid="ignore"):  # see SoftmaxModelBase
        X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32],
                        order="C", input_name="X")
    if is_sparse(X):
        X = kernel_csr(X, structure_checked=True)
    y = check_array(y, accept_sparse=False, ensure_all_finite=True, ensure_2d=False,
                    dtype=None, input_name="y")
    if classes is None:
        targets = check_soft_targets(y, row_offset=row_offset)
    else:
        # classes holds every label (np.unique over all blocks), sorted.
        targets = np.ascontiguousarray(np.searchsorted(classes, y), dtype=np.int32)
    if sample_weight is not None:
        # All-zero weights are checked over all blocks, once they are summed.
        sample_weight = check_non_negative_sample_weight(sample_weight, X,
                                                         require_nonzero=False)
    return X, targets, sample_weight


def _block_is_one_hot(block):
    return one_hot_labels(block[1]) is not None


def _block_to_labels(block):
    X, targets, sample_weight = block
    return X, one_hot_labels(targets), sample_weight


def _block_class_mass(block, n_classes):
    """Per-class (weighted) target mass, with unit weights made explicit.

    Unit weights are spelled out as the in-memory fit does when it resolves
    class weights, so that a single block reproduces it bitwise.
    """
    X, targets, sample_weight = block
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    return class_mass(targets, sample_weight, n_classes)


def _block_apply_class_weight(block, class_weight):
    """Sample weights times class weights (expected class weight for soft targets)."""
    X, targets, sample_weight = block
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    else:
        sample_weight = sample_weight.copy()
    return X, targets, apply_class_weight(sample_weight, targets, class_weight)


def _block_max_weight(block):
    """The largest sample weight of a block (0 for an empty block)."""
    sample_weight = block[2]
    return float(np.max(sample_weight)) if sample_weight.size else 0.0


def _block_divide_weights(block, scale):
    """The block with its sample weights divided by ``scale`` (a power of two)."""
    X, targets, sample_weight = block
    return X, targets, sample_weight / scale


def _block_column_sums(block):
    """The :class:`~skcce._columns.ColumnSums` of a block."""
    X, _, sample_weight = block
    return column_sums(X, sample_weight)


def _block_shift_columns(block, shift):
    """The block with X's columns multiplied by ``2**shift`` (a copy)."""
    X, targets, sample_weight = block
    X = shifted(X, shift)
    if is_sparse(X):
        X = kernel_csr(X, structure_checked=True)
    return X, targets, sample_weight


def _address_host(address):
    try:
        from distributed.comm import get_address_host

        return get_address_host(address)
    except (ImportError, ValueError):  # no host in the address: count it on its own
        return address


def _host_task_slots(client):
    """Worker threads per host: how many tasks each machine runs at once."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before the n_workers argument
        workers = client.scheduler_info()["workers"]
    slots = {}
    for address, info in workers.items():
        host = _address_host(address)
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
    return slots


def _worker_slots(host_slots):
    """Tasks run at once on the machine of the current distributed worker.

    The worker threads of all workers on its host (as counted at the start
    of the fit), at least the worker's own; 1 outside a worker.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    own = max(1, int(getattr(worker, "state", worker).nthreads))  # .state: distributed >= 2022.11
    return max(own, host_slots.get(_address_host(worker.address), own))


def _task_threads(n_jobs, slots):
    """OpenMP threads for one block task: the machine's budget over its concurrent tasks.

    Parameters
    ----------
    n_jobs : int or None
        The estimator's ``n_jobs``, resolved by :func:`effective_n_threads` in
        the process running the task.
    slots : int or dict
        How many tasks run at once: an int for a local scheduler, or the
        worker threads per host of a distributed cluster.

    Returns
    -------
    n_threads : int
    """
    if isinstance(slots, dict):
        slots = _worker_slots(slots)
    return max(1, effective_n_threads(n_jobs) // slots)


def _block_loss_gradient(block, params, spec, slots):
    """``sum_i s_i CE_i`` over a block and its gradient, (n_dof, K) float64."""
    X, targets, sample_weight = block
    layout, label_smoothing, n_jobs = spec
    data = InMemoryData(
        X, targets, layout, sample_weight=sample_weight,
        label_smoothing=label_smoothing, n_threads=_task_threads(n_jobs, slots),
    )
    with single_threaded_blas():
        loss_sum, grad_t = data.loss_gradient_sum(params)
    if data.weight_scale != 1.0:
        # The block's weights, far below the largest of all blocks, were divided
        # by a power of two of their own: back to the common units (exact).
        loss_sum *= data.weight_scale
        grad_t *= data.weight_scale
    return loss_sum, grad_t


def _ordered_sum(values):
    """Sum in the given (block) order; never in place on a received array."""
    values = iter(values)
    total = np.array(next(values), dtype=np.float64)
    for value in values:
        total += value
    return total


# ---------------------------------------------------------------------------
# Where the blocks live: a distributed cluster, or this process (local schedulers).


class _ClusterBlocks:
    """Row blocks held on a distributed cluster, one future per block.

    Lost blocks (a worker died) are recomputed by the scheduler from their
    lineage; a task whose worker dies is rerun elsewhere.
    """

    def __init__(self, client):
        self.client = client
        self.blocks = []
        self.slots = {}
        self._derived = []

    def compute(self, tasks):
        """Results of Dask ``tasks``, in order."""
        return self.client.gather(self.client.compute(list(tasks)))

    def persist(self, tasks):
        """Compute the blocks from Dask ``tasks`` and keep them on the workers."""
        self.blocks = self.client.compute(list(tasks))
        self.slots = _host_task_slots(self.client)

    def replace(self, func, *args):
        """Replace every block by ``func(block, *args)``, computed where it lives."""
        self.blocks = [self.client.submit(func, block, *args, pure=False)
                       for block in self.blocks]

    def derive(self, func, *args):
        """A store of the blocks ``func(block, *args)``, kept next to these.

        Released with this store.
        """
        derived = _ClusterBlocks(self.client)
        derived.blocks = [self.client.submit(func, block, *args, pure=False)
                          for block in self.blocks]
        derived.slots = self.slots
        self._derived.append(derived)
        return derived

    def map(self, func, *args):
        """``func(block, *args)`` for every block, returned in block order."""
        shipped = [self._ship(arg) for arg in args]
        futures = [self.client.submit(func, block, *shipped, pure=False)
                   for block in self.blocks]
        # gather returns the results in the order of the futures, whatever
        # order the tasks finished in.
        return self.client.gather(futures)

    def _ship(self, arg):
        if isinstance(arg, np.ndarray) and arg.nbytes > _SCATTER_BYTES:
            return self.client.scatter(arg, broadcast=True, hash=False)
        return arg

    def release(self):
        """Drop the blocks (and those of derived stores) from the cluster."""
        for derived in self._derived:
            derived.release()
        self._derived = []
        if self.blocks:
            self.client.cancel(self.blocks)
        self.blocks = []


class _LocalBlocks:
    """Row blocks computed by a local Dask scheduler and held in this process."""

    def __init__(self, dask, scheduler):
        self._dask = dask
        self._scheduler = scheduler
        self.blocks = []
        self.slots = 1

    def compute(self, tasks):
        return list(self._dask.compute(*tasks, scheduler=self._scheduler))

    def persist(self, tasks):
        self.blocks = self.compute(tasks)
        self.slots = min(len(self.blocks), _local_pool_size(self._dask, self._scheduler))

    def replace(self, func, *args):
        self.blocks = self.map(func, *args)

    def derive(self, func, *args):
        derived = _LocalBlocks(self._dask, self._scheduler)
        derived.blocks = self.map(func, *args)
        derived.slots = self.slots
        return derived

    def map(self, func, *args):
        delayed = self._dask.delayed
        return self.compute([delayed(func, pure=False)(block, *args)
                             for block in self.blocks])

    def release(self):
        self.blocks = []


def _local_pool_size(dask, scheduler):
    """How many tasks a local Dask scheduler runs at once."""
    import dask.local

    if scheduler is dask.local.get_sync:
        return 1
    if isinstance(scheduler, functools.partial) and scheduler.func is dask.local.get_async:
        return max(1, int(scheduler.args[1]))  # an Executor: (submit, num_workers)
    from dask.system import CPU_COUNT

    return max(1, int(dask.config.get("num_workers", None) or CPU_COUNT))


def _block_store(dask, collections):
    """Where the blocks will live: the active distributed Client, or this process.

    The scheduler is chosen as ``dask.compute`` would (``scheduler=`` in
    ``dask.config``, then the default distributed Client, then threads).
    """
    from dask.base import get_scheduler

    scheduler = get_scheduler(collections=collections)
    client = getattr(scheduler, "__self__", None)
    if client is not None and type(client).__name__ == "Client":
        return _ClusterBlocks(client)
    return _LocalBlocks(dask, scheduler)


class _BlockedData:
    """The crossentropy data term summed over row blocks held by a block store.

    The Dask counterpart of :class:`~skcce._objective.InMemoryData`: it maps
    the kernel over the blocks and adds their partial sums in block order.
    Normalization and penalty are the objective's, as for in-memory data.

    Parameters
    ----------
    store : _ClusterBlocks or _LocalBlocks
    layout : CoefLayout
    sums : ColumnSums
        Column sums and weight sum, reduced over the blocks.
    weight_scale : float
        The power of two the blocks' sample weights were divided by (see
        :func:`skcce._weights.weight_scale`).
    dtype : numpy dtype
        The blocks' dtype.
    label_smoothing : float
    n_jobs : int or None
        The estimator's ``n_jobs``: the client's threads, and each machine's
        budget for its block tasks.
    """

    def __init__(self, store, layout, sums, weight_scale, dtype, *, label_smoothing,
                 n_jobs):
        self.store = store
        self.layout = layout
        self.weight_sum = float(sums.weight_sum)
        self.weight_scale = float(weight_scale)
        self.dtype = np.dtype(dtype)
        self.shift = None
        self._sums = sums
        self._prescaled = None
        self._label_smoothing = float(label_smoothing)
        self._n_jobs = n_jobs
        # Threads of the client-side passes (normalization and penalty).
        self.n_threads = effective_n_threads(n_jobs)
        self._spec = (layout, float(label_smoothing), n_jobs)

    def column_statistics(self):
        """Per-column statistics of X, over all blocks."""
        return self._sums.statistics()

    def prescaled(self):
        """This data term over blocks with X's extreme columns scaled, or None.

        As :meth:`skcce._objective.InMemoryData.prescaled`; the scaled blocks
        are computed where the blocks live, once.
        """
        if self._prescaled is None:
            sums = self._sums
            shift = prescale_shifts(
                np.maximum(np.abs(sums.minimum), np.abs(sums.maximum)), self.dtype)
            if shift is None:
                self._prescaled = False
            else:
                data = _BlockedData(
                    self.store.derive(_block_shift_columns, shift), self.layout, sums,
                    self.weight_scale, self.dtype,
                    label_smoothing=self._label_smoothing, n_jobs=self._n_jobs)
                data.shift = shift
                self._prescaled = data
        return self._prescaled or None

    def loss_gradient_sum(self, params):
        """Unnormalized data term over all blocks and its gradient.

        Parameters
        ----------
        params : ndarray of shape (n_classes * n_dof,), float64

        Returns
        -------
        loss_sum : float
        grad_t : ndarray of shape (n_dof, n_classes), float64, C order
        """
        partials = self.store.map(_block_loss_gradient, params, self._spec,
                                  self.store.slots)
        loss_sum = float(partials[0][0])
        for partial_loss, _ in partials[1:]:
            loss_sum += partial_loss
        return loss_sum, _ordered_sum(grad for _, grad in partials)


# ---------------------------------------------------------------------------


@contextlib.contextmanager
def dask_data_term(estimator, X, y, sample_weight=None):
    """Validate Dask input, persist its blocks, and yield the data term over them.

    The estimator itself only gets ``n_features_in_`` (as ``validate_data``
    does). The blocks are released from the workers when the context exits.

    Parameters
    ----------
    estimator : SoftmaxClassifier
        Supplies ``class_weight``, ``fit_intercept``, ``label_smoothing`` and
        ``n_jobs``.
    X : dask.array.Array of shape (n_samples, n_features)
        Dense blocks, or blocks of scipy.sparse matrices (converted to CSR).
        Rows may be chunked freely; columns are rechunked into one chunk.
    y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_classes)
        Labels or soft targets; NumPy input is split like X's rows.
    sample_weight : dask.array.Array, array-like of shape (n_samples,), float or None

    Yields
    ------
    data : _BlockedData
    classes : ndarray of shape (n_classes,)
    dtype : numpy dtype
        The dtype of the fitted coefficients (X's, float64 for non-floats).
    """
    dask, da = _import_dask()
    X = _check_X(da, X)
    validate_data(estimator, X, skip_check_array=True, reset=True)
    n_features = X.shape[1]
    row_chunks = X.chunks[0]
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    y = _row_aligned(da, y, row_chunks, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change "
            "the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning, stacklevel=4,
        )
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"y should be a 1d or 2d array, got shape {y.shape} instead.")
    soft = y.ndim == 2
    weighted = sample_weight is not None
    if weighted and not isinstance(sample_weight, numbers.Number):
        sample_weight = _row_aligned(da, sample_weight, row_chunks, "sample_weight")
        if sample_weight.ndim != 1:
            # The in-memory check's error for this shape, on a stand-in of one
            # value per dimension (the weights themselves stay on the workers).
            check_non_negative_sample_weight(
                np.zeros((1,) * sample_weight.ndim),
                np.broadcast_to(0.0, (sum(row_chunks), 1)), require_nonzero=False)

    # Empty row chunks carry nothing; skipping them keeps every block valid.
    keep = [i for i, rows in enumerate(row_chunks) if rows > 0]
    # Optimized together, as dask.compute(X, y, sample_weight) would: the
    # scheduler then sees the same task for a key as in the user's own
    # computations on these arrays.
    collections = [X, y] + ([sample_weight] if isinstance(sample_weight, da.Array) else [])
    X, y, *rest = dask.optimize(*collections)
    X_parts = X.to_delayed(optimize_graph=False).ravel()
    y_parts = y.to_delayed(optimize_graph=False).ravel()
    if rest:
        w_parts = rest[0].to_delayed(optimize_graph=False).ravel()
    else:
        w_parts = [sample_weight] * len(row_chunks)

    store = _block_store(dask, [X])
    try:
        if soft:
            n_classes = y.shape[1]
            classes = np.arange(n_classes)
        else:
            uniques = store.compute(
                [dask.delayed(_block_unique, pure=True)(y_parts[i]) for i in keep])
            classes = np.unique(np.concatenate(uniques))
            check_classification_targets(classes)
            check_at_least_two_classes(classes)
            n_classes = classes.shape[0]

        prepare = dask.delayed(_prepare_block, pure=False)
        row_offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]])
        store.persist([prepare(X_parts[i], y_parts[i], w_parts[i],
                               None if soft else classes, int(row_offsets[i]))
                       for i in keep])
        # As in memory: soft targets that are all exactly one-hot are fitted as
        # labels (a decision over all blocks).
        if soft and all(store.map(_block_is_one_hot)):
            store.replace(_block_to_labels)

        class_weight = estimator.class_weight
        if class_weight is not None:
            # class_weights needs only the class masses: hand
            # them one pseudo-sample per class, weighted by its mass.
            pseudo_targets = np.arange(n_classes)
            if isinstance(class_weight, str) and class_weight == "balanced":
                mass = _ordered_sum(store.map(_block_class_mass, n_classes))
                class_weight = class_weights("balanced", pseudo_targets, classes, mass)
            else:
                class_weight = class_weights(class_weight, pseudo_targets, classes, None)
            store.replace(_block_apply_class_weight, class_weight)

        # As in memory: weights far from 1 are divided by a power of two.
        scale = 1.0
        if weighted or class_weight is not None:
            scale = weight_scale(np.array(store.map(_block_max_weight)))
            if scale != 1.0:
                store.replace(_block_divide_weights, scale)

        sums = ColumnSums.combine(store.map(_block_column_sums))
        if not sums.weight_sum > 0:
            raise ValueError(ALL_ZERO_WEIGHT_MESSAGE if class_weight is None
                             else ZERO_WEIGHTED_CLASSES_MESSAGE)

        layout = CoefLayout(n_classes, n_features, estimator.fit_intercept)
        yield _BlockedData(
            store, layout, sums, scale, dtype,
            label_smoothing=estimator.label_smoothing, n_jobs=estimator.n_jobs,
        ), classes, dtype
    finally:
        store.release()


# ---------------------------------------------------------------------------
# Prediction


def _call_method(block, estimator, name, empty, args, kwargs):
    if block.shape[0] == 0:
        return empty
    return getattr(estimator, name)(block, *args, **kwargs)


def _map_method(estimator, name, X, args, kwargs):
    """Lazy ``estimator.<name>`` over the row blocks of a Dask array."""
    _, da = _import_dask()
    _check_dask_array_2d(da, X)
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    n_features = X.shape[1]
    if is_sparse(getattr(X, "_meta", None)):
        probe = sparse.csr_matrix((1, n_features), dtype=X.dtype)
    else:
        probe = np.zeros((1, n_features), dtype=X.dtype)
    # One row now: fails early if the estimator is not fitted or the width is
    # wrong, and gives the output's dtype and columns.
    out = np.asarray(getattr(estimator, name)(probe, *args, **kwargs))
    empty = out[:0]
    # The graph keeps the model as fitted now, not as later refitted.
    estimator = copy.deepcopy(estimator)
    extra = (estimator, name, empty, args, kwargs)
    if out.ndim == 1:
        return X.map_blocks(_call_method, *extra, drop_axis=1, dtype=out.dtype, meta=empty)
    return X.map_blocks(_call_method, *extra, chunks=(X.chunks[0],) + out.shape[1:],
                        dtype=out.dtype, meta=empty)


def _check_dask_array_2d(da, X):
    if not isinstance(X, da.Array):
        _check_dask_array(da, X, "X")  # raises with a hint
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D Dask array X; got {X.ndim} dimension(s).")
    if isinstance(X.shape[1], float) and math.isnan(X.shape[1]):
        raise ValueError("X has an unknown number of columns.")


def dask_blockwise(method):
    """Make a prediction method lazy and block-wise on Dask arrays.

    The decorated method, given a Dask array, returns a Dask array computed
    by applying the NumPy method to each row block (``map_blocks``); any other
    input is passed to the method unchanged. The estimator is checked (fitted,
    number of features) when the method is called, and the graph holds a copy
    of it, so a later refit does not change the result.

    Parameters
    ----------
    method : callable
        ``method(self, X, *args, **kwargs)`` returning one row (1-D output) or
        one row of columns (2-D output) per row of X.

    Returns
    -------
    wrapper : callable
    """
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_dask_collection(X):
            return _map_method(self, name, X, args, kwargs)
        return method(self, X, *args, **kwargs)

    return wrapper
