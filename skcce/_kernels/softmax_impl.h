/* A chunk's weighted softmax residuals for class labels, in the hot loops'
 * vectors.
 *
 * The same steps as residuals.pxd's softmax_residual_chunk (which takes soft
 * targets and label smoothing too, compiled for the baseline instruction
 * set): here the loops over a row's classes are compiled for the selected
 * set (AVX-512: eight doubles at once instead of two). Every value is the
 * same operation on the same operands, so the results are
 * softmax_residual_chunk's bit for bit:
 *   - the row's maximum skips NaNs after the first logit (from 8 classes on
 *     in eight running maxima: the largest value is the same in any order,
 *     but for the sign of a zero, which changes no result);
 *   - the sum of a row's exps is residuals.pxd's row_sum (eight interleaved
 *     partial sums from 8 classes on);
 *   - exp and log are vector_exp.h's;
 *   - a weighted row loss is rounded before it is added, and the label's
 *     residual is subtracted from the rounded product (products are stored
 *     before the sums that read them, so no fused multiply-add forms).
 *
 * For each row i (weight s, 1 without weights; label y):
 *   m = max_k (z_k + b_k),  S = sum_k exp(z_k + b_k - m),
 *   loss += s * (log(S) - (z_y + b_y - m)),
 *   z_k <- s * exp(z_k + b_k - m) / S - s * [k == y],
 *   grad_intercept_k += that residual (in float64, before z is rounded).
 *
 * Included once per element type by simd_loops.c with
 *   SKCCE_T       the element type of the logits (double or float),
 *   SKCCE_SUFFIX  the suffix of the type's names (f64 or f32),
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)

/* Logit k of a row, in float64, the intercept added when has_b. */
#define SKCCE_SOFTMAX_LOGIT(row, k) \
    (has_b ? (double)(row)[k] + b[k] : (double)(row)[k])

/* The largest logit of a row from the first on, NaNs after it skipped. */
SKCCE_INLINE double SKCCE_FN(skcce_softmax_row_max)(const SKCCE_T* SKCCE_RESTRICT row,
                                                    const double* SKCCE_RESTRICT b,
                                                    ptrdiff_t K, const int has_b)
{
    double m[8];
    ptrdiff_t k = 1;
    if (K < 8) {
        double zmax = SKCCE_SOFTMAX_LOGIT(row, 0);
        for (; k < K; k++) {
            double v = SKCCE_SOFTMAX_LOGIT(row, k);
            zmax = v > zmax ? v : zmax;
        }
        return zmax;
    }
    for (int l = 0; l < 8; l++) m[l] = SKCCE_SOFTMAX_LOGIT(row, 0);
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) {
            double v = SKCCE_SOFTMAX_LOGIT(row, k + l);
            m[l] = v > m[l] ? v : m[l];
        }
    for (; k < K; k++) {
        double v = SKCCE_SOFTMAX_LOGIT(row, k);
        m[0] = v > m[0] ? v : m[0];
    }
    for (int l = 1; l < 8; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
    return m[0];
}

/* residuals.pxd's row_sum: below 8 values the sequential sum, else value k
 * in partial sum k % 8 up to the last whole 8, the rest in the first, the
 * eight added in a fixed order. */
