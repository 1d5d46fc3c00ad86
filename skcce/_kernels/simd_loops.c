/* The kernels' hot loops for one instruction set (see simd.h).
 *
 * setup.py compiles this file once per instruction set, with SKCCE_TARGET
 * (base, avx2 or avx512) defined and that set's compiler flags; every
 * function gets the set's name as suffix.
 */
#ifndef SKCCE_TARGET
#error "SKCCE_TARGET must name the instruction set (setup.py defines it)"
#endif

#include <stddef.h>
#include <stdint.h>

#include "portability.h"
#include "simd.h"
#include "simd_loops.h"
#include "microkernel.h"
#include "sparse_tiles.h"
#include "vector_exp.h"

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

void SKCCE_EXPORT(skcce_exp_nonpositive_inplace)(double* v, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) v[i] = skcce_exp_nonpositive(v[i]);
}

void SKCCE_EXPORT(skcce_log_ge1_inplace)(double* v, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) v[i] = skcce_log_ge1(v[i]);
}
