# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Fused categorical crossentropy loss and gradient for dense X.

One call makes one pass over ``X``. Rows are cut into *chunks* (sized so that a
chunk of ``X``, its logits and residual scratch stay in the L2 cache between
the two products that read them) and consecutive chunks form *groups*. For
each chunk::

    Z   = X_c @ Wt + b                     (product 1, logits, chunk_rows x K)
    Z   <- s_i * (softmax(Z) - onehot(y))  (in place; loss accumulated on the way)
    G  += Z.T @ X_c                        (product 2, gradient, d x K layout)

For up to 200 classes the two products run in register-blocked
micro-kernels: vectorized over classes padded to the vector width
(``microkernel.h``), or, when that padding would waste many lanes and rows
are long enough, over features (``rowkernel_impl.h``); with more classes, and
with more than 32 where the loops in use have vectors of 32 bytes or less,
through BLAS GEMM (:func:`product_kernels` says which).

Each group of consecutive chunks is summed sequentially into its own
buffers; threads take groups as they come (one parallel region, one barrier)
and the group results are merged into the totals in group order
(``ordered_merge.h``). The partition into chunks and groups depends only on
the data shape, never on the thread count (:func:`dense_partition`), so the
result is bitwise identical for every ``n_threads``.

Coefficients are passed transposed, ``W.T`` of shape (n_features, K), which is
the operand layout a row-major GEMM wants, and the gradient is returned as
(n_features + fit_intercept, K), intercepts in the last row: the C-contiguous
view of the Fortran-ordered (K, n_dof) coefficient matrix, i.e. exactly the
flat vector scipy's L-BFGS works on. Intercepts are float64 and added to the
logits in float64, so a large common offset stays exact for float32 data.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree, PyMem_RawMalloc
from libc.string cimport memset
from libc.stdint cimport int32_t

from skcce._kernels.common cimport (
    check_model_and_gradient,
    check_sample_weight,
    gemm,
    weights_pointer,
)
from skcce._kernels.crossentropy cimport Targets, set_targets
from skcce._kernels.residuals cimport residual_scratch_doubles, softmax_residual_chunk

from skcce._kernels.simd cimport select_simd_loops, skcce_simd

cdef extern from "microkernel.h":
    int SKCCE_LANES_f64
    int SKCCE_LANES_f32

cdef extern from "prefault.h":
    void skcce_huge_pages(void* p, size_t n) noexcept nogil

cdef extern from "ordered_merge.h":
    ctypedef struct skcce_ordered_merge:
        Py_ssize_t n_groups
        Py_ssize_t n_slots
        Py_ssize_t merged
        Py_ssize_t next
        unsigned char* done
    Py_ssize_t skcce_next_group(skcce_ordered_merge* m) noexcept nogil
    void skcce_wait_for_slot(skcce_ordered_merge* m, Py_ssize_t g) noexcept nogil
    void skcce_finish_group(skcce_ordered_merge* m, Py_ssize_t g, double* grad,
                            double* grad_intercept, double* loss,
                            const double* grad_slots, const double* intercept_slots,
                            const double* loss_slots, Py_ssize_t n_features,
                            Py_ssize_t n_classes, Py_ssize_t ldw) noexcept nogil

import numpy as np

_SIMD_LOOPS = select_simd_loops()
# Whether the loops in use have 64-byte vectors, and whether they are the
# baseline's (see _FEATURE_RULES).
cdef bint _wide_vectors = skcce_simd.vector_bytes() >= 64
cdef bint _baseline_loops = _SIMD_LOOPS == "base"


def vector_bytes():
    """Bytes of the register vectors of the hot loops in use (8: plain loops).

    Returns
    -------
    n_bytes : int
    """
    return int(skcce_simd.vector_bytes())


def simd_loops():
    """The instruction set of the hot loops in use: "base", "avx2" or "avx512".

    The best one the CPU supports among those the build compiled, at most the
    one named by the environment variable ``SKCCE_SIMD`` at import.

    Returns
    -------
    name : str
    """
    return _SIMD_LOOPS


def vector_math(str function, const double[::1] values):
    """The kernels' vectorized ``exp`` or ``log``, for tests.

    Parameters
    ----------
    function : {"exp_nonpositive", "log_ge1"}
        exp of values <= 0, or log of values >= 1 (the arguments the
        residuals pass them).
    values : ndarray of shape (n,), float64

    Returns
    -------
    result : ndarray of shape (n,), float64
    """
    result = np.array(values, dtype=np.float64)
    cdef double[::1] out = result
    if out.shape[0] == 0:
        return result
    if function == "exp_nonpositive":
        skcce_simd.exp_nonpositive_inplace(&out[0], out.shape[0])
    elif function == "log_ge1":
        skcce_simd.log_ge1_inplace(&out[0], out.shape[0])
    else:
        raise ValueError(f"unknown function {function!r}")
    return result


