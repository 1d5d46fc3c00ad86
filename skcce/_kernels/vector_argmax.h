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
 * The function, skcce_row_argmax_f64 or _f32, is written once in
 * vector_argmax_impl.h, which predict_softmax_impl.h includes per element
 * type. SKCCE_ROW_ARGMAX_VECTORS is 1 where it exists (AVX-512 targets),
 * else 0.
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
#define SKCCE_ARGMAX_MASK(K, k, lanes) \
    SKCCE_FIRST_LANES((K) - (k) >= (lanes) ? (lanes) : (K) - (k))

/* Per element type (the suffix of vector_argmax_impl.h's names): the vector,
 * its lanes, its operations (SKCCE_ARGMAX_OP_f64(add) is _mm512_add_pd) and
 * masked comparison, and the largest of a vector's lanes in every lane. */
typedef __m512d skcce_argmax_vec_f64;
typedef __m512 skcce_argmax_vec_f32;
#define SKCCE_ARGMAX_LANES_f64 8
#define SKCCE_ARGMAX_LANES_f32 16
#define SKCCE_ARGMAX_OP_f64(op) _mm512_##op##_pd
#define SKCCE_ARGMAX_OP_f32(op) _mm512_##op##_ps
#define SKCCE_ARGMAX_MASKED_CMP_f64 _mm512_mask_cmp_pd_mask
#define SKCCE_ARGMAX_MASKED_CMP_f32 _mm512_mask_cmp_ps_mask

SKCCE_INLINE __m512d skcce_argmax_top_f64(__m512d v)
{
    const __m256d half = _mm256_max_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    __m128d quarter = _mm_max_pd(_mm256_castpd256_pd128(half), _mm256_extractf128_pd(half, 1));
    quarter = _mm_max_sd(quarter, _mm_unpackhi_pd(quarter, quarter));
    return _mm512_broadcastsd_pd(quarter);
}

SKCCE_INLINE __m512 skcce_argmax_top_f32(__m512 v)
{
    const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 half = _mm256_max_ps(_mm512_castps512_ps256(v), upper);
    __m128 quarter = _mm_max_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    quarter = _mm_max_ps(quarter, _mm_movehl_ps(quarter, quarter));
    quarter = _mm_max_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
    return _mm512_broadcastss_ps(quarter);
}
#else
#define SKCCE_ROW_ARGMAX_VECTORS 0
#endif

#endif
