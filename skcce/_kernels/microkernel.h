/* Register-blocked products for a chunk of rows with few classes.
 *
 *   logits:   Z (m x Kp)  = X (m x d) @ Wt (d x Kp)
 *   gradient: G (d x Kp) += X (m x d)^T @ R (m x Kp)     (G in float64)
 *
 * X is row-major with leading dimension d; Kp, the padded number of classes,
 * is a multiple of the vector width (4 doubles or 8 floats) and the padding
 * columns of Wt are zero. With few classes, BLAS GEMM spends most of its time
 * packing panels for a product that is only K columns wide; these loops keep
 * a tile of accumulators in vector registers instead and read X once per
 * tile of classes.
 *
 * Numerics: every output entry is one sum over j (logits) or over the chunk's
 * rows (gradient) in index order, the same for every call, so results do not
 * depend on threads. float32 data accumulates a chunk's gradient in float32
 * registers (as SGEMM would) and adds it to the float64 G.
 *
 * This header holds the constants, vector types and small inline helpers
 * (the sparse kernels' row split and multiply-adds); the functions are
 * written once, in microkernel_impl.h, which simd_loops.c includes once per
 * element type (and compiles once per instruction set): skcce_logits_f64,
 * skcce_grad_f64, skcce_logits_f32 and skcce_grad_f32, each with the
 * instruction set's suffix (see simd.h).
 */
#ifndef SKCCE_MICROKERNEL_H
#define SKCCE_MICROKERNEL_H

#include <stddef.h>
#include <string.h>

#include "portability.h"

#if defined(__GNUC__) || defined(__clang__)

#define SKCCE_HAVE_VECTORS 1

/* Per element type (suffix f64 or f32): aligned and unaligned vectors of 32
 * bytes (and half a float vector), their number of lanes, and SKCCE_BROADCAST_<suffix>(s), a vector with
 * every lane s (one broadcast, not "zero vector + s", which costs an extra
 * addition because s + 0 is not s for s = -0). */
typedef double skcce_v_f64 __attribute__((vector_size(32)));
typedef double skcce_vu_f64 __attribute__((vector_size(32), aligned(8)));
typedef float skcce_v_f32 __attribute__((vector_size(32)));
typedef float skcce_vu_f32 __attribute__((vector_size(32), aligned(4)));
typedef float skcce_half_f32 __attribute__((vector_size(16)));
#define SKCCE_LANES_f64 4
#define SKCCE_LANES_f32 8
#define SKCCE_BROADCAST_f64(s) ((skcce_v_f64){(s), (s), (s), (s)})
#define SKCCE_BROADCAST_f32(s) ((skcce_v_f32){(s), (s), (s), (s), (s), (s), (s), (s)})

/* Where the instruction set has 64-byte registers (AVX-512: 32 of them), the
 * loops hold pairs of these vectors in one register ("wide" vectors,
 * SKCCE_WIDTH of the 32-byte ones); elsewhere a wide vector is a 32-byte one.
 * Each lane does the same arithmetic either way, so results do not change. */
#if defined(__AVX512F__)
#define SKCCE_WIDTH 2
#else
#define SKCCE_WIDTH 1
#endif
typedef double skcce_w_f64 __attribute__((vector_size(32 * SKCCE_WIDTH)));
typedef double skcce_wu_f64 __attribute__((vector_size(32 * SKCCE_WIDTH), aligned(8)));
typedef float skcce_w_f32 __attribute__((vector_size(32 * SKCCE_WIDTH)));
typedef float skcce_wu_f32 __attribute__((vector_size(32 * SKCCE_WIDTH), aligned(4)));
#if SKCCE_WIDTH == 2
#define SKCCE_BROADCAST_WIDE_f64(s) ((skcce_w_f64){(s), (s), (s), (s), (s), (s), (s), (s)})
#define SKCCE_BROADCAST_WIDE_f32(s) \
    ((skcce_w_f32){(s), (s), (s), (s), (s), (s), (s), (s), \
                   (s), (s), (s), (s), (s), (s), (s), (s)})
#else
#define SKCCE_BROADCAST_WIDE_f64 SKCCE_BROADCAST_f64
#define SKCCE_BROADCAST_WIDE_f32 SKCCE_BROADCAST_f32
#endif

/* Register vectors (SKCCE_REG_BYTES): the widest vectors that fit one
 * register, for the class tiles, the vector exp (vector_exp.h) and the
 * gradient of the kernels vectorized over features (rowkernel_impl.h).
 * They are the wide vectors where the instruction set has 32-byte registers
 * (AVX), else 16-byte vectors, two per 32-byte vector of classes. Without AVX, GCC
 * keeps a 32-byte vector in memory: under x86-64's baseline (SSE2) each
 * broadcast was two 8-byte stores reloaded as 16 bytes, and every
 * accumulator lived on the stack (the loss and gradient 1.4-10.7x slower,
 * 2 to 100 classes, 20 to 784 features). Each lane does the same arithmetic
 * whatever the vectors' size, so results do not change. */
