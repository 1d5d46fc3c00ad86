/* The micro-kernels of microkernel.h for one element type. Included once per
 * type by simd_loops.c (no include guard), after microkernel.h, with
 *   SKCCE_T       the element type of X, Wt, Z and R (double or float),
 *   SKCCE_SUFFIX  the suffix of the type's names (f64 or f32),
 *   SKCCE_FLOAT64 1 for double, 0 for float,
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)
/* The type's vectors (aligned, unaligned), lanes and broadcast. */
#define SKCCE_V SKCCE_FN(skcce_v)
#define SKCCE_VU SKCCE_FN(skcce_vu)
#define SKCCE_NLANES SKCCE_FN(SKCCE_LANES)
#define SKCCE_SPLAT SKCCE_FN(SKCCE_BROADCAST)

#if SKCCE_HAVE_VECTORS

/* Logits of RB rows for NV vectors of classes. */
SKCCE_INLINE void SKCCE_FN(skcce_logits_tile)(const SKCCE_T* X, ptrdiff_t d,
                                              const SKCCE_T* Wt, ptrdiff_t Kp,
                                              SKCCE_T* Z, const int RB, const int NV)
{
    SKCCE_V acc[SKCCE_RB][SKCCE_MAX_NV];
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = SKCCE_SPLAT(0);
    for (ptrdiff_t j = 0; j < d; j++) {
        SKCCE_V w[SKCCE_MAX_NV];
        for (int v = 0; v < NV; v++) w[v] = *(const SKCCE_VU*)(Wt + j * Kp + SKCCE_NLANES * v);
        for (int r = 0; r < RB; r++) {
            SKCCE_V x = SKCCE_SPLAT(X[r * d + j]);
            for (int v = 0; v < NV; v++) acc[r][v] += x * w[v];
        }
    }
    for (int r = 0; r < RB; r++)
        for (int v = 0; v < NV; v++) *(SKCCE_VU*)(Z + r * Kp + SKCCE_NLANES * v) = acc[r][v];
}

/* Logits of all m rows for NV vectors of classes, RB rows at a time. */
SKCCE_INLINE void SKCCE_FN(skcce_logits_cols)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              const SKCCE_T* Wt, ptrdiff_t Kp, SKCCE_T* Z,
                                              const int NV)
{
    ptrdiff_t i = 0;
    for (; i + SKCCE_RB <= m; i += SKCCE_RB) {
        /* The logits pass is the first to read X: fetch rows ahead. */
        if (i + SKCCE_PREFETCH_ROWS + SKCCE_RB <= m)
            for (ptrdiff_t e = 0; e < SKCCE_RB * d; e += 64 / (ptrdiff_t)sizeof(SKCCE_T))
                __builtin_prefetch((const void*)(X + (i + SKCCE_PREFETCH_ROWS) * d + e), 0, 3);
        SKCCE_FN(skcce_logits_tile)(X + i * d, d, Wt, Kp, Z + i * Kp, SKCCE_RB, NV);
    }
    for (; i < m; i++)
        SKCCE_FN(skcce_logits_tile)(X + i * d, d, Wt, Kp, Z + i * Kp, 1, NV);
}

/* Gradient rows of JB features for NV vectors of classes, over all m rows. */
SKCCE_INLINE void SKCCE_FN(skcce_grad_tile)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t Kp, double* G,
                                            const int JB, const int NV)
{
    SKCCE_V acc[SKCCE_MAX_JB][SKCCE_MAX_NV];
    for (int jj = 0; jj < JB; jj++)
        for (int v = 0; v < NV; v++) acc[jj][v] = SKCCE_SPLAT(0);
    for (ptrdiff_t i = 0; i < m; i++) {
        SKCCE_V r[SKCCE_MAX_NV];
        for (int v = 0; v < NV; v++) r[v] = *(const SKCCE_VU*)(R + i * Kp + SKCCE_NLANES * v);
        for (int jj = 0; jj < JB; jj++) {
            SKCCE_V x = SKCCE_SPLAT(X[i * d + jj]);
            for (int v = 0; v < NV; v++) acc[jj][v] += x * r[v];
        }
    }
    /* G += (double) acc lane by lane, as vector loads, additions and stores
     * (clang does not merge the lanes' scalar additions itself). */
    for (int jj = 0; jj < JB; jj++)
        for (int v = 0; v < NV; v++) {
            double* g = G + jj * Kp + SKCCE_NLANES * v;
#if SKCCE_FLOAT64
            *(skcce_vu_f64*)g = *(const skcce_vu_f64*)g + acc[jj][v];
#else
            /* Each half of the 8 floats converted to 4 doubles. */
            skcce_half_f32 half[2];
            memcpy(half, &acc[jj][v], sizeof half);
            for (int h = 0; h < 2; h++)
                *(skcce_vu_f64*)(g + 4 * h) = *(const skcce_vu_f64*)(g + 4 * h)
                                              + __builtin_convertvector(half[h], skcce_v_f64);
#endif
        }
}

