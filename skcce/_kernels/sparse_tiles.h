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
#include <string.h>

#include "portability.h"
#include "microkernel.h"

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_TILE_PREFETCH(p, w) __builtin_prefetch((const void*)(p), (w), 3)
#else
#define SKCCE_TILE_PREFETCH(p, w) ((void)(p))
#endif

/* out[k] += x * in[k] for k < NK: one row of an entry's update. restrict on
 * the parameters (not on local pointers, which clang ignores) lets every
 * compiler vectorize it. Where SKCCE_ROW_VECTORS, it is written as wide
 * vectors, then at most one of 4 doubles, then scalars, each rounded once:
 * GCC's vectorizer left some class counts scalar (16 and 17 classes with
 * AVX-512, one double at a time). The loop it replaces was contracted to
 * fused multiply-adds too (GCC and clang by default), so the sums are the
 * same bit for bit. */
#if SKCCE_ROW_VECTORS
SKCCE_INLINE void skcce_row_update(double* SKCCE_RESTRICT out, const double* SKCCE_RESTRICT in,
                                   double x, const ptrdiff_t NK)
{
    const skcce_row_lanes lanes = skcce_split_row(NK);
    const skcce_w_f64 x_wide = SKCCE_BROADCAST_WIDE_f64(x);
    for (ptrdiff_t s = 0; s < lanes.wide; s++) {
        skcce_w_f64 o, i;
        memcpy(&o, out + s * SKCCE_ROW_WIDE_LANES, sizeof o);
        memcpy(&i, in + s * SKCCE_ROW_WIDE_LANES, sizeof i);
        o = SKCCE_ROW_MADD_WIDE(o, x_wide, i);
        memcpy(out + s * SKCCE_ROW_WIDE_LANES, &o, sizeof o);
    }
    if (lanes.quad) {
        skcce_v_f64 o, i;
        memcpy(&o, out + lanes.quad_start, sizeof o);
        memcpy(&i, in + lanes.quad_start, sizeof i);
        o = SKCCE_ROW_MADD_QUAD(o, SKCCE_BROADCAST_f64(x), i);
        memcpy(out + lanes.quad_start, &o, sizeof o);
    }
    for (ptrdiff_t k = lanes.single_start; k < NK; k++)
        out[k] = __builtin_fma(x, in[k], out[k]);
}
#else
SKCCE_INLINE void skcce_row_update(double* SKCCE_RESTRICT out, const double* SKCCE_RESTRICT in,
                                   double x, const ptrdiff_t NK)
{
    for (ptrdiff_t k = 0; k < NK; k++)
        out[k] += x * in[k];
}
#endif

/* CASE(NK) for each class count with a loop of its own (a switch's cases). */
#define SKCCE_SPECIALIZED_K(CASE) \
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) \
    CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16) CASE(17) CASE(18) CASE(19) \
    CASE(20) CASE(21) CASE(22) CASE(23) CASE(24) CASE(25) CASE(26) CASE(27) CASE(28) \
    CASE(29) CASE(30) CASE(31) CASE(32)

#endif
