"""
Fitting on a Dask cluster
=========================

:class:`skcce.SoftmaxClassifier` fits Dask arrays where they live: the row blocks stay on the
workers, each evaluation of the loss runs the fused kernel on every block, and only the
coefficients (to the workers) and each block's partial loss and gradient (back) travel over the
network. The client adds the partial sums in block order, so the model is the same, up to
rounding, as the fit of the same data in memory, and identical from run to run.

This example starts a :class:`~distributed.LocalCluster` of two workers, generates the data on
the workers, fits, predicts lazily, and compares with the in-memory fit. On a real cluster only the
line that creates the client changes (see :doc:`/dask`).
"""

import time

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster

from skcce import SoftmaxClassifier

# %%
# A cluster and data generated on its workers
# -------------------------------------------
# 200,000 training samples with 40 features and 6 classes, in 8 row blocks of 25,000 samples.
# The labels come from a noisy linear teacher. Nothing is computed yet: the arrays are recipes.
#
# The workers run as threads of this process here, which keeps the example a plain script;
# ``processes=True`` (one process per worker, as on a real cluster) needs the script's code under
# ``if __name__ == "__main__":``, because worker processes import the main module.
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=":0")
client = Client(cluster)

n_features, n_classes = 40, 6
teacher = np.random.default_rng(1).normal(scale=0.5, size=(n_features, n_classes))


def make_data(n_samples, block_rows, seed):
    """Samples and labels of a noisy linear teacher, generated block by block on the workers."""
    rs = da.random.RandomState(seed)
    X = rs.normal(size=(n_samples, n_features), chunks=(block_rows, n_features))
    noise = rs.gumbel(size=(n_samples, n_classes), chunks=(block_rows, n_classes))
    return X, da.argmax(X @ teacher + noise, axis=1)


X_train, y_train = make_data(200_000, 25_000, seed=0)
X_test, y_test = make_data(40_000, 25_000, seed=1)

# %%
# Fit on the cluster
# ------------------
# ``fit`` finds the classes over all blocks, validates and encodes each block on its worker,
# keeps the blocks there for the whole fit, and runs L-BFGS here.
start = time.perf_counter()
clf = SoftmaxClassifier(C=1.0, tol=1e-8, max_iter=500).fit(X_train, y_train)
cluster_seconds = time.perf_counter() - start
print(f"cluster fit: {cluster_seconds:.2f} s, {clf.n_iter_[0]} L-BFGS iterations")

# Predictions on a Dask array are lazy Dask arrays, computed block by block.
accuracy = (clf.predict(X_test) == y_test).mean()
print("held-out accuracy:", float(accuracy.compute()))

# %%
# The same data in memory
# -----------------------
# The reference: the same model fitted to NumPy arrays. The two differ only by the order in
# which the sums over the rows are added.
X_np, y_np = dask.compute(X_train, y_train)
start = time.perf_counter()
reference = SoftmaxClassifier(C=1.0, tol=1e-8, max_iter=500).fit(X_np, y_np)
memory_seconds = time.perf_counter() - start
difference = np.max(np.abs(clf.coef_ - reference.coef_))
print(f"in-memory fit: {memory_seconds:.2f} s; largest coefficient difference: {difference:.1e}")

# %%
# Cost of the blocks
# ------------------
# Every evaluation sends one task per block, so many small blocks pay the scheduler's
# per-task latency many times. Refit the same data cut into fewer or more blocks. (The time per
# iteration includes the first pass, which generates and validates the blocks.)
block_counts = [2, 8, 32]
seconds_per_iteration = []
for n_blocks in block_counts:
    X_blocks, y_blocks = make_data(200_000, 200_000 // n_blocks, seed=0)
    start = time.perf_counter()
    fitted = SoftmaxClassifier(C=1.0, tol=1e-8, max_iter=500).fit(X_blocks, y_blocks)
    seconds_per_iteration.append((time.perf_counter() - start) / fitted.n_iter_[0])

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.semilogy(np.array(reference.loss_curve_) - min(reference.loss_curve_[-1],
                                                    clf.loss_curve_[-1]) + 1e-12,
              "o-", label="in memory (NumPy)", markersize=6)
left.semilogy(np.array(clf.loss_curve_) - min(reference.loss_curve_[-1],
                                              clf.loss_curve_[-1]) + 1e-12,
              "x--", label="on the cluster (Dask)", markersize=6)
left.set_xlabel("L-BFGS iteration")
left.set_ylabel("objective - final objective")
left.set_title("Same optimization path")
left.legend()
right.bar([f"{n} blocks" for n in block_counts], 1e3 * np.array(seconds_per_iteration),
          color="tab:orange", label="cluster")
right.axhline(1e3 * memory_seconds / reference.n_iter_[0], color="tab:blue",
              linestyle="--", label="in memory")
right.set_ylabel("wall time per L-BFGS iteration (ms)")
right.set_title("Two local workers, 200,000 x 40")
right.legend()
fig.tight_layout()
plt.show()

client.close()
cluster.close()
