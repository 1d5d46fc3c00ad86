"""The hot loops' instruction sets: each compiled set this CPU runs is correct.

The build compiles the dense micro-kernels, the sparse tile loops and the
vectorized exp and log once per instruction set (the baseline, and on x86-64 AVX2 +
FMA and AVX-512) and picks the best one the CPU supports at import, capped by
the environment variable SKCCE_SIMD. Each set is checked here, in a fresh
interpreter, against the NumPy reference, on shapes that reach every loop:
micro-kernel widths of 1 to 8 vectors (K = 3 to 29), several tiles of
classes (K = 40, 150) and blocks of features (d = 300), also forced where
the shape rules take BLAS or the kernels vectorized over features, the kernels
vectorized over features (float32 with K = 2 to 5, float64 with K = 2; 133
and 141 features; and forced, for K = 2 to 5 in both types, 32 to 47
features), the BLAS path,
sparse data with specialized and generic class counts, the softmax residuals
for labels (bitwise those of one-hot targets), the L-BFGS direction's
vector passes, prediction's softmax and log-softmax (micro-kernel and
BLAS paths, rows whose logits span more than 708) and labels, and
prediction's CSR logits with their coefficient rows prefetched.
"""

import inspect
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import log_softmax, softmax

from skcce._kernels import dense
from _reference import (assert_grad_close, exact_csr_row_logits, numpy_loss_gradient,
                        two_loop_direction)

SETS = ("base", "avx2", "avx512")


def prediction_rows(X):
    """X for prediction: in float64, every 97th row times 400, so that its
    logits span more than 708 (libm's exp in the softmax)."""
    if X.dtype != np.float64:
        return X
    X = X.copy()
    X[::97] *= 400.0
    return X


def csr_prediction_problems():
    """CSR prediction with W.T over 1 MiB, whose rows the kernel prefetches
    (K = 8, 20 and 40), and with a small W.T (K = 5, 33, 35 and 63: vector
    registers for float32 coefficients, slices of the classes beyond 32);
    float64 data and model, float32 data with either model, int32 and int64
    indices; 300 rows of 0 to 60 non-zeros, so a chunk ends inside them (at
    row 256) for more than one thread."""
    rng = np.random.default_rng(5)
    problems = {}
    for K, prefetched in ((8, True), (20, True), (40, True), (5, False), (33, False),
                          (35, False), (63, False)):
        for x_dtype, w_dtype in ((np.float64, np.float64), (np.float32, np.float64),
                                 (np.float32, np.float32)):
            for index_dtype in (np.int32, np.int64):
                d = 2**20 // (K * np.dtype(w_dtype).itemsize) + 100 if prefetched else 50
                indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 61, 300))])
                name = "_".join(np.dtype(t).name for t in (x_dtype, w_dtype, index_dtype))
                problems[f"{K}_{d}_{name}"] = (
                    rng.standard_normal(indptr[-1]).astype(x_dtype),
                    rng.integers(0, d, indptr[-1]).astype(index_dtype),
                    indptr.astype(index_dtype),
                    rng.standard_normal((d, K)).astype(w_dtype),
                    rng.standard_normal(K).astype(w_dtype))
    return problems


def feature_layout_problems():
    """Problems for the kernels vectorized over features, forced whatever
    the shape rules choose: K = 2 to 5, both dtypes, d = 32 to 47 (every
    count of whole vectors after the last gradient tile, and partial vectors
    of every length or none), 261 rows (a tail after the last logits tile)."""
    rng = np.random.default_rng(6)
    problems = {}
    for dtype in (np.float64, np.float32):
        for K in (2, 3, 4, 5):
            for d in (32, 35, 37, 39, 42, 47):
                n = 261
                problems[f"{K}_{d}_{np.dtype(dtype).name}"] = (
                    rng.normal(size=(n, d)).astype(dtype),
                    rng.integers(0, K, n).astype(np.int32), rng.uniform(0.5, 2.0, n),
                    np.ascontiguousarray(rng.normal(scale=0.2, size=(d, K)).astype(dtype)),
                    rng.normal(size=K))
    return problems


