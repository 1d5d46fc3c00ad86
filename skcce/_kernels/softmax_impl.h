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
 *   - exp and log are vector_exp.h's (exp in its vector version, the same
 *     lane by lane, with fewer than 8 classes, and from 8 on where the
 *     register vectors are 16 or 32 bytes: skcce_exp_nonpositive_array);
 *   - a weighted row loss is rounded before it is added, and the label's
 *     residual is subtracted from the rounded product: the compilers
 *     (which may fuse multiply-adds in this file) keep the product because
 *     the other classes' residuals are that product itself (the tests of
 *     one-hot targets against labels would catch a fused one).
 * Bit for bit means NaN payloads and signs aside. Labels must lie in
 * [0, K) (the estimator encodes them).
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

/* g[k] += e[i * K + k] for the rows i from `first` to n - 1 in order, for
 * each of the K classes. */
SKCCE_INLINE void SKCCE_FN(skcce_softmax_column_sums_rows)(double* SKCCE_RESTRICT g,
                                                           const double* SKCCE_RESTRICT e,
                                                           ptrdiff_t first, ptrdiff_t n,
                                                           ptrdiff_t K)
{
    for (ptrdiff_t i = first; i < n; i++)
        for (ptrdiff_t k = 0; k < K; k++) g[k] = g[k] + e[i * K + k];
}

/* The same over all n rows with each class's running sum in a vector lane,
 * instead of stored and reloaded for each row (a chain through memory of
 * about 10 cycles a row: a fifth of the softmax at 20 features and 10
 * classes, perf): the same additions in the same order. nv vectors (1 to
 * SKCCE_SOFTMAX_SUM_VECTORS) span the K classes; where they span more than
 * K, each row's last vector reads into the next row (lanes never copied to
 * g), and the last row, which has none after it, takes the scalar loop. */
#if SKCCE_REG_BYTES == 16
#define SKCCE_SOFTMAX_SUM_VECTORS 8 /* of 16 registers: up to 16 classes */
#else
#define SKCCE_SOFTMAX_SUM_VECTORS 4
#endif
#if SKCCE_HAVE_VECTORS
SKCCE_INLINE void SKCCE_FN(skcce_softmax_column_sums_nv)(double* SKCCE_RESTRICT g,
                                                         const double* SKCCE_RESTRICT e,
                                                         ptrdiff_t n, ptrdiff_t K, const int nv)
{
    double lanes[SKCCE_SOFTMAX_SUM_VECTORS * SKCCE_DLANES];
    skcce_r_f64 acc[SKCCE_SOFTMAX_SUM_VECTORS];
    ptrdiff_t vector_rows = nv * SKCCE_DLANES > K ? n - 1 : n;
    for (int l = 0; l < nv * SKCCE_DLANES; l++) lanes[l] = l < K ? g[l] : 0.0;
    for (int v = 0; v < nv; v++) acc[v] = *(const skcce_ru_f64*)(lanes + v * SKCCE_DLANES);
    for (ptrdiff_t i = 0; i < vector_rows; i++)
        for (int v = 0; v < nv; v++)
            acc[v] = acc[v] + *(const skcce_ru_f64*)(e + i * K + v * SKCCE_DLANES);
    for (int v = 0; v < nv; v++) *(skcce_ru_f64*)(lanes + v * SKCCE_DLANES) = acc[v];
    for (ptrdiff_t k = 0; k < K; k++) g[k] = lanes[k];
    SKCCE_FN(skcce_softmax_column_sums_rows)(g, e, vector_rows > 0 ? vector_rows : 0, n, K);
}
#endif

/* skcce_softmax_column_sums_nv for up to SKCCE_SOFTMAX_SUM_VECTORS vectors of
 * classes (one case each), the row-by-row loop for more. */
SKCCE_INLINE void SKCCE_FN(skcce_softmax_column_sums)(double* SKCCE_RESTRICT g,
                                                      const double* SKCCE_RESTRICT e,
                                                      ptrdiff_t n, ptrdiff_t K)
{
#if SKCCE_HAVE_VECTORS
#if SKCCE_SOFTMAX_SUM_VECTORS != 4 && SKCCE_SOFTMAX_SUM_VECTORS != 8
#error "skcce_softmax_column_sums has one case per vector count up to 4 or 8"
#endif
    switch ((K + SKCCE_DLANES - 1) / SKCCE_DLANES) {
    case 1: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 1); return;
    case 2: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 2); return;
    case 3: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 3); return;
    case 4: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 4); return;
