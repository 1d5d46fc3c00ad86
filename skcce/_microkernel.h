/* Register-blocked products for a chunk of rows with few classes.
 *
 *   logits:   Z (m x Kp)  = X (m x d) @ Wt (d x Kp)
 *   gradient: G (d x Kp) += X (m x d)^T @ R (m x Kp)     (G in float64)
 *
 * X is row-major with leading dimension d; Kp, the padded number of classes,
 * is a multiple of the vector width (4 doubles or 8 floats) and the padding
 * columns of Wt are zero. With K around 10, BLAS GEMM spends most of its time
 * packing panels for a product that is only 10 columns wide; these loops keep
 * a tile of accumulators in vector registers instead and read X once per
 * tile of classes.
 *
 * Numerics: every output entry is one sum over j (logits) or over the chunk's
 * rows (gradient) in index order, the same for every call, so results do not
 * depend on threads. float32 data accumulates a chunk's gradient in float32
 * registers (as SGEMM would) and adds it to the float64 G.
 *
 * With GCC on x86-64 Linux, the entry points are compiled for three
 * instruction sets and the best one the CPU supports is chosen at load time
 * (target_clones), so a build runs on any x86-64 machine.
 */
#ifndef SKCCE_MICROKERNEL_H
#define SKCCE_MICROKERNEL_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SKCCE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SKCCE_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)

#define SKCCE_INLINE static inline __attribute__((always_inline))

typedef double skcce_vd __attribute__((vector_size(32)));
typedef double skcce_vd_u __attribute__((vector_size(32), aligned(8)));
typedef float skcce_vf __attribute__((vector_size(32)));
typedef float skcce_vf_u __attribute__((vector_size(32), aligned(4)));

/* Up to 4 vectors of classes per tile; 4 rows per logits tile; JB features
 * per gradient tile. */
#define SKCCE_MAX_NV 4
#define SKCCE_RB 4
#define SKCCE_MAX_JB 8
/* Rows of X prefetched ahead of the logits tile being computed. */
#define SKCCE_PREFETCH_ROWS 16
#define SKCCE_PREFETCH_X(p) __builtin_prefetch((const void*)(p), 0, 3)
/* All lanes equal to s: one broadcast (not "zero vector + s", which costs an
 * extra addition because s + 0 is not s for s = -0). */
#define SKCCE_SPLAT4(V, s) ((V){(s), (s), (s), (s)})
#define SKCCE_SPLAT8(V, s) ((V){(s), (s), (s), (s), (s), (s), (s), (s)})

