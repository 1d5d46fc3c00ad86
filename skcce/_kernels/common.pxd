# Declarations shared by the kernel modules: the index type of sparse
# matrices, OpenMP with its serial fallbacks, BLAS GEMM for both dtypes, and
# the checks of the loss kernels' arguments.

from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm


ctypedef fused index_t:
    int32_t
    int64_t


# OpenMP entry points; openmp_shim.h gives serial fallbacks for a build
# without OpenMP.
cdef extern from "openmp_shim.h":
    bint SKCCE_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil


cdef inline void gemm(char* transa, char* transb, int m, int n, int k,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major ``C = op(A) @ op(B) + beta * C`` through scipy's BLAS."""
    cdef floating alpha = 1.0
    if floating is double:
        dgemm(transa, transb, &m, &n, &k, &alpha, <double*> a, &lda,
              <double*> b, &ldb, &beta, c, &ldc)
    else:
        sgemm(transa, transb, &m, &n, &k, &alpha, <float*> a, &lda,
              <float*> b, &ldb, &beta, c, &ldc)


cdef inline int check_sample_weight(const double[::1] sample_weight,
                                    Py_ssize_t n) except -1:
    """Raise ValueError unless ``sample_weight`` is None or has n entries."""
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError("sample_weight has the wrong length")
    return 0


cdef inline const double* weights_pointer(const double[::1] sample_weight) noexcept:
    """The sample weights' data, NULL for None (unit weights) or none at all."""
    if sample_weight is None or sample_weight.shape[0] == 0:
        return NULL
    return &sample_weight[0]


cdef inline int check_model_and_gradient(
    Py_ssize_t n_features, Py_ssize_t n_classes, Py_ssize_t weights_rows,
    const double[::1] intercept, double[:, ::1] grad_t,
) except -1:
    """Shapes of a loss kernel's ``weights_t``, ``intercept`` and ``grad_t``.

    ``weights_t`` has one row per feature, ``intercept`` (None: no intercept)
    one entry per class, and ``grad_t`` one row per feature plus one for the
    intercepts.
    """
    if weights_rows != n_features:
        raise ValueError("weights_t must have n_features rows")
    if intercept is not None and intercept.shape[0] != n_classes:
        raise ValueError("intercept must have K entries")
    if (grad_t.shape[0] != n_features + (intercept is not None)
            or grad_t.shape[1] != n_classes):
        raise ValueError("grad_t has the wrong shape")
    return 0
