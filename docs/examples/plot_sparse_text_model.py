"""
Sparse multinomial model of text, next to saga
===============================================

An L1-penalized (sparse) softmax model of documents: most words say nothing about the class, and
the L1 penalty keeps only the words that do. :class:`skcce.SoftmaxClassifier` with ``l1_ratio=1``
fits it by OWL-QN over its multithreaded kernel; scikit-learn's ``LogisticRegression`` fits the
same model with ``solver="saga"``, its only solver for multinomial L1. We compare their fit times,
objectives and zero patterns, then read the fitted ``coef_`` as a feature selection and follow it
along the regularization path.

The documents are generated so that the example runs in seconds without downloads: words are
drawn from a Zipf vocabulary, and one in ten from a topic of 40 words specific to
its class. The text then goes through scikit-learn's ``TfidfVectorizer``, as real text would.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skcce import SoftmaxClassifier

rng = np.random.default_rng(0)
n_documents, n_words, n_classes, topic_size = 6000, 4000, 6, 40
zipf = 1.0 / np.arange(1, n_words + 1) ** 1.1
zipf /= zipf.sum()
topics = [rng.choice(np.arange(50, 600), size=topic_size, replace=False)
          for _ in range(n_classes)]
y = rng.integers(0, n_classes, size=n_documents)
documents = []
for label in y:
    length = max(10, int(rng.lognormal(np.log(60), 0.5)))
    words = rng.choice(n_words, size=length, p=zipf)
    on_topic = rng.random(length) < 0.1
    words[on_topic] = rng.choice(topics[label], size=on_topic.sum())
    documents.append(" ".join(f"w{word}" for word in words))

docs_train, docs_test, y_train, y_test = train_test_split(documents, y, random_state=0)
vectorizer = TfidfVectorizer(sublinear_tf=True)
X_train = vectorizer.fit_transform(docs_train)
X_test = vectorizer.transform(docs_test)
vocabulary = vectorizer.get_feature_names_out()
print(f"X_train: {X_train.shape[0]} documents x {X_train.shape[1]} words, "
      f"{X_train.nnz / X_train.shape[0]:.0f} non-zeros per row")

# %%
# The same model, two solvers
# ---------------------------
# Both minimize the mean crossentropy plus ``||W||_1 / (C n)`` (``l1_ratio=1``). We measure how
# far each stops from the optimum, computed once with a tight tolerance.

C = 1.0


def objective(model):
    """The penalized objective of a fitted model (crossentropy from the logits)."""
    logits = (X_train @ model.coef_.T) + model.intercept_
    ce = logsumexp(logits, axis=1) - logits[np.arange(len(y_train)), y_train]
    return ce.mean() + np.abs(model.coef_).sum() / (C * len(y_train))


optimum = objective(SoftmaxClassifier(C=C, l1_ratio=1.0, tol=1e-10, max_iter=5000)
                    .fit(X_train, y_train))
models = {
    "skcce OWL-QN (default tol)": SoftmaxClassifier(C=C, l1_ratio=1.0),
    "skcce OWL-QN, tol=1e-6": SoftmaxClassifier(C=C, l1_ratio=1.0, tol=1e-6, max_iter=1000),
    "saga (default tol)": LogisticRegression(C=C, l1_ratio=1.0, solver="saga"),
}
for name, model in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    print(f"{name:>28}: {elapsed:6.2f} s, objective gap {objective(model) - optimum:.1e}, "
          f"{np.count_nonzero(model.coef_):4d} non-zero coefficients, "
          f"test accuracy {model.score(X_test, y_test):.3f}")

skcce_model, saga_model = models["skcce OWL-QN, tol=1e-6"], models["saga (default tol)"]
print("coefficients zero in one model and not the other:",
      np.count_nonzero((skcce_model.coef_ == 0) != (saga_model.coef_ == 0)))

# %%
# Reading ``coef_`` as a feature selection
# ----------------------------------------
# ``coef_`` has one row per class and one column per word. OWL-QN keeps every coefficient in
# an orthant and stops it exactly at 0 when a step would change its sign, so the zeros are exact:
# a word is used by the model when its column has any non-zero entry, and a class's own words are
# the non-zeros of its row. Words generated as topic words of a class should dominate.

used = np.flatnonzero(np.any(skcce_model.coef_ != 0, axis=0))
is_topic_word = np.isin([int(word[1:]) for word in vocabulary[used]], np.concatenate(topics))
print(f"{len(used)} of {len(vocabulary)} words used; {is_topic_word.mean():.0%} of them are "
      "topic words")
for k in range(n_classes):
    row = skcce_model.coef_[k]
    top = np.argsort(row)[::-1][:6]
    in_topic = np.isin([int(word[1:]) for word in vocabulary[top]], topics[k])
    print(f"class {k}: " + ", ".join(f"{vocabulary[j]}{'*' if t else ''} ({row[j]:.1f})"
                                    for j, t in zip(top, in_topic)))
print("(* a topic word of that class)")

# %%
# Sparsity along the regularization path
# --------------------------------------
# Smaller ``C`` means a stronger penalty and fewer words. Each fit starts from the previous one
# (``warm_start=True``), as a regularization path should.

Cs = np.logspace(-0.5, 2, 11)
path = SoftmaxClassifier(l1_ratio=1.0, warm_start=True, tol=1e-6, max_iter=1000)
n_used, accuracy = [], []
for C_value in Cs:
    path.set_params(C=C_value).fit(X_train, y_train)
    n_used.append(np.count_nonzero(np.any(path.coef_ != 0, axis=0)))
    accuracy.append(path.score(X_test, y_test))

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(Cs, n_used, "o-", color="C0")
ax.set_xlabel("C")
ax.set_ylabel("words used by the model", color="C0")
ax2 = ax.twinx()
ax2.semilogx(Cs, accuracy, "s--", color="C1")
ax2.set_ylabel("test accuracy", color="C1")
ax.set_title("L1 softmax regression of TF-IDF text")
fig.tight_layout()
plt.show()
