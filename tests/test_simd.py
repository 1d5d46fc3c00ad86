"""The hot loops' instruction sets: each compiled set this CPU runs is correct.

The build compiles the dense micro-kernels, the sparse tile loops and the
vectorized exp once per instruction set (the baseline, and on x86-64 AVX2 +
FMA and AVX-512) and picks the best one the CPU supports at import, capped by
the environment variable SKCCE_SIMD. Each set is checked here, in a fresh
interpreter, against the NumPy reference, on shapes that reach every loop:
micro-kernel widths of 1 to 4 vectors (K = 3, 7, 13, 29), the BLAS path, and
sparse data with specialized and generic class counts.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from skcce._kernels import dense
from _reference import assert_grad_close, numpy_loss_gradient

SETS = ("base", "avx2", "avx512")

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import scipy.sparse as sp
    from skcce import crossentropy_loss_gradient
    from skcce._kernels import dense
    data = np.load(sys.argv[1])
    out = {"simd": np.array(dense.simd_loops())}
    for key in data.files:
        if not key.startswith("X_"):
            continue
        name = key[2:]
        X = data[key]
        if name.startswith("csr"):
            X = sp.csr_matrix(X)
        loss, grad = crossentropy_loss_gradient(
            data["coef_" + name], X, data["y_" + name], sample_weight=data["w_" + name],
            l2_reg_strength=0.01)
        out["loss_" + name] = np.array(loss)
        out["grad_" + name] = grad
    np.savez(sys.argv[2], **out)
    """
)


def _problems():
    rng = np.random.default_rng(0)
    problems = {}
    for K in (3, 7, 13, 29, 40):
        for dtype in (np.float64, np.float32):
            n, d = 700, 19
            problems[f"dense{K}_{np.dtype(dtype).name}"] = (
                rng.normal(size=(n, d)).astype(dtype), rng.integers(0, K, n),
                rng.uniform(0.5, 2.0, n), rng.normal(scale=0.3, size=(K, d + 1)))
    for K in (5, 40):
        X = rng.normal(size=(900, 300)) * (rng.random((900, 300)) < 0.05)
        problems[f"csr{K}"] = (X, rng.integers(0, K, 900), rng.uniform(0.5, 2.0, 900),
                               rng.normal(scale=0.3, size=(K, 301)))
    return problems


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("simd") / "problems.npz"
    arrays = {}
    for name, (X, y, w, coef) in _problems().items():
        arrays.update({f"X_{name}": X, f"y_{name}": y, f"w_{name}": w, f"coef_{name}": coef})
    np.savez(path, **arrays)
    return path


def test_the_selected_set_is_one_of_the_compiled_sets():
    assert dense.simd_loops() in SETS


@pytest.mark.parametrize("cap", SETS)
def test_every_instruction_set_gives_the_reference_loss_and_gradient(cap, problem_file,
                                                                     tmp_path):
    out = tmp_path / "out.npz"
    env = dict(os.environ, SKCCE_SIMD=cap)
    res = subprocess.run([sys.executable, "-c", CHILD, str(problem_file), str(out)],
                         env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    result = np.load(out)
    selected = str(result["simd"])
    # Never above the cap, never above what this process selected uncapped.
    assert SETS.index(selected) <= min(SETS.index(cap), SETS.index(dense.simd_loops()))
    if SETS.index(cap) <= SETS.index(dense.simd_loops()):
        assert selected == cap
    for name, (X, y, w, coef) in _problems().items():
        ref_loss, ref_grad = numpy_loss_gradient(coef, X, y, w, 0.01)
        rtol = 1e-5 if name.endswith("float32") else 1e-12
        np.testing.assert_allclose(result["loss_" + name], ref_loss, rtol=rtol)
        assert_grad_close(result["grad_" + name], ref_grad, rtol=rtol, atol_factor=rtol)
