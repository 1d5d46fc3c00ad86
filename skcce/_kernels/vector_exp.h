/* exp of a chunk's shifted logits, vectorizable (simd_loops.c applies it in
 * place to a chunk's values, once per instruction set).
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

static inline double skcce_exp_nonpositive(double x) {
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    const double ln2_lo = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
    const double shifter = 6755399441055744.0;        /* 1.5 * 2^52 */
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * log2e + shifter;
    double k = t - shifter;
    double r = (xc - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    long long t_bits, shifter_bits, scale_bits;
    double scale;
    memcpy(&t_bits, &t, 8);
    memcpy(&shifter_bits, &shifter, 8);
    scale_bits = (t_bits - shifter_bits + 1023) << 52;
    memcpy(&scale, &scale_bits, 8);
    double y = p * scale;
    y = x < -708.0 ? 0.0 : y;
    return x != x ? x : y;
}

#endif
