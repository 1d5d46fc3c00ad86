"""
Choosing C with GridSearchCV in a Pipeline
==========================================

:class:`skcce.SoftmaxClassifier` is a regular scikit-learn estimator: put it in a ``Pipeline``
with a scaler and search the regularization strength ``C`` with ``GridSearchCV``. The validation
curve shows under-fitting (small C, strong penalty) and over-fitting (large C).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier

X, y = load_digits(return_X_y=True)
pipeline = make_pipeline(StandardScaler(), SoftmaxClassifier(max_iter=500))
Cs = np.logspace(-4, 2, 13)
search = GridSearchCV(pipeline, {"softmaxclassifier__C": Cs}, cv=5,
                      scoring="neg_log_loss", return_train_score=True, n_jobs=2)
search.fit(X, y)
print("best C:", search.best_params_["softmaxclassifier__C"])
print(f"best cross-validated log-loss: {-search.best_score_:.4f}")

# %%
# Validation curve
# ----------------
results = search.cv_results_
fig, ax = plt.subplots()
for kind in ("train", "test"):
    mean, std = -results[f"mean_{kind}_score"], results[f"std_{kind}_score"]
    ax.semilogx(Cs, mean, marker="o", label=kind)
    ax.fill_between(Cs, mean - std, mean + std, alpha=0.2)
ax.axvline(search.best_params_["softmaxclassifier__C"], color="gray", linestyle="--")
ax.set_xlabel("C")
ax.set_ylabel("log-loss (5-fold CV)")
ax.set_title("Validation curve of SoftmaxClassifier on digits")
ax.legend()
plt.show()
