"""skcce: a fast, scikit-learn-compatible softmax (multinomial logistic) classifier.

The categorical crossentropy and its gradient are computed by one fused,
multithreaded Cython pass over the data and minimized with L-BFGS.
"""

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
