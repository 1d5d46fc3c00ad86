"""
Convergence: ``loss_curve_`` against LogisticRegression
=======================================================

:class:`skcce.SoftmaxClassifier` records the objective after every L-BFGS iteration in
``loss_curve_``. Both estimators minimize the same objective with the same L-BFGS settings, so
their convergence can be compared iteration by iteration. For ``LogisticRegression`` we refit
with ``max_iter = 1, 2, ...`` (its iterates are deterministic) and evaluate the objective with
:func:`skcce.crossentropy_loss_gradient`.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skcce import SoftmaxClassifier, crossentropy_loss_gradient

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
C = 1.0
l2 = 1.0 / (C * X.shape[0])

clf = SoftmaxClassifier(C=C, tol=1e-8, max_iter=300).fit(X, y)
f_star = min(clf.loss_curve_)


def objective(model):
    coef = np.column_stack([model.coef_, model.intercept_])
    return crossentropy_loss_gradient(coef, X, y, l2_reg_strength=l2)[0]


iterations = np.unique(np.geomspace(1, clf.n_iter_[0], 25).astype(int))
lr_objective = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for k in iterations:
        lr_objective.append(objective(LogisticRegression(C=C, max_iter=k, tol=1e-8).fit(X, y)))

# %%
# Objective gap per iteration
# ---------------------------
# skcce starts from the intercepts of the log class priors (the optimum for W = 0). Digits is
# balanced, so those are nearly zero, LogisticRegression's starting point: both then follow the
# same L-BFGS path, iteration for iteration.
fig, ax = plt.subplots()
ax.semilogy(np.arange(1, len(clf.loss_curve_) + 1), np.array(clf.loss_curve_) - f_star + 1e-16,
            label="SoftmaxClassifier (loss_curve_)")
ax.semilogy(iterations, np.array(lr_objective) - f_star + 1e-16, "o",
            label="LogisticRegression (max_iter = k)")
ax.set_xlabel("L-BFGS iteration")
ax.set_ylabel("objective - best objective")
ax.legend()
ax.set_title("Convergence on digits, C = 1")
plt.show()
