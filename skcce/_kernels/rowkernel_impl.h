/* Products for a chunk of rows with few classes and many features, vectorized
 * over features (the micro-kernels of microkernel_impl.h vectorize over
 * classes, which wastes most lanes when K is far below the vector width:
 * K = 2 uses 2 of 8 float lanes).
 *
 *   logits:   Z[i, k]  = X[i, :] . W[k, :]                 (Z row stride ldz)
 *   gradient: G[k, :] += sum_i R[i, k] * X[i, :]           (G in float64, K x d)
 *
 * W is class-major (K x d, the coefficient matrix itself), so both products
 * read X, W and G along contiguous features, the logits in wide vectors
 * (microkernel.h: 64 bytes under AVX-512, 32 elsewhere), the gradient in
 * register vectors (the same, but 16 bytes without AVX), the last one
 * partial (zero past d).
 * Every output entry is the same sum for every call (the logits' lanes in an
 * order fixed per build: a tree with AVX, else lane after lane; the
 * gradient's sums over the chunk's rows in row order), so results do not
 * depend on threads.
 * float32 data sums a chunk's gradient in float32 registers (as SGEMM would)
 * and adds it to the float64 G.
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

/* Rows and classes per logits tile (RB x KB accumulators), register vectors
 * of features and classes per gradient tile (NJ x KB accumulators, summed
 * over all the chunk's rows before G is read): within the registers, 16 of them
 * with AVX-512 (32 registers), else 8. Both tiles take up to
 * SKCCE_ROWS_MAX_CLASSES classes at once, so that the products read X once
 * for K up to that: with AVX-512 8 classes
 * (float32 with K = 5-8 takes these kernels there), the gradient's tiles
 * narrower where they hold more than 4. The logits product streams
 * X from memory (the gradient reads it again from the cache) and fetches
 * rows SKCCE_PREFETCH_BYTES ahead into the L2 cache: measured 1.3-1.5x
 * faster for 128 to 2,000 features, with 12 to 100 KiB ahead as good as one
 * another. */
#define SKCCE_ROWS_LOGITS_RB 2
#define SKCCE_ROWS_MAX_CLASSES (4 * SKCCE_WIDTH)
/* Register vectors of features per gradient tile of KB classes: at most
 * SKCCE_ROWS_GRAD_NJ, within SKCCE_ROWS_GRAD_ACC accumulators (16-byte
 * vectors: as many features as two 32-byte ones, 8 of the 16 registers). */
#if SKCCE_REG_BYTES >= 32
#define SKCCE_ROWS_GRAD_NJ (2 * SKCCE_WIDTH)
#define SKCCE_ROWS_GRAD_ACC (4 * SKCCE_ROWS_GRAD_NJ)
#else
#define SKCCE_ROWS_GRAD_NJ 4
#define SKCCE_ROWS_GRAD_ACC 8
#endif
#define SKCCE_ROWS_GRAD_TILE_NJ(KB) \
    (SKCCE_ROWS_GRAD_ACC / (KB) < SKCCE_ROWS_GRAD_NJ ? SKCCE_ROWS_GRAD_ACC / (KB) \
                                                      : SKCCE_ROWS_GRAD_NJ)
#if SKCCE_HAVE_VECTORS

/* Runs CASE(kb) for each number of classes kb below a tile's: the switches
 * on the classes left make the tile's width a compile-time constant in each
 * case (default: a whole tile, CASE(SKCCE_ROWS_MAX_CLASSES)). */
#if SKCCE_ROWS_MAX_CLASSES > 4
#define SKCCE_ROWS_CLASS_CASES(CASE) \
    CASE(1); CASE(2); CASE(3); CASE(4); CASE(5); CASE(6); CASE(7);
#else
#define SKCCE_ROWS_CLASS_CASES(CASE) CASE(1); CASE(2); CASE(3);
#endif

#if defined(__AVX__)
#include <immintrin.h>
#endif

#define SKCCE_W SKCCE_FN(skcce_w)
#define SKCCE_WU SKCCE_FN(skcce_wu)
#define SKCCE_WLANES (SKCCE_NLANES * SKCCE_WIDTH)
#define SKCCE_SPLAT_WIDE SKCCE_FN(SKCCE_BROADCAST_WIDE)
/* The gradient's vectors: register vectors (microkernel.h), the wide ones
 * where those fit a register (under SSE2, 16-byte ones made the loss and
 * gradient 2.8-4.9x faster: float32, 2 and 3 classes, 100 to 784 features).
 * Its sums run over rows, lane by lane, so their width changes no result;
 * the logits keep wide vectors, whose lanes' sums (skcce_tile_sums) fix the
 * order of their additions. */