#if defined(__AVX__)
#define SKCCE_REG_BYTES (32 * SKCCE_WIDTH)
typedef skcce_w_f64 skcce_r_f64;
typedef skcce_wu_f64 skcce_ru_f64;
typedef skcce_w_f32 skcce_r_f32;
typedef skcce_wu_f32 skcce_ru_f32;
#define SKCCE_BROADCAST_REG_f64 SKCCE_BROADCAST_WIDE_f64
#define SKCCE_BROADCAST_REG_f32 SKCCE_BROADCAST_WIDE_f32
#else
#define SKCCE_REG_BYTES 16
typedef double skcce_r_f64 __attribute__((vector_size(16)));
typedef double skcce_ru_f64 __attribute__((vector_size(16), aligned(8)));
typedef float skcce_r_f32 __attribute__((vector_size(16)));
typedef float skcce_ru_f32 __attribute__((vector_size(16), aligned(4)));
#define SKCCE_BROADCAST_REG_f64(s) ((skcce_r_f64){(s), (s)})
#define SKCCE_BROADCAST_REG_f32(s) ((skcce_r_f32){(s), (s), (s), (s)})
#endif

/* Lane by lane, where the instruction set has no masked loads (partial
 * vectors) or the register vectors are 16 bytes (float32 sums added to
 * doubles once per tile): v = the first n (< lanes) values of type T at p,
 * zero after, without reading past p + n (a loop, not memcpy: a copy of
 * variable length is a library call); and g[l] += (double) values[l] for
 * the first n. */
#define SKCCE_LOAD_FIRST_LANES(T, v, p, n, lanes) \
    do { \
        T loaded_[lanes] = {0}; \
        for (int l_ = 0; l_ < (n); l_++) loaded_[l_] = (p)[l_]; \
        memcpy(&(v), loaded_, sizeof(v)); \
    } while (0)
#define SKCCE_ADD_LANES_TO_DOUBLES(g, values, n) \
    do { \
        for (int l_ = 0; l_ < (n); l_++) (g)[l_] += (double)(values)[l_]; \
    } while (0)

/* A tile spans up to SKCCE_PANEL_NV 32-byte vectors of classes: up to
 * SKCCE_MAX_NW register vectors, or, with 64-byte ones, that minus one plus
 * one 32-byte vector; up to SKCCE_MAX_RB rows per logits tile and SKCCE_MAX_JB
 * features per gradient tile. */
#define SKCCE_PANEL_NV (SKCCE_WIDTH == 2 ? 8 : 4)
#define SKCCE_MAX_NW (SKCCE_PANEL_NV * 32 / SKCCE_REG_BYTES)
#define SKCCE_MAX_RB (SKCCE_WIDTH == 2 ? 16 : 4)
#define SKCCE_MAX_JB (SKCCE_WIDTH == 2 ? 16 : 8)
/* With several tiles of classes, both products run over blocks of this many
 * features, each block for all tiles of classes before the next: the block
 * of X (the chunk's rows) stays in the L2 cache across tiles of classes, and
 * the block of one tile of W (at most 32 KiB) in the L1 cache across tiles of
 * rows. The logits' partial sums go through Z between blocks (exactly: in
 * their own type), so every entry is still one sum in index order. */
#define SKCCE_FEATURE_BLOCK 128
/* The logits product streams X from memory (the gradient reads it again
 * from the cache) and fetches the rows this many bytes ahead into the L2
 * cache, a line per row with each line's first feature (measured up to 1.3x
 * faster than the hardware prefetcher alone; a burst of the rows' lines per
 * tile was slower). */
#define SKCCE_PREFETCH_BYTES 24576

/* Rows of row_bytes each that make SKCCE_PREFETCH_BYTES, at least tile_rows
 * (very long rows; row_bytes 0 counts as 1). */
SKCCE_INLINE ptrdiff_t skcce_prefetch_rows(ptrdiff_t row_bytes, ptrdiff_t tile_rows)
{
    if (row_bytes < 1) row_bytes = 1;
    ptrdiff_t rows = (SKCCE_PREFETCH_BYTES + row_bytes - 1) / row_bytes;
    return rows < tile_rows ? tile_rows : rows;
}

