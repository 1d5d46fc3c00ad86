/* predict's label of one row of logits, over its classes in AVX-512 vectors:
 * the first class of the largest of row[k] + b[k], each sum rounded to the
 * element type as the scalar loop rounds it, or -1 if a sum is not finite.
 *
 * One pass takes the maximum (and sees any infinity or NaN), a second finds
 * the first class equal to it: for finite sums, NumPy's argmax. Against the
 * loop over eight rows side by side (predict_softmax_impl.h), which gathers
 * one logit per row and class, dense_predict_labels with one thread (the
 * logits included): 1.2-1.5x faster in float64 and 1.2-1.9x in float32 from
 * 5 to 1,000 classes (8 to 100 features); 0.7-0.8x with 2 classes and
 * 0.9-1.0x with 3 or 4, hence SKCCE_ROW_ARGMAX_MIN_CLASSES.
 *
 * SKCCE_ROW_ARGMAX_VECTORS is 1 where these exist (AVX-512 targets), else 0.
 */
#ifndef SKCCE_VECTOR_ARGMAX_H
#define SKCCE_VECTOR_ARGMAX_H

#include <math.h>
#include <stddef.h>

#include "portability.h"

#if defined(__AVX512F__)
#define SKCCE_ROW_ARGMAX_VECTORS 1
/* The fewest classes whose labels take these loops. */
#define SKCCE_ROW_ARGMAX_MIN_CLASSES 5
#include <immintrin.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

/* The index of the lowest set bit of a non-zero mask. */
SKCCE_INLINE ptrdiff_t skcce_lowest_set_bit(unsigned long long mask)
{
#if defined(_MSC_VER) && !defined(__clang__)
    unsigned long index;
    _BitScanForward64(&index, mask);
    return (ptrdiff_t)index;
#else
    return (ptrdiff_t)__builtin_ctzll(mask);
#endif
}

/* The lanes of classes k to K - 1, at most `lanes` of them. */
#define SKCCE_ARGMAX_LANES(K, k, lanes) \
    ((K) - (k) >= (lanes) ? (1u << (lanes)) - 1u : (1u << ((K) - (k))) - 1u)

SKCCE_INLINE ptrdiff_t skcce_row_argmax_f64(const double* row, const double* b, ptrdiff_t K)
{
    __m512d top = _mm512_set1_pd(-HUGE_VAL);
    __m256d half;
    __m128d quarter;
    unsigned bad = 0;
    ptrdiff_t k;
    for (k = 0; k < K; k += 8) {
        const __mmask8 m = (__mmask8)SKCCE_ARGMAX_LANES(K, k, 8);
        const __m512d v = _mm512_add_pd(_mm512_maskz_loadu_pd(m, row + k),
                                        _mm512_maskz_loadu_pd(m, b + k));
        /* v - v is NaN for an infinity or a NaN, else 0. */
        bad |= _mm512_mask_cmp_pd_mask(m, _mm512_sub_pd(v, v), _mm512_setzero_pd(),
                                       _CMP_NEQ_UQ);
        top = _mm512_mask_max_pd(top, m, top, v);
    }
    if (bad)
        return -1;
    half = _mm256_max_pd(_mm512_castpd512_pd256(top), _mm512_extractf64x4_pd(top, 1));
    quarter = _mm_max_pd(_mm256_castpd256_pd128(half), _mm256_extractf128_pd(half, 1));
    quarter = _mm_max_sd(quarter, _mm_unpackhi_pd(quarter, quarter));
    top = _mm512_broadcastsd_pd(quarter);
    /* The classes equal to it, 64 at a time: the loop's branches depend on K
     * only, not on where the maximum lies. */
    for (k = 0;; k += 64) {
        unsigned long long equal = 0;
        for (ptrdiff_t j = 0; j < 64 && k + j < K; j += 8) {
            const __mmask8 m = (__mmask8)SKCCE_ARGMAX_LANES(K, k + j, 8);
            const __m512d v = _mm512_add_pd(_mm512_maskz_loadu_pd(m, row + k + j),
                                            _mm512_maskz_loadu_pd(m, b + k + j));
            equal |= (unsigned long long)_mm512_mask_cmp_pd_mask(m, v, top, _CMP_EQ_OQ) << j;
        }
        if (equal)
            return k + skcce_lowest_set_bit(equal);
    }
}

SKCCE_INLINE ptrdiff_t skcce_row_argmax_f32(const float* row, const float* b, ptrdiff_t K)
{
    __m512 top = _mm512_set1_ps(-HUGE_VALF);
    __m256 half;
    __m128 quarter;
    unsigned bad = 0;
    ptrdiff_t k;
    for (k = 0; k < K; k += 16) {
        const __mmask16 m = (__mmask16)SKCCE_ARGMAX_LANES(K, k, 16);
        const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, row + k),
                                       _mm512_maskz_loadu_ps(m, b + k));
        bad |= _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(v, v), _mm512_setzero_ps(),
                                       _CMP_NEQ_UQ);
        top = _mm512_mask_max_ps(top, m, top, v);
    }
    if (bad)
        return -1;
    half = _mm256_max_ps(_mm512_castps512_ps256(top),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(top), 1)));
    quarter = _mm_max_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    quarter = _mm_max_ps(quarter, _mm_movehl_ps(quarter, quarter));
    quarter = _mm_max_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
    top = _mm512_broadcastss_ps(quarter);
    /* The classes equal to it, 64 at a time: the loop's branches depend on K
     * only, not on where the maximum lies. */
    for (k = 0;; k += 64) {
        unsigned long long equal = 0;
        for (ptrdiff_t j = 0; j < 64 && k + j < K; j += 16) {
            const __mmask16 m = (__mmask16)SKCCE_ARGMAX_LANES(K, k + j, 16);
            const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, row + k + j),
                                           _mm512_maskz_loadu_ps(m, b + k + j));
            equal |= (unsigned long long)_mm512_mask_cmp_ps_mask(m, v, top, _CMP_EQ_OQ) << j;
        }
        if (equal)
            return k + skcce_lowest_set_bit(equal);
    }
}
#else
#define SKCCE_ROW_ARGMAX_VECTORS 0
#endif

#endif