#define SKCCE_R SKCCE_FN(skcce_r)
#define SKCCE_RU SKCCE_FN(skcce_ru)
#define SKCCE_RLANES (SKCCE_REG_BYTES / (int)sizeof(SKCCE_T))
#define SKCCE_SPLAT_REG SKCCE_FN(SKCCE_BROADCAST_REG)

/* Keeps a loaded wide vector in a register for all its uses (an empty asm
 * statement that "changes" it; a no-op otherwise, for GCC and clang alike):
 * GCC loaded each row of X again for every class of some tiles (3 classes
 * of float64 under AVX-512: 12 loads for 6 multiply-adds, 0.8x). Only where
 * a wide vector fits one register (AVX: 32 or 64 bytes). */
#if defined(__AVX__)
#define SKCCE_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define SKCCE_IN_REGISTER(v) ((void)0)
#endif

/* Sum of a vector's lanes, first to last (by pointer: a 32-byte vector
 * argument has no stable ABI without AVX). */
SKCCE_INLINE SKCCE_T SKCCE_FN(skcce_lane_sum)(const SKCCE_V* v)
{
    SKCCE_T s = (*v)[0];
    for (int l = 1; l < SKCCE_NLANES; l++) s += (*v)[l];
    return s;
}

/* The first n (0 < n < SKCCE_WLANES) elements from p in a wide vector, zero
 * after, without reading past p + n (the last rows of X and W end there). */
SKCCE_INLINE SKCCE_W SKCCE_FN(skcce_load_partial)(const SKCCE_T* p, int n)
{
    SKCCE_W v;
#if SKCCE_WIDTH == 2 && SKCCE_FLOAT64
    const __m512d loaded = _mm512_maskz_loadu_pd((__mmask8)SKCCE_FIRST_LANES(n), p);
#elif SKCCE_WIDTH == 2
    const __m512 loaded = _mm512_maskz_loadu_ps((__mmask16)SKCCE_FIRST_LANES(n), p);
#elif defined(__AVX2__) && SKCCE_FLOAT64
    const __m256d loaded = _mm256_maskload_pd(
        p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)));
#elif defined(__AVX2__)
    const __m256 loaded = _mm256_maskload_ps(
        p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
#endif
#if SKCCE_WIDTH == 2 || defined(__AVX2__)
    memcpy(&v, &loaded, sizeof v);
#else
    SKCCE_LOAD_FIRST_LANES(SKCCE_T, v, p, n, SKCCE_WLANES);
#endif
    return v;
}

/* The same for a register vector (0 < n < SKCCE_RLANES). */
#if SKCCE_REG_BYTES >= 32
#define SKCCE_LOAD_PARTIAL_REG SKCCE_FN(skcce_load_partial)
#else
SKCCE_INLINE SKCCE_R SKCCE_FN(skcce_load_partial_reg)(const SKCCE_T* p, int n)
{
    SKCCE_R v;
    SKCCE_LOAD_FIRST_LANES(SKCCE_T, v, p, n, SKCCE_RLANES);
    return v;
}
#define SKCCE_LOAD_PARTIAL_REG SKCCE_FN(skcce_load_partial_reg)
#endif

#if defined(__AVX__)
/* A wide vector as one 32-byte vector, its halves added lane by lane (where
 * it has two), in the intrinsics' type. */
#if SKCCE_FLOAT64
typedef __m256d SKCCE_FN(skcce_m256);
#else
typedef __m256 SKCCE_FN(skcce_m256);
#endif
SKCCE_INLINE SKCCE_FN(skcce_m256) SKCCE_FN(skcce_fold)(const SKCCE_W* w)
{
    SKCCE_V low;
    memcpy(&low, w, sizeof low);
#if SKCCE_WIDTH == 2
    SKCCE_V high;
    memcpy(&high, (const char*)w + sizeof low, sizeof high);
    low += high;
#endif
    return (SKCCE_FN(skcce_m256))low;
}

#endif

/* Accumulators whose lane sums one tree of horizontal additions gives: as
 * many as a 32-byte vector has lanes. */
#if SKCCE_FLOAT64
#define SKCCE_SUM_GROUP 4
#else
#define SKCCE_SUM_GROUP 8
#endif
#if SKCCE_ROWS_LOGITS_RB * SKCCE_ROWS_MAX_CLASSES % SKCCE_SUM_GROUP != 0
#error "a logits tile's sums buffer holds whole groups of accumulators"
#endif