/* Gradient of all d features for NV vectors of classes, JB features at a time. */
SKCCE_INLINE void SKCCE_FN(skcce_grad_cols)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t Kp, double* G,
                                            const int NV, const int JB)
{
    ptrdiff_t j = 0;
    for (; j + JB <= d; j += JB)
        SKCCE_FN(skcce_grad_tile)(X + j, m, d, R, Kp, G + j * Kp, JB, NV);
    for (; j < d; j++)
        SKCCE_FN(skcce_grad_tile)(X + j, m, d, R, Kp, G + j * Kp, 1, NV);
}

/* Column tiles of up to 4 vectors; register budgets: 4 rows x NV (logits),
 * JB features x NV (gradient), at most 12 accumulators. The switches make NV
 * (and JB) compile-time constants in each inlined copy. */
void SKCCE_EXPORT(SKCCE_FN(skcce_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                         const SKCCE_T* Wt, ptrdiff_t Kp, SKCCE_T* Z)
{
    for (ptrdiff_t k0 = 0; k0 < Kp; k0 += SKCCE_MAX_NV * SKCCE_NLANES) {
        ptrdiff_t nv = (Kp - k0) / SKCCE_NLANES;
        if (nv > SKCCE_MAX_NV) nv = SKCCE_MAX_NV;
        switch (nv) {
        case 1: SKCCE_FN(skcce_logits_cols)(X, m, d, Wt + k0, Kp, Z + k0, 1); break;
        case 2: SKCCE_FN(skcce_logits_cols)(X, m, d, Wt + k0, Kp, Z + k0, 2); break;
        case 3: SKCCE_FN(skcce_logits_cols)(X, m, d, Wt + k0, Kp, Z + k0, 3); break;
        default: SKCCE_FN(skcce_logits_cols)(X, m, d, Wt + k0, Kp, Z + k0, 4); break;
        }
    }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                       const SKCCE_T* R, ptrdiff_t Kp, double* G)
{
    for (ptrdiff_t k0 = 0; k0 < Kp; k0 += SKCCE_MAX_NV * SKCCE_NLANES) {
        ptrdiff_t nv = (Kp - k0) / SKCCE_NLANES;
        if (nv > SKCCE_MAX_NV) nv = SKCCE_MAX_NV;
        switch (nv) {
        case 1: SKCCE_FN(skcce_grad_cols)(X, m, d, R + k0, Kp, G + k0, 1, 8); break;
        case 2: SKCCE_FN(skcce_grad_cols)(X, m, d, R + k0, Kp, G + k0, 2, 4); break;
        case 3: SKCCE_FN(skcce_grad_cols)(X, m, d, R + k0, Kp, G + k0, 3, 4); break;
        default: SKCCE_FN(skcce_grad_cols)(X, m, d, R + k0, Kp, G + k0, 4, 2); break;
        }
    }
}

#else /* plain loops with the same semantics */

void SKCCE_EXPORT(SKCCE_FN(skcce_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                   const SKCCE_T* Wt, ptrdiff_t Kp, SKCCE_T* Z)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < Kp; k++) {
            SKCCE_T acc = 0;
            for (ptrdiff_t j = 0; j < d; j++) acc += X[i * d + j] * Wt[j * Kp + k];
            Z[i * Kp + k] = acc;
        }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                 const SKCCE_T* R, ptrdiff_t Kp, double* G)
{
    for (ptrdiff_t j = 0; j < d; j++)
        for (ptrdiff_t k = 0; k < Kp; k++) {
            SKCCE_T acc = 0;
            for (ptrdiff_t i = 0; i < m; i++) acc += X[i * d + j] * R[i * Kp + k];
            G[j * Kp + k] += (double)acc;
        }
}

#endif

#undef SKCCE_FN
#undef SKCCE_V
#undef SKCCE_VU
#undef SKCCE_NLANES
#undef SKCCE_SPLAT
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_FLOAT64
