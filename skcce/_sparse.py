"""Sparse input: one conversion to a CSR structure the kernel can trust.

The sparse kernel reads ``indices`` and ``indptr`` without bounds checks, so
their structure is checked once per fit here (an O(nnz) pass, far cheaper than
one evaluation). Formats other than CSR are converted once (a copy of the
non-zeros); CSR input is used in place.
"""

import numpy as np
import scipy.sparse as sp

_INDEX_DTYPES = (np.int32, np.int64)


def is_sparse(X):
    """Whether X is a scipy sparse matrix or array."""
    return sp.issparse(X)


def kernel_csr(X):
    """X as a CSR matrix whose index arrays the sparse kernel can read.

    Parameters
    ----------
    X : scipy sparse matrix or array, float32 or float64 values

    Returns
    -------
    X_csr : scipy.sparse CSR matrix or array
        ``X`` itself when it is already CSR with int32 or int64 indices and
        indptr of one dtype; otherwise a converted copy.

    Raises
    ------
    ValueError
        If the index structure is malformed (indices out of range, indptr not
        non-decreasing from 0 to nnz).
    """
    if X.format != "csr":
        X = X.tocsr()
    index_dtype = np.result_type(X.indices.dtype, X.indptr.dtype)
    if index_dtype not in _INDEX_DTYPES:
        index_dtype = np.int64
    if X.indices.dtype != index_dtype or X.indptr.dtype != index_dtype:
        X = X.copy()
        X.indices = X.indices.astype(index_dtype)
        X.indptr = X.indptr.astype(index_dtype)
    _check_csr_structure(X)
    return X


def _check_csr_structure(X):
    n_samples, n_features = X.shape
    indptr, indices = X.indptr, X.indices
    if indptr.shape[0] != n_samples + 1:
        raise ValueError(
            f"Malformed CSR matrix: indptr has {indptr.shape[0]} entries, "
            f"expected n_samples + 1 = {n_samples + 1}."
        )
    nnz = indices.shape[0]
    if X.data.shape[0] != nnz:
        raise ValueError("Malformed CSR matrix: data and indices differ in length.")
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        raise ValueError(
            "Malformed CSR matrix: indptr must be non-decreasing from 0 to nnz."
        )
    if nnz and (indices.min() < 0 or indices.max() >= n_features):
        raise ValueError(
            f"Malformed CSR matrix: column indices must lie in [0, {n_features})."
        )