/* The lane sums of a logits tile's RB x KB accumulators, row-major into
 * sums (row stride KB). With AVX, a group of them at once: each wide vector
 * folded to 32 bytes (its halves added lane by lane), then pairwise across
 * lanes and accumulators (horizontal additions), a tree that is the same for
 * each accumulator wherever it sits in its group. One accumulator at a time,
 * lane after lane, cost more than the products themselves below 300
 * features. */
SKCCE_INLINE void SKCCE_FN(skcce_tile_sums)(
    SKCCE_W acc[SKCCE_ROWS_LOGITS_RB][SKCCE_ROWS_MAX_CLASSES], SKCCE_T* sums, const int RB,
    const int KB)
{
#if defined(__AVX__)
    for (int t0 = 0; t0 < RB * KB; t0 += SKCCE_SUM_GROUP) {
        /* Past the tile's RB x KB accumulators, zeros. */
        SKCCE_FN(skcce_m256) v[SKCCE_SUM_GROUP];
        for (int g = 0; g < SKCCE_SUM_GROUP; g++)
            v[g] = t0 + g < RB * KB ? SKCCE_FN(skcce_fold)(&acc[(t0 + g) / KB][(t0 + g) % KB])
                                    : (SKCCE_FN(skcce_m256))SKCCE_SPLAT(0);
#if SKCCE_FLOAT64
        /* Four accumulators of 4 lanes to one vector of their 4 sums. */
        const __m256d low = _mm256_hadd_pd(v[0], v[1]);
        const __m256d high = _mm256_hadd_pd(v[2], v[3]);
        _mm256_storeu_pd(sums + t0, _mm256_add_pd(_mm256_permute2f128_pd(low, high, 0x20),
                                                  _mm256_permute2f128_pd(low, high, 0x31)));
#else
        /* Eight accumulators of 8 lanes to one vector of their 8 sums. */
        const __m256 first =
            _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
        const __m256 second =
            _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
        _mm256_storeu_ps(sums + t0, _mm256_add_ps(_mm256_permute2f128_ps(first, second, 0x20),
                                                  _mm256_permute2f128_ps(first, second, 0x31)));
#endif
    }
#else
    /* Without AVX a wide vector is one 32-byte vector (SKCCE_WIDTH 1). */
    for (int r = 0; r < RB; r++)
        for (int k = 0; k < KB; k++)
            sums[r * KB + k] = SKCCE_FN(skcce_lane_sum)(&acc[r][k]);
#endif
}

/* Logits of RB rows for KB classes: wide vectors of features, the last one
 * partial (zero past d), then each accumulator's lanes summed. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_logits_tile)(const SKCCE_T* X, ptrdiff_t d,
                                                   const SKCCE_T* W, SKCCE_T* Z,
                                                   ptrdiff_t ldz, const SKCCE_T* ahead,
                                                   const int RB, const int KB)
{
    SKCCE_W acc[SKCCE_ROWS_LOGITS_RB][SKCCE_ROWS_MAX_CLASSES];
    SKCCE_T sums[SKCCE_ROWS_LOGITS_RB * SKCCE_ROWS_MAX_CLASSES];
    ptrdiff_t j = 0;
    for (int r = 0; r < RB; r++)
        for (int k = 0; k < KB; k++) acc[r][k] = SKCCE_SPLAT_WIDE(0);
    for (; j + SKCCE_WLANES <= d; j += SKCCE_WLANES) {
        SKCCE_W x[SKCCE_ROWS_LOGITS_RB];
        for (int r = 0; r < RB; r++) {
            x[r] = *(const SKCCE_WU*)(X + r * d + j);
            SKCCE_IN_REGISTER(x[r]);
        }
        if (ahead)
            for (int r = 0; r < RB; r++) __builtin_prefetch(ahead + r * d + j, 0, 2);
        for (int k = 0; k < KB; k++) {
            SKCCE_W w = *(const SKCCE_WU*)(W + k * d + j);
            for (int r = 0; r < RB; r++) acc[r][k] += x[r] * w;
        }
    }
    /* The rest of each row ahead: the partial vector's line (if any) and
     * the row's last line, which the lines from its first feature on miss
     * where the row does not start on a line. Without them, such rows waited
     * on memory at their end (100 to 300 features: 1.3-1.55x slower). */
    if (ahead)
        for (int r = 0; r < RB; r++) {
            if (j < d) __builtin_prefetch(ahead + r * d + j, 0, 2);
            __builtin_prefetch(ahead + r * d + d - 1, 0, 2);
        }
    if (j < d) {
        const int rest = (int)(d - j);
        SKCCE_W x[SKCCE_ROWS_LOGITS_RB];
        for (int r = 0; r < RB; r++) x[r] = SKCCE_FN(skcce_load_partial)(X + r * d + j, rest);
        for (int k = 0; k < KB; k++) {
            SKCCE_W w = SKCCE_FN(skcce_load_partial)(W + k * d + j, rest);
            for (int r = 0; r < RB; r++) acc[r][k] += x[r] * w;
        }
    }
    SKCCE_FN(skcce_tile_sums)(acc, sums, RB, KB);
    for (int r = 0; r < RB; r++)
        for (int k = 0; k < KB; k++) Z[r * ldz + k] = sums[r * KB + k];
}

