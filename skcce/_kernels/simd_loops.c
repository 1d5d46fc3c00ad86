/* The kernels' hot loops for one instruction set (see simd.h).
 *
 * setup.py compiles this file once per instruction set, with SKCCE_TARGET
 * (base, avx2 or avx512) defined and that set's compiler flags; every
 * function gets the set's name as suffix.
 */
#ifndef SKCCE_TARGET
#error "SKCCE_TARGET must name the instruction set (setup.py defines it)"
#endif

/* Functions that take or return vectors are always inlined, so the
 * compilers' warning that their ABI depends on AVX (in the baseline set)
 * does not apply. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <stddef.h>
#include <stdint.h>

#include "portability.h"
#include "simd.h"
#include "simd_loops.h"
#include "microkernel.h"
#include "sparse_tiles.h"
#include "csr_rows.h"
#include "vector_exp.h"
#include "vector_argmax.h"

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#define SKCCE_FLOAT64 1
#include "microkernel_impl.h"

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#define SKCCE_FLOAT64 0
#include "microkernel_impl.h"

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#define SKCCE_FLOAT64 1
#include "rowkernel_impl.h"

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#define SKCCE_FLOAT64 0
#include "rowkernel_impl.h"

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#include "sparse_tiles_impl.h"

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#include "sparse_tiles_impl.h"

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#include "softmax_impl.h"

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#include "softmax_impl.h"

#define SKCCE_T double
#define SKCCE_SUFFIX f64
#define SKCCE_LOWEST (-1.7976931348623157e308)
#include "predict_softmax_impl.h"

#define SKCCE_T float
#define SKCCE_SUFFIX f32
#define SKCCE_LOWEST (-3.4028234663852886e38)
#include "predict_softmax_impl.h"

#define SKCCE_TX double
#define SKCCE_TW double
#define SKCCE_TI int32_t
#define SKCCE_SUFFIX x64_w64_i32
#include "csr_rows_impl.h"

#define SKCCE_TX double
#define SKCCE_TW double
#define SKCCE_TI int64_t
#define SKCCE_SUFFIX x64_w64_i64
#include "csr_rows_impl.h"

#define SKCCE_TX double
#define SKCCE_TW float
#define SKCCE_TI int32_t
#define SKCCE_SUFFIX x64_w32_i32
#include "csr_rows_impl.h"

#define SKCCE_TX double
#define SKCCE_TW float
#define SKCCE_TI int64_t
#define SKCCE_SUFFIX x64_w32_i64
#include "csr_rows_impl.h"

#define SKCCE_TX float
#define SKCCE_TW double
#define SKCCE_TI int32_t
#define SKCCE_SUFFIX x32_w64_i32
#include "csr_rows_impl.h"

#define SKCCE_TX float
#define SKCCE_TW double
#define SKCCE_TI int64_t
#define SKCCE_SUFFIX x32_w64_i64
#include "csr_rows_impl.h"

#define SKCCE_TX float
#define SKCCE_TW float
#define SKCCE_TI int32_t
#define SKCCE_SUFFIX x32_w32_i32
#include "csr_rows_impl.h"

#define SKCCE_TX float
#define SKCCE_TW float
#define SKCCE_TI int64_t
#define SKCCE_SUFFIX x32_w32_i64
#include "csr_rows_impl.h"

int SKCCE_EXPORT(skcce_vector_bytes)(void)
{
    return SKCCE_REG_BYTES;
}

int SKCCE_EXPORT(skcce_csr_terms_fused)(void)
{
    return SKCCE_CSR_MADD_FUSED;
}

void SKCCE_EXPORT(skcce_exp_nonpositive_inplace)(double* v, ptrdiff_t n)
{
    skcce_exp_nonpositive_array(v, n);
}

void SKCCE_EXPORT(skcce_log_ge1_inplace)(double* v, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) v[i] = skcce_log_ge1(v[i]);
}

/* q = (q + a x) * scale on n values, then v . q (see skcce_axpy_dot in simd.h).
 * With constant has_x, scaled and has_v each use compiles to its own loop. */
SKCCE_INLINE double skcce_axpy_dot_loop(double* SKCCE_RESTRICT q,
                                        const double* SKCCE_RESTRICT x, double a,
                                        double scale, const double* SKCCE_RESTRICT v,
                                        ptrdiff_t n, const int has_x, const int scaled,
                                        const int has_v)
{
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            double value = q[i + j];
            if (has_x) value += a * x[i + j];
            if (scaled) value *= scale;
            q[i + j] = value;
            if (has_v) acc[j] += v[i + j] * value;
        }
    }
    for (int j = 0; i < n; i++, j++) {
        double value = q[i];
        if (has_x) value += a * x[i];
        if (scaled) value *= scale;
        q[i] = value;
        if (has_v) acc[j] += v[i] * value;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double SKCCE_EXPORT(skcce_axpy_dot)(double* q, const double* x, double a, double scale,
                                    const double* v, ptrdiff_t n)
{
    if (x != NULL && scale == 1.0 && v != NULL)
        return skcce_axpy_dot_loop(q, x, a, 1.0, v, n, 1, 0, 1);
    if (x != NULL && scale == 1.0)
        return skcce_axpy_dot_loop(q, x, a, 1.0, NULL, n, 1, 0, 0);
    if (x != NULL && v != NULL)
        return skcce_axpy_dot_loop(q, x, a, scale, v, n, 1, 1, 1);
    if (x != NULL)
        return skcce_axpy_dot_loop(q, x, a, scale, NULL, n, 1, 1, 0);
    if (v != NULL)
        return skcce_axpy_dot_loop(q, NULL, 0.0, scale, v, n, 0, scale != 1.0, 1);
    return skcce_axpy_dot_loop(q, NULL, 0.0, scale, NULL, n, 0, 1, 0);
}
