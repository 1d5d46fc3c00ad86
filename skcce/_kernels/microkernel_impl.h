/* The micro-kernels of microkernel.h for one element type. Included once per
 * type by simd_loops.c (no include guard), after microkernel.h, with
 *   SKCCE_T       the element type of X, Wt, Z and R (double or float),
 *   SKCCE_SUFFIX  the suffix of the type's names (f64 or f32),
 *   SKCCE_FLOAT64 1 for double, 0 for float,
 * which it undefines at the end. */

#define SKCCE_FN(name) SKCCE_TYPED(name, SKCCE_SUFFIX)
/* The type's register vectors (aligned, unaligned), their lanes and
 * broadcast (see microkernel.h); the lanes of a 32-byte vector (the unit of
 * Kp); the tail vectors after the register vectors (32-byte ones with
 * 64-byte register vectors, else unused), their lanes and broadcast. */
#define SKCCE_R SKCCE_FN(skcce_r)
#define SKCCE_RU SKCCE_FN(skcce_ru)
#define SKCCE_RLANES (SKCCE_REG_BYTES / (int)sizeof(SKCCE_T))
#define SKCCE_SPLAT_REG SKCCE_FN(SKCCE_BROADCAST_REG)
#define SKCCE_V32_LANES SKCCE_FN(SKCCE_LANES)
#if SKCCE_REG_BYTES > 32
#define SKCCE_V SKCCE_FN(skcce_v)
#define SKCCE_VU SKCCE_FN(skcce_vu)
#define SKCCE_TAIL_LANES SKCCE_V32_LANES
#define SKCCE_SPLAT SKCCE_FN(SKCCE_BROADCAST)
/* The first 32 bytes of a register vector (no instruction: the low half of its
 * register), so that one broadcast of an element serves both vector types. */
#define SKCCE_LOW_HALF(w) \
    __extension__({ SKCCE_V low_; memcpy(&low_, &(w), sizeof low_); low_; })
#else
#define SKCCE_V SKCCE_R
#define SKCCE_VU SKCCE_RU
#define SKCCE_TAIL_LANES SKCCE_RLANES
#define SKCCE_SPLAT SKCCE_SPLAT_REG
#define SKCCE_LOW_HALF(w) (w)
#endif

#if SKCCE_HAVE_VECTORS

/* Logits of RB rows for NW register vectors of classes and NN (0 or 1) 32-byte
 * vectors after them, over db features of rows d apart: Z = this block's sum
 * (first block) or Z + this block's sum. A tile of one 32-byte vector uses
 * no 64-byte instruction (here and in the gradient): while one is in flight,
 * the core runs 32-byte ones on fewer ports (measured 1.4x slower, K = 2). */
