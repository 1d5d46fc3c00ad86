/* Prediction's logits of one CSR row (see csr_rows.h) for one combination of
 * types. Included by simd_loops.c once per combination (no include guard),
 * after csr_rows.h, with
 *   SKCCE_TX      the type of X's values (double or float),
 *   SKCCE_TW      the type of the coefficients (double or float),
 *   SKCCE_TI      the type of the column indices (int32_t or int64_t),
 *   SKCCE_SUFFIX  the suffix of the function's name (x64_w64_i32, ...),
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)

/* The row's logits for NK classes: z[k] = b[k] + sum_p values[p] *
 * wt[columns[p], k], each sum in the order of the non-zeros. With NK a
 * compile-time constant (at most SKCCE_CSR_REGISTER_CLASSES) the sums stay in
 * registers for the whole row; otherwise (NK = K, any number of classes) in
 * z. While the non-zero SKCCE_CSR_AHEAD places further on is among the first
 * `readable`, its row of W.T is prefetched. */
SKCCE_INLINE void SKCCE_FN(skcce_csr_logits)(
    const SKCCE_TX* SKCCE_RESTRICT values, const SKCCE_TI* SKCCE_RESTRICT columns,
    ptrdiff_t nnz, ptrdiff_t readable, const SKCCE_TW* SKCCE_RESTRICT wt,
    const SKCCE_TW* SKCCE_RESTRICT b, const ptrdiff_t NK, const int in_registers,
    double* SKCCE_RESTRICT z)
{
    double registers[SKCCE_CSR_REGISTER_CLASSES];
    double* acc = in_registers ? registers : z;
    const ptrdiff_t row_bytes = NK * (ptrdiff_t)sizeof(SKCCE_TW);
    ptrdiff_t p = 0, k;
    for (k = 0; k < NK; k++)
        acc[k] = (double)b[k];
    /* The terms of the non-zero p (a macro: the same body for both loops). */
#define SKCCE_CSR_ADD_ROW(p) \
    do { \
        const double v = (double)values[p]; \
        const SKCCE_TW* w = wt + (size_t)columns[p] * NK; \
        for (k = 0; k < NK; k++) \
            acc[k] = SKCCE_CSR_MADD(acc[k], v, (double)w[k]); \
    } while (0)
    for (; p + SKCCE_CSR_AHEAD < readable && p < nnz; p++) {
        skcce_csr_prefetch_row(wt + (size_t)columns[p + SKCCE_CSR_AHEAD] * NK, row_bytes);
        SKCCE_CSR_ADD_ROW(p);
    }
    for (; p < nnz; p++)
        SKCCE_CSR_ADD_ROW(p);
#undef SKCCE_CSR_ADD_ROW
    if (in_registers)
        for (k = 0; k < NK; k++)
            z[k] = acc[k];
}

#if SKCCE_ROW_VECTORS
/* skcce_csr_logits for NK <= SKCCE_CSR_REGISTER_CLASSES, the sums in vector
 * registers (see csr_rows.h), for the NK classes from wt and b on: rows of
 * W.T are ldw apart, and the prefetches fetch each row's NK coefficients.
 * Each lane computes acc + v * w rounded once, as SKCCE_CSR_MADD does on
 * these targets, so the sums are the same bit for bit. */
SKCCE_INLINE void SKCCE_FN(skcce_csr_logits_vectors)(
    const SKCCE_TX* SKCCE_RESTRICT values, const SKCCE_TI* SKCCE_RESTRICT columns,
    ptrdiff_t nnz, ptrdiff_t readable, const SKCCE_TW* SKCCE_RESTRICT wt,
    const SKCCE_TW* SKCCE_RESTRICT b, const ptrdiff_t NK, ptrdiff_t ldw,
    double* SKCCE_RESTRICT z)
{
    const skcce_row_lanes lanes = skcce_split_row(NK);
    skcce_w_f64 wide[SKCCE_CSR_REGISTER_CLASSES / SKCCE_ROW_WIDE_LANES];
    skcce_v_f64 quad = SKCCE_BROADCAST_f64(0.0);
    /* Scalars, not an array: GCC kept an array of them in memory. */
    double single0 = 0.0, single1 = 0.0, single2 = 0.0;
    const ptrdiff_t S0 = lanes.single_start;
    const ptrdiff_t row_bytes = NK * (ptrdiff_t)sizeof(SKCCE_TW);
    ptrdiff_t p, s;
    for (s = 0; s < lanes.wide; s++)
        SKCCE_CSR_LOAD_F64(&wide[s], b + s * SKCCE_ROW_WIDE_LANES, SKCCE_ROW_WIDE_FROM_F32);
    if (lanes.quad)
        SKCCE_CSR_LOAD_F64(&quad, b + lanes.quad_start, SKCCE_ROW_QUAD_FROM_F32);
    if (S0 < NK) single0 = (double)b[S0];
    if (S0 + 1 < NK) single1 = (double)b[S0 + 1];
    if (S0 + 2 < NK) single2 = (double)b[S0 + 2];
    /* The terms of the non-zero p (a macro: the same body for both loops). */
#define SKCCE_CSR_ADD_VECTORS(p) \
    do { \
        const double v = (double)values[p]; \
        const SKCCE_TW* w = wt + (size_t)columns[p] * ldw; \
        const skcce_w_f64 v_wide = SKCCE_BROADCAST_WIDE_f64(v); \
        for (s = 0; s < lanes.wide; s++) { \
            skcce_w_f64 w_wide; \
            SKCCE_CSR_LOAD_F64(&w_wide, w + s * SKCCE_ROW_WIDE_LANES, SKCCE_ROW_WIDE_FROM_F32); \
            wide[s] = SKCCE_ROW_MADD_WIDE(wide[s], v_wide, w_wide); \
        } \
        if (lanes.quad) { \
            skcce_v_f64 w_quad; \
            SKCCE_CSR_LOAD_F64(&w_quad, w + lanes.quad_start, SKCCE_ROW_QUAD_FROM_F32); \
            quad = SKCCE_ROW_MADD_QUAD(quad, SKCCE_BROADCAST_f64(v), w_quad); \
        } \
        if (S0 < NK) single0 = SKCCE_CSR_MADD(single0, v, (double)w[S0]); \
        if (S0 + 1 < NK) single1 = SKCCE_CSR_MADD(single1, v, (double)w[S0 + 1]); \
        if (S0 + 2 < NK) single2 = SKCCE_CSR_MADD(single2, v, (double)w[S0 + 2]); \
    } while (0)
    for (p = 0; p + SKCCE_CSR_AHEAD < readable && p < nnz; p++) {
        skcce_csr_prefetch_row(wt + (size_t)columns[p + SKCCE_CSR_AHEAD] * ldw, row_bytes);
        SKCCE_CSR_ADD_VECTORS(p);
    }
    for (; p < nnz; p++)
        SKCCE_CSR_ADD_VECTORS(p);
#undef SKCCE_CSR_ADD_VECTORS
    for (s = 0; s < lanes.wide; s++)
        memcpy(z + s * SKCCE_ROW_WIDE_LANES, &wide[s], sizeof wide[s]);
    if (lanes.quad)
        memcpy(z + lanes.quad_start, &quad, sizeof quad);
    if (S0 < NK) z[S0] = single0;
    if (S0 + 1 < NK) z[S0 + 1] = single1;
    if (S0 + 2 < NK) z[S0 + 2] = single2;
}