cdef enum:
    # Target size in bytes of one chunk of X: small enough that the chunk is
    # still in the L2 cache when the gradient product reads it again after
    # the logits product.
    CHUNK_BYTES = 131072
    MIN_CHUNK_ROWS = 8
    # Wide rows (more than CHUNK_BYTES / MIN_WIDE_CHUNK_ROWS bytes): chunks of
    # at least MIN_WIDE_CHUNK_ROWS rows, as long as they stay within
    # WIDE_CHUNK_BYTES. The gradient product adds a chunk's sums to all of G
    # (n_features x K) and the logits product streams all of W, once per
    # chunk: with rows of thousands of features, chunks of 8-20 rows spent
    # more on that than the chunk of X saved by staying small (64 rows
    # within 768 KiB measured 1.1-1.5x faster from 784 to 5,000 features,
    # K = 5-50, float32 most; the same at 300-400 features).
    MIN_WIDE_CHUNK_ROWS = 64
    WIDE_CHUNK_BYTES = 786432
    MAX_CHUNK_ROWS = 2048
    # Both products read all of W (n_features x K) for every chunk, and the
    # gradient product reads and writes all of G. With more than
    # FEW_CLASSES classes and W larger than GEMM_W_CACHED_BYTES, neither stays
    # in cache between chunks, and chunks get at least MIN_GEMM_CHUNK_ROWS
    # rows, whatever their bytes, to amortize them: with that many classes
    # the products do enough work per value of X that reading a chunk of X
    # twice from memory costs little. (So do float32 chunks on the BLAS path,
    # which also add a d x K gradient each, where MIN_GEMM_CHUNK_ROWS rows'
    # logits and scratch fit in GEMM_SCRATCH_BYTES or the float64 gradient
    # exceeds F32_GRADIENT_ADD_BYTES; elsewhere, with few features and 1,000
    # classes, chunks as short as the scratch bound were 1.25-1.4x faster:
    # their scratch stays in the L2 cache.) With fewer classes, keeping the
    # chunk of X in cache matters more.
    GEMM_W_CACHED_BYTES = 524288
    MIN_GEMM_CHUNK_ROWS = 256
    GEMM_SCRATCH_BYTES = 1048576
    F32_GRADIENT_ADD_BYTES = 262144
    FEW_CLASSES = 32
    # Target size in bytes of a chunk's logits and residual scratch, which
    # are written and read again within the chunk: with few features and
    # many classes they, not the chunk of X, bound the chunk's rows.
    CHUNK_SCRATCH_BYTES = 262144
    # Target size in bytes of one block of X: large enough that the per-group
    # synchronisation and the merge are negligible next to the block's work.
    BLOCK_BYTES = 1048576
    # ... or this many flops of the two products, when fewer rows do them
    # (few features, many classes): enough work still, and a small input
    # with much work per row still makes groups for every thread.
    BLOCK_FLOPS = 67108864
    # Groups of rows summed separately, then merged in order (see
    # dense_partition), and the most bytes of group gradients in all.
    MAX_GROUPS = 64
    GROUP_BUFFER_BYTES = 67108864
    # Group gradient buffers in use at once, per thread (see ordered_merge.h):
    # slack for threads that run ahead while an earlier group is still
    # computed.
    MERGE_SLOTS_PER_THREAD = 4
    # ... within MERGE_SLOTS_BYTES in all, but at least one per thread: with
    # many features and classes, a few large groups wait little for a slot,
    # and fresh slots cost their page faults on every call (3,000 x 2,000
    # float32, K = 1,000: 4 slots of 16 MB, or one per thread).
    MERGE_SLOTS_BYTES = 16777216
    # Up to this many classes the products run in the register-blocked
    # micro-kernels of microkernel.h; above, BLAS GEMM is as fast (measured:
    # the micro-kernels up to 1.3x faster for 50 to 200 classes, up to 1.3x
    # slower for 256 to 1000; OpenBLAS, AVX-512).
    MICRO_MAX_CLASSES = 200
    PRODUCTS_CLASSES = 0
    PRODUCTS_FEATURES = 1
    PRODUCTS_BLAS = 2


# ---------------------------------------------------------------------------
# Layout: how the rows are cut, from the data's shape only.