SKCCE_INLINE void SKCCE_FN(skcce_logits_tile)(const SKCCE_T* X, ptrdiff_t d, ptrdiff_t db,
                                              const SKCCE_T* Wt, ptrdiff_t Kp,
                                              SKCCE_T* Z, int first, const SKCCE_T* ahead,
                                              const int RB, const int NW, const int NN)
{
    SKCCE_R acc[SKCCE_MAX_RB][SKCCE_MAX_NW];
    SKCCE_V tail[SKCCE_MAX_RB];
    for (int r = 0; r < RB; r++) {
        for (int v = 0; v < NW; v++)
            acc[r][v] = first ? SKCCE_SPLAT_REG(0)
                              : *(const SKCCE_RU*)(Z + r * Kp + SKCCE_RLANES * v);
        if (NN)
            tail[r] = first ? SKCCE_SPLAT(0)
                            : *(const SKCCE_VU*)(Z + r * Kp + SKCCE_RLANES * NW);
    }
    for (ptrdiff_t j = 0; j < db; j++) {
        SKCCE_R w[SKCCE_MAX_NW];
        SKCCE_V wt;
        if (ahead && j % (64 / (ptrdiff_t)sizeof(SKCCE_T)) == 0)
            for (int r = 0; r < RB; r++) __builtin_prefetch(ahead + r * d + j, 0, 2);
        for (int v = 0; v < NW; v++) w[v] = *(const SKCCE_RU*)(Wt + j * Kp + SKCCE_RLANES * v);
        if (NN) wt = *(const SKCCE_VU*)(Wt + j * Kp + SKCCE_RLANES * NW);
        for (int r = 0; r < RB; r++) {
            if (NW) {
                SKCCE_R x = SKCCE_SPLAT_REG(X[r * d + j]);
                for (int v = 0; v < NW; v++) acc[r][v] += x * w[v];
                if (NN) tail[r] += SKCCE_LOW_HALF(x) * wt;
            } else {
                tail[r] += SKCCE_SPLAT(X[r * d + j]) * wt;
            }
        }
    }
    for (int r = 0; r < RB; r++) {
        for (int v = 0; v < NW; v++) *(SKCCE_RU*)(Z + r * Kp + SKCCE_RLANES * v) = acc[r][v];
        if (NN) *(SKCCE_VU*)(Z + r * Kp + SKCCE_RLANES * NW) = tail[r];
    }
}

/* Logits of all m rows for one tile of classes over one block of db
 * features, RB rows at a time, fetching the block of the rows
 * SKCCE_PREFETCH_BYTES ahead as long as they are among the rows_readable
 * rows from X (0: none). */
SKCCE_INLINE void SKCCE_FN(skcce_logits_cols)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              ptrdiff_t db, const SKCCE_T* Wt, ptrdiff_t Kp,
                                              SKCCE_T* Z, int first, ptrdiff_t rows_readable,
                                              const int NW, const int NN, const int RB)
{
    const ptrdiff_t ahead = skcce_prefetch_rows(db * (ptrdiff_t)sizeof(SKCCE_T), RB);
    ptrdiff_t i = 0;
    for (; i + RB <= m; i += RB) {
        const SKCCE_T* a = i + ahead + RB <= rows_readable ? X + (i + ahead) * d : NULL;
        SKCCE_FN(skcce_logits_tile)(X + i * d, d, db, Wt, Kp, Z + i * Kp, first, a, RB, NW, NN);
    }
    /* The last m % RB rows in one tile too (a tile per row would leave each
     * accumulator one FMA latency per feature). */
    X += i * d;
    Z += i * Kp;
#define SKCCE_ROWS(rb) SKCCE_FN(skcce_logits_tile)(X, d, db, Wt, Kp, Z, first, NULL, rb, NW, NN)
#if SKCCE_MAX_RB > 8
    if (m - i >= 8) {
        SKCCE_ROWS(8);
        X += 8 * d;
        Z += 8 * Kp;
        i += 8;
    }
#endif
    switch (m - i) {
    case 0: break;
    case 1: SKCCE_ROWS(1); break;
    case 2: SKCCE_ROWS(2); break;
    case 3: SKCCE_ROWS(3); break;
#if SKCCE_MAX_RB > 4
    case 4: SKCCE_ROWS(4); break;
    case 5: SKCCE_ROWS(5); break;
    case 6: SKCCE_ROWS(6); break;
    default: SKCCE_ROWS(7); break;
#else
    default: break;
#endif
    }
#undef SKCCE_ROWS
}

/* G (8 doubles at g) += the 8 floats at v, as two 4-double vectors (by
 * pointer: a 32-byte vector argument has no stable ABI without AVX). */
#if !SKCCE_FLOAT64
SKCCE_INLINE void skcce_add_floats_to_doubles(double* g, const float* v)
{
    skcce_half_f32 half[2];
    memcpy(half, v, sizeof half);
    for (int h = 0; h < 2; h++)
        *(skcce_vu_f64*)(g + 4 * h) = *(const skcce_vu_f64*)(g + 4 * h)
                                      + __builtin_convertvector(half[h], skcce_v_f64);
}
#endif