/* skcce_csr_logits for K > SKCCE_CSR_REGISTER_CLASSES where nothing is
 * prefetched: slices of 32, then at most one each of 16, 8 and 4 classes,
 * each slice's sums in registers over the row's non-zeros (where W.T is in
 * the cache, every slice reads it there), and a last slice of 4
 * ending at class K for the last 1-3 classes, which recomputes the rest of
 * it: the same sums, so the same bits. */
SKCCE_INLINE void SKCCE_FN(skcce_csr_logits_sliced)(
    const SKCCE_TX* SKCCE_RESTRICT values, const SKCCE_TI* SKCCE_RESTRICT columns,
    ptrdiff_t nnz, const SKCCE_TW* SKCCE_RESTRICT wt, const SKCCE_TW* SKCCE_RESTRICT b,
    ptrdiff_t K, double* SKCCE_RESTRICT z)
{
    ptrdiff_t k0 = 0;
#define SKCCE_CSR_SLICE(NK, first) \
    SKCCE_FN(skcce_csr_logits_vectors)(values, columns, nnz, 0, wt + (first), b + (first), \
                                       NK, K, z + (first))
    for (; k0 + 32 <= K; k0 += 32)
        SKCCE_CSR_SLICE(32, k0);
    if (k0 + 16 <= K) {
        SKCCE_CSR_SLICE(16, k0);
        k0 += 16;
    }
    if (k0 + 8 <= K) {
        SKCCE_CSR_SLICE(8, k0);
        k0 += 8;
    }
    if (k0 + 4 <= K) {
        SKCCE_CSR_SLICE(4, k0);
        k0 += 4;
    }
    if (k0 < K)
        SKCCE_CSR_SLICE(4, K - 4);
#undef SKCCE_CSR_SLICE
}

/* The loops for NK classes, NK constant (at most SKCCE_CSR_REGISTER_CLASSES),
 * and for any K, as csr_policy.h decides. */
#define SKCCE_CSR_IN_REGISTERS(NK) \
    do { \
        if (skcce_csr_vectors_chosen((NK), sizeof(SKCCE_TW), readable)) \
            SKCCE_FN(skcce_csr_logits_vectors)(values, columns, nnz, readable, wt, b, NK, NK, \
                                               z); \
        else \
            SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, NK, 1, z); \
    } while (0)
#define SKCCE_CSR_ANY_K() \
    do { \
        if (skcce_csr_sliced_chosen(K, readable)) \
            SKCCE_FN(skcce_csr_logits_sliced)(values, columns, nnz, wt, b, K, z); \
        else \
            SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, K, 0, z); \
    } while (0)
#else
/* Only the plain loop exists. */
#define SKCCE_CSR_IN_REGISTERS(NK) \
    SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, NK, 1, z)
#define SKCCE_CSR_ANY_K() \
    SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, K, 0, z)
#endif

void SKCCE_EXPORT(SKCCE_FN(skcce_csr_row_logits))(
    const SKCCE_TX* values, const SKCCE_TI* columns, ptrdiff_t nnz, ptrdiff_t readable,
    const SKCCE_TW* wt, const SKCCE_TW* b, ptrdiff_t K, double* z)
{
#define SKCCE_CASE(NK) case NK: SKCCE_CSR_IN_REGISTERS(NK); break;
    switch (K) {
    SKCCE_CSR_SPECIALIZED_K(SKCCE_CASE)
    default: SKCCE_CSR_ANY_K(); break;
    }
#undef SKCCE_CASE
}
#undef SKCCE_CSR_IN_REGISTERS
#undef SKCCE_CSR_ANY_K

#undef SKCCE_FN
#undef SKCCE_TX
#undef SKCCE_TW
#undef SKCCE_TI
#undef SKCCE_SUFFIX
