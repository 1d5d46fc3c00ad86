/* exp of a chunk's shifted logits and log of its rows' sums of exps,
 * vectorizable (simd_loops.c applies them in place to a chunk's values, once
 * per instruction set).
 *
 * For v[i] <= 0 (logits minus their row maximum), with no calls and no
 * branches: exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 (ln 2
 * split in two for an exact product), exp(r) by its degree-13 Taylor
 * polynomial (truncation < 1e-17 for |r| <= ln(2)/2). Within 2 ulp of the
 * correctly rounded value. x < -708 gives 0 (the true value is below 1e-307
 * and only ever added to a sum >= 1); NaN stays NaN.
 */
#ifndef SKCCE_VECTOR_EXP_H
#define SKCCE_VECTOR_EXP_H

#include <stddef.h>
#include <string.h>

#include "microkernel.h"

/* The arithmetic of exp for xc in [-708, 0], one text for the scalar exp and
 * its vector version (T double or a vector of doubles, SPLAT(s) a T of the
 * double s), so that both do the same operations: declares t, xc / ln 2
 * plus 1.5 * 2^52 (whose low bits hold k = round(xc / ln 2)), and p =
 * exp(r) for r = xc - k ln 2 (ln 2 split in two, k ln2_hi exact), by the
 * degree-13 Taylor polynomial in Horner form. Every addition has at most
 * one product operand, so a compiler that fuses multiply-adds can fuse each
 * in one way only, the same in both. */
#define SKCCE_SCALAR(s) (s)
#define SKCCE_EXP_REDUCED(T, SPLAT, xc, t, p)                                      \
    T t = (xc) * 1.4426950408889634 + 6755399441055744.0;                          \
    T p = SPLAT(1.0 / 6227020800.0);                                               \
    {                                                                              \
        T k_ = t - 6755399441055744.0;                                             \
        T r_ = ((xc) - k_ * 6.93147180369123816490e-01) /* 0x3fe62e42fee00000 */  \
               - k_ * 1.90821492927058770002e-10;         /* 0x3dea39ef35793c76 */  \
        p = p * r_ + 1.0 / 479001600.0;                                            \
        p = p * r_ + 1.0 / 39916800.0;                                             \
        p = p * r_ + 1.0 / 3628800.0;                                              \
        p = p * r_ + 1.0 / 362880.0;                                               \
        p = p * r_ + 1.0 / 40320.0;                                                \
        p = p * r_ + 1.0 / 5040.0;                                                 \
        p = p * r_ + 1.0 / 720.0;                                                  \
        p = p * r_ + 1.0 / 120.0;                                                  \
        p = p * r_ + 1.0 / 24.0;                                                   \
        p = p * r_ + 1.0 / 6.0;                                                    \
        p = p * r_ + 0.5;                                                          \
        p = p * r_ + 1.0;                                                          \
        p = p * r_ + 1.0;                                                          \
    }

static inline double skcce_exp_nonpositive(double x) {
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = x < -708.0 ? -708.0 : x;
    SKCCE_EXP_REDUCED(double, SKCCE_SCALAR, xc, t, p);
    /* Unsigned: the exponent's shift is defined for every bit pattern (a
     * NaN's too). */
    unsigned long long t_bits, shifter_bits, scale_bits;
    double scale;
    memcpy(&t_bits, &t, 8);
    memcpy(&shifter_bits, &shifter, 8);
    scale_bits = (t_bits - shifter_bits + 1023) << 52;
    memcpy(&scale, &scale_bits, 8);
    double y = p * scale;
    y = x < -708.0 ? 0.0 : y;
    return x != x ? x : y;
}

/* For x >= 1 (a row's sum of exps, whose largest term is exp(0)), with no
 * calls and no branches: x = 2^e m, m in [sqrt(2)/2, sqrt(2)), log(m) =
 * 2 atanh(f) with f = (m - 1) / (m + 1), |f| < 0.1716, by its odd series up
 * to f^21 (truncation < 1e-18 relative); log(x) = e ln 2 + log(m) (ln 2 split
 * in two, e ln2_hi exact). Within 2 ulp of the correctly rounded value. +inf
 * gives +inf, NaN stays NaN. */
