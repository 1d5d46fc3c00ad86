/* The kernels' hot loops, chosen at import for the CPU.
 *
 * simd_loops.c holds the loops that decide the kernels' speed: the dense
 * micro-kernels (microkernel.h, rowkernel_impl.h), the sparse tile loops
 * (sparse_tiles.h), prediction's CSR logits (csr_rows.h), the vectorized
 * exp and log (vector_exp.h), the softmax residuals for class labels
 * (softmax_impl.h), prediction's softmax and labels
 * (predict_softmax_impl.h) and the L-BFGS
 * direction's vector passes (skcce_axpy_dot). setup.py
 * compiles it once per instruction set the compiler can target: always the
 * baseline ("base"), and on x86-64 also AVX2 + FMA ("avx2") and AVX-512
 * ("avx512"), each with its own flags (NumPy's approach: no
 * compiler-specific attribute, so GCC, clang and MSVC all get the fast
 * paths). Every compiled set defines the same functions with its name as
 * suffix (skcce_logits_f64_avx2, ...).
 *
 * skcce_simd_select() checks the CPU (CPUID, and the operating system's
 * support for the wider registers) and fills skcce_simd with the best set it
 * supports, at most the one named by its argument (SKCCE_SIMD in the
 * environment, for tests and benchmarks). The Cython modules call the loops
 * through skcce_simd.
 *
 * Results are bitwise identical for every thread count with any set; the
 * sets may differ from one another in the last bits (FMA rounds once where
 * the baseline rounds twice).
 */
#ifndef SKCCE_SIMD_H
#define SKCCE_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* Rows per block of prediction's (log-)softmax (predict_softmax_impl.h). */
#define SKCCE_PREDICT_ROWS 8

/* The loops' arguments are those of the functions they point to (see
 * microkernel.h, rowkernel_impl.h, sparse_tiles.h); the logits products'
 * rows_readable is the number of rows of d elements readable from X on
 * (at least m: the rest are only prefetched); the gradient products fetch
 * up to ahead_bytes from ahead (the next chunk of X, or NULL) into the
 * cache. */
