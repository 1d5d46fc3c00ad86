/* Prediction's softmax and log-softmax of a chunk's logits, in the hot
 * loops' vectors, and predict's labels (skcce_predict_labels, at the end).
 *
 * For each row of logits z (plus intercepts b, added in the element type):
 *   m = max_k z_k,  s_k = z_k - m,  S = sum_k exp(s_k)  (in class order),
 *   out_k = exp(s_k) * (1 / S),  or  out_k = max(s_k - log(S), lowest)
 * with lowest the element type's most negative finite value. exp is
 * vector_exp.h's, or libm's below -708 (where vector_exp.h gives 0); log is
 * libm's. A probability is within an ulp of exp(s_k) / S (one division per
 * row, not per class).
 *
 * Rows go in blocks of SKCCE_PREDICT_ROWS (simd.h), whose values are kept class by
 * class (scratch[k * SKCCE_PREDICT_ROWS + row]): the loops over a block's
 * rows are then vector operations, for any number of classes, while each
 * row's maximum and sum still run over its classes in order.
 *
 * A row whose logits are not all finite is flagged (nonfinite[i] = 1, else
 * 0) and its output is left as it was: the caller rescales it or reports X.
 *
 * Included once per element type by simd_loops.c with
 *   SKCCE_T       the element type of logits, intercepts and output,
 *   SKCCE_SUFFIX  the suffix of the type's names (f64 or f32),
 *   SKCCE_LOWEST  the type's most negative finite value, as a double,
 * which it undefines at the end. */

#include <math.h>

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)
/* Whether a block's values go through the register vectors' exp. */
#ifndef SKCCE_PREDICT_VECTOR_EXP
#if SKCCE_HAVE_VECTORS
#if SKCCE_PREDICT_ROWS % SKCCE_DLANES == 0
#define SKCCE_PREDICT_VECTOR_EXP 1
#endif
#endif
#endif
#ifndef SKCCE_PREDICT_VECTOR_EXP
#define SKCCE_PREDICT_VECTOR_EXP 0
#endif

/* One block of `rows` rows (<= SKCCE_PREDICT_ROWS; constant in the main
 * loop, so that the compiler vectorizes over the rows). z and out may be the
 * same rows (ldz = K): a block's logits are all read before its first store. */
SKCCE_INLINE void SKCCE_FN(skcce_predict_softmax_block)(
    const SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t K,
    const SKCCE_T* SKCCE_RESTRICT b, int log_mode, SKCCE_T* out,
    unsigned char* SKCCE_RESTRICT nonfinite, double* SKCCE_RESTRICT shifted,
    double* SKCCE_RESTRICT exps, const int rows)
{
    double zmax[SKCCE_PREDICT_ROWS], zmin[SKCCE_PREDICT_ROWS], check[SKCCE_PREDICT_ROWS];
    double total[SKCCE_PREDICT_ROWS];
    int below = 0;
    for (int l = 0; l < rows; l++) check[l] = 0.0;
    for (ptrdiff_t k = 0; k < K; k++)
        for (int l = 0; l < rows; l++) {
            const SKCCE_T logit = z[l * ldz + k] + b[k];
            const double v = (double)logit;
            shifted[k * SKCCE_PREDICT_ROWS + l] = v;
            check[l] = check[l] + (v - v); /* NaN unless finite */
        }
    for (int l = 0; l < rows; l++) zmax[l] = zmin[l] = shifted[l];
    for (ptrdiff_t k = 1; k < K; k++)
        for (int l = 0; l < rows; l++) {
            const double v = shifted[k * SKCCE_PREDICT_ROWS + l];
            zmax[l] = v > zmax[l] ? v : zmax[l];
            zmin[l] = v < zmin[l] ? v : zmin[l];
        }
    /* Rounding is monotonic: some z_k - m is below -708 iff min_k z_k - m is. */
    for (int l = 0; l < rows; l++) below |= zmin[l] - zmax[l] < -708.0;
    for (ptrdiff_t k = 0; k < K; k++)
        for (int l = 0; l < rows; l++)
            shifted[k * SKCCE_PREDICT_ROWS + l] = shifted[k * SKCCE_PREDICT_ROWS + l] - zmax[l];
#if SKCCE_PREDICT_VECTOR_EXP
    /* The register vectors' exp (the same lane by lane): the compilers
     * vectorize the loop below in half-width vectors at most, or not at all
     * (GCC without AVX-512, see skcce_exp_nonpositive_array). */
    if (rows == SKCCE_PREDICT_ROWS) {
        for (ptrdiff_t v = 0; v < K * SKCCE_PREDICT_ROWS; v += SKCCE_DLANES)
            *(skcce_ru_f64*)(exps + v) =
                skcce_exp_nonpositive_v(*(const skcce_ru_f64*)(shifted + v));
    } else
#endif
    {
        for (ptrdiff_t k = 0; k < K; k++)
            for (int l = 0; l < rows; l++)
                exps[k * SKCCE_PREDICT_ROWS + l] =
                    skcce_exp_nonpositive(shifted[k * SKCCE_PREDICT_ROWS + l]);
    }
    if (below)
        for (ptrdiff_t k = 0; k < K; k++)
            for (int l = 0; l < rows; l++) {
                const double s = shifted[k * SKCCE_PREDICT_ROWS + l];
                if (s < -708.0) exps[k * SKCCE_PREDICT_ROWS + l] = exp(s);
            }
    for (int l = 0; l < rows; l++) total[l] = 0.0;
    for (ptrdiff_t k = 0; k < K; k++)
        for (int l = 0; l < rows; l++)
            total[l] = total[l] + exps[k * SKCCE_PREDICT_ROWS + l];
    /* The results over the block's rows first, in vectors, then each row's
     * stores. */
    if (log_mode) {
        double log_total[SKCCE_PREDICT_ROWS];
        for (int l = 0; l < rows; l++) log_total[l] = log(total[l]);
        for (ptrdiff_t k = 0; k < K; k++)
            for (int l = 0; l < rows; l++) {
                const double t = shifted[k * SKCCE_PREDICT_ROWS + l] - log_total[l];
                exps[k * SKCCE_PREDICT_ROWS + l] = t > SKCCE_LOWEST ? t : SKCCE_LOWEST;
            }
    } else {
        double inverse[SKCCE_PREDICT_ROWS];
        for (int l = 0; l < rows; l++) inverse[l] = 1.0 / total[l];
        for (ptrdiff_t k = 0; k < K; k++)
            for (int l = 0; l < rows; l++)
                exps[k * SKCCE_PREDICT_ROWS + l] = exps[k * SKCCE_PREDICT_ROWS + l] * inverse[l];
    }
    for (int l = 0; l < rows; l++) {
        SKCCE_T* SKCCE_RESTRICT row = out + l * K;
        nonfinite[l] = check[l] != 0.0;
        if (nonfinite[l])
            continue;
        for (ptrdiff_t k = 0; k < K; k++)
            row[k] = (SKCCE_T)exps[k * SKCCE_PREDICT_ROWS + l];
    }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_predict_softmax))(
    const SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K, const SKCCE_T* b,
    int log_mode, SKCCE_T* out, unsigned char* nonfinite, double* scratch)
{
    double* shifted = scratch;
    double* exps = scratch + SKCCE_PREDICT_ROWS * K;
    ptrdiff_t i = 0;
    for (; i + SKCCE_PREDICT_ROWS <= n_rows; i += SKCCE_PREDICT_ROWS)
        SKCCE_FN(skcce_predict_softmax_block)(z + i * ldz, ldz, K, b, log_mode, out + i * K,
                                              nonfinite + i, shifted, exps,
                                              SKCCE_PREDICT_ROWS);
    if (i < n_rows)
        SKCCE_FN(skcce_predict_softmax_block)(z + i * ldz, ldz, K, b, log_mode, out + i * K,
                                              nonfinite + i, shifted, exps,
                                              (int)(n_rows - i));
}

