/* skcce_row_argmax_SUFFIX (see vector_argmax.h): the first class of the
 * largest of row[k] + b[k] for k < K, or -1 if one of them is not finite.
 * Included by predict_softmax_impl.h, per element type, where
 * SKCCE_ROW_ARGMAX_VECTORS, with its SKCCE_T, SKCCE_SUFFIX and SKCCE_FN. */

#define SKCCE_ARGMAX_VEC SKCCE_TYPED(skcce_argmax_vec, SKCCE_SUFFIX)
#define SKCCE_ARGMAX_L SKCCE_TYPED(SKCCE_ARGMAX_LANES, SKCCE_SUFFIX)
#define SKCCE_ARGMAX(op) SKCCE_TYPED(SKCCE_ARGMAX_OP, SKCCE_SUFFIX)(op)
#define SKCCE_ARGMAX_CMP SKCCE_TYPED(SKCCE_ARGMAX_MASKED_CMP, SKCCE_SUFFIX)
/* The sums of the classes k to k + L - 1 that mask m selects (0 elsewhere;
 * the loads do not touch the classes past K). */
#define SKCCE_ARGMAX_SUMS(m, k) \
    SKCCE_ARGMAX(add)(SKCCE_ARGMAX(maskz_loadu)((m), row + (k)), \
                      SKCCE_ARGMAX(maskz_loadu)((m), b + (k)))

SKCCE_INLINE ptrdiff_t SKCCE_FN(skcce_row_argmax)(const SKCCE_T* row, const SKCCE_T* b,
                                                  ptrdiff_t K)
{
    SKCCE_ARGMAX_VEC top = SKCCE_ARGMAX(set1)(-(SKCCE_T)HUGE_VAL);
    unsigned bad = 0;
    ptrdiff_t k;
    for (k = 0; k < K; k += SKCCE_ARGMAX_L) {
        const unsigned m = SKCCE_ARGMAX_MASK(K, k, SKCCE_ARGMAX_L);
        const SKCCE_ARGMAX_VEC v = SKCCE_ARGMAX_SUMS(m, k);
        /* v - v is NaN for an infinity or a NaN, else 0. */
        bad |= SKCCE_ARGMAX_CMP(m, SKCCE_ARGMAX(sub)(v, v), SKCCE_ARGMAX(setzero)(), _CMP_NEQ_UQ);
        top = SKCCE_ARGMAX(mask_max)(top, m, top, v);
    }
    if (bad)
        return -1;
    top = SKCCE_FN(skcce_argmax_top)(top);
    /* The classes equal to it, 64 at a time: up to 64 classes, no branch
     * depends on where the maximum lies. */
    for (k = 0;; k += 64) {
        unsigned long long equal = 0;
        for (ptrdiff_t j = 0; j < 64 && k + j < K; j += SKCCE_ARGMAX_L) {
            const unsigned m = SKCCE_ARGMAX_MASK(K, k + j, SKCCE_ARGMAX_L);
            const SKCCE_ARGMAX_VEC v = SKCCE_ARGMAX_SUMS(m, k + j);
            equal |= (unsigned long long)SKCCE_ARGMAX_CMP(m, v, top, _CMP_EQ_OQ) << j;
        }
        if (equal)
            return k + skcce_lowest_set_bit(equal);
    }
}

#undef SKCCE_ARGMAX_VEC
#undef SKCCE_ARGMAX_L
#undef SKCCE_ARGMAX
#undef SKCCE_ARGMAX_CMP
#undef SKCCE_ARGMAX_SUMS
