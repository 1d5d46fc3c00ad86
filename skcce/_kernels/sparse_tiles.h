/* Inner loops of the sparse kernel over one feature block of a chunk's
 * non-zeros ("tile entries", see csr_loss_gradient in sparse.pyx).
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
 * The loops are written once, in sparse_tiles_impl.h, which simd_loops.c
 * includes once per type of X's values (and compiles once per instruction
 * set): skcce_tile_gather_f64, skcce_tile_scatter_f64 and their _f32
 * counterparts, each with the instruction set's suffix (see simd.h).
 */
#ifndef SKCCE_SPARSE_TILES_H
#define SKCCE_SPARSE_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "portability.h"

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_TILE_PREFETCH(p, w) __builtin_prefetch((const void*)(p), (w), 3)
#else
#define SKCCE_TILE_PREFETCH(p, w) ((void)(p))
#endif

/* out[k] += x * in[k] for k < NK: one row of an entry's update. restrict on
 * the parameters (not on local pointers, which clang ignores) lets every
 * compiler vectorize it. */
SKCCE_INLINE void skcce_row_update(double* SKCCE_RESTRICT out, const double* SKCCE_RESTRICT in,
                                   double x, const ptrdiff_t NK)
{
    for (ptrdiff_t k = 0; k < NK; k++)
        out[k] += x * in[k];
}

/* CASE(NK) for each class count with a loop of its own (a switch's cases). */
#define SKCCE_SPECIALIZED_K(CASE) \
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) \
    CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16) CASE(17) CASE(18) CASE(19) \
    CASE(20) CASE(21) CASE(22) CASE(23) CASE(24) CASE(25) CASE(26) CASE(27) CASE(28) \
    CASE(29) CASE(30) CASE(31) CASE(32)

#endif
