/* The tile loops of sparse_tiles.h for one type of X's values. Included once
 * per type by simd_loops.c (no include guard), after sparse_tiles.h, with
 *   SKCCE_T       the type of the values (double or float),
 *   SKCCE_SUFFIX  the suffix of the function names (f64 or f32),
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)

/* The gather loop for NK classes. Always inlined, and called below with NK a
 * compile-time constant where possible: the row update is then a fixed
 * sequence of vector multiply-adds instead of a loop with a remainder.
 * Rows of z are ldz apart (NK of them are updated: a slice of the classes). */
SKCCE_INLINE void SKCCE_FN(skcce_gather_entries)(
    const uint32_t* keys, const SKCCE_T* values, ptrdiff_t e0, ptrdiff_t e1,
    uint32_t mask, const double* wb, const ptrdiff_t NK, double* z, ptrdiff_t ldz,
    const double* stream, const double* stream_end, ptrdiff_t lines)
{
    for (ptrdiff_t e = e0; e < e1; e++) {
        for (ptrdiff_t q = 0; q < lines && stream < stream_end; q++, stream += 8)
            SKCCE_TILE_PREFETCH(stream, 0);
        const uint32_t key = keys[e];
        skcce_row_update(z + (size_t)(key >> 16) * ldz, wb + (size_t)(key & mask) * NK,
                         (double)values[e], NK);
    }
}

/* The scatter loop for NK classes (see the gather loop; rows of the
 * residuals are ldr apart); returns how far the prefetch stream got. */
SKCCE_INLINE double* SKCCE_FN(skcce_scatter_entries)(
    const uint32_t* keys, const SKCCE_T* values, ptrdiff_t e0, ptrdiff_t e1,
    uint32_t mask, double* gb, const ptrdiff_t NK, const double* residuals, ptrdiff_t ldr,
    double* stream, const double* stream_end, ptrdiff_t lines)
{
    for (ptrdiff_t e = e0; e < e1; e++) {
        for (ptrdiff_t q = 0; q < lines && stream < stream_end; q++, stream += 8)
            SKCCE_TILE_PREFETCH(stream, 1);
        const uint32_t key = keys[e];
        skcce_row_update(gb + (size_t)(key & mask) * NK, residuals + (size_t)(key >> 16) * ldr,
                         (double)values[e], NK);
    }
    return stream;
}

void SKCCE_EXPORT(SKCCE_FN(skcce_tile_gather))(const uint32_t* keys, const SKCCE_T* values, ptrdiff_t e0,
                                 ptrdiff_t e1, int shift, const double* wb, ptrdiff_t K,
                                 double* z, ptrdiff_t ldz, const double* stream,
                                 const double* stream_end, ptrdiff_t lines)
{
    const uint32_t mask = (1u << shift) - 1u;
#define SKCCE_CASE(NK) case NK: SKCCE_FN(skcce_gather_entries)(keys, values, e0, e1, mask, wb, NK, z, ldz, stream, stream_end, lines); break;
    switch (K) {
    SKCCE_SPECIALIZED_K(SKCCE_CASE)
    default: SKCCE_FN(skcce_gather_entries)(keys, values, e0, e1, mask, wb, K, z, ldz, stream,
                                             stream_end, lines); break;
    }
#undef SKCCE_CASE
}

double* SKCCE_EXPORT(SKCCE_FN(skcce_tile_scatter))(const uint32_t* keys, const SKCCE_T* values, ptrdiff_t e0,
                                     ptrdiff_t e1, int shift, double* gb, ptrdiff_t K,
                                     const double* residuals, ptrdiff_t ldr, double* stream,
                                     const double* stream_end, ptrdiff_t lines)
{
    const uint32_t mask = (1u << shift) - 1u;
#define SKCCE_CASE(NK) case NK: return SKCCE_FN(skcce_scatter_entries)(keys, values, e0, e1, mask, gb, NK, residuals, ldr, stream, stream_end, lines);
    switch (K) {
    SKCCE_SPECIALIZED_K(SKCCE_CASE)
    default: return SKCCE_FN(skcce_scatter_entries)(keys, values, e0, e1, mask, gb, K,
                                                     residuals, ldr, stream, stream_end, lines);
    }
#undef SKCCE_CASE
}

#undef SKCCE_FN
#undef SKCCE_T
#undef SKCCE_SUFFIX
