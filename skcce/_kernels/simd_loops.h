/* Declarations of one instruction set's loops (see simd.h), and the table
 * that points at them. Included once per set by simd_dispatch.c (no include
 * guard) with SKCCE_TARGET defined (base, avx2 or avx512), and by
 * simd_loops.c for its own set. */

#define SKCCE_EXPORT(name) SKCCE_TYPED(name, SKCCE_TARGET)
#define SKCCE_STRING(target) SKCCE_STRING_OF(target)
#define SKCCE_STRING_OF(target) #target

void SKCCE_EXPORT(skcce_logits_f64)(const double*, ptrdiff_t, ptrdiff_t, const double*,
                                    ptrdiff_t, double*, ptrdiff_t);
void SKCCE_EXPORT(skcce_logits_f32)(const float*, ptrdiff_t, ptrdiff_t, const float*,
                                    ptrdiff_t, float*, ptrdiff_t);
void SKCCE_EXPORT(skcce_grad_f64)(const double*, ptrdiff_t, ptrdiff_t, const double*,
                                  ptrdiff_t, double*, const void*, ptrdiff_t);
void SKCCE_EXPORT(skcce_grad_f32)(const float*, ptrdiff_t, ptrdiff_t, const float*,
                                  ptrdiff_t, double*, const void*, ptrdiff_t);
void SKCCE_EXPORT(skcce_rows_logits_f64)(const double*, ptrdiff_t, ptrdiff_t, const double*,
                                         ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
void SKCCE_EXPORT(skcce_rows_logits_f32)(const float*, ptrdiff_t, ptrdiff_t, const float*,
                                         ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
void SKCCE_EXPORT(skcce_rows_grad_f64)(const double*, ptrdiff_t, ptrdiff_t, const double*,
                                       ptrdiff_t, ptrdiff_t, double*, const void*, ptrdiff_t);
void SKCCE_EXPORT(skcce_rows_grad_f32)(const float*, ptrdiff_t, ptrdiff_t, const float*,
                                       ptrdiff_t, ptrdiff_t, double*, const void*, ptrdiff_t);
int SKCCE_EXPORT(skcce_vector_bytes)(void);
int SKCCE_EXPORT(skcce_csr_terms_fused)(void);
void SKCCE_EXPORT(skcce_exp_nonpositive_inplace)(double*, ptrdiff_t);
void SKCCE_EXPORT(skcce_log_ge1_inplace)(double*, ptrdiff_t);
double SKCCE_EXPORT(skcce_softmax_labels_f64)(double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                               const double*, const int32_t*, const double*,
                                               double*, double*);
double SKCCE_EXPORT(skcce_softmax_labels_f32)(float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                               const double*, const int32_t*, const double*,
                                               double*, double*);
double SKCCE_EXPORT(skcce_axpy_dot)(double*, const double*, double, double, const double*,
                                    ptrdiff_t);
void SKCCE_EXPORT(skcce_predict_softmax_f64)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                             const double*, int, double*, unsigned char*,
                                             double*);
void SKCCE_EXPORT(skcce_predict_softmax_f32)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                             const float*, int, float*, unsigned char*,
                                             double*);
void SKCCE_EXPORT(skcce_predict_labels_f64)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                            const double*, ptrdiff_t*, unsigned char*);
void SKCCE_EXPORT(skcce_predict_labels_f32)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                            const float*, ptrdiff_t*, unsigned char*);
void SKCCE_EXPORT(skcce_tile_gather_f64)(const uint32_t*, const double*, ptrdiff_t, ptrdiff_t,
                                         int, const double*, ptrdiff_t, double*, ptrdiff_t,
                                         const double*, const double*, ptrdiff_t);
void SKCCE_EXPORT(skcce_tile_gather_f32)(const uint32_t*, const float*, ptrdiff_t, ptrdiff_t,
                                         int, const double*, ptrdiff_t, double*, ptrdiff_t,
                                         const double*, const double*, ptrdiff_t);