# The child defines prediction_rows, csr_prediction_problems and
# feature_layout_problems too.
CHILD = ("import numpy as np\n" + inspect.getsource(prediction_rows)
         + inspect.getsource(csr_prediction_problems)
         + inspect.getsource(feature_layout_problems)) + textwrap.dedent(
    """
    import sys
    import numpy as np
    import scipy.sparse as sp
    from skcce import crossentropy_loss_gradient
    from skcce._kernels import dense
    data = np.load(sys.argv[1])
    out = {"simd": np.array(dense.simd_loops())}
    out["log_ge1"] = dense.vector_math("log_ge1", data["log_args"])
    out["exp_nonpositive"] = dense.vector_math("exp_nonpositive", data["exp_args"])
    # One value per call: the scalar exp (the whole array takes vectors where
    # the loops have them).
    out["exp_alone"] = np.array([dense.vector_math("exp_nonpositive", data["exp_args"][i:i + 1])[0]
                                 for i in range(len(data["exp_args"]))])
    from skcce._kernels.reductions import lbfgs_direction
    out["direction"] = np.empty_like(data["dir_g"])
    lbfgs_direction(data["dir_s"], data["dir_y"], data["dir_rho"], data["dir_order"],
                    float(data["dir_gamma"]), data["dir_g"], out["direction"], 2)
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
        K = data["coef_" + name].shape[0]
        loss, grad = crossentropy_loss_gradient(
            data["coef_" + name], X, np.eye(K)[data["y_" + name]],
            sample_weight=data["w_" + name], l2_reg_strength=0.01)
        out["onehot_loss_" + name] = np.array(loss)
        out["onehot_grad_" + name] = grad
        if name.startswith("dense") and K <= 200:
            # The kernels vectorized over classes, forced where the shape
            # rules would take BLAS or the feature kernels.
            coef = data["coef_" + name]
            grad_t = np.zeros((X.shape[1] + 1, K))
            out["classloss_" + name] = np.array(dense.dense_loss_gradient(
                X, data["y_" + name].astype(np.int32), None, 0.0, data["w_" + name],
                np.ascontiguousarray(coef[:, :-1].T, dtype=X.dtype),
                np.ascontiguousarray(coef[:, -1]), 2,
                grad_t, "classes"))
            out["classgrad_" + name] = grad_t
        if name.startswith("dense"):
            from skcce._kernels import predict
            W, b = data["coef_" + name][:, :-1], data["coef_" + name][:, -1]
            X = prediction_rows(X)
            weights_t = np.ascontiguousarray(W.T, dtype=X.dtype)
            for mode, key in ((predict.PROBA, "proba_"), (predict.LOG_PROBA, "logproba_")):
                values = np.empty((X.shape[0], K), X.dtype)
                predict.dense_predict(X, weights_t, b.astype(X.dtype), mode, 2, values)
                out[key + name] = values
            labels = np.empty(X.shape[0], dtype=np.intp)
            predict.dense_predict_labels(X, weights_t, b.astype(X.dtype), 2, labels)
            out["labels_" + name] = labels
    from skcce._kernels import predict
    for name, (data, indices, indptr, weights_t, b) in csr_prediction_problems().items():
        for n_threads in (1, 3):
            z = np.empty((len(indptr) - 1, weights_t.shape[1]), weights_t.dtype)
            predict.csr_predict(data, indices, indptr, weights_t, b, predict.DECISION,
                                n_threads, z)
            out[f"csr_logits{n_threads}_{name}"] = z
        for readable in (0, 13):
            out[f"csr_row{readable}_{name}"] = predict.csr_row_logits(
                data[:13], indices[:13], weights_t, b, readable)
    out["csr_terms_fused"] = np.array(predict.csr_terms_fused())
    for name, (X, y, sw, weights_t, b) in feature_layout_problems().items():
        grad_t = np.zeros((X.shape[1] + 1, len(b)))
        out["featloss_" + name] = np.array(dense.dense_loss_gradient(
            X, y, None, 0.0, sw, weights_t, b, 2, grad_t, "features"))
        out["featgrad_" + name] = grad_t
    np.savez(sys.argv[2], **out)
    """
)