#if SKCCE_SOFTMAX_SUM_VECTORS == 8
    case 5: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 5); return;
    case 6: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 6); return;
    case 7: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 7); return;
    case 8: SKCCE_FN(skcce_softmax_column_sums_nv)(g, e, n, K, 8); return;
#endif
    default: break;
    }
#endif
    SKCCE_FN(skcce_softmax_column_sums_rows)(g, e, 0, n, K);
}

/* With constant has_b, each use compiles to its own loops; the loss is summed
 * on from `loss`. */
SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_loops)(
    SKCCE_T* SKCCE_RESTRICT z, ptrdiff_t ldz, ptrdiff_t n, ptrdiff_t K,
    const double* SKCCE_RESTRICT b, const int32_t* SKCCE_RESTRICT labels,
    const double* SKCCE_RESTRICT sw, double* SKCCE_RESTRICT grad_intercept,
    double* SKCCE_RESTRICT scratch, double loss, const int has_b)
{
    /* scratch: the shifted logits, then exps, then residuals (n x K), and
     * per row the label's shifted logit (then the row's loss), the sum of
     * exps (then its log) and s / sum. */
    double* SKCCE_RESTRICT row_loss = scratch + n * K;
    double* SKCCE_RESTRICT log_sum = row_loss + n;
    double* SKCCE_RESTRICT scale = log_sum + n;
    for (ptrdiff_t i = 0; i < n; i++) {
        const SKCCE_T* row = z + i * ldz;
        double* e = scratch + i * K;
        double zmax = SKCCE_FN(skcce_softmax_row_max)(row, b, K, has_b);
        row_loss[i] = SKCCE_SOFTMAX_LOGIT(row, labels[i]) - zmax;
        for (ptrdiff_t k = 0; k < K; k++) e[k] = SKCCE_SOFTMAX_LOGIT(row, k) - zmax;
    }
    skcce_exp_nonpositive_array(scratch, n * K);
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
    }
    if (grad_intercept != NULL)
        SKCCE_FN(skcce_softmax_column_sums)(grad_intercept, scratch, n, K);
    return loss;
}

/* Steps 2 to 4 of skcce_softmax_labels_few_block for one row (i) of the
 * block's class-major values e (row stride n), the label's shifted logit
 * stored in row_loss[i] and the sum of exps in log_sum[i]: the rows a vector
 * does not fill. */
SKCCE_INLINE void SKCCE_FN(skcce_softmax_labels_row)(double* SKCCE_RESTRICT e, ptrdiff_t n,
                                                     ptrdiff_t i, const ptrdiff_t K,
                                                     int32_t label, double weight,
                                                     double* SKCCE_RESTRICT row_loss,
                                                     double* SKCCE_RESTRICT log_sum)
{
    double v[8];
    for (ptrdiff_t k = 0; k < K; k++) v[k] = e[k * n + i];
    double zmax = v[0];
    for (ptrdiff_t k = 1; k < K; k++) zmax = v[k] > zmax ? v[k] : zmax;
    double label_logit = v[0];
    for (ptrdiff_t k = 1; k < K; k++) label_logit = label == k ? v[k] : label_logit;
    label_logit = label_logit - zmax;
    for (ptrdiff_t k = 0; k < K; k++) v[k] = skcce_exp_nonpositive(v[k] - zmax);
    double sum = 0.0 + v[0];
    for (ptrdiff_t k = 1; k < K; k++) sum = sum + v[k];
    double scale = weight / sum;
    row_loss[i] = label_logit;
    log_sum[i] = sum;
    for (ptrdiff_t k = 0; k < K; k++) {
        double r = v[k] * scale;
        e[k * n + i] = label == k ? r - weight : r;
    }
}

/* The same steps for fewer than 8 classes (K a compile-time constant), for a
 * block of n rows whose values fit the L1 cache:
 *   1. the logits (plus intercepts) into scratch, class by class (e[k * n + i]);
 *   2.-4. per row: maximum, label's logit, exps, sum and residuals, in
 *      vectors of rows (across a row's few classes, each step would be a
 *      handful of scalar operations), in place in e;
 *   5. the logs of the sums (the scalar log, see vector_exp.h) and the
 *      rows' losses;
 *   6. the residuals back in place of the logits, and the loss and the
 *      intercepts' gradient (g, K values, NULL for none) summed on from
 *      `loss` and g in row order.
 * Every value is the same operation on the same operands as in
 * skcce_softmax_labels_loops (the vector exp is the scalar one lane by
 * lane), so the results are its own bit for bit. */
SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_few_block)(
    SKCCE_T* SKCCE_RESTRICT z, ptrdiff_t ldz, ptrdiff_t n, const ptrdiff_t K,
    const double* SKCCE_RESTRICT b, const int32_t* SKCCE_RESTRICT labels,
    const double* SKCCE_RESTRICT sw, double loss, double* SKCCE_RESTRICT g,
    double* SKCCE_RESTRICT scratch, const int has_b, const int has_sw)
{
    double* SKCCE_RESTRICT e = scratch;
    double* SKCCE_RESTRICT row_loss = scratch + n * K;
    double* SKCCE_RESTRICT log_sum = row_loss + n;
    /* Row by row: a column at a time would touch a cache line per value. */
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t k = 0; k < K; k++) e[k * n + i] = SKCCE_SOFTMAX_LOGIT(z + i * ldz, k);
    ptrdiff_t i = 0;
#if SKCCE_HAVE_VECTORS
    for (; i + SKCCE_DLANES <= n; i += SKCCE_DLANES) {
        skcce_r_f64 v[8];
        for (ptrdiff_t k = 0; k < K; k++) v[k] = *(const skcce_ru_f64*)(e + k * n + i);
        skcce_ri_f64 label;
        for (int l = 0; l < SKCCE_DLANES; l++) label[l] = labels[i + l];
        skcce_r_f64 zmax = v[0];
        for (ptrdiff_t k = 1; k < K; k++) zmax = skcce_vselect(v[k] > zmax, v[k], zmax);
        skcce_r_f64 label_logit = v[0];
        for (ptrdiff_t k = 1; k < K; k++)
            label_logit = skcce_vselect(label == k, v[k], label_logit);
        label_logit = label_logit - zmax;
        for (ptrdiff_t k = 0; k < K; k++) v[k] = skcce_exp_nonpositive_v(v[k] - zmax);
        skcce_r_f64 sum = 0.0 + v[0];
        for (ptrdiff_t k = 1; k < K; k++) sum = sum + v[k];
        skcce_r_f64 weight =
            has_sw ? *(const skcce_ru_f64*)(sw + i) : SKCCE_BROADCAST_REG_f64(1.0);
        skcce_r_f64 scale = weight / sum;
        *(skcce_ru_f64*)(row_loss + i) = label_logit;
        *(skcce_ru_f64*)(log_sum + i) = sum;
        for (ptrdiff_t k = 0; k < K; k++) {
            skcce_r_f64 r = v[k] * scale;
            *(skcce_ru_f64*)(e + k * n + i) = skcce_vselect(label == k, r - weight, r);
        }
    }
#endif
    for (; i < n; i++)
        SKCCE_FN(skcce_softmax_labels_row)(e, n, i, K, labels[i], has_sw ? sw[i] : 1.0,
                                           row_loss, log_sum);
    /* The logs of the sums with the scalar function (one loop, as in
     * skcce_softmax_labels_loops), then the rows' losses. */
    for (ptrdiff_t i = 0; i < n; i++) log_sum[i] = skcce_log_ge1(log_sum[i]);
    for (ptrdiff_t i = 0; i < n; i++) {
        double weight = has_sw ? sw[i] : 1.0;
        row_loss[i] = weight * (log_sum[i] - row_loss[i]);
    }
    /* The K + 1 chains of additions side by side, and beside the stores. */
    if (g != NULL) {
        double gk[8];
        for (ptrdiff_t k = 0; k < K; k++) gk[k] = g[k];
        for (ptrdiff_t i = 0; i < n; i++) {
            loss = loss + row_loss[i];
            for (ptrdiff_t k = 0; k < K; k++) {
                z[i * ldz + k] = (SKCCE_T)e[k * n + i];
                gk[k] = gk[k] + e[k * n + i];
            }
        }
        for (ptrdiff_t k = 0; k < K; k++) g[k] = gk[k];
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            loss = loss + row_loss[i];
            for (ptrdiff_t k = 0; k < K; k++) z[i * ldz + k] = (SKCCE_T)e[k * n + i];
        }
    }
    return loss;
}

