/* Inner loops of the sparse kernel over one feature block of a chunk's
 * non-zeros ("tile entries", see csr_loss_gradient in _kernel.pyx).
 *
 *   gather:  z[r, :] += x * Wb[c, :]    (logits)
 *   scatter: Gb[c, :] += x * R[r, :]    (gradient)
 *
 * for each entry, in order, with key = r << 16 | c. Rows of K float64 values
 * are updated with one multiply-add per class; each output value gets its
 * terms in entry order, so results do not depend on threads.
 *
 * While a block's entries are processed, the cache lines of the next block are
 * prefetched in address order, a few lines per entry, so that its rows arrive
 * as a stream and not as random misses. (Prefetching, in addition, the row of
 * the entry a few entries ahead was measured slower: the rows are already in
 * cache.)
 *
 * With GCC on x86-64 Linux the loops are compiled for three instruction sets
 * and the best one the CPU supports is chosen at load time (target_clones).
 */
#ifndef SKCCE_SPARSE_TILES_H
#define SKCCE_SPARSE_TILES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SKCCE_TILE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SKCCE_TILE_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_TILE_PREFETCH(p, w) __builtin_prefetch((const void*)(p), (w), 3)
#else
#define SKCCE_TILE_PREFETCH(p, w) ((void)(p))
#endif

/* The entry loops, with the number of classes NK a compile-time constant
 * where possible (the switches below): the row update is then a fixed
 * sequence of vector multiply-adds instead of a loop with a remainder. */
#define SKCCE_GATHER_ENTRIES(NK)                                                            \
    for (ptrdiff_t e = e0; e < e1; e++) {                                                    \
        for (ptrdiff_t q = 0; q < lines && stream < stream_end; q++, stream += 8)            \
            SKCCE_TILE_PREFETCH(stream, 0);                                                  \
        const uint32_t key = keys[e];                                                        \
        const double x = (double)values[e];                                                  \
        double* restrict zr = z + (size_t)(key >> 16) * (NK);                                \
        const double* restrict w = wb + (size_t)(key & mask) * (NK);                         \
        for (ptrdiff_t k = 0; k < (NK); k++)                                                 \
            zr[k] += x * w[k];                                                               \
    }

#define SKCCE_SCATTER_ENTRIES(NK)                                                           \
    for (ptrdiff_t e = e0; e < e1; e++) {                                                    \
        for (ptrdiff_t q = 0; q < lines && stream < stream_end; q++, stream += 8)            \
            SKCCE_TILE_PREFETCH(stream, 1);                                                  \
        const uint32_t key = keys[e];                                                        \
        const double x = (double)values[e];                                                  \
        const double* restrict r = residuals + (size_t)(key >> 16) * (NK);                   \
        double* restrict g = gb + (size_t)(key & mask) * (NK);                               \
        for (ptrdiff_t k = 0; k < (NK); k++)                                                 \
            g[k] += x * r[k];                                                                \
    }

#define SKCCE_K_CASE(LOOP, NK) case NK: LOOP(NK); break;
#define SKCCE_SWITCH_K(LOOP)                                                                \
    switch (K) {                                                                             \
        SKCCE_K_CASE(LOOP, 1) SKCCE_K_CASE(LOOP, 2) SKCCE_K_CASE(LOOP, 3)                    \
        SKCCE_K_CASE(LOOP, 4) SKCCE_K_CASE(LOOP, 5) SKCCE_K_CASE(LOOP, 6)                    \
        SKCCE_K_CASE(LOOP, 7) SKCCE_K_CASE(LOOP, 8) SKCCE_K_CASE(LOOP, 9)                    \
        SKCCE_K_CASE(LOOP, 10) SKCCE_K_CASE(LOOP, 11) SKCCE_K_CASE(LOOP, 12)                 \
        SKCCE_K_CASE(LOOP, 13) SKCCE_K_CASE(LOOP, 14) SKCCE_K_CASE(LOOP, 15)                 \
        SKCCE_K_CASE(LOOP, 16) SKCCE_K_CASE(LOOP, 17) SKCCE_K_CASE(LOOP, 18)                 \
        SKCCE_K_CASE(LOOP, 19) SKCCE_K_CASE(LOOP, 20) SKCCE_K_CASE(LOOP, 21)                 \
        SKCCE_K_CASE(LOOP, 22) SKCCE_K_CASE(LOOP, 23) SKCCE_K_CASE(LOOP, 24)                 \
        SKCCE_K_CASE(LOOP, 25) SKCCE_K_CASE(LOOP, 26) SKCCE_K_CASE(LOOP, 27)                 \
        SKCCE_K_CASE(LOOP, 28) SKCCE_K_CASE(LOOP, 29) SKCCE_K_CASE(LOOP, 30)                 \
        SKCCE_K_CASE(LOOP, 31) SKCCE_K_CASE(LOOP, 32)                                        \
        default: LOOP(K); break;                                                             \
    }

#define SKCCE_DEFINE_TILE_LOOPS(T, SUF)                                                     \
SKCCE_TILE_CLONES                                                                            \
void skcce_tile_gather_##SUF(const uint32_t* keys, const T* values, ptrdiff_t e0,           \
                             ptrdiff_t e1, int shift, const double* wb, ptrdiff_t K,         \
                             double* z, const double* stream, const double* stream_end,      \
                             ptrdiff_t lines)                                                \
{                                                                                            \
    const uint32_t mask = (1u << shift) - 1u;                                                \
    SKCCE_SWITCH_K(SKCCE_GATHER_ENTRIES)                                                     \
}                                                                                            \
                                                                                             \
SKCCE_TILE_CLONES                                                                            \
double* skcce_tile_scatter_##SUF(const uint32_t* keys, const T* values, ptrdiff_t e0,       \
                                 ptrdiff_t e1, int shift, double* gb, ptrdiff_t K,           \
                                 const double* residuals, double* stream,                    \
                                 const double* stream_end, ptrdiff_t lines)                  \
{                                                                                            \
    const uint32_t mask = (1u << shift) - 1u;                                                \
    SKCCE_SWITCH_K(SKCCE_SCATTER_ENTRIES)                                                    \
    return stream;                                                                           \
}

SKCCE_DEFINE_TILE_LOOPS(double, f64)
SKCCE_DEFINE_TILE_LOOPS(float, f32)

#endif