/* Logits of RB rows for all K classes: the first KB0 of them in one tile
 * (fetching the rows at ``ahead`` unless NULL), the rest KB at a time (the
 * switch makes KB a compile-time constant in each inlined copy). */
SKCCE_INLINE void SKCCE_FN(skcce_rows_logits_rows)(const SKCCE_T* X, ptrdiff_t d,
                                                   const SKCCE_T* W, ptrdiff_t K,
                                                   SKCCE_T* Z, ptrdiff_t ldz,
                                                   const SKCCE_T* ahead, const int RB,
                                                   const int KB0)
{
    SKCCE_FN(skcce_rows_logits_tile)(X, d, W, Z, ldz, ahead, RB, KB0);
    for (ptrdiff_t k0 = KB0; k0 < K; k0 += SKCCE_ROWS_MAX_CLASSES) {
        const SKCCE_T* w = W + k0 * d;
#define SKCCE_TILE_CASE(kb) \
    case kb: SKCCE_FN(skcce_rows_logits_tile)(X, d, w, Z + k0, ldz, NULL, RB, kb); break
        switch (K - k0) {
        SKCCE_ROWS_CLASS_CASES(SKCCE_TILE_CASE)
        default: SKCCE_TILE_CASE(SKCCE_ROWS_MAX_CLASSES);
        }
#undef SKCCE_TILE_CASE
    }
}

/* The logits of all m rows, RB at a time, with a first tile of KB0 classes. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_logits_all)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                                  const SKCCE_T* W, ptrdiff_t K, SKCCE_T* Z,
                                                  ptrdiff_t ldz, ptrdiff_t rows_readable,
                                                  const int KB0)
{
    const ptrdiff_t rows_ahead =
        skcce_prefetch_rows(d * (ptrdiff_t)sizeof(SKCCE_T), SKCCE_ROWS_LOGITS_RB);
    ptrdiff_t i = 0;
    for (; i + SKCCE_ROWS_LOGITS_RB <= m; i += SKCCE_ROWS_LOGITS_RB) {
        const SKCCE_T* ahead = i + rows_ahead + SKCCE_ROWS_LOGITS_RB <= rows_readable
                                   ? X + (i + rows_ahead) * d : NULL;
        SKCCE_FN(skcce_rows_logits_rows)(X + i * d, d, W, K, Z + i * ldz, ldz, ahead,
                                         SKCCE_ROWS_LOGITS_RB, KB0);
    }
    for (; i < m; i++)
        SKCCE_FN(skcce_rows_logits_rows)(X + i * d, d, W, K, Z + i * ldz, ldz, NULL, 1, KB0);
}

/* One loop over the rows per number of classes up to a tile's (the rows'
 * loop inside the switch, not around it: with a switch per pair of rows,
 * the register allocation of the wider tiles slowed the others, 5% at 64
 * to 100 float32 features). */