#define SKCCE_DEFINE_MICROKERNELS(T, V, VU, LANES, SPLAT, SUF)                             \
SKCCE_INLINE void skcce_logits_tile_##SUF(const T* X, ptrdiff_t d, const T* Wt,       \
                                          ptrdiff_t Kp, T* Z, const int RB,           \
                                          const int NV) {                             \
    V acc[SKCCE_RB][SKCCE_MAX_NV];                                                    \
    for (int r = 0; r < RB; r++)                                                      \
        for (int v = 0; v < NV; v++) acc[r][v] = SPLAT(V, 0);                \
    for (ptrdiff_t j = 0; j < d; j++) {                                               \
        V w[SKCCE_MAX_NV];                                                            \
        for (int v = 0; v < NV; v++) w[v] = *(const VU*)(Wt + j * Kp + LANES * v);    \
        for (int r = 0; r < RB; r++) {                                                \
            V x = SPLAT(V, X[r * d + j]);                                    \
            for (int v = 0; v < NV; v++) acc[r][v] += x * w[v];                       \
        }                                                                             \
    }                                                                                 \
    for (int r = 0; r < RB; r++)                                                      \
        for (int v = 0; v < NV; v++) *(VU*)(Z + r * Kp + LANES * v) = acc[r][v];      \
}                                                                                     \
SKCCE_INLINE void skcce_logits_cols_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d,       \
                                          const T* Wt, ptrdiff_t Kp, T* Z,            \
                                          const int NV) {                             \
    ptrdiff_t i = 0;                                                                  \
    for (; i + SKCCE_RB <= m; i += SKCCE_RB) {                                        \
        /* The logits pass is the first to read X: fetch rows ahead. */               \
        if (i + SKCCE_PREFETCH_ROWS + SKCCE_RB <= m)                                  \
            for (ptrdiff_t e = 0; e < SKCCE_RB * d; e += 64 / (ptrdiff_t)sizeof(T))   \
                SKCCE_PREFETCH_X(X + (i + SKCCE_PREFETCH_ROWS) * d + e);              \
        skcce_logits_tile_##SUF(X + i * d, d, Wt, Kp, Z + i * Kp, SKCCE_RB, NV);      \
    }                                                                                 \
    for (; i < m; i++)                                                                \
        skcce_logits_tile_##SUF(X + i * d, d, Wt, Kp, Z + i * Kp, 1, NV);             \
}                                                                                     \
SKCCE_INLINE void skcce_grad_tile_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d,         \
                                        const T* R, ptrdiff_t Kp, double* G,          \
                                        const int JB, const int NV) {                 \
    V acc[SKCCE_MAX_JB][SKCCE_MAX_NV];                                                \
    for (int jj = 0; jj < JB; jj++)                                                   \
        for (int v = 0; v < NV; v++) acc[jj][v] = SPLAT(V, 0);               \
    for (ptrdiff_t i = 0; i < m; i++) {                                               \
        V r[SKCCE_MAX_NV];                                                            \
        for (int v = 0; v < NV; v++) r[v] = *(const VU*)(R + i * Kp + LANES * v);     \
        for (int jj = 0; jj < JB; jj++) {                                             \
            V x = SPLAT(V, X[i * d + jj]);                                   \
            for (int v = 0; v < NV; v++) acc[jj][v] += x * r[v];                      \
        }                                                                             \
    }                                                                                 \
    for (int jj = 0; jj < JB; jj++)                                                   \
        for (int v = 0; v < NV; v++)                                                  \
            for (int l = 0; l < LANES; l++)                                           \
                G[jj * Kp + LANES * v + l] += (double)acc[jj][v][l];                  \
}                                                                                     \
SKCCE_INLINE void skcce_grad_cols_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d,         \
                                        const T* R, ptrdiff_t Kp, double* G,          \
                                        const int NV, const int JB) {                 \
    ptrdiff_t j = 0;                                                                  \
    for (; j + JB <= d; j += JB)                                                      \
        skcce_grad_tile_##SUF(X + j, m, d, R, Kp, G + j * Kp, JB, NV);                \
    for (; j < d; j++)                                                                \
        skcce_grad_tile_##SUF(X + j, m, d, R, Kp, G + j * Kp, 1, NV);                 \
}                                                                                     \
/* Column tiles of up to 4 vectors; register budgets: 4 rows x NV (logits), */      \
/* JB features x NV (gradient), at most 12 accumulators. */                          \
SKCCE_CLONES void skcce_logits_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d,            \
                                     const T* Wt, ptrdiff_t Kp, T* Z) {               \
    for (ptrdiff_t k0 = 0; k0 < Kp; k0 += SKCCE_MAX_NV * LANES) {                     \
        ptrdiff_t nv = (Kp - k0) / LANES;                                             \
        if (nv > SKCCE_MAX_NV) nv = SKCCE_MAX_NV;                                     \
        switch (nv) {                                                                 \
        case 1: skcce_logits_cols_##SUF(X, m, d, Wt + k0, Kp, Z + k0, 1); break;      \
        case 2: skcce_logits_cols_##SUF(X, m, d, Wt + k0, Kp, Z + k0, 2); break;      \
        case 3: skcce_logits_cols_##SUF(X, m, d, Wt + k0, Kp, Z + k0, 3); break;      \
        default: skcce_logits_cols_##SUF(X, m, d, Wt + k0, Kp, Z + k0, 4); break;     \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
SKCCE_CLONES void skcce_grad_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d,              \
                                   const T* R, ptrdiff_t Kp, double* G) {             \
    for (ptrdiff_t k0 = 0; k0 < Kp; k0 += SKCCE_MAX_NV * LANES) {                     \
        ptrdiff_t nv = (Kp - k0) / LANES;                                             \
        if (nv > SKCCE_MAX_NV) nv = SKCCE_MAX_NV;                                     \
        switch (nv) {                                                                 \
        case 1: skcce_grad_cols_##SUF(X, m, d, R + k0, Kp, G + k0, 1, 8); break;      \
        case 2: skcce_grad_cols_##SUF(X, m, d, R + k0, Kp, G + k0, 2, 4); break;      \
        case 3: skcce_grad_cols_##SUF(X, m, d, R + k0, Kp, G + k0, 3, 4); break;      \
        default: skcce_grad_cols_##SUF(X, m, d, R + k0, Kp, G + k0, 4, 2); break;     \
        }                                                                             \
    }                                                                                 \
}

SKCCE_DEFINE_MICROKERNELS(double, skcce_vd, skcce_vd_u, 4, SKCCE_SPLAT4, f64)
SKCCE_DEFINE_MICROKERNELS(float, skcce_vf, skcce_vf_u, 8, SKCCE_SPLAT8, f32)

#define SKCCE_LANES_F64 4
#define SKCCE_LANES_F32 8

#else /* no vector extensions: plain loops with the same semantics */

#define SKCCE_LANES_F64 1
#define SKCCE_LANES_F32 1

#define SKCCE_DEFINE_PLAIN(T, SUF)                                                    \
static void skcce_logits_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d, const T* Wt,     \
                               ptrdiff_t Kp, T* Z) {                                  \
    for (ptrdiff_t i = 0; i < m; i++)                                                 \
        for (ptrdiff_t k = 0; k < Kp; k++) {                                          \
            T acc = 0;                                                                \
            for (ptrdiff_t j = 0; j < d; j++) acc += X[i * d + j] * Wt[j * Kp + k];   \
            Z[i * Kp + k] = acc;                                                      \
        }                                                                             \
}                                                                                     \
static void skcce_grad_##SUF(const T* X, ptrdiff_t m, ptrdiff_t d, const T* R,        \
                             ptrdiff_t Kp, double* G) {                               \
    for (ptrdiff_t j = 0; j < d; j++)                                                 \
        for (ptrdiff_t k = 0; k < Kp; k++) {                                          \
            T acc = 0;                                                                \
            for (ptrdiff_t i = 0; i < m; i++) acc += X[i * d + j] * R[i * Kp + k];    \
            G[j * Kp + k] += (double)acc;                                             \
        }                                                                             \
}
SKCCE_DEFINE_PLAIN(double, f64)
SKCCE_DEFINE_PLAIN(float, f32)