#if SKCCE_ROW_ARGMAX_VECTORS
#include "vector_argmax_impl.h"
#endif

/* predict's class index of each row of logits z (row stride ldz) plus
 * intercepts b whose logits are all finite: the first largest (NumPy's
 * argmax without NaN), or logit > 0 for K = 1. Rows whose logits are not
 * all finite are flagged (nonfinite[i] = 1, else 0) and their label left as
 * it was. With AVX-512 and at least SKCCE_ROW_ARGMAX_MIN_CLASSES classes,
 * row by row over the classes in vectors (vector_argmax.h); otherwise eight
 * rows at a time, so that their comparisons run side by side rather than
 * one dependent chain per row. */
void SKCCE_EXPORT(SKCCE_FN(skcce_predict_labels))(
    const SKCCE_T* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K, const SKCCE_T* b,
    ptrdiff_t* labels, unsigned char* nonfinite)
{
#if SKCCE_ROW_ARGMAX_VECTORS
    if (K >= SKCCE_ROW_ARGMAX_MIN_CLASSES) {
        for (ptrdiff_t i = 0; i < n_rows; i++) {
            const ptrdiff_t pick = SKCCE_FN(skcce_row_argmax)(z + i * ldz, b, K);
            nonfinite[i] = pick < 0;
            if (pick >= 0)
                labels[i] = pick;
        }
        return;
    }
#endif
    for (ptrdiff_t i = 0; i < n_rows; i += SKCCE_PREDICT_ROWS) {
        const int rows = n_rows - i < SKCCE_PREDICT_ROWS ? (int)(n_rows - i)
                                                         : SKCCE_PREDICT_ROWS;
        const SKCCE_T* block = z + i * ldz;
        SKCCE_T best[SKCCE_PREDICT_ROWS];
        ptrdiff_t pick[SKCCE_PREDICT_ROWS];
        double check[SKCCE_PREDICT_ROWS];
        for (int l = 0; l < rows; l++) {
            const SKCCE_T v = block[l * ldz] + b[0];
            best[l] = v;
            pick[l] = 0;
            check[l] = (double)v - (double)v; /* NaN unless finite */
        }
        for (ptrdiff_t k = 1; k < K; k++)
            for (int l = 0; l < rows; l++) {
                const SKCCE_T v = block[l * ldz + k] + b[k];
                const int larger = v > best[l];
                check[l] = check[l] + ((double)v - (double)v);
                best[l] = larger ? v : best[l];
                pick[l] = larger ? k : pick[l];
            }
        for (int l = 0; l < rows; l++) {
            nonfinite[i + l] = check[l] != 0.0;
            if (check[l] == 0.0)
                labels[i + l] = K == 1 ? (ptrdiff_t)(best[l] > 0) : pick[l];
        }
    }
}

#undef SKCCE_FN
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_LOWEST
