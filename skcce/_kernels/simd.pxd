# The hot loops chosen at import for the CPU (simd.h): dense and sparse call
# them through ``skcce_simd``.

from libc.stdint cimport int32_t, int64_t, uint32_t


cdef extern from "simd.h":
    int SKCCE_PREDICT_ROWS

    ctypedef struct skcce_simd_loops:
        const char* name
        int (*vector_bytes)() noexcept nogil
        int (*csr_terms_fused)() noexcept nogil
        void (*logits_f64)(const double* X, Py_ssize_t m, Py_ssize_t d, const double* Wt,
                           Py_ssize_t Kp, double* Z, Py_ssize_t rows_readable) noexcept nogil
        void (*logits_f32)(const float* X, Py_ssize_t m, Py_ssize_t d, const float* Wt,
                           Py_ssize_t Kp, float* Z, Py_ssize_t rows_readable) noexcept nogil
        void (*grad_f64)(const double* X, Py_ssize_t m, Py_ssize_t d, const double* R,
                         Py_ssize_t Kp, double* G, const void* ahead,
                         Py_ssize_t ahead_bytes) noexcept nogil
        void (*grad_f32)(const float* X, Py_ssize_t m, Py_ssize_t d, const float* R,
                         Py_ssize_t Kp, double* G, const void* ahead,
                         Py_ssize_t ahead_bytes) noexcept nogil
        void (*rows_logits_f64)(const double* X, Py_ssize_t m, Py_ssize_t d,
                                const double* W, Py_ssize_t K, double* Z,
                                Py_ssize_t ldz, Py_ssize_t rows_readable) noexcept nogil
        void (*rows_logits_f32)(const float* X, Py_ssize_t m, Py_ssize_t d,
                                const float* W, Py_ssize_t K, float* Z,
                                Py_ssize_t ldz, Py_ssize_t rows_readable) noexcept nogil
        void (*rows_grad_f64)(const double* X, Py_ssize_t m, Py_ssize_t d, const double* R,
                              Py_ssize_t ldr, Py_ssize_t K, double* G, const void* ahead,
                              Py_ssize_t ahead_bytes) noexcept nogil
        void (*rows_grad_f32)(const float* X, Py_ssize_t m, Py_ssize_t d, const float* R,
                              Py_ssize_t ldr, Py_ssize_t K, double* G, const void* ahead,
                              Py_ssize_t ahead_bytes) noexcept nogil
        void (*exp_nonpositive_inplace)(double* v, Py_ssize_t n) noexcept nogil
        void (*log_ge1_inplace)(double* v, Py_ssize_t n) noexcept nogil
        void (*tile_gather_f64)(const uint32_t* keys, const double* values, Py_ssize_t e0,
                                Py_ssize_t e1, int shift, const double* wb, Py_ssize_t K,
                                double* z, Py_ssize_t ldz, const double* stream,
                                const double* stream_end, Py_ssize_t lines) noexcept nogil
        void (*tile_gather_f32)(const uint32_t* keys, const float* values, Py_ssize_t e0,
                                Py_ssize_t e1, int shift, const double* wb, Py_ssize_t K,
                                double* z, Py_ssize_t ldz, const double* stream,
                                const double* stream_end, Py_ssize_t lines) noexcept nogil
        double* (*tile_scatter_f64)(const uint32_t* keys, const double* values,
                                    Py_ssize_t e0, Py_ssize_t e1, int shift, double* gb,
                                    Py_ssize_t K, const double* residuals, Py_ssize_t ldr,
                                    double* stream, const double* stream_end,
                                    Py_ssize_t lines) noexcept nogil
        double* (*tile_scatter_f32)(const uint32_t* keys, const float* values,
                                    Py_ssize_t e0, Py_ssize_t e1, int shift, double* gb,
                                    Py_ssize_t K, const double* residuals, Py_ssize_t ldr,
                                    double* stream, const double* stream_end,
                                    Py_ssize_t lines) noexcept nogil
        double (*softmax_labels_f64)(double* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                     Py_ssize_t K, const double* b, const int32_t* labels,
                                     const double* sw, double* grad_intercept,
                                     double* scratch) noexcept nogil
        double (*softmax_labels_f32)(float* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                     Py_ssize_t K, const double* b, const int32_t* labels,
                                     const double* sw, double* grad_intercept,
                                     double* scratch) noexcept nogil
        double (*axpy_dot)(double* q, const double* x, double a, double scale,
                           const double* v, Py_ssize_t n) noexcept nogil
        void (*predict_softmax_f64)(const double* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                    Py_ssize_t K, const double* b, int log_mode,
                                    double* out, unsigned char* nonfinite,
                                    double* scratch) noexcept nogil
        void (*predict_softmax_f32)(const float* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                    Py_ssize_t K, const float* b, int log_mode,
                                    float* out, unsigned char* nonfinite,
                                    double* scratch) noexcept nogil
        void (*predict_labels_f64)(const double* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                   Py_ssize_t K, const double* b, Py_ssize_t* labels,
                                   unsigned char* nonfinite) noexcept nogil
        void (*predict_labels_f32)(const float* z, Py_ssize_t ldz, Py_ssize_t n_rows,
                                   Py_ssize_t K, const float* b, Py_ssize_t* labels,
                                   unsigned char* nonfinite) noexcept nogil
        void (*csr_row_logits_x64_w64_i32)(const double* values, const int32_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const double* wt, const double* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x64_w64_i64)(const double* values, const int64_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const double* wt, const double* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x64_w32_i32)(const double* values, const int32_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const float* wt, const float* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x64_w32_i64)(const double* values, const int64_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const float* wt, const float* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x32_w64_i32)(const float* values, const int32_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const double* wt, const double* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x32_w64_i64)(const float* values, const int64_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const double* wt, const double* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x32_w32_i32)(const float* values, const int32_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const float* wt, const float* b, Py_ssize_t K,
                                             double* z) noexcept nogil
        void (*csr_row_logits_x32_w32_i64)(const float* values, const int64_t* columns,
                                             Py_ssize_t nnz, Py_ssize_t readable,
                                             const float* wt, const float* b, Py_ssize_t K,
                                             double* z) noexcept nogil

    skcce_simd_loops skcce_simd
    const char* skcce_simd_select(const char* cap)


cdef inline str select_simd_loops():
    """Fill ``skcce_simd`` for this CPU, capped by the environment variable
    SKCCE_SIMD ("base", "avx2"); return the name of the selected set."""
    import os

    cap = os.environ.get("SKCCE_SIMD", "").encode()
    return skcce_simd_select(cap).decode()