#endif

/* exp(v[i]) in place for shifted logits v[i] <= 0, vectorizable (no calls,
 * no branches): exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2
 * (ln 2 split in two for an exact product), exp(r) by its degree-13 Taylor
 * polynomial (truncation < 1e-17 for |r| <= ln(2)/2). Within 2 ulp of the
 * correctly rounded value. x < -708 gives 0 (the true value is below 1e-307
 * and only ever added to a sum >= 1); NaN stays NaN. */
static inline double skcce_exp_nonpositive(double x) {
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    const double ln2_lo = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
    const double shifter = 6755399441055744.0;        /* 1.5 * 2^52 */
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * log2e + shifter;
    double k = t - shifter;
    double r = (xc - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    long long t_bits, shifter_bits, scale_bits;
    double scale;
    __builtin_memcpy(&t_bits, &t, 8);
    __builtin_memcpy(&shifter_bits, &shifter, 8);
    scale_bits = (t_bits - shifter_bits + 1023) << 52;
    __builtin_memcpy(&scale, &scale_bits, 8);
    double y = p * scale;
    y = x < -708.0 ? 0.0 : y;
    return x != x ? x : y;
}

SKCCE_CLONES void skcce_exp_nonpositive_inplace(double* v, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) v[i] = skcce_exp_nonpositive(v[i]);
}

#endif
