"""skcce: a fast, scikit-learn-compatible softmax (multinomial logistic) classifier.

The categorical crossentropy and its gradient are computed by one fused,
multithreaded Cython pass over the data and minimized with L-BFGS.
"""

try:
    from skcce._kernels import dense, predict, reductions, sparse  # noqa: F401
except ImportError:
    raise ImportError(
        f"skcce's compiled extensions cannot be imported from {__path__[0]!r}: "
        "this looks like a source tree that has not been built. Install skcce with "
        "`pip install .` (or `pip install -e .` for development) and run Python "
        "from outside the source directory, or see the installation guide."
    ) from None

from skcce._classifier import SoftmaxClassifier
from skcce._cv import SoftmaxClassifierCV
from skcce._loss import crossentropy_loss_gradient
from skcce._metrics import categorical_crossentropy

__version__ = "0.1.0"

__all__ = [
    "SoftmaxClassifier",
    "SoftmaxClassifierCV",
    "categorical_crossentropy",
    "crossentropy_loss_gradient",
    "__version__",
]
