/* OpenMP entry points with serial fallbacks, so the kernel also builds and runs
 * (single-threaded) with a compiler that has no OpenMP support. */
#ifndef SKCCE_OPENMP_SHIM_H
#define SKCCE_OPENMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define SKCCE_OPENMP_ENABLED 1
#else
#define SKCCE_OPENMP_ENABLED 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif

#endif
