"""
Thread scaling and bitwise reproducibility
==========================================

The kernel splits the rows into blocks whose size depends only on the data's shape and merges the
blocks' partial sums in a fixed order. More threads make an evaluation of the loss and gradient
faster, and the result does not change by a single bit. This example times
:func:`skcce.crossentropy_loss_gradient` for each thread count available here and checks that
every result is identical.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

from skcce import crossentropy_loss_gradient
from skcce._threads import usable_cpu_count

rng = np.random.default_rng(0)
n_samples, n_features, n_classes = 100_000, 100, 10
X = rng.normal(size=(n_samples, n_features))
y = rng.integers(n_classes, size=n_samples)
coef = rng.normal(scale=0.1, size=(n_classes, n_features + 1))

thread_counts = list(range(1, usable_cpu_count() + 1))
times, results = [], []
for n_jobs in thread_counts:
    crossentropy_loss_gradient(coef, X, y, n_jobs=n_jobs)  # warm-up
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        loss, grad = crossentropy_loss_gradient(coef, X, y, n_jobs=n_jobs)
        runs.append(time.perf_counter() - start)
    times.append(np.median(runs))
    results.append((loss, grad))
    print(f"n_jobs={n_jobs}: {1e3 * times[-1]:.1f} ms per evaluation")

identical = all(r[0] == results[0][0] and np.array_equal(r[1], results[0][1]) for r in results)
print("bitwise identical across thread counts:", identical)

# %%
# Time per evaluation
# -------------------
fig, ax = plt.subplots()
ax.bar([str(t) for t in thread_counts], [1e3 * t for t in times])
ax.set_xlabel("n_jobs (OpenMP threads)")
ax.set_ylabel("ms per loss + gradient evaluation")
ax.set_title(f"{n_samples:,} x {n_features}, {n_classes} classes, float64")
plt.show()
