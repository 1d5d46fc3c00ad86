/* The rules of CSR prediction's logits: whether the rows of W.T are
 * prefetched (predict.pyx) and which loop a row takes (csr_rows_impl.h), with
 * what they were measured against. The loops and the prefetching itself are
 * in csr_rows.h. Every loop computes the same sums, bit for bit; the choice
 * is one of speed only.
 */
#ifndef SKCCE_CSR_POLICY_H
#define SKCCE_CSR_POLICY_H

#include <stddef.h>

#include "portability.h"

/* The rows of W.T are prefetched while W.T is larger than
 * SKCCE_CSR_PREFETCH_BYTES (smaller, it stays in the caches and the
 * prefetches only cost instructions) and its rows are at most
 * SKCCE_CSR_PREFETCH_ROW_BYTES (longer rows stream on their own; 2,000
 * float64 classes ran a third slower with them prefetched). */
#define SKCCE_CSR_PREFETCH_BYTES 1048576
#define SKCCE_CSR_PREFETCH_ROW_BYTES 1024

/* The vector loops' range (where SKCCE_ROW_VECTORS; see skcce_split_row in
 * microkernel.h), one thread, 2,000 and 50,000 features; the loop for up to
 * 32 classes measured against GCC's vectorizer on the plain loop:
 * - float32 coefficients, from SKCCE_CSR_VECTOR_MIN_F32 classes on: GCC
 *   converted a wide vector of floats in five instructions (here one) and
 *   left 17 to 32 classes' sums scalar, some in memory. 1.0-1.3x faster at 4
 *   to 16 classes, 1.1-1.6x while prefetching and 1.3-2.0x otherwise at 17
 *   to 32, with AVX2 and AVX-512.
 * - float64 coefficients, from SKCCE_CSR_VECTOR_MIN_F64 classes on, where
 *   nothing is prefetched: 1.6-1.9x faster. While prefetching, GCC's loops
 *   were as fast or up to 1.15x faster; with fewer classes, as fast.
 * - Slices of the classes beyond the first 32, up to
 *   SKCCE_CSR_SLICED_MAX_CLASSES, where nothing is prefetched, measured
 *   against one pass with the sums in memory: 2,000 features, 33 to 300
 *   classes 1.4-1.8x faster in float64 and 1.5-2.4x in float32; 20,000 rows
 *   of 5,000 features, 300 to 500 classes 1.3-1.55x; 1,000 and 2,000 classes
 *   0.69-1.13x, the rows' parts read again by every slice no longer cached.
 *   While prefetching, slices ran from 0.7 to 2.3x the speed of one pass,
 *   depending on the shape. */
#define SKCCE_CSR_VECTOR_MIN_F32 4
#define SKCCE_CSR_VECTOR_MIN_F64 17
#define SKCCE_CSR_SLICED_MAX_CLASSES 512

/* Whether prediction prefetches the rows of a W.T of n_features rows of
 * n_classes coefficients of coef_bytes bytes each. */
SKCCE_INLINE int skcce_csr_prefetches(ptrdiff_t n_features, ptrdiff_t n_classes,
                                      size_t coef_bytes)
{
    return (size_t)n_features * (size_t)n_classes * coef_bytes > SKCCE_CSR_PREFETCH_BYTES
           && (size_t)n_classes * coef_bytes <= SKCCE_CSR_PREFETCH_ROW_BYTES;
}

/* Where the vector loops exist (SKCCE_ROW_VECTORS), whether a row of
 * n_classes classes, at most 32, with coefficients of
 * coef_bytes bytes, keeps its sums in vector registers (else the plain loop,
 * left to the compiler), with readable as in skcce_csr_row_logits (0: W.T not
 * prefetched). */
SKCCE_INLINE int skcce_csr_vectors_chosen(ptrdiff_t n_classes, size_t coef_bytes,
                                          ptrdiff_t readable)
{
    return coef_bytes == sizeof(float)
               ? n_classes >= SKCCE_CSR_VECTOR_MIN_F32
               : (n_classes >= SKCCE_CSR_VECTOR_MIN_F64 && readable == 0);
}

/* Where the vector loops exist, whether a row of n_classes classes, more than
 * 32, takes a pass per slice of its classes (else one
 * pass with the sums in memory). */
SKCCE_INLINE int skcce_csr_sliced_chosen(ptrdiff_t n_classes, ptrdiff_t readable)
{
    return readable == 0 && n_classes <= SKCCE_CSR_SLICED_MAX_CLASSES;
}

#endif