/* G += (double) acc lane by lane for one vector of NL lanes at g, as vector
 * loads, additions and stores (clang does not merge the lanes' scalar
 * additions itself); lane by lane with 16-byte register vectors (once per tile,
 * not per row). */
#if SKCCE_REG_BYTES < 32
#define SKCCE_ADD_TO_G(g, acc, NL) SKCCE_ADD_LANES_TO_DOUBLES(g, (const SKCCE_T*)&(acc), NL)
#elif SKCCE_FLOAT64
#define SKCCE_ADD_TO_G(g, acc, NL) \
    do { \
        for (int q = 0; q < (NL) / 4; q++) { \
            skcce_v_f64 part; \
            memcpy(&part, (const double*)&(acc) + 4 * q, sizeof part); \
            *(skcce_vu_f64*)((g) + 4 * q) = *(const skcce_vu_f64*)((g) + 4 * q) + part; \
        } \
    } while (0)
#else
#define SKCCE_ADD_TO_G(g, acc, NL) \
    do { \
        for (int q = 0; q < (NL) / 8; q++) \
            skcce_add_floats_to_doubles((g) + 8 * q, (const float*)&(acc) + 8 * q); \
    } while (0)
#endif

/* Gradient rows of JB features for NW register vectors and NN 32-byte vectors of
 * classes, over all m rows. */
SKCCE_INLINE void SKCCE_FN(skcce_grad_tile)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t Kp, double* G,
                                            skcce_fetch_ahead* fetch,
                                            const int JB, const int NW, const int NN)
{
    SKCCE_R acc[SKCCE_MAX_JB][SKCCE_MAX_NW];
    SKCCE_V tail[SKCCE_MAX_JB];
    for (int jj = 0; jj < JB; jj++) {
        for (int v = 0; v < NW; v++) acc[jj][v] = SKCCE_SPLAT_REG(0);
        if (NN) tail[jj] = SKCCE_SPLAT(0);
    }
    for (ptrdiff_t i = 0; i < m; i++) {
        SKCCE_R r[SKCCE_MAX_NW];
        SKCCE_V rt;
        for (int v = 0; v < NW; v++) r[v] = *(const SKCCE_RU*)(R + i * Kp + SKCCE_RLANES * v);
        if (NN) rt = *(const SKCCE_VU*)(R + i * Kp + SKCCE_RLANES * NW);
        skcce_fetch_line(fetch, i);
        for (int jj = 0; jj < JB; jj++) {
            if (NW) {
                SKCCE_R x = SKCCE_SPLAT_REG(X[i * d + jj]);
                for (int v = 0; v < NW; v++) acc[jj][v] += x * r[v];
                if (NN) tail[jj] += SKCCE_LOW_HALF(x) * rt;
            } else {
                tail[jj] += SKCCE_SPLAT(X[i * d + jj]) * rt;
            }
        }
    }
    for (int jj = 0; jj < JB; jj++) {
        for (int v = 0; v < NW; v++)
            SKCCE_ADD_TO_G(G + jj * Kp + SKCCE_RLANES * v, acc[jj][v], SKCCE_RLANES);
        if (NN) SKCCE_ADD_TO_G(G + jj * Kp + SKCCE_RLANES * NW, tail[jj], SKCCE_TAIL_LANES);
    }
}

/* Gradient of one block of db features for one tile of classes, JB features
 * at a time. */