def _problems():
    rng = np.random.default_rng(0)
    problems = {}
    # K = 3 ... 29: tiles of 1 to 8 vectors of classes (as 64-byte vectors,
    # plus a 32-byte one for an odd count, under AVX-512; as 16-byte vectors
    # under the baseline, 2 to 8 of them per tile); n and d vary so that the
    # last tiles of rows and of features take every height. K = 40
    # and 150: several tiles of classes; d = 300: blocks of 128 features and
    # a partial one; K = 210: BLAS GEMM. K = 3, 6, 8, 10 and 19 with d = 14,
    # 16 and 17: the last gradient tiles' every height with 16-byte vectors,
    # the few-class softmax for K = 6 and the class sums in 4 to 8 vectors
    # for K = 8, 10, 13, 15 and 16.
    for K, d in ((3, 16), (7, 20), (10, 15), (13, 18), (19, 16), (26, 15), (29, 18),
                 (40, 13), (13, 300), (150, 300), (210, 20), (3, 14), (6, 17), (8, 17),
                 (10, 16), (10, 17), (19, 17), (15, 16), (16, 14)):
        for dtype in (np.float64, np.float32):
            n = 693 + K
            problems[f"dense{K}_{d}_{np.dtype(dtype).name}"] = (
                rng.normal(size=(n, d)).astype(dtype), rng.integers(0, K, n),
                rng.uniform(0.5, 2.0, n), rng.normal(scale=0.3, size=(K, d + 1)))
    # float32 with K <= 3 and long rows: the feature-vectorized kernels, with
    # a tail of rows after the last tile and of features after the last
    # vector: 5 features (d = 133), or under AVX-512 one 32-byte vector and 5
    # (d = 141).
    # Also float32 with K = 4 and float64 with K = 2 (the feature kernels
    # under every set), and float32 with K = 5 (under AVX-512, two tiles of
    # classes; elsewhere the class layout).
    for K, dtype in ((2, np.float32), (3, np.float32), (4, np.float32), (5, np.float32),
                     (2, np.float64)):
        for d in (133, 141):
            n = 301
            problems[f"dense{K}_wide{d}_{np.dtype(dtype).name}"] = (
                rng.normal(size=(n, d)).astype(dtype), rng.integers(0, K, n),
                rng.uniform(0.5, 2.0, n), rng.normal(scale=0.1, size=(K, d + 1)))
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
    log_args, exp_args = _vector_math_arguments()
    arrays.update({f"dir_{key}": value for key, value in _direction_problem().items()})
    np.savez(path, log_args=log_args, exp_args=exp_args, **arrays)
    return path


def _vector_math_arguments():
    """Arguments of the vectorized log (x >= 1: sums of exps) and exp (x <= 0)."""
    rng = np.random.default_rng(1)
    log_args = np.concatenate([
        1.0 + rng.random(3000), rng.uniform(1.0, 1000.0, 3000),
        np.exp(rng.uniform(0.0, 700.0, 1000)),
        [1.0, np.nextafter(1.0, 2.0), np.sqrt(2.0), 2.0, 4.0, 1e300, np.finfo(float).max]])
    special = [0.0, -0.0, -1e-300, -np.log(2.0), -708.0]
    # The special values inside the first vectors and in the tail (7,011
    # values: a tail after vectors of 2, 4 or 8 lanes).
    exp_args = np.concatenate([
        special, -rng.random(3000), -rng.uniform(0.0, 50.0, 3000),
        -rng.uniform(0.0, 708.0, 1001), special])
    return log_args, exp_args


def _direction_problem():
    """Pairs for the L-BFGS direction: 3 blocks of the kernel and a tail."""
    rng = np.random.default_rng(2)
    n, memory = 2 * 16384 + 1003, 4
    s = rng.normal(size=(memory, n))
    y = s + 0.3 * rng.normal(size=(memory, n))
    return {"s": s, "y": y, "rho": 1.0 / np.einsum("ij,ij->i", s, y),
            "order": np.array([2, 3, 0, 1], dtype=np.intp), "gamma": np.array(0.7),
            "g": rng.normal(size=n)}


def _ulps(values, reference):
    return np.abs(values - reference) / np.spacing(np.abs(reference))


def test_the_selected_set_is_one_of_the_compiled_sets():
    assert dense.simd_loops() in SETS