static inline double skcce_log_ge1(double x) {
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    const double ln2_lo = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
    const long long sqrt_half_bits = 0x3fe6a09e667f3bcdLL;
    const long long two52_bits = 0x4330000000000000LL; /* 2^52 */
    long long x_bits, m_bits, e_bits;
    double m, e;
    memcpy(&x_bits, &x, 8);
    /* x / 2^e in [sqrt(1/2), sqrt(2)): e >= 0 for x >= 1. */
    long long offset = x_bits - sqrt_half_bits;
    long long exponent = offset >> 52;
    m_bits = (offset & 0x000fffffffffffffLL) + sqrt_half_bits;
    memcpy(&m, &m_bits, 8);
    /* (double) exponent for 0 <= exponent < 2^52, without an int64
     * conversion (AVX2 has none): the bits of 2^52 + exponent, minus 2^52. */
    e_bits = two52_bits + exponent;
    memcpy(&e, &e_bits, 8);
    e = e - 4503599627370496.0;
    double f = (m - 1.0) / (m + 1.0);
    double s = f * f;
    double p = 1.0 / 21.0;
    p = p * s + 1.0 / 19.0;
    p = p * s + 1.0 / 17.0;
    p = p * s + 1.0 / 15.0;
    p = p * s + 1.0 / 13.0;
    p = p * s + 1.0 / 11.0;
    p = p * s + 1.0 / 9.0;
    p = p * s + 1.0 / 7.0;
    p = p * s + 1.0 / 5.0;
    p = p * s + 1.0 / 3.0;
    /* log(m) = 2f + 2f s p, the small term added last. */
    double two_f = f + f;
    double y = e * ln2_hi + (two_f + (two_f * s * p + e * ln2_lo));
    y = x > 1.79769313486231570815e+308 ? x : y;
    return x != x ? x : y;
}

#if SKCCE_HAVE_VECTORS
/* skcce_exp_nonpositive on a register vector of doubles (microkernel.h): lane by
 * lane the same operations (SKCCE_EXP_REDUCED), so the same results bit for
 * bit, NaN payloads aside. (The log has no vector version: its
 * `two_f * s * p + e * ln2_lo` has two product operands, which GCC fused
 * differently in one, 1 ulp apart in about 1 of 1,000 sums.) */
#define SKCCE_DLANES (SKCCE_REG_BYTES / 8)
typedef long long skcce_ri_f64 __attribute__((vector_size(SKCCE_REG_BYTES)));
typedef unsigned long long skcce_rn_f64 __attribute__((vector_size(SKCCE_REG_BYTES)));

/* mask ? a : b, for a mask from a comparison (all bits set or none). */
SKCCE_INLINE skcce_r_f64 skcce_vselect(skcce_ri_f64 mask, skcce_r_f64 a, skcce_r_f64 b)
{
    return (skcce_r_f64)(((skcce_ri_f64)a & mask) | ((skcce_ri_f64)b & ~mask));
}

#define SKCCE_VSPLAT(s) SKCCE_BROADCAST_REG_f64(s)

SKCCE_INLINE skcce_r_f64 skcce_exp_nonpositive_v(skcce_r_f64 x)
{
    const skcce_r_f64 shifter = SKCCE_VSPLAT(6755399441055744.0);
    const skcce_r_f64 lowest = SKCCE_VSPLAT(-708.0);
    skcce_ri_f64 below = x < lowest;
    skcce_r_f64 xc = skcce_vselect(below, lowest, x);
    SKCCE_EXP_REDUCED(skcce_r_f64, SKCCE_VSPLAT, xc, t, p);
    const skcce_rn_f64 shifter_bits = (skcce_rn_f64)shifter;
    skcce_rn_f64 scale_bits = ((skcce_rn_f64)t - shifter_bits + 1023) << 52;
    skcce_r_f64 y = p * (skcce_r_f64)scale_bits;
    y = skcce_vselect(below, SKCCE_VSPLAT(0.0), y);
    return skcce_vselect(x != x, x, y);
}

#undef SKCCE_VSPLAT
#endif

/* skcce_exp_nonpositive of n contiguous values, in place: the vector version
 * over whole vectors, the scalar one for the rest (the same results bit for
 * bit). GCC leaves the loop of scalar calls scalar for AVX2 and SSE2: with
 * the vector version the loss and gradient took 1.25-2.25x less time with
 * AVX2, and 1.02-1.37x with SSE2 in 32-byte vectors (kept in memory there),
 * 1.0-1.15x less again in 16-byte ones (x86-64, GCC, 3 to 1,000 classes;
 * clang and arm64 not measured). For AVX-512 GCC vectorizes that loop with
 * mask registers, 5-9% faster than the vector version (1,000 classes). */
SKCCE_INLINE void skcce_exp_nonpositive_array(double* v, ptrdiff_t n)
{
    ptrdiff_t i = 0;
#if SKCCE_HAVE_VECTORS
#if SKCCE_REG_BYTES <= 32
    for (; i + SKCCE_DLANES <= n; i += SKCCE_DLANES)
        *(skcce_ru_f64*)(v + i) = skcce_exp_nonpositive_v(*(const skcce_ru_f64*)(v + i));
#endif
#endif
    for (; i < n; i++) v[i] = skcce_exp_nonpositive(v[i]);
}

#endif