/* skcce_softmax_labels_few_block over blocks of SKCCE_SOFTMAX_BLOCK_ROWS
 * rows: a block's values stay in the L1 cache across the steps (a chunk's
 * 2,048 rows of 5 classes at once made them L2-bound). */
#ifndef SKCCE_SOFTMAX_BLOCK_ROWS
#define SKCCE_SOFTMAX_BLOCK_ROWS 256
#endif
SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_few)(
    SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t n, const ptrdiff_t K, const double* b,
    const int32_t* labels, const double* sw, double* grad_intercept, double* scratch,
    const int has_b)
{
    double loss = 0.0;
    for (ptrdiff_t r0 = 0; r0 < n; r0 += SKCCE_SOFTMAX_BLOCK_ROWS) {
        ptrdiff_t rows = n - r0 < SKCCE_SOFTMAX_BLOCK_ROWS ? n - r0 : SKCCE_SOFTMAX_BLOCK_ROWS;
        if (sw != NULL)
            loss = SKCCE_FN(skcce_softmax_labels_few_block)(
                z + r0 * ldz, ldz, rows, K, b, labels + r0, sw + r0, loss, grad_intercept,
                scratch, has_b, 1);
        else
            loss = SKCCE_FN(skcce_softmax_labels_few_block)(
                z + r0 * ldz, ldz, rows, K, b, labels + r0, NULL, loss, grad_intercept,
                scratch, has_b, 0);
    }
    return loss;
}

/* skcce_softmax_labels_loops over blocks of about SKCCE_SOFTMAX_BLOCK_VALUES
 * logits (at least a row): the block's scratch stays in the L1 cache across
 * the loops' passes (a chunk's whole, 2,048 rows of 20 classes, made them
 * L2-bound). The loss is summed on from block to block, so the results are
 * the same bit for bit. */
#ifndef SKCCE_SOFTMAX_BLOCK_VALUES
#define SKCCE_SOFTMAX_BLOCK_VALUES 2048
#endif
SKCCE_INLINE double SKCCE_FN(skcce_softmax_labels_any_b)(
    SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t n_rows, const ptrdiff_t K, const double* b,
    const int32_t* labels, const double* sw, double* grad_intercept, double* scratch)
{
    const ptrdiff_t block = K < SKCCE_SOFTMAX_BLOCK_VALUES ? SKCCE_SOFTMAX_BLOCK_VALUES / K : 1;
    double loss = 0.0;
    for (ptrdiff_t r0 = 0; r0 < n_rows; r0 += block) {
        ptrdiff_t rows = n_rows - r0 < block ? n_rows - r0 : block;
        const double* sw_block = sw != NULL ? sw + r0 : NULL;
        if (b != NULL)
            loss = SKCCE_FN(skcce_softmax_labels_loops)(z + r0 * ldz, ldz, rows, K, b,
                                                        labels + r0, sw_block,
                                                        grad_intercept, scratch, loss, 1);
        else
            loss = SKCCE_FN(skcce_softmax_labels_loops)(z + r0 * ldz, ldz, rows, K, b,
                                                        labels + r0, sw_block,
                                                        grad_intercept, scratch, loss, 0);
    }
    return loss;
}

/* Fewer than 8 classes: skcce_softmax_labels_few, a copy per K (whose loops
 * over a row's classes the compiler unrolls); more: the row-by-row loops. */
double SKCCE_EXPORT(SKCCE_FN(skcce_softmax_labels))(SKCCE_T* z, ptrdiff_t ldz,
                                                   ptrdiff_t n_rows, ptrdiff_t K,
                                                   const double* b, const int32_t* labels,
                                                   const double* sw, double* grad_intercept,
                                                   double* scratch)
{
#define SKCCE_SOFTMAX_CASE(k)                                                            \
    case k:                                                                              \
        return b != NULL ? SKCCE_FN(skcce_softmax_labels_few)(z, ldz, n_rows, k, b, labels, \
                                                              sw, grad_intercept, scratch, 1) \
                         : SKCCE_FN(skcce_softmax_labels_few)(z, ldz, n_rows, k, b, labels, \
                                                              sw, grad_intercept, scratch, 0)
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