SKCCE_INLINE void SKCCE_FN(skcce_grad_cols)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            ptrdiff_t db, const SKCCE_T* R, ptrdiff_t Kp,
                                            double* G, skcce_fetch_ahead* fetch,
                                            const int NW, const int NN, const int JB)
{
    ptrdiff_t j = 0;
    for (; j + JB <= db; j += JB)
        SKCCE_FN(skcce_grad_tile)(X + j, m, d, R, Kp, G + j * Kp, fetch, JB, NW, NN);
    /* The last db % JB features in one tile too. */
#define SKCCE_FEATURES(jb) \
    SKCCE_FN(skcce_grad_tile)(X + j, m, d, R, Kp, G + j * Kp, fetch, jb, NW, NN)
#if SKCCE_MAX_JB > 8
    if (db - j >= 8) {
        SKCCE_FEATURES(8);
        j += 8;
    }
#endif
    switch (db - j) {
    case 0: break;
    case 1: SKCCE_FEATURES(1); break;
    case 2: SKCCE_FEATURES(2); break;
    case 3: SKCCE_FEATURES(3); break;
    case 4: SKCCE_FEATURES(4); break;
    case 5: SKCCE_FEATURES(5); break;
    case 6: SKCCE_FEATURES(6); break;
    default: SKCCE_FEATURES(7); break;
    }
#undef SKCCE_FEATURES
}

/* Tiles of classes of up to SKCCE_PANEL_NV 32-byte vectors, as register
 * vectors (NW of them) and, with 64-byte ones, NV % 2 32-byte ones (NN).
 * Register budgets (16 registers of 16 or 32 bytes, or 32 of 64 bytes):
 * LOGITS_RB rows x the tile's vectors (logits), GRAD_JB features x the
 * tile's vectors (gradient). The switches make the tile's shape a
 * compile-time constant in each inlined copy. */
#define SKCCE_NW(nv) ((nv) * 32 / SKCCE_REG_BYTES)
#define SKCCE_NN(nv) ((nv) * 32 % SKCCE_REG_BYTES / 32)
#if SKCCE_WIDTH == 2
/* A tile of one or two 32-byte vectors has one register per row or feature,
 * so it takes more of them for enough independent accumulators: 8 rows and 12
 * features for one vector (4 and 8 before), 16 and 16 for two in float32,
 * 1.03-1.1x faster (float64 with two: no faster at 12 or 16, 1.1x slower at
 * 300 features with 16). Each output is the same sum in the same order. */
#define SKCCE_LOGITS_RB(nv) \
    ((nv) == 1 ? 8 : (nv) == 2 ? (SKCCE_FLOAT64 ? 8 : 16) : (nv) <= 6 ? 8 : 6)
#define SKCCE_GRAD_JB(nv) \
    ((nv) == 1 ? 12 : (nv) == 2 ? (SKCCE_FLOAT64 ? 8 : 16) : (nv) <= 6 ? 8 : 6)
#elif SKCCE_REG_BYTES == 16
/* Two register vectors per 32-byte vector: 8 to 12 accumulators, leaving
 * registers for the multiplications' operands (no fused multiply-add). */
#define SKCCE_LOGITS_RB(nv) ((nv) == 1 ? 4 : (nv) <= 3 ? 2 : 1)
#define SKCCE_GRAD_JB(nv) ((nv) == 1 ? 6 : (nv) == 2 ? 3 : (nv) == 3 ? 2 : 1)
#else
#define SKCCE_LOGITS_RB(nv) 4
#define SKCCE_GRAD_JB(nv) ((nv) == 1 ? 8 : (nv) <= 3 ? 4 : 2)
#endif

/* Runs CASE(nv) for every block of features (the db from j0) and, within
 * it, every tile of classes (the nv 32-byte vectors from k0): the switch
 * makes the tile's shape a compile-time constant in each case. With one tile
 * of classes, all features form one block: nothing would reuse a block of X,
 * and whole rows stream from memory faster than blocks of them. (One block
 * of no features when d = 0, so that the logits are still written.) */
