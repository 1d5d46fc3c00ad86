/* Compiler-dependent macros shared by the kernels' C files.
 *
 * SKCCE_INLINE: a function the compiler must inline (its constant arguments
 * then specialize the copy, as the micro-kernels' tile sizes do).
 *
 * SKCCE_RESTRICT: restrict, for the compilers that spell it otherwise.
 *
 * SKCCE_PREFETCH(address): a hint to fetch the line holding address into
 * the caches for a read (nothing where the compiler has no such hint).
 *
 * SKCCE_FIRST_LANES(n): the mask of a vector's first n lanes (0 <= n < 32),
 * for the masked loads that stop at the end of a row (of features or of
 * classes).
 *
 * SKCCE_TYPED(name, suffix): name_suffix, for the functions that an
 * implementation header defines once per element type (name_f64, name_f32)
 * and that simd_loops.c compiles once per instruction set (name_f64_avx2).
 */
#ifndef SKCCE_PORTABILITY_H
#define SKCCE_PORTABILITY_H

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_INLINE static inline __attribute__((always_inline))
#else
#define SKCCE_INLINE static inline
#endif

/* C99's restrict; MSVC's C compiler spells it __restrict. */
#if defined(_MSC_VER) && !defined(__clang__)
#define SKCCE_RESTRICT __restrict
#else
#define SKCCE_RESTRICT restrict
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_PREFETCH(address) __builtin_prefetch((address), 0, 3)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define SKCCE_PREFETCH(address) _mm_prefetch((const char*)(address), _MM_HINT_T0)
#else
#define SKCCE_PREFETCH(address) ((void)(address))
#endif

#define SKCCE_FIRST_LANES(n) ((1u << (n)) - 1u)

#define SKCCE_PASTE(name, suffix) name##_##suffix
#define SKCCE_TYPED(name, suffix) SKCCE_PASTE(name, suffix)

#endif
