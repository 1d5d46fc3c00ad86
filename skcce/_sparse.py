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


def kernel_csr(X, structure_checked=False):
    """X as a CSR matrix whose index arrays the sparse kernel can read.

    Parameters
    ----------
    X : scipy sparse matrix or array, float32 or float64 values
    structure_checked : bool, default=False
        Whether the caller has already passed X, or the matrix X was converted
        from, through :func:`check_sparse_structure` with ``csr_indices=True``
        (scipy's conversions of a well-formed matrix are well-formed): the
        O(nnz) check is then skipped.

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
    if not structure_checked:
        check_sparse_structure(X)
    return X


def check_sparse_structure(X, *, csr_indices=True):
    """Check the index arrays of sparse X before anything reads through them.

    scipy trusts the index arrays of a matrix whose arrays were modified in
    place: converting a CSC or COO matrix with an out-of-range index to CSR
    writes out of bounds (and crashes the process). CSR, CSC and BSR index
    structures and COO coordinates are checked here, in O(nnz); other
    formats (LIL, DOK, DIA) validate their entries on assignment. Dense input
    is ignored.

    Parameters
    ----------
    X : object
    csr_indices : bool, default=True
        Whether to check that a CSR matrix's column indices lie in range.
        False for a caller whose kernel checks them itself before reading
        through them (the prediction kernel), which saves a pass over them;
        ``indptr`` is checked either way.

    Raises
    ------
    ValueError
        If an index is out of range or ``indptr`` is not non-decreasing from
        0 to the number of stored entries.
    """
    if not is_sparse(X):
        return
    n_rows, n_cols = X.shape
    if X.format in ("csr", "csc", "bsr"):
        major, minor = (n_rows, n_cols) if X.format != "csc" else (n_cols, n_rows)
        if X.format == "bsr":
            block_rows, block_cols = X.blocksize
            major, minor = n_rows // block_rows, n_cols // block_cols
        _check_compressed(X.format, X.indptr, X.indices, major, minor,
                          X.data.shape[0], csr_indices or X.format != "csr")
    elif X.format == "coo":
        for name, coords, bound in (("row", X.row, n_rows), ("column", X.col, n_cols)):
            if coords.size and (coords.min() < 0 or coords.max() >= bound):
                raise ValueError(
                    f"Malformed COO matrix: {name} indices must lie in [0, {bound})."
                )


def _check_compressed(fmt, indptr, indices, n_major, n_minor, n_data, check_indices):
    name = fmt.upper()
    minor = "column" if fmt != "csc" else "row"
    if indptr.shape[0] != n_major + 1:
        raise ValueError(
            f"Malformed {name} matrix: indptr has {indptr.shape[0]} entries, "
            f"expected {n_major + 1}."
        )
    nnz = indices.shape[0]
    if n_data != nnz:
        raise ValueError(f"Malformed {name} matrix: data and indices differ in length.")
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"Malformed {name} matrix: indptr must be non-decreasing from 0 to nnz."
        )
    if check_indices and nnz and (indices.min() < 0 or indices.max() >= n_minor):
        raise ValueError(
            f"Malformed {name} matrix: {minor} indices must lie in [0, {n_minor})."
        )

