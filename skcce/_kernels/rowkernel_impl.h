/* Products for a chunk of rows with few classes and many features, vectorized
 * over features (the micro-kernels of microkernel_impl.h vectorize over
 * classes, which wastes most lanes when K is far below the vector width:
 * K = 2 uses 2 of 8 float lanes).
 *
 *   logits:   Z[i, k]  = X[i, :] . W[k, :]                 (Z row stride ldz)
 *   gradient: G[k, :] += sum_i R[i, k] * X[i, :]           (G in float64, K x d)
 *
 * W is class-major (K x d, the coefficient matrix itself), so both products
 * read X, W and G along contiguous features. Every output entry is the same
 * sum for every call (lanes in a fixed order, then the tail), so results do
 * not depend on threads. float32 data sums a tile's rows in float32 registers
 * and adds them to the float64 G (at most SKCCE_ROWS_GRAD_RB rows at a time).
 *
 * Included once per element type by simd_loops.c, after microkernel.h, with
 *   SKCCE_T       the element type of X, W, Z and R (double or float),
 *   SKCCE_SUFFIX  the suffix of the type's names (f64 or f32),
 *   SKCCE_FLOAT64 1 for double, 0 for float,
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)
#define SKCCE_V SKCCE_FN(skcce_v)
#define SKCCE_VU SKCCE_FN(skcce_vu)
#define SKCCE_NLANES SKCCE_FN(SKCCE_LANES)
#define SKCCE_SPLAT SKCCE_FN(SKCCE_BROADCAST)

/* Rows and classes per logits tile (RB x KB accumulators), rows per gradient
 * tile: within 16 vector registers. */
#define SKCCE_ROWS_LOGITS_RB 2
#define SKCCE_ROWS_LOGITS_KB 4
#define SKCCE_ROWS_GRAD_RB 8

#if SKCCE_HAVE_VECTORS

/* Sum of a vector's lanes, first to last (by pointer: a 32-byte vector
 * argument has no stable ABI without AVX). */
SKCCE_INLINE SKCCE_T SKCCE_FN(skcce_lane_sum)(const SKCCE_V* v)
{
    SKCCE_T s = (*v)[0];
    for (int l = 1; l < SKCCE_NLANES; l++) s += (*v)[l];
    return s;
}

/* Logits of RB rows for KB classes. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_logits_tile)(const SKCCE_T* X, ptrdiff_t d,
                                                   const SKCCE_T* W, SKCCE_T* Z,
                                                   ptrdiff_t ldz, const int RB, const int KB)
{
    SKCCE_V acc[SKCCE_ROWS_LOGITS_RB][SKCCE_ROWS_LOGITS_KB];
    ptrdiff_t j = 0;
    for (int r = 0; r < RB; r++)
        for (int k = 0; k < KB; k++) acc[r][k] = SKCCE_SPLAT(0);
    for (; j + SKCCE_NLANES <= d; j += SKCCE_NLANES) {
        SKCCE_V x[SKCCE_ROWS_LOGITS_RB];
        for (int r = 0; r < RB; r++) x[r] = *(const SKCCE_VU*)(X + r * d + j);
        for (int k = 0; k < KB; k++) {
            SKCCE_V w = *(const SKCCE_VU*)(W + k * d + j);
            for (int r = 0; r < RB; r++) acc[r][k] += x[r] * w;
        }
    }
    for (int r = 0; r < RB; r++)
        for (int k = 0; k < KB; k++) {
            SKCCE_T s = SKCCE_FN(skcce_lane_sum)(&acc[r][k]);
            for (ptrdiff_t jj = j; jj < d; jj++) s += X[r * d + jj] * W[k * d + jj];
            Z[r * ldz + k] = s;
        }
}

/* Logits of RB rows for all K classes, KB at a time (the switch makes KB a
 * compile-time constant in each inlined copy). */