double* SKCCE_EXPORT(skcce_tile_scatter_f64)(const uint32_t*, const double*, ptrdiff_t,
                                             ptrdiff_t, int, double*, ptrdiff_t,
                                             const double*, ptrdiff_t, double*,
                                             const double*, ptrdiff_t);
double* SKCCE_EXPORT(skcce_tile_scatter_f32)(const uint32_t*, const float*, ptrdiff_t,
                                             ptrdiff_t, int, double*, ptrdiff_t,
                                             const double*, ptrdiff_t, double*,
                                             const double*, ptrdiff_t);

#define SKCCE_CSR_ROW_LOGITS(TX, TW, TI, suffix) \
    void SKCCE_EXPORT(SKCCE_TYPED(skcce_csr_row_logits, suffix))( \
        const TX*, const TI*, ptrdiff_t, ptrdiff_t, const TW*, const TW*, ptrdiff_t, double*);
SKCCE_CSR_ROW_LOGITS(double, double, int32_t, x64_w64_i32)
SKCCE_CSR_ROW_LOGITS(double, double, int64_t, x64_w64_i64)
SKCCE_CSR_ROW_LOGITS(double, float, int32_t, x64_w32_i32)
SKCCE_CSR_ROW_LOGITS(double, float, int64_t, x64_w32_i64)
SKCCE_CSR_ROW_LOGITS(float, double, int32_t, x32_w64_i32)
SKCCE_CSR_ROW_LOGITS(float, double, int64_t, x32_w64_i64)
SKCCE_CSR_ROW_LOGITS(float, float, int32_t, x32_w32_i32)
SKCCE_CSR_ROW_LOGITS(float, float, int64_t, x32_w32_i64)
#undef SKCCE_CSR_ROW_LOGITS

#ifdef SKCCE_DISPATCH
static const skcce_simd_loops SKCCE_EXPORT(skcce_loops) = {
    SKCCE_STRING(SKCCE_TARGET), SKCCE_EXPORT(skcce_vector_bytes),
    SKCCE_EXPORT(skcce_csr_terms_fused),
    SKCCE_EXPORT(skcce_logits_f64), SKCCE_EXPORT(skcce_logits_f32),
    SKCCE_EXPORT(skcce_grad_f64), SKCCE_EXPORT(skcce_grad_f32),
    SKCCE_EXPORT(skcce_rows_logits_f64), SKCCE_EXPORT(skcce_rows_logits_f32),
    SKCCE_EXPORT(skcce_rows_grad_f64), SKCCE_EXPORT(skcce_rows_grad_f32),
    SKCCE_EXPORT(skcce_exp_nonpositive_inplace), SKCCE_EXPORT(skcce_log_ge1_inplace),
    SKCCE_EXPORT(skcce_tile_gather_f64), SKCCE_EXPORT(skcce_tile_gather_f32),
    SKCCE_EXPORT(skcce_tile_scatter_f64), SKCCE_EXPORT(skcce_tile_scatter_f32),
    SKCCE_EXPORT(skcce_softmax_labels_f64), SKCCE_EXPORT(skcce_softmax_labels_f32),
    SKCCE_EXPORT(skcce_axpy_dot),
    SKCCE_EXPORT(skcce_predict_softmax_f64), SKCCE_EXPORT(skcce_predict_softmax_f32),
    SKCCE_EXPORT(skcce_predict_labels_f64), SKCCE_EXPORT(skcce_predict_labels_f32),
    SKCCE_EXPORT(skcce_csr_row_logits_x64_w64_i32),
    SKCCE_EXPORT(skcce_csr_row_logits_x64_w64_i64),
    SKCCE_EXPORT(skcce_csr_row_logits_x64_w32_i32),
    SKCCE_EXPORT(skcce_csr_row_logits_x64_w32_i64),
    SKCCE_EXPORT(skcce_csr_row_logits_x32_w64_i32),
    SKCCE_EXPORT(skcce_csr_row_logits_x32_w64_i64),
    SKCCE_EXPORT(skcce_csr_row_logits_x32_w32_i32),
    SKCCE_EXPORT(skcce_csr_row_logits_x32_w32_i64),
};
#undef SKCCE_EXPORT
#endif