def microkernel_width(Py_ssize_t n_classes, Py_ssize_t itemsize):
    """Padded number of classes (row stride of W.T, logits and gradient).

    A multiple of the micro-kernels' vector width for up to
    MICRO_MAX_CLASSES classes, else K itself (only BLAS takes them). The
    BLAS path's stride is K whatever the count.

    Parameters
    ----------
    n_classes : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    width : int
    """
    cdef Py_ssize_t lanes = SKCCE_LANES_f64 if itemsize == 8 else SKCCE_LANES_f32
    if n_classes > MICRO_MAX_CLASSES:
        return int(n_classes)
    return int((n_classes + lanes - 1) // lanes * lanes)


# Where the kernels vectorized over features (rowkernel_impl.h) take over
# from those vectorized over classes, which would leave lanes padding: a shape
# with 2 to MICRO_MAX_CLASSES classes takes them when one of the rules of the
# loops in use admits it. A rule is
#   (least padding: percent of the class tile's lanes,
#    class tile: its 32-byte vectors, or 0 for any,
#    least features, least 32-byte vectors of features).
# Each measured as products "features" against "classes", one and two
# threads, on AMD EPYC unless said otherwise.

# The baseline's loops, measured on x86-64's SSE2 with 16-byte register
# vectors (arm64's, also 16 bytes, takes it unmeasured): half the lanes
# padding or more from 64 features. One thread:
# float32 K = 2 1.5-2.5x, K = 3 1.2-1.7x, K = 4 1.0-1.3x, float64 K = 2
# 1.1-1.35x; two threads alike from 80 features. At 20-54 features 0.7-1.1x;
# float64 K = 3-8 and float32 K = 5-8 0.5-0.95x at every width.
_BASELINE_RULES = (
    (50, 0, 64, 0),
)
# Half the lanes padding or more (float32 with K <= 4, float64 with K = 2):
# 32-byte vectors: float32 K = 4 1.3-2.0x faster, float64 K = 2 1.15-1.35x
# at 64 to 2,000 features; float32 K = 2-4 1.1-1.5x at 24-54. 64-byte
# vectors: 1.1-1.4x (Intel Xeon); float32 K = 4 1.3-1.55x, float64 K = 2
# 0.97-1.2x; float32 K = 2-4 1.1-1.6x at 32-54 features, 0.65-0.8x at 20
# (the row's single partial vector costs more than it saves).
_HALF_PADDING_RULES = (
    (50, 0, 32, 0),
)
# Only with 64-byte vectors: class tiles of one 32-byte vector (half of each
# 64-byte instruction unused), or of one 64-byte vector with much padding.
_WIDE_VECTOR_RULES = (
    # A class tile of one 32-byte vector, a quarter or more padding (the
    # feature tiles take all K <= 8 classes at once): float32 K = 5
    # 1.1-1.6x and K = 6 1.0-1.3x at 64 to 2,000 features (0.9-1.0x at
    # 32-54), float64 K = 3 1.0-1.2x at 32-300 (K = 7-8 and float64
    # K = 4 mixed).
    (25, 1, 0, 8),
    # Any class tile of one 32-byte vector, on very long rows: float64
    # K = 3 1.1-1.35x at 300 to 2,000 features, float32 K = 6-8 1.2-1.4x
    # at 784 (K = 6 also at 2,000), float64 K = 4 as fast (Intel Xeon).
    (0, 1, 0, 64),
    # A class tile of one 64-byte vector with 37% or more padding, on
    # very long rows: float32 K = 9-10 1.05-1.2x at 512 to 2,000
    # features, float64 K = 5 1.0-1.2x at 256-2,000 (0.9x at 54-100).
    (37, 2, 0, 64),
)
_FEATURE_RULES = {
    "baseline": _BASELINE_RULES,
    "32-byte vectors": _HALF_PADDING_RULES,
    "64-byte vectors": _HALF_PADDING_RULES + _WIDE_VECTOR_RULES,
    # A baseline built with 64-byte vectors (CFLAGS for AVX-512): the
    # baseline's rule and the wide vectors'.
    "baseline, 64-byte vectors": _BASELINE_RULES + _WIDE_VECTOR_RULES,
}
# Where BLAS GEMM takes over from the class-vectorized micro-kernels with at
# most MICRO_MAX_CLASSES classes: (min_classes, min_row_bytes, min_features),
# at least min_classes classes, rows of W.T (K x itemsize) of at least
# min_row_bytes and at least min_features features. OpenBLAS's packed GEMM
# keeps more of the FMA units busy than the micro-kernels' tiles of 16-byte
# or 32-byte vectors (arm64 takes the baseline's rule, unmeasured). How much faster BLAS is, one thread (OpenBLAS 0.3.30, AMD EPYC):
# 32-byte vectors, float64 K = 50-200 1.05-1.3x faster at 48-300 features,
# 1.1-2.05x at 784-2,000 (two threads 1.14-1.95x from 54), K = 33
# 0.94-1.35x; float32 K = 100-200 0.95-1.35x at 54-300, 1.16-1.8x at
# 784-2,000, K = 33-64 0.87-1.17x (kept); at 20 features 0.86-1.08x
# (kept). Baseline (16-byte vectors): K = 33-200 1.03-1.28x at 8-12
# features, 1.2-4.3x from 20 (K = 20 1.1-2.0x, not taken). 64-byte vectors:
# the micro-kernels are up to 1.3x faster than BLAS up to 200 classes.
_BLAS_RULES = {
    "baseline": (FEW_CLASSES + 1, 0, 8),
    "32-byte vectors": (FEW_CLASSES + 1, 257, 48),
    "64-byte vectors": (MICRO_MAX_CLASSES + 1, 0, 0),
    "baseline, 64-byte vectors": (MICRO_MAX_CLASSES + 1, 0, 0),
}
_loops_family = (("baseline, 64-byte vectors" if _baseline_loops else "64-byte vectors")
                 if _wide_vectors else "baseline" if _baseline_loops else "32-byte vectors")
_feature_rules = _FEATURE_RULES[_loops_family]
cdef Py_ssize_t _blas_min_classes, _blas_min_row_bytes, _blas_min_features
_blas_min_classes, _blas_min_row_bytes, _blas_min_features = _BLAS_RULES[_loops_family]


cdef int _product_kernels(Py_ssize_t n_features, Py_ssize_t n_classes,
                          Py_ssize_t itemsize) noexcept:
    if n_classes > MICRO_MAX_CLASSES or (
            n_classes >= _blas_min_classes and n_classes * itemsize >= _blas_min_row_bytes
            and n_features >= _blas_min_features):
        return PRODUCTS_BLAS
    cdef Py_ssize_t lanes = SKCCE_LANES_f64 if itemsize == 8 else SKCCE_LANES_f32
    cdef Py_ssize_t padded = microkernel_width(n_classes, itemsize)
    cdef Py_ssize_t min_padding, tile_vectors, min_features, min_vectors
    if n_classes < 2:
        return PRODUCTS_CLASSES
    for min_padding, tile_vectors, min_features, min_vectors in _feature_rules:
        if (100 * (padded - n_classes) >= min_padding * padded
                and tile_vectors in (0, padded // lanes)
                and n_features >= max(min_features, min_vectors * lanes)):
            return PRODUCTS_FEATURES
    return PRODUCTS_CLASSES


_PRODUCT_NAMES = {PRODUCTS_CLASSES: "classes", PRODUCTS_FEATURES: "features",
                  PRODUCTS_BLAS: "blas"}
_PRODUCT_CODES = {name: code for code, name in _PRODUCT_NAMES.items()}


def product_kernels(Py_ssize_t n_features, Py_ssize_t n_classes, Py_ssize_t itemsize):
    """Which kernels do the two products for data of this shape and dtype.

    Parameters
    ----------
    n_features, n_classes : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    kernels : {"classes", "features", "blas"}
        "classes": micro-kernels vectorized over classes (padded to the
        vector width); "features": micro-kernels vectorized over features,
        when the padding would waste at least half of the lanes (float32
        with 2 to 4 classes, float64 with 2) and rows hold at least 32
        features (with the baseline's loops, see :func:`simd_loops`:
        "base", from 64 features); with
        "avx512" also float32 with 5 or 6 classes from 64 features, float64
        with 3 from 32, float32 with 7 to 10 from 512 and float64 with 4 or
        5 from 256; "blas": BLAS GEMM, for more than 200 classes, and where
        the loops in use have vectors of 32 bytes or less (:func:`vector_bytes`)
        for more than 32: with "avx2" from 48 features where a row of W.T
        holds more than 256 bytes (float64 from 33 classes, float32 from 65),
        with "base" from 8 features.
        Depends on the shape and on the instruction set in use only (a build
        without vector extensions: never "features", and "blas" by the rule
        of the loops' name).
    """
    return _PRODUCT_NAMES[_product_kernels(n_features, n_classes, itemsize)]


def row_partition(Py_ssize_t n_features, Py_ssize_t n_classes, Py_ssize_t itemsize):
    """Rows per chunk and chunks per block for data of this shape and dtype.

    A chunk holds about CHUNK_BYTES of X and CHUNK_SCRATCH_BYTES of logits
    and residual scratch, whichever gives fewer rows (within MIN_CHUNK_ROWS
    and MAX_CHUNK_ROWS), so that both stay in the L2 cache while the chunk
    is worked on; wide rows get at least MIN_WIDE_CHUNK_ROWS rows within
    WIDE_CHUNK_BYTES; a block, about BLOCK_BYTES of X or BLOCK_FLOPS of
    products, whichever is less. Depends on the data shape only (never on
    the thread count).

    Parameters
    ----------
    n_features, n_classes : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    chunk_rows, chunks_per_block : int, int
    """
    cdef Py_ssize_t row_bytes = max(n_features, 1) * itemsize
    cdef Py_ssize_t scratch_row_bytes = (
        microkernel_width(n_classes, itemsize) * itemsize
        + residual_scratch_doubles(1, n_classes) * sizeof(double))
    cdef Py_ssize_t x_rows = max(CHUNK_BYTES // row_bytes,
                                 min(MIN_WIDE_CHUNK_ROWS, WIDE_CHUNK_BYTES // row_bytes))
    cdef Py_ssize_t chunk_rows = min(x_rows, CHUNK_SCRATCH_BYTES // scratch_row_bytes)
    chunk_rows = min(max(chunk_rows, MIN_CHUNK_ROWS), MAX_CHUNK_ROWS)
    if (n_classes > FEW_CLASSES
            and n_features * n_classes * itemsize > GEMM_W_CACHED_BYTES) or (
            n_classes > MICRO_MAX_CLASSES and itemsize == 4
            and (MIN_GEMM_CHUNK_ROWS * scratch_row_bytes <= GEMM_SCRATCH_BYTES
                 or n_features * n_classes * sizeof(double) > F32_GRADIENT_ADD_BYTES)):
        chunk_rows = max(chunk_rows, MIN_GEMM_CHUNK_ROWS)
    cdef Py_ssize_t chunk_flops = (
        4 * chunk_rows * max(n_features, 1) * microkernel_width(n_classes, itemsize))
    cdef Py_ssize_t chunks_per_block = max(
        min(BLOCK_BYTES // (chunk_rows * row_bytes), BLOCK_FLOPS // chunk_flops), 1)
    return int(chunk_rows), int(chunks_per_block)


def dense_partition(Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t n_classes,
                    Py_ssize_t itemsize):
    """How the dense kernel splits the rows: chunks, and groups of chunks.

    Each group (consecutive rows) is summed sequentially into a gradient
    buffer of its own (one of a few slots per thread, see
    :func:`dense_merge_slots`); threads take groups as they come; group
    results are merged in group order. At most MAX_GROUPS groups, of at least
    one block (~1 MiB of X, or 64 MFLOP of products if that is less) each,
    and no more than GROUP_BUFFER_BYTES of d x K gradients in total: each
    group's merge adds d x K values under a lock, so very wide data with many
    classes has fewer groups (hence fewer threads at work) rather than a
    merge that outweighs the work. Depends on
    the data shape only, never on the thread count: this is what makes
    results bitwise reproducible.

    Parameters
    ----------
    n_samples, n_features, n_classes : int
    itemsize : int
        Bytes per element of X (4 or 8).

    Returns
    -------
    chunk_rows, group_rows, n_groups : int, int, int
    """
    chunk_rows, chunks_per_block = row_partition(n_features, n_classes, itemsize)
    cdef Py_ssize_t block_rows = chunk_rows * chunks_per_block
    cdef Py_ssize_t n_blocks = max(1, (n_samples + block_rows - 1) // block_rows)
    cdef Py_ssize_t buffer_bytes = (
        (n_features * microkernel_width(n_classes, itemsize) + n_classes + 1) * 8)
    cdef Py_ssize_t max_groups = max(1, min(MAX_GROUPS, GROUP_BUFFER_BYTES // buffer_bytes))
    cdef Py_ssize_t blocks_per_group = (n_blocks + max_groups - 1) // max_groups
    cdef Py_ssize_t group_rows = blocks_per_group * block_rows
    cdef Py_ssize_t n_groups = max(1, (n_samples + group_rows - 1) // group_rows)
    return int(chunk_rows), int(group_rows), int(n_groups)


def dense_merge_slots(Py_ssize_t n_groups, Py_ssize_t n_threads, Py_ssize_t slot_bytes):
    """Group gradient buffers the dense kernel holds at once.

    Group g is summed into slot g % n_slots and added to the total, in group
    order, as soon as the groups before it are in; a few slots per thread let
    threads run ahead of a slow group, as many as fit in 16 MiB, one per
    thread at least. The result does not depend on it.

    Parameters
    ----------
    n_groups, n_threads : int
    slot_bytes : int
        Bytes of one group's gradient buffer.

    Returns
    -------
    n_slots : int
    """
    cdef Py_ssize_t threads = max(n_threads, 1)
    cdef Py_ssize_t within_bytes = MERGE_SLOTS_BYTES // max(slot_bytes, 1)
    return int(max(1, min(n_groups, max(threads,
                                        min(MERGE_SLOTS_PER_THREAD * threads, within_bytes)))))


cdef struct DenseLayout:
    Py_ssize_t n_samples
    Py_ssize_t n_features
    Py_ssize_t n_classes
    Py_ssize_t ldw          # row stride of W.T, logits, gradients: padded classes, K for BLAS
    Py_ssize_t chunk_rows
    Py_ssize_t group_rows
    Py_ssize_t n_groups
    Py_ssize_t n_slots      # group gradient buffers (see dense_merge_slots)
    int n_threads
    int products            # PRODUCTS_CLASSES, PRODUCTS_FEATURES or PRODUCTS_BLAS


cdef DenseLayout _dense_layout(Py_ssize_t n, Py_ssize_t d, Py_ssize_t K,
                               Py_ssize_t itemsize, int n_threads, int products):
    cdef DenseLayout layout
    layout.n_samples = n
    layout.n_features = d
    layout.n_classes = K
    # BLAS reads W.T and writes the logits unpadded.
    layout.ldw = K if products == PRODUCTS_BLAS else microkernel_width(K, itemsize)
    layout.chunk_rows, layout.group_rows, layout.n_groups = dense_partition(
        n, d, K, itemsize)
    layout.n_threads = <int> max(1, min(n_threads, layout.n_groups))
    layout.n_slots = dense_merge_slots(layout.n_groups, layout.n_threads,
                                       layout.n_features * layout.ldw * sizeof(double))
    layout.products = products
    return layout


# ---------------------------------------------------------------------------
# Buffers: per thread scratch, per slot group sums.

cdef struct DenseScratch:
    void* z                   # per thread: a chunk's logits, chunk_rows x ldw, X's dtype
    double* exp               # per thread: residual_scratch_doubles(chunk_rows, K)
    void* grad_chunk          # per thread: d x K, float32 BLAS path only
    double* grad_rows         # per thread: K x d, feature-vectorized path only
    double* grad_slots        # per slot: d x ldw
    double* intercept_slots   # per slot: K
    double* loss_slots        # per slot: 1
    skcce_ordered_merge merge


cdef void* _scratch_malloc(size_t n_bytes) noexcept nogil:
    """PyMem_RawMalloc, with huge pages asked for when the buffer is large
    (prefault.h: the scratch is fresh on every call, and its first touch
    maps it)."""
    cdef void* p = PyMem_RawMalloc(n_bytes)
    skcce_huge_pages(p, n_bytes)
    return p


cdef int _allocate_scratch(DenseScratch* s, const DenseLayout* L,
                           size_t itemsize) except -1:
    """Allocate the buffers (``_free_scratch`` releases them, also on failure).

    PyMem_Raw* (thread-safe without the GIL) so that tracemalloc counts the
    kernels' buffers too.
    """
    cdef Py_ssize_t T = L.n_threads, d = L.n_features, K = L.n_classes
    cdef bint blas_float = itemsize == 4 and L.products == PRODUCTS_BLAS
    cdef bint rows = L.products == PRODUCTS_FEATURES
    s.z = _scratch_malloc(T * L.chunk_rows * L.ldw * itemsize)
    s.exp = <double*> _scratch_malloc(
        T * residual_scratch_doubles(L.chunk_rows, K) * sizeof(double))
    s.grad_slots = <double*> _scratch_malloc(max(L.n_slots * d * L.ldw, 1) * sizeof(double))
    s.intercept_slots = <double*> PyMem_RawMalloc(L.n_slots * K * sizeof(double))
    s.loss_slots = <double*> PyMem_RawMalloc(L.n_slots * sizeof(double))
    s.merge.done = <unsigned char*> PyMem_RawCalloc(L.n_groups, 1)
    s.merge.n_groups = L.n_groups
    s.merge.n_slots = L.n_slots
    s.merge.merged = 0
    s.merge.next = 0
    s.grad_chunk = NULL
    s.grad_rows = NULL
    if blas_float:
        s.grad_chunk = _scratch_malloc(max(d * K, 1) * T * itemsize)
    if rows:
        s.grad_rows = <double*> _scratch_malloc(max(d * K, 1) * T * sizeof(double))
    if (s.z == NULL or s.exp == NULL or s.grad_slots == NULL or s.intercept_slots == NULL
            or s.loss_slots == NULL or s.merge.done == NULL
            or (blas_float and s.grad_chunk == NULL) or (rows and s.grad_rows == NULL)):
        raise MemoryError()
    return 0


cdef void _free_scratch(DenseScratch* s) noexcept:
    PyMem_RawFree(s.z)
    PyMem_RawFree(s.exp)
    PyMem_RawFree(s.grad_chunk)
    PyMem_RawFree(s.grad_rows)
    PyMem_RawFree(s.grad_slots)
    PyMem_RawFree(s.intercept_slots)
    PyMem_RawFree(s.loss_slots)
    PyMem_RawFree(s.merge.done)


# ---------------------------------------------------------------------------
# Loop: groups in threads, chunks within a group.

cdef inline void _logits_product(const floating* X, Py_ssize_t m, Py_ssize_t d,
                                 const floating* weights_t, Py_ssize_t ldw,
                                 floating* z, Py_ssize_t rows_readable) noexcept nogil:
    """Z (m x ldw) = X_c @ W.T in the micro-kernel of X's dtype;
    ``rows_readable`` rows of X from X_c on may be fetched ahead."""
    if floating is double:
        skcce_simd.logits_f64(X, m, d, weights_t, ldw, z, rows_readable)
    else:
        skcce_simd.logits_f32(X, m, d, weights_t, ldw, z, rows_readable)


cdef inline void _gradient_product(const floating* X, Py_ssize_t m, Py_ssize_t d,
                                   const floating* residuals, Py_ssize_t ldw,
                                   double* grad, Py_ssize_t rows_ahead) noexcept nogil:
    """G (d x ldw, float64) += X_c.T @ R in the micro-kernel of X's dtype,
    fetching (the start of) the ``rows_ahead`` rows after X_c into the cache
    meanwhile."""
    if floating is double:
        skcce_simd.grad_f64(X, m, d, residuals, ldw, grad, X + m * d,
                            rows_ahead * d * sizeof(floating))
    else:
        skcce_simd.grad_f32(X, m, d, residuals, ldw, grad, X + m * d,
                            rows_ahead * d * sizeof(floating))


cdef inline void _rows_logits_product(const floating* X, Py_ssize_t m, Py_ssize_t d,
                                      const floating* weights, Py_ssize_t K, floating* z,
                                      Py_ssize_t ldz, Py_ssize_t rows_readable) noexcept nogil:
    """Z (m x ldz, first K columns) = X_c @ W.T, vectorized over features;
    ``rows_readable`` rows of X from X_c on may be fetched ahead."""
    if floating is double:
        skcce_simd.rows_logits_f64(X, m, d, weights, K, z, ldz, rows_readable)
    else:
        skcce_simd.rows_logits_f32(X, m, d, weights, K, z, ldz, rows_readable)


cdef inline void _rows_gradient_product(const floating* X, Py_ssize_t m, Py_ssize_t d,
                                        const floating* residuals, Py_ssize_t ldr,
                                        Py_ssize_t K, double* grad_rows,
                                        Py_ssize_t rows_ahead) noexcept nogil:
    """G (K x d, float64) += R.T @ X_c, vectorized over features, fetching
    (the start of) the ``rows_ahead`` rows after X_c into the cache
    meanwhile."""
    if floating is double:
        skcce_simd.rows_grad_f64(X, m, d, residuals, ldr, K, grad_rows, X + m * d,
                                 rows_ahead * d * sizeof(floating))
    else:
        skcce_simd.rows_grad_f32(X, m, d, residuals, ldr, K, grad_rows, X + m * d,
                                 rows_ahead * d * sizeof(floating))


cdef double _group_loss_gradient(
    const floating* X, const DenseLayout* L, const Targets* targets, const double* sw,
    const floating* weights_t, const floating* weights, const double* intercept,
    Py_ssize_t row_start, Py_ssize_t row_end, floating* z, floating* grad_chunk,
    double* grad_rows, double* grad, double* grad_intercept, double* scratch,
) noexcept nogil:
    """Loss and gradient of rows [row_start, row_end), summed sequentially.

    ``weights_t`` is (n_features x ldw) with zero columns past K, ``weights``
    the same coefficients class-major (K x n_features, feature-vectorized
    path only); ``z`` is chunk_rows x ldw scratch; ``grad`` (n_features x
    ldw, float64) and ``grad_intercept`` (K) are overwritten; ``scratch``
    holds ``residual_scratch_doubles(chunk_rows, K)`` doubles. The products
    run in the register-blocked micro-kernels (the feature-vectorized ones sum
    into ``grad_rows``, K x n_features, copied into ``grad`` at the end), or
    (many classes) through BLAS GEMM, with ``grad_chunk`` (n_features x K) as
    scratch for float32 data.
    """
    cdef Py_ssize_t d = L.n_features, K = L.n_classes, ldw = L.ldw
    cdef Py_ssize_t r0, m, e, j, k
    cdef const floating* xc
    cdef const double* sw_c
    cdef double loss = 0.0
    cdef bint first = True

    memset(grad, 0, d * ldw * sizeof(double))
    memset(grad_intercept, 0, K * sizeof(double))
    if L.products == PRODUCTS_FEATURES:
        memset(grad_rows, 0, d * K * sizeof(double))
    r0 = row_start
    while r0 < row_end:
        m = min(L.chunk_rows, row_end - r0)
        xc = X + r0 * d
        # Logits without intercept: Z (m x ldw, row-major) = X_c @ W.T.
        if d == 0:
            memset(z, 0, m * ldw * sizeof(floating))
        elif L.products == PRODUCTS_CLASSES:
            _logits_product(xc, m, d, weights_t, ldw, z, L.n_samples - r0)
        elif L.products == PRODUCTS_FEATURES:
            _rows_logits_product(xc, m, d, weights, K, z, ldw, L.n_samples - r0)
        else:
            gemm(b"N", b"N", <int> K, <int> m, <int> d, weights_t, <int> K,
                 xc, <int> d, <floating> 0.0, z, <int> K)
        sw_c = NULL
        if sw != NULL:
            sw_c = sw + r0
        loss = loss + softmax_residual_chunk(z, ldw, r0, m, K, intercept, targets,
                                             sw_c, grad_intercept, scratch)
        # Gradient: G (d x ldw, row-major) += X_c.T @ R.
        if d == 0:
            pass
        elif L.products == PRODUCTS_CLASSES:
            _gradient_product(xc, m, d, z, ldw, grad,
                              min(L.chunk_rows, row_end - r0 - m))
        elif L.products == PRODUCTS_FEATURES:
            _rows_gradient_product(xc, m, d, z, ldw, K, grad_rows,
                                   min(L.chunk_rows, row_end - r0 - m))
        elif floating is double:
            gemm(b"N", b"T", <int> K, <int> d, <int> m, z, <int> K,
                 xc, <int> d, <double> (0.0 if first else 1.0), grad, <int> K)
        else:
            gemm(b"N", b"T", <int> K, <int> d, <int> m, z, <int> K,
                 xc, <int> d, <float> 0.0, grad_chunk, <int> K)
            for e in range(d * K):
                grad[e] = grad[e] + grad_chunk[e]
        first = False
        r0 = r0 + m
    if L.products == PRODUCTS_FEATURES and d > 0:
        for j in range(d):
            for k in range(K):
                grad[j * ldw + k] = grad_rows[k * d + j]
    return loss


cdef double _loss_gradient_groups(
    const floating* X, const DenseLayout* L, const Targets* targets, const double* sw,
    const floating* weights_t, const floating* weights, const double* intercept,
    DenseScratch* s,
    double* grad, double* grad_intercept,
) noexcept nogil:
    """Every group in the threads, merged into ``grad`` (d x K, zeroed) in
    group order; returns the loss sum."""
    cdef Py_ssize_t worker, g, t, slot, row_start, ldw = L.ldw, K = L.n_classes
    cdef Py_ssize_t chunk_rows = L.chunk_rows, dK = L.n_features * K
    cdef Py_ssize_t dL = L.n_features * ldw
    cdef double loss_total = 0.0
    cdef floating* z = <floating*> s.z
    cdef floating* grad_chunk = <floating*> s.grad_chunk
    # One iteration per thread; the groups come from the merge's counter in
    # increasing order (see ordered_merge.h).
    for worker in prange(L.n_threads, num_threads=L.n_threads, schedule="static",
                         chunksize=1):
        t = threadid()
        g = skcce_next_group(&s.merge)
        while g < L.n_groups:
            slot = g % L.n_slots
            skcce_wait_for_slot(&s.merge, g)
            row_start = g * L.group_rows
            s.loss_slots[slot] = _group_loss_gradient(
                X, L, targets, sw, weights_t, weights, intercept,
                row_start, min(row_start + L.group_rows, L.n_samples),
                z + t * chunk_rows * ldw,
                NULL if grad_chunk == NULL else grad_chunk + t * dK,
                NULL if s.grad_rows == NULL else s.grad_rows + t * dK,
                s.grad_slots + slot * dL, s.intercept_slots + slot * K,
                s.exp + t * residual_scratch_doubles(chunk_rows, K))
            skcce_finish_group(&s.merge, g, grad, grad_intercept, &loss_total,
                               s.grad_slots, s.intercept_slots, s.loss_slots,
                               L.n_features, K, ldw)
            g = skcce_next_group(&s.merge)
    return loss_total


# ---------------------------------------------------------------------------

def dense_loss_gradient(
    const floating[:, ::1] X,
    const int32_t[::1] y,
    const double[:, ::1] y_proba,
    double label_smoothing,
    const double[::1] sample_weight,
    const floating[:, ::1] weights_t,
    const double[::1] intercept,
    int n_threads,
    double[:, ::1] grad_t,
    str products=None,
):
    """Sum of weighted crossentropies and its gradient, in one pass over X.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C order
    y : ndarray of shape (n_samples,), int32, or None
        Class indices in [0, K) (not checked here), or None with ``y_proba``.
    y_proba : ndarray of shape (n_samples, K), float64, or None
        Target distributions (rows summing to 1), used when ``y`` is None.
    label_smoothing : float
        Targets become ``(1 - label_smoothing) * q + label_smoothing / K``.
    sample_weight : ndarray of shape (n_samples,), float64, or None
    weights_t : ndarray of shape (n_features, K), X's dtype, C order
        Transposed coefficient matrix ``W.T``.
    intercept : ndarray of shape (K,), float64, or None
        Intercepts (None: no intercept). Added to the logits in float64.
    n_threads : int
        OpenMP threads (>= 1). The result does not depend on it.
    grad_t : ndarray of shape (n_features + fit_intercept, K), float64
        Output: gradient of the *unnormalized* sum w.r.t. ``W.T`` and, in
        the last row when ``intercept`` is given, w.r.t. the intercepts.
    products : {"classes", "features", "blas"} or None
        Which kernels do the products (None: :func:`product_kernels` of the
        shape). For tests and benchmarks: "classes" or "features" for at
        most 200 classes, "blas" for any number.

    Returns
    -------
    loss_sum : float
        ``sum_i s_i * CE_i`` (not divided by the weight sum, no penalty).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = weights_t.shape[1]
    cdef Targets targets
    cdef DenseLayout layout
    cdef DenseScratch scratch
    cdef const floating* xp = NULL
    cdef const floating* wp = NULL
    cdef const floating* wkp = NULL
    cdef floating[:, ::1] class_major
    cdef int kernels
    cdef floating[:, ::1] padded
    cdef const double* sw = weights_pointer(sample_weight)
    cdef const double* bp = NULL
    cdef double* gp
    cdef double* gbp = NULL
    cdef double loss_sum

    if products is None:
        kernels = _product_kernels(d, K, sizeof(floating))
    elif products not in _PRODUCT_CODES or (
            (products != "blas" and K > MICRO_MAX_CLASSES)):
        raise ValueError(f"products={products!r} is not available for {K} classes")
    else:
        kernels = _PRODUCT_CODES[products]
    set_targets(&targets, y, y_proba, label_smoothing, n, K)
    check_model_and_gradient(d, K, weights_t.shape[0], intercept, grad_t)
    check_sample_weight(sample_weight, n)
    if n == 0:
        grad_t[:, :] = 0.0
        return 0.0

    layout = _dense_layout(n, d, K, sizeof(floating), n_threads, kernels)
    if intercept is not None:
        bp = &intercept[0]
    if d > 0:
        xp = &X[0, 0]
        wp = &weights_t[0, 0]
        if kernels == PRODUCTS_FEATURES:
            # The feature-vectorized kernels read W class-major (K x d).
            class_major = np.asarray(weights_t).T.copy()  # a writable C-order copy
            wkp = &class_major[0, 0]
        elif layout.ldw != K:
            # The class-vectorized ones read W.T with ldw >= K columns, zero padded.
            padded = np.zeros((d, layout.ldw), dtype=np.asarray(weights_t).dtype)
            padded[:, :K] = weights_t
            wp = &padded[0, 0]

    memset(&scratch, 0, sizeof(scratch))
    try:
        _allocate_scratch(&scratch, &layout, sizeof(floating))
        grad_t[:, :] = 0.0
        gp = &grad_t[0, 0]
        if intercept is not None:
            gbp = gp + d * K
        with nogil:
            loss_sum = _loss_gradient_groups(xp, &layout, &targets, sw, wp, wkp, bp,
                                             &scratch, gp, gbp)
    finally:
        _free_scratch(&scratch)
    return loss_sum
