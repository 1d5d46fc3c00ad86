/* Map a fresh buffer's pages before the kernels' threads write to it
 * (skcce_prefault), or ask for huge pages on it (skcce_huge_pages, below).
 *
 * Fresh memory (a new NumPy array, a new scratch buffer) is mapped on first
 * touch, one page fault per page. Taken by the threads inside a parallel
 * loop, the faults contend with each other: on a two-thread sparse
 * evaluation with 2 million coefficients, a fresh 16 MB gradient took about
 * 2,300 faults per call (measured) and 7-16 ms more than a reused one, on a
 * 48-57 ms kernel; mapped here in one call, 3-5 ms more. MADV_POPULATE_WRITE
 * (Linux 5.14+) maps the range as a write would, without writing: contents
 * are kept and pages already mapped are only walked. Where it is missing or
 * fails, nothing happens and the threads take the faults as before.
 */
#ifndef SKCCE_PREFAULT_H
#define SKCCE_PREFAULT_H

#include <stddef.h>
#include <stdint.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
/* Headers older than the kernel feature (glibc < 2.35) lack the constant; a
   kernel without it rejects the call with EINVAL, which is ignored. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#endif

#if defined(__linux__)
/* madvise(advice) on the whole pages inside [p, p + n): the partial pages at
   either end may hold other allocations. */
static inline void skcce_advise_pages(void* p, size_t n, int advice) {
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start, end;
    if (p == NULL || n == 0 || page <= 0)
        return;
    start = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    end = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (end > start)
        (void)madvise((void*)start, end - start, advice);
}
#endif

static inline void skcce_prefault(void* p, size_t n) {
#if defined(__linux__)
    skcce_advise_pages(p, n, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

/* Ask for transparent huge pages on a large fresh buffer (as NumPy does for
 * its arrays of 4 MiB or more): its first touch then maps 2 MiB per fault
 * instead of 4 KiB. The kernels' scratch is allocated afresh on every call,
 * and its faults cost up to an eighth of a call (a fit step of 3,000 x 2,000
 * float32 with 1,000 classes: 10% of it on one thread). Nothing where
 * the system lacks them. */
#define SKCCE_HUGE_PAGES_MIN_BYTES ((size_t)1 << 22)

static inline void skcce_huge_pages(void* p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= SKCCE_HUGE_PAGES_MIN_BYTES)
        skcce_advise_pages(p, n, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

#endif