SKCCE_INLINE double SKCCE_FN(skcce_softmax_row_sum)(const double* SKCCE_RESTRICT e,
                                                    ptrdiff_t K)
{
    double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    ptrdiff_t k = 0;
    if (K < 8) {
        for (; k < K; k++) s[0] = s[0] + e[k];
        return s[0];
    }
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) s[l] = s[l] + e[k + l];
    for (; k < K; k++) s[0] = s[0] + e[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* With constant has_b, each use compiles to its own loops. */
SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_loops)(
    SKCCE_T* SKCCE_RESTRICT z, ptrdiff_t ldz, ptrdiff_t n, ptrdiff_t K,
    const double* SKCCE_RESTRICT b, const int32_t* SKCCE_RESTRICT labels,
    const double* SKCCE_RESTRICT sw, double* SKCCE_RESTRICT grad_intercept,
    double* SKCCE_RESTRICT scratch, const int has_b)
{
    /* scratch: the shifted logits, then exps, then residuals (n x K), and
     * per row the label's shifted logit (then the row's loss), the sum of
     * exps (then its log) and s / sum. */
    double* SKCCE_RESTRICT row_loss = scratch + n * K;
    double* SKCCE_RESTRICT log_sum = row_loss + n;
    double* SKCCE_RESTRICT scale = log_sum + n;
    double loss = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const SKCCE_T* row = z + i * ldz;
        double* e = scratch + i * K;
        double zmax = SKCCE_FN(skcce_softmax_row_max)(row, b, K, has_b);
        row_loss[i] = SKCCE_SOFTMAX_LOGIT(row, labels[i]) - zmax;
        for (ptrdiff_t k = 0; k < K; k++) e[k] = SKCCE_SOFTMAX_LOGIT(row, k) - zmax;
    }
    for (ptrdiff_t v = 0; v < n * K; v++) scratch[v] = skcce_exp_nonpositive(scratch[v]);
    for (ptrdiff_t i = 0; i < n; i++) {
        double sum = SKCCE_FN(skcce_softmax_row_sum)(scratch + i * K, K);
        log_sum[i] = sum;
        scale[i] = (sw != NULL ? sw[i] : 1.0) / sum;
    }
    for (ptrdiff_t i = 0; i < n; i++) log_sum[i] = skcce_log_ge1(log_sum[i]);
    for (ptrdiff_t i = 0; i < n; i++) {
        double weight = sw != NULL ? sw[i] : 1.0;
        double* e = scratch + i * K;
        row_loss[i] = weight * (log_sum[i] - row_loss[i]);
        for (ptrdiff_t k = 0; k < K; k++) e[k] = e[k] * scale[i];
        e[labels[i]] = e[labels[i]] - weight;
    }
    for (ptrdiff_t i = 0; i < n; i++) loss = loss + row_loss[i];
    for (ptrdiff_t i = 0; i < n; i++) {
        SKCCE_T* row = z + i * ldz;
        const double* e = scratch + i * K;
        for (ptrdiff_t k = 0; k < K; k++) row[k] = (SKCCE_T)e[k];
        if (grad_intercept != NULL)
            for (ptrdiff_t k = 0; k < K; k++) grad_intercept[k] = grad_intercept[k] + e[k];
    }
    return loss;
}

SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_any_b)(
    SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t n_rows, const ptrdiff_t K, const double* b,
    const int32_t* labels, const double* sw, double* grad_intercept, double* scratch)
{
    if (b != NULL)
        return SKCCE_FN(skcce_softmax_labels_loops)(z, ldz, n_rows, K, b, labels, sw,
                                                    grad_intercept, scratch, 1);
    return SKCCE_FN(skcce_softmax_labels_loops)(z, ldz, n_rows, K, b, labels, sw,
                                                grad_intercept, scratch, 0);
}

/* Fewer than 8 classes: a copy of the loops per K, whose loops over a row's
 * classes the compiler unrolls (a loop of a few values at run time costs
 * more than its work). */
double SKCCE_EXPORT(SKCCE_FN(skcce_softmax_labels))(SKCCE_T* z, ptrdiff_t ldz,
                                                   ptrdiff_t n_rows, ptrdiff_t K,
                                                   const double* b, const int32_t* labels,
                                                   const double* sw, double* grad_intercept,
                                                   double* scratch)
{
#define SKCCE_SOFTMAX_CASE(k)                                                            \
    case k:                                                                              \
        return SKCCE_FN(skcce_softmax_labels_any_b)(z, ldz, n_rows, k, b, labels, sw,    \
                                                    grad_intercept, scratch)
    switch (K) {
    SKCCE_SOFTMAX_CASE(2);
    SKCCE_SOFTMAX_CASE(3);
    SKCCE_SOFTMAX_CASE(4);
    SKCCE_SOFTMAX_CASE(5);
    SKCCE_SOFTMAX_CASE(6);
    SKCCE_SOFTMAX_CASE(7);
    default:
        return SKCCE_FN(skcce_softmax_labels_any_b)(z, ldz, n_rows, K, b, labels, sw,
                                                    grad_intercept, scratch);
    }
#undef SKCCE_SOFTMAX_CASE
}

#undef SKCCE_SOFTMAX_LOGIT
#undef SKCCE_FN
#undef SKCCE_T
#undef SKCCE_SUFFIX