void SKCCE_EXPORT(SKCCE_FN(skcce_rows_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              const SKCCE_T* W, ptrdiff_t K, SKCCE_T* Z,
                                              ptrdiff_t ldz, ptrdiff_t rows_readable)
{
#define SKCCE_LOGITS_ALL_CASE(kb0) \
    case kb0: SKCCE_FN(skcce_rows_logits_all)(X, m, d, W, K, Z, ldz, rows_readable, kb0); break
    switch (K) {
    case 0: break; /* no logits to write */
    SKCCE_ROWS_CLASS_CASES(SKCCE_LOGITS_ALL_CASE)
    default: SKCCE_LOGITS_ALL_CASE(SKCCE_ROWS_MAX_CLASSES);
    }
#undef SKCCE_LOGITS_ALL_CASE
}

/* G[k, j0:j0 + n] += acc, converting float32 sums to float64 (lane by lane
 * with 16-byte vectors: once per tile, not per row). */
SKCCE_INLINE void SKCCE_FN(skcce_add_reg_to_doubles)(double* g, const SKCCE_R* acc)
{
#if SKCCE_REG_BYTES < 32
    SKCCE_ADD_LANES_TO_DOUBLES(g, (const SKCCE_T*)acc, SKCCE_RLANES);
#elif SKCCE_FLOAT64
    *(skcce_wu_f64*)g = *(const skcce_wu_f64*)g + *acc;
#else
    /* A wide float vector is two of SKCCE_WIDTH * 4 floats, each as many doubles. */
    typedef float quarter_t __attribute__((vector_size(16 * SKCCE_WIDTH)));
    typedef double doubles_t __attribute__((vector_size(32 * SKCCE_WIDTH)));
    typedef double doubles_u __attribute__((vector_size(32 * SKCCE_WIDTH), aligned(8)));
    quarter_t half[2];
    memcpy(half, acc, sizeof half);
    for (int h = 0; h < 2; h++)
        *(doubles_u*)(g + 4 * SKCCE_WIDTH * h) = *(const doubles_u*)(g + 4 * SKCCE_WIDTH * h)
                                                 + __builtin_convertvector(half[h], doubles_t);
#endif
}

/* G[k, :NJ register vectors] += the sum over the m rows of R[i, k] * X[i, :...]
 * for KB classes, each sum in registers in row order. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_grad_tile)(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                                 const SKCCE_T* R, ptrdiff_t ldr, double* G,
                                                 skcce_fetch_ahead* fetch,
                                                 const int NJ, const int KB)
{
    SKCCE_R acc[SKCCE_ROWS_GRAD_NJ][SKCCE_ROWS_MAX_CLASSES];
    for (int v = 0; v < NJ; v++)
        for (int k = 0; k < KB; k++) acc[v][k] = SKCCE_SPLAT_REG(0);
    for (ptrdiff_t i = 0; i < m; i++) {
        SKCCE_R x[SKCCE_ROWS_GRAD_NJ];
        for (int v = 0; v < NJ; v++) x[v] = *(const SKCCE_RU*)(X + i * d + SKCCE_RLANES * v);
        skcce_fetch_line(fetch, i);
        for (int k = 0; k < KB; k++) {
            SKCCE_R r = SKCCE_SPLAT_REG(R[i * ldr + k]);
            for (int v = 0; v < NJ; v++) acc[v][k] += x[v] * r;
        }
    }
    for (int k = 0; k < KB; k++)
        for (int v = 0; v < NJ; v++)
            SKCCE_FN(skcce_add_reg_to_doubles)(G + k * d + SKCCE_RLANES * v, &acc[v][k]);
}

/* The same for the last rest < SKCCE_RLANES features, in one partial register
 * vector (zero past rest). */
SKCCE_INLINE void SKCCE_FN(skcce_rows_grad_partial_tile)(const SKCCE_T* X, ptrdiff_t m,
                                                         ptrdiff_t d, const SKCCE_T* R,
                                                         ptrdiff_t ldr, double* G,
                                                         const int rest, const int KB)
{
    SKCCE_R acc[SKCCE_ROWS_MAX_CLASSES];
    for (int k = 0; k < KB; k++) acc[k] = SKCCE_SPLAT_REG(0);
    for (ptrdiff_t i = 0; i < m; i++) {
        const SKCCE_R x = SKCCE_LOAD_PARTIAL_REG(X + i * d, rest);
        for (int k = 0; k < KB; k++) acc[k] += x * SKCCE_SPLAT_REG(R[i * ldr + k]);
    }
    /* Through a copy, not SKCCE_ADD_LANES_TO_DOUBLES's cast: GCC and clang
     * compile that to other (untimed) code in every instruction set. */
    for (int k = 0; k < KB; k++) {
        SKCCE_T part[SKCCE_RLANES];
        memcpy(part, &acc[k], sizeof part);
        for (int l = 0; l < rest; l++) G[k * d + l] += (double)part[l];
    }
}

/* The gradient rows of KB classes: tiles of NJ register vectors of
 * features, one tile of the remaining whole ones, then the partial one. */
SKCCE_INLINE void SKCCE_FN(skcce_rows_grad_classes)(const SKCCE_T* X, ptrdiff_t m,
                                                    ptrdiff_t d, const SKCCE_T* R,
                                                    ptrdiff_t ldr, double* G,
                                                    skcce_fetch_ahead* fetch, const int KB)
{
    const int NJ = SKCCE_ROWS_GRAD_TILE_NJ(KB);
    const ptrdiff_t step = NJ * SKCCE_RLANES;
    ptrdiff_t j = 0;
    for (; j + step <= d; j += step)
        SKCCE_FN(skcce_rows_grad_tile)(X + j, m, d, R, ldr, G + j, fetch, NJ, KB);
    /* The remaining whole register vectors, fewer than NJ. */
    switch ((d - j) / SKCCE_RLANES) {
    case 0: break;
    case 1: SKCCE_FN(skcce_rows_grad_tile)(X + j, m, d, R, ldr, G + j, fetch, 1, KB); break;
#if SKCCE_ROWS_GRAD_NJ > 2
    case 2: SKCCE_FN(skcce_rows_grad_tile)(X + j, m, d, R, ldr, G + j, fetch, 2, KB); break;
    default: SKCCE_FN(skcce_rows_grad_tile)(X + j, m, d, R, ldr, G + j, fetch, 3, KB); break;
#endif
    }
    j += (d - j) / SKCCE_RLANES * SKCCE_RLANES;
    if (j < d)
        SKCCE_FN(skcce_rows_grad_partial_tile)(X + j, m, d, R, ldr, G + j, (int)(d - j), KB);
}

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t ldr, ptrdiff_t K,
                                            double* G, const void* ahead,
                                            ptrdiff_t ahead_bytes)
{
    skcce_fetch_ahead fetch = skcce_fetch_start(ahead, ahead_bytes);
    for (ptrdiff_t k0 = 0; k0 < K; k0 += SKCCE_ROWS_MAX_CLASSES) {
        const SKCCE_T* r = R + k0;
        double* g = G + k0 * d;
#define SKCCE_GRAD_CASE(kb) \
    case kb: SKCCE_FN(skcce_rows_grad_classes)(X, m, d, r, ldr, g, &fetch, kb); break
        switch (K - k0) {
        SKCCE_ROWS_CLASS_CASES(SKCCE_GRAD_CASE)
        default: SKCCE_GRAD_CASE(SKCCE_ROWS_MAX_CLASSES);
        }
#undef SKCCE_GRAD_CASE
    }
}

