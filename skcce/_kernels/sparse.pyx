# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Fused categorical crossentropy loss and gradient for CSR X.

The sparse counterpart of :mod:`skcce._kernels.dense`, on *tiles*: a chunk of
rows keeps its logits (then residuals) in the L2 cache, chunk_rows x K float64
(512 KiB; up to 683 KiB where the rows are padded, see
SPARSE_ALIGNED_ROWS_MIN_K), and the coefficient and gradient rows are visited one *feature
block* at a time (a power of two of features whose K float64 coefficients
take at most SPARSE_BLOCK_BYTES, 128 KiB), the next block streamed in address
order while the current one is processed. Measured on CSR 100,000 x 100,000
with 100 non-zeros per row, K = 20: visiting the coefficient and gradient rows
in the rows' random order made every non-zero two random cache misses (the
d x K coefficients and gradient do not fit in the cache together); the tiles
halve the time of an evaluation.

Chunks are processed in waves of one chunk per thread:

1. each thread sorts its chunk's non-zeros by feature block (a counting sort,
   rows kept in order within a block), computes the chunk's logits block by
   block in float64 (the block's coefficient rows stay in cache), then the
   stable softmax, loss and weighted residuals;
2. the threads share out the feature blocks: for its blocks, a thread updates
   the gradient rows ``G[j, :] += x_ij * R[i, :]`` with the wave's chunks in
   order.

Each gradient entry is thus updated by one thread, in row order; losses and
intercept sums are added in chunk order: the result is bitwise identical for
every thread count. No per-thread copy of the d x K gradient exists: memory
is O(threads x (chunk_rows x K + chunk non-zeros + blocks)) whatever
n_features. A fit sorts X into its tiles once (:func:`csr_tile_cache`) and
every evaluation skips step 1's sort.

*Class slices.* With more than 32 classes, a chunk of 65,536 / K rows has
fewer non-zeros than X has features when rows are short, and every chunk then
streams nearly all the coefficient rows from memory for a few uses each (CSR
200,000 x 50,000, 50 non-zeros per row, K = 100: 40 MB per chunk of 655
rows). With at least 32 non-zeros per feature, step 1 gathers the logits one
slice of at most 32 classes at a time, from a copy of W.T laid out slice
after slice (made once per evaluation): only a slice of the chunk's logits
needs to stay in cache, so chunks have 65,536 / width rows (2,048 for K =
100), and the coefficient rows are streamed K / width times less often. The
logits' rows are padded to whole cache lines (a multiple of 8 classes) so
that no line is shared by two slices. Every logit gets its terms in the same
order as without slices; the gradient's coefficient rows are bitwise the same.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree, PyMem_RawMalloc
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memset
from libc.stdint cimport int32_t, uint32_t

from skcce._kernels.common cimport (
    check_model_and_gradient,
    check_sample_weight,
    index_t,
    weights_pointer,
)
from skcce._kernels.crossentropy cimport Targets, set_targets
from skcce._kernels.residuals cimport residual_scratch_doubles, softmax_residual_chunk

from skcce._kernels.simd cimport select_simd_loops, skcce_simd

cdef extern from "prefault.h":
    void skcce_prefault(void* p, size_t n) noexcept nogil

import numpy as np

# The tile loops' instruction set (see skcce._kernels.dense.simd_loops).
select_simd_loops()


cdef enum:
    # Rows x classes of the logits one gather pass updates: a chunk's (a class
    # slice's part of them, with many classes), 512 KiB of float64, in L2.
    SPARSE_CHUNK_VALUES = 65536
    # Widest class slice: with more classes (and enough non-zeros per
    # feature), the gather runs once per slice of at most this many classes
    # (the widest specialized row update of sparse_tiles.h).
    SPARSE_SLICE_CLASSES = 32
    # Fewest non-zeros per feature for class slices: below, copying W.T into
    # slices costs more than the larger chunks save.
    SPARSE_SLICE_MIN_NNZ_PER_FEATURE = 32
    # Most rows x classes of a chunk's logits with class slices (8 MiB of
    # float64 per thread).
    SPARSE_MAX_CHUNK_VALUES = 1048576
    # Unsliced logits of this many classes have rows padded to whole 32-byte
    # vectors: the gather loads and stores a row per entry, and consecutive
    # entries often share a row. With rows off a 32-byte boundary (17
    # classes: 136 bytes), most of those accesses crossed a cache line and
    # each load stalled on the previous store (AVX-512, one thread, 50
    # non-zeros per row: 9 to 31 classes 1.3-1.6x faster padded, AVX2 1.06x,
    # bitwise the same; with fewer classes no faster, with more than 32
    # 0.9-1.0x padded to whole lines).
    SPARSE_ALIGNED_ROWS_MIN_K = 9
    SPARSE_ALIGNED_ROWS_MAX_K = 32
    SPARSE_MIN_CHUNK_ROWS = 64
    # At most 2^16 rows: a tile entry stores the row within its chunk in 16 bits.
    SPARSE_MAX_CHUNK_ROWS = 16384
    # Non-zeros per chunk (a chunk ends earlier when it would exceed this,
    # unless it is a single row): bounds the chunk's tile entries (12 bytes
    # each).
    SPARSE_CHUNK_NNZ = 262144
    SPARSE_BLOCK_BYTES = 131072
    # At most 2^16 features per block: an entry stores the feature within its
    # block in 16 bits.
    SPARSE_MAX_BLOCK_FEATURES = 65536
    # Fewest non-zeros per thread worth starting a thread for.
    SPARSE_NNZ_PER_THREAD = 32768
    # Alignment of the tiles and of each of a thread's tile buffers within
    # them: a cache line, so that no two threads write to one line.
    TILE_ALIGN = 64


# ---------------------------------------------------------------------------
# Layout: chunks of rows, class slices and blocks of features, from X's
# structure and K only.

cdef inline Py_ssize_t _whole_vectors(Py_ssize_t n_doubles) noexcept:
    """``n_doubles`` rounded up to whole 32-byte vectors of float64 (4 values)."""
    return (n_doubles + 3) // 4 * 4


cdef inline Py_ssize_t _whole_lines(Py_ssize_t n_doubles) noexcept:
    """``n_doubles`` rounded up to whole cache lines of float64 (8 values)."""
    return (n_doubles + 7) // 8 * 8


def sparse_class_slices(Py_ssize_t n_classes, Py_ssize_t nnz, Py_ssize_t n_features):
    """Class slices of the sparse kernel's gather.

    With K > SPARSE_SLICE_CLASSES (32) classes and at least
    SPARSE_SLICE_MIN_NNZ_PER_FEATURE non-zeros per feature, the logits are
    gathered one slice of classes at a time, from a copy of W.T laid out slice
    after slice: a gather pass then keeps only its slice of a chunk's logits
    in cache, so a chunk can have K / width times more rows, and the
    coefficient rows (streamed from memory once per chunk when they exceed
    the cache) are read that many times less often. Slices are whole cache
    lines of float64 (a multiple of 8 classes, but the last).

    Parameters
    ----------
    n_classes, nnz, n_features : int

    Returns
    -------
    n_slices : int
    width : int
        Classes per slice; the last slice has ``K - (n_slices - 1) * width``.
    """
    cdef Py_ssize_t K = max(n_classes, 1)
    cdef Py_ssize_t n_slices = (K + SPARSE_SLICE_CLASSES - 1) // SPARSE_SLICE_CLASSES
    cdef Py_ssize_t width
    if (n_slices == 1 or n_features == 0
            or nnz < SPARSE_SLICE_MIN_NNZ_PER_FEATURE * n_features):
        return 1, int(K)
    width = _whole_lines((K + n_slices - 1) // n_slices)
    return int((K + width - 1) // width), int(width)


def sparse_chunk_rows(Py_ssize_t n_classes, Py_ssize_t slice_width=0):
    """Largest number of rows per chunk of the sparse kernel.

    SPARSE_CHUNK_VALUES // width for class slices of ``width`` classes
    (:func:`sparse_class_slices`; 0, the default: no slices, width K), at most
    SPARSE_MAX_CHUNK_VALUES // K with slices.

    The sparse kernel's results do not depend on the thread count: its chunks
    and feature blocks depend on the data and K only, and every sum runs in a
    fixed order.

    Parameters
    ----------
    n_classes : int
    slice_width : int, default=0

    Returns
    -------
    chunk_rows : int
    """
    cdef Py_ssize_t K = max(n_classes, 1), rows
    if slice_width <= 0 or slice_width >= K:
        rows = SPARSE_CHUNK_VALUES // K
    else:
        rows = min(SPARSE_CHUNK_VALUES // slice_width, SPARSE_MAX_CHUNK_VALUES // K)
    return int(min(max(rows, SPARSE_MIN_CHUNK_ROWS), SPARSE_MAX_CHUNK_ROWS))


def sparse_block_shift(Py_ssize_t n_classes):
    """log2 of the number of features per block of the sparse kernel.

    The largest power of two of features (at most 2^16) whose K float64
    coefficients (or gradient values) take at most SPARSE_BLOCK_BYTES; at
    least one feature.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    shift : int
    """
    cdef Py_ssize_t shift = 0, row_bytes = max(n_classes, 1) * 8
    while ((2 << shift) <= SPARSE_MAX_BLOCK_FEATURES
           and (2 << shift) * row_bytes <= SPARSE_BLOCK_BYTES):
        shift += 1
    return int(shift)


def _sparse_chunks(const index_t[::1] indptr, Py_ssize_t max_rows):
    """Row boundaries of the sparse kernel's chunks, and their largest nnz.

    A chunk has at most ``max_rows`` rows and, unless it is a single row, at
    most SPARSE_CHUNK_NNZ non-zeros.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, start = 0, stop, largest = 0
    bounds = [0]
    while start < n:
        stop = start + 1
        while (stop < n and stop - start < max_rows
               and indptr[stop + 1] - indptr[start] <= SPARSE_CHUNK_NNZ):
            stop += 1
        largest = max(largest, indptr[stop] - indptr[start])
        bounds.append(stop)
        start = stop
    return np.asarray(bounds, dtype=np.intp), largest


cdef struct SparseLayout:
    Py_ssize_t n_features
    Py_ssize_t n_classes
    const Py_ssize_t* bounds   # row boundaries of the chunks (n_chunks + 1)
    Py_ssize_t n_chunks
    Py_ssize_t chunk_rows      # most rows per chunk
    Py_ssize_t largest_nnz     # non-zeros of the largest chunk
    Py_ssize_t residual_rows   # rows per softmax call within a chunk
    Py_ssize_t n_slices        # class slices of the gather
    Py_ssize_t slice_width     # classes per slice (the last may have fewer)
    Py_ssize_t z_stride        # values per row of a chunk's logits: K, K
                               # rounded up to 4 for 9 to 32 classes, or to 8
                               # with several slices
    int block_shift            # features per block, as a power of two
    Py_ssize_t n_blocks        # feature blocks (at least 1)
    int n_threads


cdef SparseLayout _sparse_layout(const index_t[::1] indptr, Py_ssize_t nnz,
                                 Py_ssize_t n_features, Py_ssize_t n_classes, int n_threads,
                                 bounds_owner):
    """How the sparse kernel cuts X (see the module docstring).

    ``bounds_owner`` is a list that receives the array holding the chunk
    boundaries, which ``layout.bounds`` points into: keep it alive.
    """
    cdef SparseLayout layout
    cdef Py_ssize_t n = max(indptr.shape[0] - 1, 0)
    cdef const Py_ssize_t[::1] bounds_view
    layout.n_features = n_features
    layout.n_classes = n_classes
    layout.n_slices, layout.slice_width = sparse_class_slices(n_classes, nnz, n_features)
    layout.chunk_rows = min(sparse_chunk_rows(n_classes, layout.slice_width), n)
    # The softmax runs on at most the rows of an unsliced chunk at a time
    # (its scratch holds them).
    layout.residual_rows = max(1, min(sparse_chunk_rows(n_classes), layout.chunk_rows))
    if layout.n_slices > 1:
        layout.z_stride = _whole_lines(n_classes)
    elif SPARSE_ALIGNED_ROWS_MIN_K <= n_classes <= SPARSE_ALIGNED_ROWS_MAX_K:
        layout.z_stride = _whole_vectors(n_classes)
    else:
        layout.z_stride = n_classes
    bounds, layout.largest_nnz = _sparse_chunks(indptr, layout.chunk_rows)
    bounds_owner.append(bounds)
    bounds_view = bounds
    layout.bounds = &bounds_view[0]
    layout.n_chunks = bounds_view.shape[0] - 1
    layout.block_shift = sparse_block_shift(n_classes)
    layout.n_blocks = max(1, (n_features + (1 << layout.block_shift) - 1)
                          >> layout.block_shift)
    # Threads only where there is work for them (the result does not depend
    # on their number): small problems run on one.
    layout.n_threads = <int> max(1, min(n_threads, nnz // SPARSE_NNZ_PER_THREAD,
                                        layout.n_chunks))
    return layout


# ---------------------------------------------------------------------------
# Tiles: a chunk's non-zeros sorted by feature block, and its buffers.

cdef struct ChunkTiles:
    # One chunk's non-zeros sorted by feature block (rows in order within a
    # block), and the chunk's logits / residuals. Entry e of block b covers
    # ``block_start[b] <= e < block_start[b + 1]``: its key is
    # ``(row - chunk's first row) << 16 | (feature - b * block features)``,
    # its value ``values[e]`` (X's dtype).
    uint32_t* keys
    void* values
    Py_ssize_t* block_start
    Py_ssize_t* block_next
    Py_ssize_t* block_counts
    double* z
    double* scratch
    double* intercept_sum
    Py_ssize_t row_start
    Py_ssize_t row_end
    double loss


cdef struct TileCache:
    # Every chunk's tiles, built once by csr_tile_cache (all NULL: none).
    # Entries of chunk c sit where its non-zeros sit in the CSR arrays; its
    # block offsets are row c of block_start, relative to its first entry.
    # With class slices, room for the coefficients' slices (d x K float64,
    # on a cache line), else NULL.
    uint32_t* keys
    const void* values
    Py_ssize_t* block_start
    double* coef_slices


cdef inline size_t _aligned(size_t n) noexcept nogil:
    return (n + TILE_ALIGN - 1) & ~(<size_t> TILE_ALIGN - 1)


cdef inline char* _malloc_lines(size_t n, char** block) noexcept:
    """``n`` bytes from a cache line boundary (the allocator only promises
    16 bytes): ``*block`` is what to free, NULL if out of memory."""
    block[0] = <char*> PyMem_RawMalloc(n + TILE_ALIGN - 1)
    return NULL if block[0] == NULL else <char*> _aligned(<size_t> block[0])


cdef size_t _carve_tiles(ChunkTiles* tiles, char* p, Py_ssize_t largest_nnz,
                         size_t value_size, Py_ssize_t chunk_rows, Py_ssize_t residual_rows,
                         Py_ssize_t K, Py_ssize_t z_stride, Py_ssize_t n_blocks) noexcept nogil:
    """Lay out one thread's tile buffers at ``p``; return their size in bytes.

    The sorted keys and values of a chunk's non-zeros, its logits and
    residuals, the block offsets and counts, and the intercept sums, each on
    a cache line. With ``tiles`` NULL, only the size is computed.
    """
    cdef size_t nnz = max(largest_nnz, 1), offset = 0
    cdef size_t keys_at, values_at, z_at, scratch_at, blocks_at, intercept_at
    keys_at = offset
    offset += _aligned(nnz * sizeof(uint32_t))
    values_at = offset
    offset += _aligned(nnz * value_size)
    z_at = offset
    offset += _aligned(chunk_rows * z_stride * sizeof(double))
    scratch_at = offset
    offset += _aligned(residual_scratch_doubles(residual_rows, K) * sizeof(double))
    blocks_at = offset
    offset += _aligned((6 * n_blocks + 1) * sizeof(Py_ssize_t))
    intercept_at = offset
    offset += _aligned(K * sizeof(double))
    if tiles != NULL:
        tiles.keys = <uint32_t*> (p + keys_at)
        tiles.values = <void*> (p + values_at)
        tiles.z = <double*> (p + z_at)
        tiles.scratch = <double*> (p + scratch_at)
        tiles.block_start = <Py_ssize_t*> (p + blocks_at)
        tiles.block_next = tiles.block_start + n_blocks + 1
        tiles.block_counts = tiles.block_next + n_blocks
        tiles.intercept_sum = <double*> (p + intercept_at)
    return offset


cdef void _tile_chunk(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end, int block_shift, Py_ssize_t n_blocks,
    ChunkTiles* tiles,
) noexcept nogil:
    """Sort the non-zeros of rows [row_start, row_end) by feature block.

    A counting sort: the order within a block is the CSR order, i.e. rows in
    order (and, within a row, the row's stored order).
    """
    cdef Py_ssize_t b, e, i
    cdef index_t p, j
    cdef uint32_t row_key, mask = (1u << block_shift) - 1
    cdef Py_ssize_t* start = tiles.block_start
    cdef Py_ssize_t* next_entry = tiles.block_next
    cdef floating* values = <floating*> tiles.values
    cdef Py_ssize_t* counts = tiles.block_counts
    cdef index_t p_end = indptr[row_end]
    # Four interleaved histograms: consecutive non-zeros often fall in the
    # same block, and one histogram would chain their increments.
    memset(counts, 0, 4 * n_blocks * sizeof(Py_ssize_t))
    p = indptr[row_start]
    while p + 4 <= p_end:
        counts[indices[p] >> block_shift] += 1
        counts[n_blocks + (indices[p + 1] >> block_shift)] += 1
        counts[2 * n_blocks + (indices[p + 2] >> block_shift)] += 1
        counts[3 * n_blocks + (indices[p + 3] >> block_shift)] += 1
        p = p + 4
    while p < p_end:
        counts[indices[p] >> block_shift] += 1
        p = p + 1
    start[0] = 0
    for b in range(n_blocks):
        start[b + 1] = (start[b] + counts[b] + counts[n_blocks + b]
                        + counts[2 * n_blocks + b] + counts[3 * n_blocks + b])
        next_entry[b] = start[b]
    for i in range(row_start, row_end):
        row_key = (<uint32_t> (i - row_start)) << 16
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            b = j >> block_shift
            e = next_entry[b]
            next_entry[b] = e + 1
            tiles.keys[e] = row_key | (<uint32_t> j & mask)
            values[e] = data[p]


# ---------------------------------------------------------------------------
# Loop: per chunk, logits and residuals; per feature block, the gradient.

cdef inline Py_ssize_t _stream_block(
    const double* next_block, Py_ssize_t block_values, Py_ssize_t n_entries,
) noexcept nogil:
    """Cache lines of the next block to prefetch per entry of this one.

    While a block's entries are processed, the next block's coefficient (or
    gradient) rows are prefetched in address order, a few lines per entry, so
    that they arrive as a stream instead of as random misses.
    """
    if next_block == NULL:
        return 0
    return min(8, (block_values // 8) // max(n_entries, 1) + 1)


cdef inline void _tile_gather(const ChunkTiles* tiles, const floating* values_type,
                              Py_ssize_t e0, Py_ssize_t e1, int shift, const double* wb,
                              Py_ssize_t width, double* z, Py_ssize_t ldz,
                              const double* stream, const double* stream_end,
                              Py_ssize_t lines) noexcept nogil:
    """The gather loop of sparse_tiles.h for X's dtype (``values_type``)."""
    if floating is double:
        skcce_simd.tile_gather_f64(tiles.keys, <const double*> tiles.values, e0, e1, shift,
                                   wb, width, z, ldz, stream, stream_end, lines)
    else:
        skcce_simd.tile_gather_f32(tiles.keys, <const float*> tiles.values, e0, e1, shift,
                                   wb, width, z, ldz, stream, stream_end, lines)


cdef inline double* _tile_scatter(const ChunkTiles* tiles, const floating* values_type,
                                  Py_ssize_t b, int shift, double* gb, Py_ssize_t K,
                                  Py_ssize_t z_stride, double* stream,
                                  const double* stream_end, Py_ssize_t lines) noexcept nogil:
    """The scatter loop of sparse_tiles.h for block b, X's dtype."""
    if floating is double:
        return skcce_simd.tile_scatter_f64(
            tiles.keys, <const double*> tiles.values, tiles.block_start[b],
            tiles.block_start[b + 1], shift, gb, K, tiles.z, z_stride, stream, stream_end,
            lines)
    else:
        return skcce_simd.tile_scatter_f32(
            tiles.keys, <const float*> tiles.values, tiles.block_start[b],
            tiles.block_start[b + 1], shift, gb, K, tiles.z, z_stride, stream, stream_end,
            lines)


cdef void _gather_logits(
    const ChunkTiles* tiles, const floating* values_type, const SparseLayout* L,
    const double* sliced_weights,
) noexcept nogil:
    """``z[r, :] = sum x * W.T[j, :]`` over the chunk's entries, one class
    slice at a time, block by block.

    ``sliced_weights`` holds W.T one class slice after the other (slice s,
    classes k0 to k0 + w, is a C-ordered n_features x w matrix at
    ``n_features * k0``; with one slice it is W.T itself). For a row whose
    indices are sorted, the terms are added in CSR order. ``values_type``
    only selects the fused type (X's dtype).
    """
    cdef Py_ssize_t s, b, e0, e1, k0, width, block_values, K = L.n_classes
    cdef const double* ws
    cdef const double* wb
    cdef const double* stream
    cdef const double* stream_end
    memset(tiles.z, 0, (tiles.row_end - tiles.row_start) * L.z_stride * sizeof(double))
    for s in range(L.n_slices):
        k0 = s * L.slice_width
        width = min(L.slice_width, K - k0)
        ws = sliced_weights + L.n_features * k0
        stream_end = ws + L.n_features * width
        block_values = (<Py_ssize_t> 1 << L.block_shift) * width
        for b in range(L.n_blocks):
            wb = ws + (b << L.block_shift) * width
            e0 = tiles.block_start[b]
            e1 = tiles.block_start[b + 1]
            stream = wb + block_values if b + 1 < L.n_blocks else NULL
            _tile_gather(tiles, values_type, e0, e1, L.block_shift, wb, width,
                         tiles.z + k0, L.z_stride, stream, stream_end,
                         _stream_block(stream, block_values, e1 - e0))


cdef void _slice_classes(const double* weights_t, Py_ssize_t n_features,
                         const SparseLayout* L, double* out) noexcept nogil:
    """Copy W.T into ``out`` one class slice after the other (see
    :func:`_gather_logits`), threads sharing the features."""
    cdef Py_ssize_t j, s, k, k0, width, K = L.n_classes
    cdef double* dst
    cdef const double* src
    for j in prange(n_features, num_threads=L.n_threads, schedule="static"):
        for s in range(L.n_slices):
            k0 = s * L.slice_width
            width = min(L.slice_width, K - k0)
            dst = out + n_features * k0 + j * width
            src = weights_t + j * K + k0
            for k in range(width):
                dst[k] = src[k]


cdef void _scatter_block(
    const ChunkTiles* tiles, Py_ssize_t n_chunks, const floating* values_type,
    Py_ssize_t b, const SparseLayout* L, double* grad_t, bint zero_first,
) noexcept nogil:
    """``G[j, :] += x * R[r, :]`` for the entries in feature block b of
    ``n_chunks`` consecutive chunks, chunks in order, rows in order.

    With ``zero_first`` (the first wave) the block's gradient rows are zeroed
    first: the thread that owns the block touches its memory first, in cache,
    instead of a separate pass over the whole gradient. Meanwhile the
    gradient rows of block b + 1 (usually this thread's next block) are
    prefetched in address order.
    """
    cdef Py_ssize_t c, K = L.n_classes, n_entries = 0, lines
    cdef int block_shift = L.block_shift
    cdef Py_ssize_t block_values = (<Py_ssize_t> 1 << block_shift) * K
    cdef double* gb = grad_t + (b << block_shift) * K
    cdef double* stream = gb + block_values if b + 1 < L.n_blocks else NULL
    cdef const double* stream_end = grad_t + L.n_features * K
    if zero_first:
        memset(gb, 0, max(0, min(<Py_ssize_t> 1 << block_shift,
                                 L.n_features - (b << block_shift))) * K * sizeof(double))
    for c in range(n_chunks):
        n_entries += tiles[c].block_start[b + 1] - tiles[c].block_start[b]
    lines = _stream_block(stream, block_values, n_entries)
    for c in range(n_chunks):
        stream = _tile_scatter(&tiles[c], values_type, b, block_shift, gb, K, L.z_stride,
                               stream, stream_end, lines)


cdef void _chunk_residuals(
    const floating* data, const index_t* indices, const index_t* indptr,
    Py_ssize_t row_start, Py_ssize_t row_end, const SparseLayout* L,
    const double* sliced_weights, const double* intercept, const Targets* targets,
    const double* sw, ChunkTiles* tiles, const TileCache* cache, Py_ssize_t chunk_index,
) noexcept nogil:
    """Tile one chunk (or point at its cached tiles), then its logits, loss and
    weighted residuals (the softmax ``L.residual_rows`` rows at a time)."""
    cdef Py_ssize_t first = indptr[row_start], K = L.n_classes, r0, rows
    if cache.keys != NULL:
        tiles.keys = cache.keys + first
        tiles.values = <void*> (<const floating*> cache.values + first)
        tiles.block_start = cache.block_start + chunk_index * (L.n_blocks + 1)
    else:
        _tile_chunk(data, indices, indptr, row_start, row_end, L.block_shift, L.n_blocks,
                    tiles)
    tiles.row_start = row_start
    tiles.row_end = row_end
    _gather_logits(tiles, data, L, sliced_weights)
    memset(tiles.intercept_sum, 0, K * sizeof(double))
    tiles.loss = 0.0
    r0 = row_start
    while r0 < row_end:
        rows = min(L.residual_rows, row_end - r0)
        tiles.loss += softmax_residual_chunk(
            tiles.z + (r0 - row_start) * L.z_stride, L.z_stride, r0, rows, K, intercept, targets,
            sw + r0 if sw != NULL else NULL, tiles.intercept_sum, tiles.scratch)
        r0 += rows


cdef double _loss_gradient_waves(
    const floating* data, const index_t* indices, const index_t* indptr,
    const SparseLayout* L, const double* sliced_weights, const double* intercept,
    const Targets* targets, const double* sw, ChunkTiles* tiles, const TileCache* cache,
    double* grad, double* grad_intercept,
) noexcept nogil:
    """The chunks in waves of one per thread (see the module docstring);
    returns the loss sum. ``sliced_weights`` as in :func:`_gather_logits`.
    ``grad_intercept`` (K, or NULL) must be zeroed; the gradient rows are
    zeroed block by block by the first wave."""
    cdef Py_ssize_t s, b, k, wave = 0, wave_size, K = L.n_classes
    cdef int T = L.n_threads
    cdef double loss_total = 0.0
    while wave < L.n_chunks:
        wave_size = min(T, L.n_chunks - wave)
        for s in prange(wave_size, num_threads=T, schedule="static", chunksize=1):
            _chunk_residuals(data, indices, indptr, L.bounds[wave + s],
                             L.bounds[wave + s + 1], L, sliced_weights, intercept, targets,
                             sw, &tiles[s], cache, wave + s)
        # Contiguous ranges of blocks per thread: each thread's next block is
        # (mostly) its own, for the prefetch.
        for b in prange(L.n_blocks, num_threads=T, schedule="static"):
            _scatter_block(tiles, wave_size, data, b, L, grad, wave == 0)
        for s in range(wave_size):
            loss_total = loss_total + tiles[s].loss
            if grad_intercept != NULL:
                for k in range(K):
                    grad_intercept[k] = grad_intercept[k] + tiles[s].intercept_sum[k]
        wave = wave + wave_size
    return loss_total


# ---------------------------------------------------------------------------

def csr_loss_gradient(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    Py_ssize_t n_features,
    const int32_t[::1] y,
    const double[:, ::1] y_proba,
    double label_smoothing,
    const double[::1] sample_weight,
    const double[:, ::1] weights_t,
    const double[::1] intercept,
    int n_threads,
    double[:, ::1] grad_t,
    tile_cache=None,
):
    """Sum of weighted crossentropies and its gradient for CSR X, in one pass.

    The sparse counterpart of :func:`skcce._kernels.dense.dense_loss_gradient`
    (see the module docstring for the method). Indices must lie in
    [0, n_features) and indptr must be non-decreasing from 0 to nnz (checked
    by the caller).

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays of X (n_samples = len(indptr) - 1): float32 or float64
        values, int32 or int64 indices (both arrays of the same type).
    n_features : int
    y, y_proba, label_smoothing, sample_weight
        As in ``dense_loss_gradient``.
    weights_t : ndarray of shape (n_features, K), float64, C order
        ``W.T``; float64 whatever the dtype of X.
    intercept : ndarray of shape (K,), float64, or None
    n_threads : int
    grad_t : ndarray of shape (n_features + fit_intercept, K), float64
        Output, as in ``dense_loss_gradient``.
    tile_cache : tuple or None, default=None
        X's tiles from :func:`csr_tile_cache` (same X, same K): step 1 then
        skips the sort, and class slices reuse the cache's room for the
        coefficients' copy. The result is bitwise the same. That room is
        scratch: calls running at the same time must not share a cache.

    Returns
    -------
    loss_sum : float
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = n_features, K = weights_t.shape[1]
    cdef Py_ssize_t nnz = data.shape[0], s
    cdef Targets targets
    cdef SparseLayout layout
    cdef TileCache cache
    cdef ChunkTiles* tiles = NULL
    cdef char* arena = NULL
    cdef char* sliced_arena = NULL
    cdef double* sliced = NULL
    cdef char* tiles_start
    cdef size_t tile_bytes
    cdef const double* sw = weights_pointer(sample_weight)
    cdef const floating* dp = NULL
    cdef const index_t* ip = NULL
    cdef const double* wp = NULL
    cdef const double* bp = NULL
    cdef double* gp
    cdef double* gbp = NULL
    cdef size_t grad_bytes
    cdef double loss_sum

    if n < 0:
        raise ValueError("indptr must have n_samples + 1 entries")
    set_targets(&targets, y, y_proba, label_smoothing, n, K)
    check_model_and_gradient(d, K, weights_t.shape[0], intercept, grad_t)
    check_sample_weight(sample_weight, n)
    if indices.shape[0] != nnz:
        raise ValueError("data and indices must have the same length")
    if n == 0 or K == 0:
        grad_t[:, :] = 0.0
        return 0.0
    bounds_owner = []
    layout = _sparse_layout(indptr, nnz, d, K, n_threads, bounds_owner)
    _check_tile_cache(&cache, tile_cache, &layout, data)
    if cache.keys != NULL:
        layout.largest_nnz = 0  # cached tiles need no sort buffers

    tile_bytes = _carve_tiles(NULL, NULL, layout.largest_nnz, sizeof(floating),
                              layout.chunk_rows, layout.residual_rows, K, layout.z_stride,
                              layout.n_blocks)
    if tile_bytes > <size_t> ((PY_SSIZE_T_MAX - TILE_ALIGN) // layout.n_threads):
        raise MemoryError()
    tiles = <ChunkTiles*> PyMem_RawCalloc(layout.n_threads, sizeof(ChunkTiles))
    tiles_start = _malloc_lines(layout.n_threads * tile_bytes, &arena)
    try:
        if tiles == NULL or arena == NULL:
            raise MemoryError()
        for s in range(layout.n_threads):
            _carve_tiles(&tiles[s], tiles_start + s * tile_bytes, layout.largest_nnz,
                         sizeof(floating), layout.chunk_rows, layout.residual_rows, K,
                         layout.z_stride, layout.n_blocks)
        if nnz > 0:
            dp = &data[0]
            ip = &indices[0]
        if d > 0:
            wp = &weights_t[0, 0]
            if layout.n_slices > 1 and cache.coef_slices != NULL:
                sliced = cache.coef_slices
            elif layout.n_slices > 1:
                sliced = <double*> _malloc_lines(d * K * sizeof(double), &sliced_arena)
                if sliced_arena == NULL:
                    raise MemoryError()
        gp = &grad_t[0, 0]
        grad_bytes = grad_t.shape[0] * K * sizeof(double)
        if intercept is not None:
            bp = &intercept[0]
            gbp = &grad_t[d, 0]
            grad_t[d, :] = 0.0
        with nogil:
            # Map the fresh tiles and gradient here rather than by page faults
            # in the threads (prefault.h).
            skcce_prefault(tiles_start, layout.n_threads * tile_bytes)
            skcce_prefault(gp, grad_bytes)
            if sliced != NULL:
                skcce_prefault(sliced, d * K * sizeof(double))
                _slice_classes(wp, d, &layout, sliced)
                wp = sliced
            loss_sum = _loss_gradient_waves(dp, ip, &indptr[0], &layout, wp, bp, &targets,
                                            sw, tiles, &cache, gp, gbp)
    finally:
        PyMem_RawFree(sliced_arena)
        PyMem_RawFree(arena)
        PyMem_RawFree(tiles)
    return loss_sum


cdef int _check_tile_cache(TileCache* cache, tile_cache, const SparseLayout* L,
                           const floating[::1] data) except -1:
    """Point ``cache`` at the arrays of ``tile_cache`` (all NULL for None or
    no non-zeros); ValueError if they were not built for this X and K."""
    cdef Py_ssize_t nnz = data.shape[0]
    cdef const uint32_t[::1] keys
    cdef const floating[::1] values
    cdef const Py_ssize_t[:, ::1] block_start
    cdef double[::1] slices_view
    cache.keys = NULL
    cache.values = NULL
    cache.block_start = NULL
    cache.coef_slices = NULL
    if tile_cache is None:
        return 0
    if len(tile_cache) != 4:
        raise ValueError("tile_cache was not built from this X and K")
    keys, values, block_start, coef_slices = tile_cache
    slices_view = coef_slices
    if (keys.shape[0] != nnz or values.shape[0] != nnz
            or block_start.shape[0] != L.n_chunks
            or block_start.shape[1] != L.n_blocks + 1
            or slices_view.shape[0] != _slices_room(L)):
        raise ValueError("tile_cache was not built from this X and K")
    if nnz > 0:
        cache.keys = <uint32_t*> &keys[0]
        cache.values = <const void*> &values[0]
        cache.block_start = <Py_ssize_t*> &block_start[0, 0]
    if L.n_slices > 1 and L.n_features > 0:
        cache.coef_slices = <double*> _aligned(<size_t> &slices_view[0])
    return 0


cdef Py_ssize_t _slices_room(const SparseLayout* L):
    """Doubles of the tile cache's room for the coefficients' class slices:
    d x K on a cache line (8 spare doubles), none without slices."""
    if L.n_slices == 1 or L.n_features == 0:
        return 0
    return L.n_features * L.n_classes + TILE_ALIGN // 8


def csr_tile_cache(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    Py_ssize_t n_features,
    Py_ssize_t n_classes,
    int n_threads,
):
    """X's tiles, sorted once for every evaluation of a fit.

    The sparse kernel's first step sorts each chunk's non-zeros by feature
    block. The order depends on X and K only, not on the coefficients, so a
    fit can sort once and hand the tiles to every :func:`csr_loss_gradient`
    call, which then skips the sort (about a quarter of an evaluation). The
    tiles are sorted by the kernel's own routine: results are bitwise the same
    with or without them. They take as much memory as X's ``data`` and
    ``indices``: 4 bytes per non-zero for the key, plus the value.

    Parameters
    ----------
    data, indices, indptr : ndarray
        The CSR arrays of X, as in :func:`csr_loss_gradient`.
    n_features, n_classes : int
    n_threads : int

    Returns
    -------
    tile_cache : tuple
        ``(keys, values, block_start, coef_slices)``: uint32 keys and X's
        values in tile order, both of length nnz, intp block offsets of shape
        (n_chunks, n_blocks + 1), and float64 room for the coefficients'
        class slices (n_features x K and a cache line; empty without slices),
        so that the evaluations of a fit do not allocate it each time.
    """
    cdef Py_ssize_t nnz = data.shape[0], c, first
    cdef int t
    cdef SparseLayout layout
    cdef ChunkTiles* tiles = NULL
    cdef Py_ssize_t* sort_buffers = NULL
    cdef uint32_t[::1] keys_view
    cdef floating[::1] values_view
    cdef Py_ssize_t[:, ::1] starts_view
    cdef uint32_t* kp
    cdef floating* vp
    cdef Py_ssize_t* sp
    cdef const floating* dp
    cdef const index_t* ip
    cdef const index_t* pp

    if indices.shape[0] != nnz:
        raise ValueError("data and indices must have the same length")
    bounds_owner = []
    layout = _sparse_layout(indptr, nnz, n_features, n_classes, n_threads, bounds_owner)
    keys = np.empty(nnz, dtype=np.uint32)
    values = np.empty(nnz, dtype=np.float64 if floating is double else np.float32)
    block_start = np.empty((layout.n_chunks, layout.n_blocks + 1), dtype=np.intp)
    coef_slices = np.empty(_slices_room(&layout))
    if nnz == 0 or layout.n_chunks == 0:
        block_start[:] = 0
        return keys, values, block_start, coef_slices
    keys_view = keys
    values_view = values
    starts_view = block_start
    kp = &keys_view[0]
    vp = &values_view[0]
    sp = &starts_view[0, 0]
    dp = &data[0]
    ip = &indices[0]
    pp = &indptr[0]
    tiles = <ChunkTiles*> PyMem_RawCalloc(layout.n_threads, sizeof(ChunkTiles))
    # Per thread, the counting sort's cursors and four histograms.
    sort_buffers = <Py_ssize_t*> PyMem_RawMalloc(
        layout.n_threads * 5 * layout.n_blocks * sizeof(Py_ssize_t))
    try:
        if tiles == NULL or sort_buffers == NULL:
            raise MemoryError()
        for t in range(layout.n_threads):
            tiles[t].block_next = sort_buffers + t * 5 * layout.n_blocks
            tiles[t].block_counts = tiles[t].block_next + layout.n_blocks
        with nogil:
            for c in prange(layout.n_chunks, num_threads=layout.n_threads,
                            schedule="dynamic"):
                t = threadid()
                first = pp[layout.bounds[c]]
                tiles[t].keys = kp + first
                tiles[t].values = <void*> (vp + first)
                tiles[t].block_start = sp + c * (layout.n_blocks + 1)
                _tile_chunk(dp, ip, pp, layout.bounds[c], layout.bounds[c + 1],
                            layout.block_shift, layout.n_blocks, &tiles[t])
    finally:
        PyMem_RawFree(sort_buffers)
        PyMem_RawFree(tiles)
    return keys, values, block_start, coef_slices
