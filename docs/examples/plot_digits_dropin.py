"""
Drop-in replacement for LogisticRegression on digits
=====================================================

Fit :class:`skcce.SoftmaxClassifier` and scikit-learn's ``LogisticRegression`` with the same
settings on the digits dataset, compare their predictions and fit times, and show the confusion
matrix of the skcce model.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# %%
# Same objective, same settings, same model
# ------------------------------------------
results = {}
for name, model in [
    ("SoftmaxClassifier", SoftmaxClassifier(C=1.0, tol=1e-8, max_iter=1000)),
    ("LogisticRegression", LogisticRegression(C=1.0, tol=1e-8, max_iter=1000)),
]:
    start = time.perf_counter()
    model.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    proba = model.predict_proba(X_test)
    results[name] = (model, proba)
    print(f"{name:>20}: fit {elapsed:.3f} s, {model.n_iter_[0]} iterations, "
          f"accuracy {accuracy_score(y_test, model.predict(X_test)):.4f}, "
          f"log-loss {log_loss(y_test, proba):.6f}")

difference = np.abs(results["SoftmaxClassifier"][1] - results["LogisticRegression"][1]).max()
print(f"largest difference in predict_proba: {difference:.1e}")

# %%
# Confusion matrix of the skcce model
# -----------------------------------
clf = results["SoftmaxClassifier"][0]
ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test, colorbar=False)
plt.title("SoftmaxClassifier on digits (test set)")
plt.show()
