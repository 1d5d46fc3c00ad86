"""
Export a pipeline to ONNX and run it with onnxruntime
=====================================================

Register skcce's estimators with skl2onnx (``pip install "skcce[onnx]"``), convert a fitted
pipeline that ends with :class:`skcce.SoftmaxClassifierCV`, run it with onnxruntime, and compare
its labels and probabilities with the pipeline's own, for float32 and float64 inputs. The
two-class case shows that the exported probabilities are ``sigmoid(2 d)``.
"""

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as rt
from skl2onnx import to_onnx
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skcce.onnx
from skcce import SoftmaxClassifier, SoftmaxClassifierCV

# One call, once: skl2onnx then converts skcce's estimators like its own.
skcce.onnx.register()

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)


def run(onx, X):
    """onnxruntime's labels and probabilities for X."""
    session = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


# %%
# A pipeline, float32 and float64
# -------------------------------
# ``zipmap=False`` makes the probabilities a plain array rather than a list of dicts.
differences = {}
for dtype in (np.float32, np.float64):
    pipe = make_pipeline(StandardScaler(), SoftmaxClassifierCV(Cs=5, cv=3))
    pipe.fit(X_train.astype(dtype), y_train)
    X_onnx = X_test.astype(dtype)
    onx = to_onnx(pipe, X_onnx[:1], options={id(pipe[-1]): {"zipmap": False}})
    labels, proba = run(onx, X_onnx)
    differences[dtype.__name__] = np.abs(proba - pipe.predict_proba(X_onnx)).max(axis=1)
    print(f"{dtype.__name__}: labels equal to predict: "
          f"{np.array_equal(labels, pipe.predict(X_onnx))}, largest probability "
          f"difference {differences[dtype.__name__].max():.1e}")

# %%
# Two classes: softmax over ``[-d, d]``
# -------------------------------------
# skcce's binary model stores the class-1 row ``w`` of the symmetric solution ``[-w, w]``:
# ``P(class 1) = sigmoid(2 d)`` with ``d = decision_function(X)``, which is what skl2onnx
# exports for linear classifiers other than ``LogisticRegression``.
binary = SoftmaxClassifier().fit(StandardScaler().fit_transform(X_train), y_train == 0)
Z = StandardScaler().fit(X_train).transform(X_test)
_, proba = run(to_onnx(binary, Z[:1], options={id(binary): {"zipmap": False}}), Z)
d = binary.decision_function(Z)
print("binary: largest |onnx - sigmoid(2 d)| =",
      f"{np.abs(proba[:, 1] - 1 / (1 + np.exp(-2 * d))).max():.1e}")

# %%
# How far onnxruntime is from predict_proba, per test sample
# ----------------------------------------------------------
fig, ax = plt.subplots(figsize=(6, 3))
for name, diff in differences.items():
    ax.semilogy(np.maximum(diff, 1e-18), "o", label=name, markersize=4)
ax.set_xlabel("test sample")
ax.set_ylabel("max |difference| over classes")
ax.set_title("onnxruntime vs predict_proba")
ax.legend()
fig.tight_layout()
plt.show()