/* While a gradient product works on a chunk already in the cache, memory
 * would sit idle; so it fetches the start of the next chunk of X into the L2
 * cache, a line every SKCCE_FETCH_EVERY passes of its loop over the chunk's
 * rows, as many as its tiles make passes (about half of the next chunk for
 * tiles of 8 float64 features), and the next logits product finds them
 * there. A line every pass was up to 1.1x slower than every second one (a
 * prefetch holds a fill buffer until its line arrives); every fourth, too
 * few. Prefetches change no result. */
#define SKCCE_FETCH_EVERY 2
typedef struct {
    const char* start;
    ptrdiff_t fetched;
    ptrdiff_t bytes;
} skcce_fetch_ahead;

SKCCE_INLINE skcce_fetch_ahead skcce_fetch_start(const void* ahead, ptrdiff_t bytes)
{
    skcce_fetch_ahead f;
    f.start = (const char*)ahead;
    f.fetched = 0;
    f.bytes = ahead && bytes > 0 ? bytes : 0;
    return f;
}

/* In pass `pass` of a loop: the next line, every SKCCE_FETCH_EVERY passes. */
SKCCE_INLINE void skcce_fetch_line(skcce_fetch_ahead* f, ptrdiff_t pass)
{
    if (pass % SKCCE_FETCH_EVERY == SKCCE_FETCH_EVERY - 1 && f->fetched < f->bytes) {
        __builtin_prefetch(f->start + f->fetched, 0, 2);
        f->fetched += 64;
    }
}

#else /* no vector extensions: plain loops with the same semantics */

#define SKCCE_HAVE_VECTORS 0
#define SKCCE_LANES_f64 1
#define SKCCE_LANES_f32 1
/* No vectors: the widest unit the loops use is one double. */
#define SKCCE_REG_BYTES 8

#endif

/* Whether the per-row loops of the sparse kernels (csr_rows.h,
 * sparse_tiles.h) are written with these vector types: only where 32-byte
 * vectors and fused multiply-adds are native (x86-64's baseline, SSE2, ran
 * them 2x slower than its scalar loops; arm64 is not measured). Their
 * multiply-adds are explicit (SKCCE_ROW_MADD_*, one rounding), as the scalar
 * loops' are, whatever the compiler's contraction setting. */
#if SKCCE_HAVE_VECTORS && defined(__AVX2__) && defined(__FMA__)
#define SKCCE_ROW_VECTORS 1
#include <immintrin.h>
/* acc + v * w, rounded once, for wide and for 32-byte double vectors. */
#if SKCCE_WIDTH == 2
#define SKCCE_ROW_MADD_WIDE(acc, v, w) \
    ((skcce_w_f64)_mm512_fmadd_pd((__m512d)(v), (__m512d)(w), (__m512d)(acc)))
/* The floats from p on, as many as the vector has lanes, converted to
 * doubles: one load-and-convert instruction (GCC's __builtin_convertvector
 * of a wide vector took five, with AVX-512). */
#define SKCCE_ROW_WIDE_FROM_F32(p) ((skcce_w_f64)_mm512_cvtps_pd(_mm256_loadu_ps(p)))
#else
#define SKCCE_ROW_MADD_WIDE(acc, v, w) \
    ((skcce_w_f64)_mm256_fmadd_pd((__m256d)(v), (__m256d)(w), (__m256d)(acc)))
#define SKCCE_ROW_WIDE_FROM_F32(p) ((skcce_w_f64)_mm256_cvtps_pd(_mm_loadu_ps(p)))
#endif
#define SKCCE_ROW_MADD_QUAD(acc, v, w) \
    ((skcce_v_f64)_mm256_fmadd_pd((__m256d)(v), (__m256d)(w), (__m256d)(acc)))
#define SKCCE_ROW_QUAD_FROM_F32(p) ((skcce_v_f64)_mm256_cvtps_pd(_mm_loadu_ps(p)))

/* How these loops split a row of NK doubles: `wide` wide vectors
 * (SKCCE_ROW_WIDE_LANES doubles each) from class 0, then one vector of 4
 * from class quad_start if `quad`, then scalars (at most 3) from class
 * single_start. With NK a compile-time constant, all of it folds away. */
#define SKCCE_ROW_WIDE_LANES (4 * SKCCE_WIDTH)
typedef struct {
    ptrdiff_t wide, quad_start, single_start;
    int quad;
} skcce_row_lanes;

SKCCE_INLINE skcce_row_lanes skcce_split_row(ptrdiff_t NK)
{
    skcce_row_lanes lanes;
    lanes.wide = NK / SKCCE_ROW_WIDE_LANES;
    lanes.quad_start = lanes.wide * SKCCE_ROW_WIDE_LANES;
    lanes.quad = NK - lanes.quad_start >= 4;
    lanes.single_start = lanes.quad_start + 4 * lanes.quad;
    return lanes;
}
#else
#define SKCCE_ROW_VECTORS 0
#endif

#endif
