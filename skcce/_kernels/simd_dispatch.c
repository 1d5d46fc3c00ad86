/* Choice of the hot loops' instruction set at import (see simd.h).
 *
 * setup.py defines SKCCE_HAVE_AVX2 / SKCCE_HAVE_AVX512 when it compiled
 * simd_loops.c for those sets; the baseline set always exists.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "portability.h"
#include "simd.h"

#define SKCCE_DISPATCH
#define SKCCE_TARGET base
#include "simd_loops.h"
#undef SKCCE_TARGET
#ifdef SKCCE_HAVE_AVX2
#define SKCCE_TARGET avx2
#include "simd_loops.h"
#undef SKCCE_TARGET
#endif
#ifdef SKCCE_HAVE_AVX512
#define SKCCE_TARGET avx512
#include "simd_loops.h"
#undef SKCCE_TARGET
#endif

skcce_simd_loops skcce_simd;

#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#define SKCCE_X86_MSVC 1
#elif (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define SKCCE_X86_GNU 1
#endif

/* The best set this CPU and its operating system support: 2 (AVX-512:
 * F, CD, BW, DQ, VL, with AVX2 and FMA), 1 (AVX2 and FMA) or 0. */
static int skcce_cpu_level(void)
{
#if defined(SKCCE_X86_GNU)
    /* libgcc / compiler-rt check the CPUID bits and that the OS saves the
     * registers (XGETBV). */
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl"))
        return 2;
    return 1;
#elif defined(SKCCE_X86_MSVC)
    int info[4];
    unsigned long long xcr0;
    __cpuidex(info, 0, 0);
    if (info[0] < 7)
        return 0;
    __cpuidex(info, 1, 0);
    /* OSXSAVE (27), AVX (28), FMA (12) */
    if ((info[2] & (1 << 27)) == 0 || (info[2] & (1 << 28)) == 0 || (info[2] & (1 << 12)) == 0)
        return 0;
    xcr0 = _xgetbv(0);
    if ((xcr0 & 0x6) != 0x6)  /* XMM and YMM state */
        return 0;
    __cpuidex(info, 7, 0);
    if ((info[1] & (1 << 5)) == 0)  /* AVX2 */
        return 0;
    /* AVX512F (16), DQ (17), CD (28), BW (30), VL (31); opmask and ZMM state */
    if ((info[1] & (1 << 16)) && (info[1] & (1 << 17)) && (info[1] & (1 << 28))
            && (info[1] & (1 << 30)) && (info[1] & (1u << 31)) && (xcr0 & 0xE6) == 0xE6)
        return 2;
    return 1;
#else
    return 0;
#endif
}

const char* skcce_simd_select(const char* cap)
{
    int level = skcce_cpu_level();
    if (cap != NULL && strcmp(cap, "base") == 0)
        level = 0;
    else if (cap != NULL && strcmp(cap, "avx2") == 0 && level > 1)
        level = 1;
    skcce_simd = skcce_loops_base;
#ifdef SKCCE_HAVE_AVX2
    if (level >= 1)
        skcce_simd = skcce_loops_avx2;
#endif
#ifdef SKCCE_HAVE_AVX512
    if (level >= 2)
        skcce_simd = skcce_loops_avx512;
#endif
    return skcce_simd.name;
}