typedef struct {
    const char* name;
    /* Bytes of the widest vectors the micro-kernels use (SKCCE_REG_BYTES,
     * microkernel.h): 64 with AVX-512, 32 with AVX2, 16 with other vector
     * extensions (x86-64's baseline, arm64), 8 without. */
    int (*vector_bytes)(void);
    /* 1 if each term of prediction's CSR logits is a fused multiply-add
     * (rounded once), 0 if rounded twice (see SKCCE_CSR_MADD in csr_rows.h). */
    int (*csr_terms_fused)(void);
    void (*logits_f64)(const double* X, ptrdiff_t m, ptrdiff_t d, const double* Wt,
                       ptrdiff_t Kp, double* Z, ptrdiff_t rows_readable);
    void (*logits_f32)(const float* X, ptrdiff_t m, ptrdiff_t d, const float* Wt,
                       ptrdiff_t Kp, float* Z, ptrdiff_t rows_readable);
    void (*grad_f64)(const double* X, ptrdiff_t m, ptrdiff_t d, const double* R,
                     ptrdiff_t Kp, double* G, const void* ahead, ptrdiff_t ahead_bytes);
    void (*grad_f32)(const float* X, ptrdiff_t m, ptrdiff_t d, const float* R,
                     ptrdiff_t Kp, double* G, const void* ahead, ptrdiff_t ahead_bytes);
    void (*rows_logits_f64)(const double* X, ptrdiff_t m, ptrdiff_t d, const double* W,
                            ptrdiff_t K, double* Z, ptrdiff_t ldz,
                            ptrdiff_t rows_readable);
    void (*rows_logits_f32)(const float* X, ptrdiff_t m, ptrdiff_t d, const float* W,
                            ptrdiff_t K, float* Z, ptrdiff_t ldz,
                            ptrdiff_t rows_readable);
    void (*rows_grad_f64)(const double* X, ptrdiff_t m, ptrdiff_t d, const double* R,
                          ptrdiff_t ldr, ptrdiff_t K, double* G, const void* ahead,
                          ptrdiff_t ahead_bytes);
    void (*rows_grad_f32)(const float* X, ptrdiff_t m, ptrdiff_t d, const float* R,
                          ptrdiff_t ldr, ptrdiff_t K, double* G, const void* ahead,
                          ptrdiff_t ahead_bytes);
    void (*exp_nonpositive_inplace)(double* v, ptrdiff_t n);
    void (*log_ge1_inplace)(double* v, ptrdiff_t n);
    void (*tile_gather_f64)(const uint32_t* keys, const double* values, ptrdiff_t e0,
                            ptrdiff_t e1, int shift, const double* wb, ptrdiff_t K,
                            double* z, ptrdiff_t ldz, const double* stream,
                            const double* stream_end, ptrdiff_t lines);
    void (*tile_gather_f32)(const uint32_t* keys, const float* values, ptrdiff_t e0,
                            ptrdiff_t e1, int shift, const double* wb, ptrdiff_t K,
                            double* z, ptrdiff_t ldz, const double* stream,
                            const double* stream_end, ptrdiff_t lines);
    double* (*tile_scatter_f64)(const uint32_t* keys, const double* values, ptrdiff_t e0,
                                ptrdiff_t e1, int shift, double* gb, ptrdiff_t K,
                                const double* residuals, ptrdiff_t ldr, double* stream,
                                const double* stream_end, ptrdiff_t lines);
    double* (*tile_scatter_f32)(const uint32_t* keys, const float* values, ptrdiff_t e0,
                                ptrdiff_t e1, int shift, double* gb, ptrdiff_t K,
                                const double* residuals, ptrdiff_t ldr, double* stream,
                                const double* stream_end, ptrdiff_t lines);
    /* A chunk's weighted softmax residuals for class labels, in place of its
     * logits (z, n_rows x K, row stride ldz; b or sw NULL: no intercept, no
     * weights); adds the residuals to grad_intercept (unless NULL) and
     * returns the weighted loss sum (softmax_impl.h); scratch holds
     * n_rows * (K + 3) doubles. */
    double (*softmax_labels_f64)(double* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K,
                                 const double* b, const int32_t* labels, const double* sw,
                                 double* grad_intercept, double* scratch);
    double (*softmax_labels_f32)(float* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K,
                                 const double* b, const int32_t* labels, const double* sw,
                                 double* grad_intercept, double* scratch);
    /* q = (q + a x) * scale, then return v . q, over n values (x or v NULL:
     * no update, no dot product); value i is summed into partial sum i % 8,
     * the eight added in a fixed order (the L-BFGS direction's passes). */
    double (*axpy_dot)(double* q, const double* x, double a, double scale,
                       const double* v, ptrdiff_t n);
    /* Prediction's softmax (log_mode 0) or log-softmax (1) of n_rows rows of
     * logits z (row stride ldz) plus intercepts b, into out (n_rows x K; may
     * be z itself, with ldz = K); rows whose logits are not finite are
     * flagged in nonfinite and left untouched (predict_softmax_impl.h).
     * scratch holds 2 * SKCCE_PREDICT_ROWS * K doubles. */
    void (*predict_softmax_f64)(const double* z, ptrdiff_t ldz, ptrdiff_t n_rows,
                                ptrdiff_t K, const double* b, int log_mode, double* out,
                                unsigned char* nonfinite, double* scratch);
    void (*predict_softmax_f32)(const float* z, ptrdiff_t ldz, ptrdiff_t n_rows,
                                ptrdiff_t K, const float* b, int log_mode, float* out,
                                unsigned char* nonfinite, double* scratch);
    /* predict's class index of each row of z plus b whose logits are all
     * finite, into labels; the others are flagged in nonfinite (labels left
     * as they were; predict_softmax_impl.h). */
    void (*predict_labels_f64)(const double* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K,
                               const double* b, ptrdiff_t* labels, unsigned char* nonfinite);
    void (*predict_labels_f32)(const float* z, ptrdiff_t ldz, ptrdiff_t n_rows, ptrdiff_t K,
                               const float* b, ptrdiff_t* labels, unsigned char* nonfinite);
    /* Prediction's logits of one CSR row, in float64 (csr_rows.h), per type
     * of X's values (x), of the coefficients (w) and of the indices (i). */
    void (*csr_row_logits_x64_w64_i32)(const double* values, const int32_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const double* wt,
                                         const double* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x64_w64_i64)(const double* values, const int64_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const double* wt,
                                         const double* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x64_w32_i32)(const double* values, const int32_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const float* wt,
                                         const float* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x64_w32_i64)(const double* values, const int64_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const float* wt,
                                         const float* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x32_w64_i32)(const float* values, const int32_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const double* wt,
                                         const double* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x32_w64_i64)(const float* values, const int64_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const double* wt,
                                         const double* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x32_w32_i32)(const float* values, const int32_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const float* wt,
                                         const float* b, ptrdiff_t K, double* z);
    void (*csr_row_logits_x32_w32_i64)(const float* values, const int64_t* columns,
                                         ptrdiff_t nnz, ptrdiff_t readable, const float* wt,
                                         const float* b, ptrdiff_t K, double* z);
} skcce_simd_loops;

/* The selected loops (all NULL until skcce_simd_select). */
extern skcce_simd_loops skcce_simd;

/* Select the best set of loops for this CPU, at most ``cap`` ("base", "avx2",
 * "avx512"; NULL or "" for no cap); returns the selected set's name. */
const char* skcce_simd_select(const char* cap);

#endif
