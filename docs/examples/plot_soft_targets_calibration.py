"""
Soft targets, label smoothing and calibration
=============================================

With few samples and little regularization, a model fitted to hard labels becomes overconfident:
its predicted probabilities are more extreme than the truth. Two remedies that
``LogisticRegression`` does not offer:

- **label smoothing** (``label_smoothing=0.1``) mixes every target with the uniform distribution;
- **soft targets**: when each training sample comes with a probability distribution (annotator
  votes, a teacher model), ``fit(X, Y)`` fits to those distributions.

The data come from three Gaussian classes with a shared covariance, so the true class
probabilities are known exactly (they are a softmax of a linear function of x). Each training
sample is labelled by five simulated annotators who each draw a label from those true
probabilities: the hard label is the first annotator's vote, the soft target the share of votes
per class. We compare calibration on a large test set with a reliability diagram: the predicted
probability of the top class against how often that class is right.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import softmax

from skcce import SoftmaxClassifier, categorical_crossentropy

rng = np.random.default_rng(0)
n_features, n_classes = 20, 3
means = rng.normal(scale=0.45, size=(n_classes, n_features))


def sample(n):
    """Labels, features and the true class probabilities P(k | x)."""
    y = rng.integers(n_classes, size=n)
    X = means[y] + rng.normal(size=(n, n_features))
    # Equal unit covariances: log P(k | x) = means_k . x - |means_k|^2 / 2 + const.
    true_proba = softmax(X @ means.T - 0.5 * (means**2).sum(axis=1), axis=1)
    return X, y, true_proba


X_train, y_train, proba_train = sample(120)
votes = np.array([rng.multinomial(5, p) for p in proba_train])
y_train = np.array([rng.choice(n_classes, p=p) for p in proba_train])  # one annotator's label
soft_train = votes / votes.sum(axis=1, keepdims=True)  # share of five annotators' votes
X_test, y_test, proba_test = sample(50_000)

models = {
    "hard labels": SoftmaxClassifier(C=100.0).fit(X_train, y_train),
    "label smoothing 0.1": SoftmaxClassifier(C=100.0, label_smoothing=0.1).fit(X_train, y_train),
    "soft targets (5 votes)": SoftmaxClassifier(C=100.0).fit(X_train, soft_train),
}
for name, model in models.items():
    proba = model.predict_proba(X_test)
    print(f"{name:>20}: test log-loss {categorical_crossentropy(y_test, proba):.4f}, "
          f"accuracy {np.mean(proba.argmax(axis=1) == y_test):.3f}")
print(f"{'true probabilities':>20}: test log-loss {categorical_crossentropy(y_test, proba_test):.4f}")

# %%
# Reliability diagram
# -------------------
bins = np.linspace(1 / n_classes, 1, 11)
fig, ax = plt.subplots()
ax.plot([1 / n_classes, 1], [1 / n_classes, 1], color="gray", linestyle="--",
        label="perfectly calibrated")
for name, model in models.items():
    proba = model.predict_proba(X_test)
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y_test
    which = np.clip(np.digitize(confidence, bins) - 1, 0, len(bins) - 2)
    filled = np.bincount(which, minlength=len(bins) - 1) > 50
    mean_conf = np.bincount(which, confidence, len(bins) - 1)[filled] / np.bincount(which)[filled]
    accuracy = np.bincount(which, correct, len(bins) - 1)[filled] / np.bincount(which)[filled]
    ax.plot(mean_conf, accuracy, marker="o", label=name)
ax.set_xlabel("predicted probability of the top class")
ax.set_ylabel("fraction correct")
ax.set_title("Calibration on 50,000 test samples (trained on 120)")
ax.legend()
plt.show()