#else /* plain loops: the same sums, rounded in their own order */

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_logits))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                              const SKCCE_T* W, ptrdiff_t K, SKCCE_T* Z,
                                              ptrdiff_t ldz, ptrdiff_t rows_readable)
{
    (void)rows_readable;
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < K; k++) {
            SKCCE_T acc = 0;
            for (ptrdiff_t j = 0; j < d; j++) acc += X[i * d + j] * W[k * d + j];
            Z[i * ldz + k] = acc;
        }
}

void SKCCE_EXPORT(SKCCE_FN(skcce_rows_grad))(const SKCCE_T* X, ptrdiff_t m, ptrdiff_t d,
                                            const SKCCE_T* R, ptrdiff_t ldr, ptrdiff_t K,
                                            double* G, const void* ahead,
                                            ptrdiff_t ahead_bytes)
{
    (void)ahead;
    (void)ahead_bytes;
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t k = 0; k < K; k++) {
            double r = (double)R[i * ldr + k];
            for (ptrdiff_t j = 0; j < d; j++) G[k * d + j] += r * (double)X[i * d + j];
        }
}

#endif

#undef SKCCE_ROWS_LOGITS_RB
#undef SKCCE_ROWS_MAX_CLASSES
#undef SKCCE_ROWS_GRAD_NJ
#undef SKCCE_ROWS_CLASS_CASES
#undef SKCCE_ROWS_GRAD_TILE_NJ
#undef SKCCE_ROWS_GRAD_ACC
#undef SKCCE_SUM_GROUP
#undef SKCCE_FN
#undef SKCCE_V
#undef SKCCE_VU
#undef SKCCE_NLANES
#undef SKCCE_SPLAT
#undef SKCCE_W
#undef SKCCE_WU
#undef SKCCE_WLANES
#undef SKCCE_SPLAT_WIDE
#undef SKCCE_R
#undef SKCCE_RU
#undef SKCCE_RLANES
#undef SKCCE_SPLAT_REG
#undef SKCCE_LOAD_PARTIAL_REG
#undef SKCCE_T
#undef SKCCE_SUFFIX
#undef SKCCE_FLOAT64
