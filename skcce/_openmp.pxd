# OpenMP helpers shared by the Cython modules; see _openmp_shim.h for the
# serial fallbacks used when the extension is built without OpenMP.
cdef extern from "_openmp_shim.h":
    bint SKCCE_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
