/* Software prefetch of a cache line (a no-op where the compiler has none).
 * The sparse kernel gathers and scatters rows of K coefficients at random
 * feature indices: prefetching a few non-zeros ahead overlaps those misses. */
#ifndef SKCCE_PREFETCH_H
#define SKCCE_PREFETCH_H

#if defined(__GNUC__) || defined(__clang__)
#define SKCCE_PREFETCH_READ(p) __builtin_prefetch((const void*)(p), 0, 3)
#define SKCCE_PREFETCH_WRITE(p) __builtin_prefetch((const void*)(p), 1, 3)
#else
#define SKCCE_PREFETCH_READ(p) ((void)(p))
#define SKCCE_PREFETCH_WRITE(p) ((void)(p))
#endif

#endif
