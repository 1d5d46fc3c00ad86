/* Register-blocked products for a chunk of rows with few classes.
 *
 *   logits:   Z (m x Kp)  = X (m x d) @ Wt (d x Kp)
 *   gradient: G (d x Kp) += X (m x d)^T @ R (m x Kp)     (G in float64)
 *
 * X is row-major with leading dimension d; Kp, the padded number of classes,
 * is a multiple of the vector width (4 doubles or 8 floats) and the padding
 * columns of Wt are zero. With K around 10, BLAS GEMM spends most of its time
 * packing panels for a product that is only 10 columns wide; these loops keep
 * a tile of accumulators in vector registers instead and read X once per
 * tile of classes.
 *
 * Numerics: every output entry is one sum over j (logits) or over the chunk's
 * rows (gradient) in index order, the same for every call, so results do not
 * depend on threads. float32 data accumulates a chunk's gradient in float32
 * registers (as SGEMM would) and adds it to the float64 G.
 *
 * The functions are written once, in microkernel_impl.h, and compiled for
 * each element type by including that file twice below: skcce_logits_f64,
 * skcce_grad_f64, skcce_logits_f32 and skcce_grad_f32.
 *
 * The entry points are compiled per instruction set where the compiler
 * allows it (SKCCE_CLONES, portability.h).
 */
#ifndef SKCCE_MICROKERNEL_H
#define SKCCE_MICROKERNEL_H

#include <stddef.h>

#include "portability.h"

#if defined(__GNUC__) || defined(__clang__)

#define SKCCE_HAVE_VECTORS 1

typedef double skcce_vd __attribute__((vector_size(32)));
typedef double skcce_vd_u __attribute__((vector_size(32), aligned(8)));
typedef float skcce_vf __attribute__((vector_size(32)));
typedef float skcce_vf_u __attribute__((vector_size(32), aligned(4)));

#define SKCCE_LANES_F64 4
#define SKCCE_LANES_F32 8

/* Up to 4 vectors of classes per tile; 4 rows per logits tile; JB features
 * per gradient tile. */
#define SKCCE_MAX_NV 4
#define SKCCE_RB 4
#define SKCCE_MAX_JB 8
/* Rows of X prefetched ahead of the logits tile being computed. */
#define SKCCE_PREFETCH_ROWS 16

/* All lanes equal to s: one broadcast (not "zero vector + s", which costs an
 * extra addition because s + 0 is not s for s = -0). */
#define SKCCE_SPLAT_F64(s) ((skcce_vd){(s), (s), (s), (s)})
#define SKCCE_SPLAT_F32(s) ((skcce_vf){(s), (s), (s), (s), (s), (s), (s), (s)})

#else /* no vector extensions: plain loops with the same semantics */

#define SKCCE_HAVE_VECTORS 0
#define SKCCE_LANES_F64 1
#define SKCCE_LANES_F32 1

#endif

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#if SKCCE_HAVE_VECTORS
#define SKCCE_V skcce_vd
#define SKCCE_VU skcce_vd_u
#define SKCCE_LANES SKCCE_LANES_F64
#define SKCCE_SPLAT SKCCE_SPLAT_F64
#endif
#include "microkernel_impl.h"
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_V
#undef SKCCE_VU
#undef SKCCE_LANES
#undef SKCCE_SPLAT

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#if SKCCE_HAVE_VECTORS
#define SKCCE_V skcce_vf
#define SKCCE_VU skcce_vf_u
#define SKCCE_LANES SKCCE_LANES_F32
#define SKCCE_SPLAT SKCCE_SPLAT_F32
#endif
#include "microkernel_impl.h"
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_V
#undef SKCCE_VU
#undef SKCCE_LANES
#undef SKCCE_SPLAT

#endif
