/* Compiler-dependent macros shared by the kernels' C headers.
 *
 * SKCCE_CLONES: with GCC on x86-64 Linux, a function so marked is compiled
 * for three instruction sets (x86-64-v4: AVX-512, x86-64-v3: AVX2 + FMA, and
 * the x86-64 baseline) and the best one the CPU supports is chosen when the
 * extension is loaded (target_clones), so a build runs on any x86-64
 * machine. Elsewhere the function is compiled once, for the compiler's
 * target.
 *
 * SKCCE_TYPED(name, suffix): name_suffix, for the functions that an
 * implementation header defines once per element type (name_f64, name_f32).
 */
#ifndef SKCCE_PORTABILITY_H
#define SKCCE_PORTABILITY_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SKCCE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SKCCE_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_INLINE static inline __attribute__((always_inline))
#else
#define SKCCE_INLINE static inline
#endif

#define SKCCE_PASTE(name, suffix) name##_##suffix
#define SKCCE_TYPED(name, suffix) SKCCE_PASTE(name, suffix)

#endif
