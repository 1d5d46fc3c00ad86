/* Prediction's logits of one CSR row:
 *
 *   z[k] = b[k] + sum_p values[p] * W.T[columns[p], k]     (float64)
 *
 * each sum in the order of the row's non-zeros, each term rounded the same
 * way (SKCCE_CSR_MADD), so results do not depend on threads. Up to
 * SKCCE_CSR_REGISTER_CLASSES classes, the sums stay in registers for the
 * whole row (a copy of the loop per class count): kept in memory, every
 * product waited for the store of the previous one. With more classes, the
 * row's non-zeros take a pass per slice of the classes, each in registers,
 * or one pass with the sums in z, each non-zero adding its whole row of
 * W.T. Which loop runs, and whether W.T is prefetched, is decided in
 * csr_policy.h.
 *
 * The rows of W.T that the non-zeros need are scattered over it; while the
 * row is processed, the row of W.T of the non-zero SKCCE_CSR_AHEAD places
 * further on is prefetched, all its lines, as long as that non-zero is among
 * the first `readable` of `columns` (0: no prefetch).
 *
 * The function is written once, in csr_rows_impl.h, which simd_loops.c
 * includes once per type of X's values, of the coefficients and of the
 * indices (skcce_csr_row_logits_x64_w64_i32, ...), and compiles once per
 * instruction set (see simd.h).
 */
#ifndef SKCCE_CSR_ROWS_H
#define SKCCE_CSR_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "portability.h"
#include "microkernel.h"
#include "csr_policy.h"

#define SKCCE_CSR_AHEAD 8
/* Up to this many classes, a loop of its own per class count keeps the row's
 * sums in registers: the cases of SKCCE_CSR_SPECIALIZED_K, which the slices'
 * width and the plain loop's register array rely on. */
#define SKCCE_CSR_REGISTER_CLASSES 32
typedef char skcce_csr_register_classes_are_32[SKCCE_CSR_REGISTER_CLASSES == 32 ? 1 : -1];

#if SKCCE_ROW_VECTORS
/* *out = the coefficients from w on, as many as the double vector *out has
 * lanes, as doubles: copied if they are doubles, else converted by
 * FROM_F32 (SKCCE_ROW_WIDE_FROM_F32 or SKCCE_ROW_QUAD_FROM_F32). */
#define SKCCE_CSR_LOAD_F64(out, w, FROM_F32) \
    do { \
        if (sizeof *(w) == sizeof(double)) \
            memcpy((out), (w), sizeof *(out)); \
        else \
            *(out) = FROM_F32((const float*)(w)); \
    } while (0)
#endif

/* CASE(NK) for each class count with a loop of its own (a switch's cases). */
#define SKCCE_CSR_SPECIALIZED_K(CASE) \
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) \
    CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16) CASE(17) CASE(18) CASE(19) \
    CASE(20) CASE(21) CASE(22) CASE(23) CASE(24) CASE(25) CASE(26) CASE(27) CASE(28) \
    CASE(29) CASE(30) CASE(31) CASE(32)

/* acc + v * w, rounded once wherever the compiler targets a fused
 * multiply-add (GCC and clang with AVX2, AVX-512 or arm64, and any other
 * target with a fast fma) and twice elsewhere. Written out: left free to
 * contract, a compiler fused some copies of the loop and not others (its
 * vectorized and its scalar copies), so that a row's sums depended on where
 * its chunk, and so the prefetching, ended: on the number of threads. MSVC
 * contracts only when told to, except before Visual Studio 2022, hence the
 * pragma (for the rest of simd_loops.c). */
#if (defined(__GNUC__) || defined(__clang__)) \
    && (defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__FP_FAST_FMA))
#define SKCCE_CSR_MADD(acc, v, w) __builtin_fma((v), (w), (acc))
#define SKCCE_CSR_MADD_FUSED 1
#else
#define SKCCE_CSR_MADD(acc, v, w) ((acc) + (v) * (w))
#define SKCCE_CSR_MADD_FUSED 0
#if defined(_MSC_VER) && !defined(__clang__)
#pragma fp_contract(off)
#endif
#endif

/* Fetch the row_bytes from row on into the cache: all its lines. */
SKCCE_INLINE void skcce_csr_prefetch_row(const void* row, ptrdiff_t row_bytes)
{
    const char* start = (const char*)row;
    for (ptrdiff_t line = 0; line < row_bytes; line += 64)
        SKCCE_PREFETCH(start + line);
    SKCCE_PREFETCH(start + row_bytes - 1); /* a row may end on one more line */
}

#endif
