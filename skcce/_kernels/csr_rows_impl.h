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
    for (; p + SKCCE_CSR_AHEAD < readable && p < nnz; p++) {
        skcce_csr_prefetch_row(wt + (size_t)columns[p + SKCCE_CSR_AHEAD] * NK, row_bytes);
        const double v = (double)values[p];
        const SKCCE_TW* w = wt + (size_t)columns[p] * NK;
        for (k = 0; k < NK; k++)
            acc[k] = SKCCE_CSR_MADD(acc[k], v, (double)w[k]);
    }
    for (; p < nnz; p++) {
        const double v = (double)values[p];
        const SKCCE_TW* w = wt + (size_t)columns[p] * NK;
        for (k = 0; k < NK; k++)
            acc[k] = SKCCE_CSR_MADD(acc[k], v, (double)w[k]);
    }
    if (in_registers)
        for (k = 0; k < NK; k++)
            z[k] = acc[k];
}

void SKCCE_EXPORT(SKCCE_FN(skcce_csr_row_logits))(
    const SKCCE_TX* values, const SKCCE_TI* columns, ptrdiff_t nnz, ptrdiff_t readable,
    const SKCCE_TW* wt, const SKCCE_TW* b, ptrdiff_t K, double* z)
{
#define SKCCE_CASE(NK) case NK: SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, NK, 1, z); break;
    switch (K) {
    SKCCE_CSR_SPECIALIZED_K(SKCCE_CASE)
    default: SKCCE_FN(skcce_csr_logits)(values, columns, nnz, readable, wt, b, K, 0, z); break;
    }
#undef SKCCE_CASE
}

#undef SKCCE_FN
#undef SKCCE_TX
#undef SKCCE_TW
#undef SKCCE_TI
#undef SKCCE_SUFFIX