#if SKCCE_WIDTH == 2
#define SKCCE_WIDE_CASES(CASE) CASE(4); CASE(5); CASE(6); CASE(7);
#else
#define SKCCE_WIDE_CASES(CASE)
#endif
#define SKCCE_FOR_EACH_TILE(CASE) \
    const ptrdiff_t block = Kp > SKCCE_PANEL_NV * SKCCE_V32_LANES && d > SKCCE_FEATURE_BLOCK \
                                ? SKCCE_FEATURE_BLOCK : d > 0 ? d : 1; \
    for (ptrdiff_t j0 = 0; j0 < d || j0 == 0; j0 += block) { \
        ptrdiff_t db = d - j0 < block ? d - j0 : block; \
        for (ptrdiff_t k0 = 0; k0 < Kp; k0 += SKCCE_PANEL_NV * SKCCE_V32_LANES) { \
            ptrdiff_t nv = (Kp - k0) / SKCCE_V32_LANES; \
            if (nv > SKCCE_PANEL_NV) nv = SKCCE_PANEL_NV; \
            switch (nv) { \
            CASE(1); CASE(2); CASE(3); SKCCE_WIDE_CASES(CASE) \
            default: CASE(SKCCE_PANEL_NV); \
            } \
        } \
    }

void SKCCE_EXPORT(SKCCE_FN(skcce_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                         const SKCCE_T* Wt, ptrdiff_t Kp, SKCCE_T* Z,
                                         ptrdiff_t rows_readable)
{
#define SKCCE_LOGITS_CASE(nv) \
    case nv: SKCCE_FN(skcce_logits_cols)(X + j0, m, d, db, Wt + j0 * Kp + k0, Kp, Z + k0, \
                                         j0 == 0, k0 == 0 ? rows_readable : 0, \
                                         SKCCE_NW(nv), SKCCE_NN(nv), \
                                         SKCCE_LOGITS_RB(nv)); break
    SKCCE_FOR_EACH_TILE(SKCCE_LOGITS_CASE)
#undef SKCCE_LOGITS_CASE
}

void SKCCE_EXPORT(SKCCE_FN(skcce_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                       const SKCCE_T* R, ptrdiff_t Kp, double* G,
                                       const void* ahead, ptrdiff_t ahead_bytes)
{
    skcce_fetch_ahead fetch = skcce_fetch_start(ahead, ahead_bytes);
#define SKCCE_GRAD_CASE(nv) \
    case nv: SKCCE_FN(skcce_grad_cols)(X + j0, m, d, db, R + k0, Kp, G + j0 * Kp + k0, \
                                       &fetch, SKCCE_NW(nv), SKCCE_NN(nv), \
                                       SKCCE_GRAD_JB(nv)); break
    SKCCE_FOR_EACH_TILE(SKCCE_GRAD_CASE)
#undef SKCCE_GRAD_CASE
}

#undef SKCCE_FOR_EACH_TILE
#undef SKCCE_WIDE_CASES
#undef SKCCE_NW
#undef SKCCE_NN
#undef SKCCE_GRAD_JB
#undef SKCCE_LOGITS_RB
#undef SKCCE_ADD_TO_G

#else /* plain loops with the same semantics */

void SKCCE_EXPORT(SKCCE_FN(skcce_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                   const SKCCE_T* Wt, ptrdiff_t Kp, SKCCE_T* Z,
                                   ptrdiff_t rows_readable)
{
    (void)rows_readable;
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < Kp; k++) {
            SKCCE_T acc = 0;
            for (ptrdiff_t j = 0; j < d; j++) acc += X[i * d + j] * Wt[j * Kp + k];
            Z[i * Kp + k] = acc;
        }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                 const SKCCE_T* R, ptrdiff_t Kp, double* G,
                                 const void* ahead, ptrdiff_t ahead_bytes)
{
    (void)ahead;
    (void)ahead_bytes;
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
#undef SKCCE_TAIL_LANES
#undef SKCCE_V32_LANES
#undef SKCCE_SPLAT
#undef SKCCE_R
#undef SKCCE_RU
#undef SKCCE_RLANES
#undef SKCCE_SPLAT_REG
#undef SKCCE_LOW_HALF
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_FLOAT64
