/* One scratch allocation for a kernel evaluation, counted by tracemalloc.
 *
 * Buffers of 2 MiB and more start on a 2 MiB boundary, are rounded up to a
 * multiple of 2 MiB and are advised for transparent huge pages. The sparse
 * kernel's tiles are written as hundreds of interleaved streams (one per
 * feature block) by every thread at once: backed by 4 KiB pages, a fresh
 * buffer cost each two-thread evaluation from 0 to 17 ms of page faults and
 * TLB misses depending on where the allocator placed it (per-process medians
 * of 48 to 65 ms on a 10-million-non-zero problem); with huge pages, 47 to
 * 51 ms.
 *
 * tracemalloc sees the buffer (PyTraceMalloc_Track takes the GIL itself), so
 * memory measurements include the kernels' scratch.
 */
#ifndef SKCCE_SCRATCH_H
#define SKCCE_SCRATCH_H

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(_WIN32)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define SKCCE_HUGE_PAGE_BYTES ((size_t)1 << 21)
/* tracemalloc domain of the kernels' scratch ("skcc"). */
#define SKCCE_SCRATCH_DOMAIN 0x736b6363u

/* Bytes reserved for a request of n bytes. */
static inline size_t skcce_scratch_bytes(size_t n) {
    if (n == 0) n = 1;
    if (n >= SKCCE_HUGE_PAGE_BYTES)
        n = (n + SKCCE_HUGE_PAGE_BYTES - 1) & ~(SKCCE_HUGE_PAGE_BYTES - 1);
    return n;
}

static inline void* skcce_scratch_alloc(size_t n) {
    size_t size = skcce_scratch_bytes(n);
    void* p = NULL;
    if (size >= SKCCE_HUGE_PAGE_BYTES) {
#if defined(_WIN32)
        p = _aligned_malloc(size, SKCCE_HUGE_PAGE_BYTES);
        if (p == NULL)
            return NULL;
#else
        if (posix_memalign(&p, SKCCE_HUGE_PAGE_BYTES, size) != 0)
            return NULL;
#endif
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(p, size, MADV_HUGEPAGE);  /* advice only: failure is harmless */
#endif
    } else {
#if defined(_WIN32)
        p = _aligned_malloc(size, 64);
#else
        p = malloc(size);
#endif
        if (p == NULL)
            return NULL;
    }
    PyTraceMalloc_Track(SKCCE_SCRATCH_DOMAIN, (uintptr_t)p, size);
    return p;
}

static inline void skcce_scratch_free(void* p) {
    if (p == NULL)
        return;
    PyTraceMalloc_Untrack(SKCCE_SCRATCH_DOMAIN, (uintptr_t)p);
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

#endif