def test_vector_math_special_values():
    log = dense.vector_math("log_ge1", np.array([np.inf, np.nan, 1.0]))
    assert log[0] == np.inf and np.isnan(log[1]) and log[2] == 0.0
    exp = dense.vector_math("exp_nonpositive", np.array([-np.inf, np.nan, -709.0, 0.0]))
    assert exp[0] == 0.0 and np.isnan(exp[1]) and exp[2] == 0.0 and exp[3] == 1.0
    with pytest.raises(ValueError, match="unknown function"):
        dense.vector_math("sin", np.ones(2))


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
    # The vectorized log and exp against the C library's (math.log, math.exp).
    log_args, exp_args = _vector_math_arguments()
    assert _ulps(result["log_ge1"], np.array([math.log(v) for v in log_args])).max() <= 3
    assert result["log_ge1"][log_args == 1.0].tolist() == [0.0]
    assert _ulps(result["exp_nonpositive"], np.array([math.exp(v) for v in exp_args])).max() <= 3
    # The vector exp is the scalar one lane by lane.
    assert result["exp_nonpositive"].tobytes() == result["exp_alone"].tobytes()
    pairs = _direction_problem()
    np.testing.assert_allclose(result["direction"], two_loop_direction(**pairs),
                               rtol=1e-11, atol=1e-11 * np.abs(pairs["g"]).max())
    for name, (X, y, w, coef) in _problems().items():
        ref_loss, ref_grad = numpy_loss_gradient(coef, X, y, w, 0.01)
        rtol = 1e-5 if name.endswith("float32") else 1e-12
        np.testing.assert_allclose(result["loss_" + name], ref_loss, rtol=rtol)
        assert_grad_close(result["grad_" + name], ref_grad, rtol=rtol, atol_factor=rtol)
        # Labels take the residuals of the hot loops (softmax_impl.h), one-hot
        # targets the baseline's row-at-a-time ones: the same bits.
        assert result["onehot_loss_" + name] == result["loss_" + name], name
        assert np.array_equal(result["onehot_grad_" + name], result["grad_" + name]), name
        if name.startswith("dense") and coef.shape[0] <= 200:
            # The forced class kernels against NumPy's unnormalized sums.
            logits = X.astype(np.float64) @ coef[:, :-1].T + coef[:, -1]
            residuals = softmax(logits, axis=1)
            residuals[np.arange(len(y)), y] -= 1.0
            residuals *= w[:, None]
            class_loss = np.sum(w * -log_softmax(logits, axis=1)[np.arange(len(y)), y])
            class_grad = np.vstack([X.T.astype(np.float64) @ residuals, residuals.sum(axis=0)])
            np.testing.assert_allclose(result["classloss_" + name], class_loss, rtol=rtol,
                                       err_msg=name)
            assert_grad_close(result["classgrad_" + name], class_grad, rtol=rtol,
                              atol_factor=rtol)
        if name.startswith("dense"):
            # Prediction against SciPy's (log-)softmax of float64 logits.
            logits = prediction_rows(X).astype(np.float64) @ coef[:, :-1].T + coef[:, -1]
            rtol, atol = (1e-10, 1e-300) if X.dtype == np.float64 else (1e-4, 1e-7)
            np.testing.assert_allclose(result["proba_" + name], softmax(logits, axis=1),
                                       rtol=rtol, atol=atol, err_msg=name)
            np.testing.assert_allclose(result["logproba_" + name],
                                       log_softmax(logits, axis=1), rtol=rtol,
                                       atol=1e-5 if X.dtype == np.float32 else 1e-10,
                                       err_msg=name)
            # predict's labels: NumPy's argmax where the top two logits are
            # further apart than the logits' rounding.
            top2 = np.sort(logits, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > (1e-3 if X.dtype == np.float32 else 1e-9)
            assert clear.mean() > 0.9, name
            np.testing.assert_array_equal(result["labels_" + name][clear],
                                          logits.argmax(axis=1)[clear], err_msg=name)
    # The kernels vectorized over features against NumPy's unnormalized sums.
    for name, (X, y, sw, weights_t, b) in feature_layout_problems().items():
        logits = X.astype(np.float64) @ weights_t.astype(np.float64) + b
        residuals = softmax(logits, axis=1)
        residuals[np.arange(len(y)), y] -= 1.0
        residuals *= sw[:, None]
        ref_loss = np.sum(sw * -log_softmax(logits, axis=1)[np.arange(len(y)), y])
        ref_grad = np.vstack([X.T.astype(np.float64) @ residuals, residuals.sum(axis=0)])
        rtol = 1e-5 if X.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(result["featloss_" + name], ref_loss, rtol=rtol,
                                   err_msg=name)
        assert_grad_close(result["featgrad_" + name], ref_grad, rtol=rtol, atol_factor=rtol)
    # CSR prediction's logits (csr_rows.h), their rows of W.T prefetched:
    # against SciPy's product in float64, and the same bits for 1 and 3
    # threads although the prefetching stops at each chunk's end.
    for name, (data, indices, indptr, weights_t, b) in csr_prediction_problems().items():
        X = sp.csr_matrix((data.astype(np.float64), indices, indptr),
                          shape=(len(indptr) - 1, weights_t.shape[0]))
        expected = X @ weights_t.astype(np.float64) + b.astype(np.float64)
        one, three = result["csr_logits1_" + name], result["csr_logits3_" + name]
        np.testing.assert_array_equal(three, one, err_msg=name)
        rtol = 1e-5 if weights_t.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(one, expected, rtol=rtol, atol=rtol, err_msg=name)
        # One row's float64 logits, to the bit, with and without prefetching.
        exact = exact_csr_row_logits(data[:13], indices[:13], weights_t, b,
                                     bool(result["csr_terms_fused"]))
        for readable in (0, 13):
            np.testing.assert_array_equal(result[f"csr_row{readable}_{name}"], exact,
                                          err_msg=f"{name}, readable {readable}")