SKCCE_INLINE void SKCCE_FN(skcce_rows_logits_rows)(const SKCCE_T* X, ptrdiff_t d,
                                                   const SKCCE_T* W, ptrdiff_t K,
                                                   SKCCE_T* Z, ptrdiff_t ldz, const int RB)
{
    for (ptrdiff_t k0 = 0; k0 < K; k0 += SKCCE_ROWS_LOGITS_KB) {
        const SKCCE_T* w = W + k0 * d;
        switch (K - k0) {
        case 1: SKCCE_FN(skcce_rows_logits_tile)(X, d, w, Z + k0, ldz, RB, 1); break;
        case 2: SKCCE_FN(skcce_rows_logits_tile)(X, d, w, Z + k0, ldz, RB, 2); break;
        case 3: SKCCE_FN(skcce_rows_logits_tile)(X, d, w, Z + k0, ldz, RB, 3); break;
        default: SKCCE_FN(skcce_rows_logits_tile)(X, d, w, Z + k0, ldz, RB, 4); break;
        }
    }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              const SKCCE_T* W, ptrdiff_t K, SKCCE_T* Z,
                                              ptrdiff_t ldz)
{
    ptrdiff_t i = 0;
    for (; i + SKCCE_ROWS_LOGITS_RB <= m; i += SKCCE_ROWS_LOGITS_RB)
        SKCCE_FN(skcce_rows_logits_rows)(X + i * d, d, W, K, Z + i * ldz, ldz,
                                         SKCCE_ROWS_LOGITS_RB);
    for (; i < m; i++)
        SKCCE_FN(skcce_rows_logits_rows)(X + i * d, d, W, K, Z + i * ldz, ldz, 1);
}

/* G[k, :] += sum over RB rows of R[r, k] * X[r, :], for every class. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_grad_tile)(const SKCCE_T* X, ptrdiff_t d,
                                                 const SKCCE_T* R, ptrdiff_t ldr, ptrdiff_t K,
                                                 double* G, const int RB)
{
    ptrdiff_t j = 0;
    for (; j + SKCCE_NLANES <= d; j += SKCCE_NLANES) {
        SKCCE_V x[SKCCE_ROWS_GRAD_RB];
        for (int r = 0; r < RB; r++) x[r] = *(const SKCCE_VU*)(X + r * d + j);
        for (ptrdiff_t k = 0; k < K; k++) {
            SKCCE_V acc = x[0] * SKCCE_SPLAT(R[k]);
            for (int r = 1; r < RB; r++) acc += x[r] * SKCCE_SPLAT(R[r * ldr + k]);
            double* g = G + k * d + j;
#if SKCCE_FLOAT64
            *(skcce_vu_f64*)g = *(const skcce_vu_f64*)g + acc;
#else
            skcce_half_f32 half[2];
            memcpy(half, &acc, sizeof half);
            for (int h = 0; h < 2; h++)
                *(skcce_vu_f64*)(g + 4 * h) = *(const skcce_vu_f64*)(g + 4 * h)
                                              + __builtin_convertvector(half[h], skcce_v_f64);
#endif
        }
    }
    for (; j < d; j++)
        for (ptrdiff_t k = 0; k < K; k++) {
            SKCCE_T acc = X[j] * R[k];
            for (int r = 1; r < RB; r++) acc += X[r * d + j] * R[r * ldr + k];
            G[k * d + j] += (double)acc;
        }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t ldr, ptrdiff_t K,
                                            double* G)
{
    ptrdiff_t i = 0;
    for (; i + SKCCE_ROWS_GRAD_RB <= m; i += SKCCE_ROWS_GRAD_RB)
        SKCCE_FN(skcce_rows_grad_tile)(X + i * d, d, R + i * ldr, ldr, K, G,
                                       SKCCE_ROWS_GRAD_RB);
    for (; i < m; i++)
        SKCCE_FN(skcce_rows_grad_tile)(X + i * d, d, R + i * ldr, ldr, K, G, 1);
}

#else /* plain loops: the same sums, rounded in their own order */

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              const SKCCE_T* W, ptrdiff_t K, SKCCE_T* Z,
                                              ptrdiff_t ldz)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < K; k++) {
            SKCCE_T acc = 0;
            for (ptrdiff_t j = 0; j < d; j++) acc += X[i * d + j] * W[k * d + j];
            Z[i * ldz + k] = acc;
        }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t ldr, ptrdiff_t K,
                                            double* G)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < K; k++) {
            double r = (double)R[i * ldr + k];
            for (ptrdiff_t j = 0; j < d; j++) G[k * d + j] += r * (double)X[i * d + j];
        }
}

#endif

#undef SKCCE_ROWS_LOGITS_RB
#undef SKCCE_ROWS_LOGITS_KB
#undef SKCCE_ROWS_GRAD_RB
#undef SKCCE_FN
#undef SKCCE_V
#undef SKCCE_VU
#undef SKCCE_NLANES
#undef SKCCE_SPLAT
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_FLOAT64
