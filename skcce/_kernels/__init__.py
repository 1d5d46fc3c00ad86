"""The compiled kernels: Cython modules, their shared ``.pxd`` and C headers.

- :mod:`~skcce._kernels.dense`: loss and gradient over dense X.
- :mod:`~skcce._kernels.sparse`: loss and gradient over CSR X, and its tiles.
- :mod:`~skcce._kernels.reductions`: the metric, the objective's finishing
  passes, column statistics, and whether the build has OpenMP.
- :mod:`~skcce._kernels.predict`: logits, probabilities, log-probabilities.

``common.pxd`` (index types, OpenMP, BLAS, argument checks) and
``crossentropy.pxd`` (targets and the per-row softmax arithmetic) are shared
by the modules; the C headers hold the vectorized inner loops.
"""
