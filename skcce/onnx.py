"""ONNX export of skcce's estimators through skl2onnx (``pip install "skcce[onnx]"``).

Call :func:`register` once, then convert as for any scikit-learn model::

    import skcce.onnx
    from skl2onnx import to_onnx

    skcce.onnx.register()
    onx = to_onnx(model_or_pipeline, X[:1])

skl2onnx finds converters in a registry filled by ``update_registered_converter``
calls, its documented way for models of other libraries (it has no plugin
discovery); :func:`register` is that call for :class:`~skcce.SoftmaxClassifier`
and :class:`~skcce.SoftmaxClassifierCV`. Importing skcce never imports skl2onnx.

A softmax model is a linear classifier: the graph is skl2onnx's own
linear-classifier graph (``X @ coef_.T + intercept_``, softmax, the label of the
largest logit), with its options (``zipmap``, ``nocl``, ``raw_scores``,
``output_class_labels``). For two classes, skl2onnx applies the softmax to
``[-d, d]`` for every linear classifier other than ``LogisticRegression``,
which is exactly skcce's ``P(class 1) = sigmoid(2 d)``.
"""

from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from skcce._classifier import SoftmaxClassifier
from skcce._cv import SoftmaxClassifierCV

__all__ = ["register"]

# The converter options of skl2onnx's linear classifiers.
_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "nocl": [True, False],
    "output_class_labels": [False, True],
    "raw_scores": [True, False],
}

_ALIASES = {
    SoftmaxClassifier: "SkcceSoftmaxClassifier",
    SoftmaxClassifierCV: "SkcceSoftmaxClassifierCV",
}


def register():
    """Register skcce's estimators with skl2onnx.

    After this call, ``skl2onnx.to_onnx`` and ``skl2onnx.convert_sklearn``
    convert :class:`~skcce.SoftmaxClassifier` and
    :class:`~skcce.SoftmaxClassifierCV`, alone or inside pipelines and other
    scikit-learn meta-estimators, for float32 and float64 inputs. Calling it
    again is harmless.

    Returns
    -------
    aliases : dict
        The estimator classes and the names they are registered under.

    Raises
    ------
    ImportError
        If skl2onnx is not installed (``pip install "skcce[onnx]"``).
    """
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
        )
    except ImportError as error:
        raise ImportError(
            "ONNX export needs skl2onnx: pip install \"skcce[onnx]\" "
            "(onnxruntime runs the exported models)."
        ) from error
    def calculate_shapes(operator):
        with _numpy_attributes(operator.raw_operator):
            calculate_linear_classifier_output_shapes(operator)

    for model, alias in _ALIASES.items():
        update_registered_converter(
            model, alias, calculate_shapes, convert_softmax_classifier,
            options=dict(_OPTIONS),
        )
    return dict(_ALIASES)


def convert_softmax_classifier(scope, operator, container):
    """skl2onnx converter of a fitted softmax model: skl2onnx's linear classifier.

    skl2onnx reads ``coef_``, ``intercept_`` and ``classes_`` as NumPy arrays: a
    ``coef_`` made sparse by ``sparsify()``, and the arrays of a model fitted on
    array API inputs (PyTorch, CuPy, ...), are handed to it as NumPy arrays for
    the conversion and restored afterwards.

    Parameters
    ----------
    scope, operator, container
        skl2onnx's conversion state; ``operator.raw_operator`` is the model.
    """
    from skl2onnx.operator_converters.linear_classifier import (
        convert_sklearn_linear_classifier,
    )

    with _numpy_attributes(operator.raw_operator):
        convert_sklearn_linear_classifier(scope, operator, container)


@contextmanager
def _numpy_attributes(model):
    """``coef_``, ``intercept_`` and ``classes_`` as NumPy arrays while in the block."""
    saved = {name: getattr(model, name) for name in ("coef_", "intercept_", "classes_")}
    replaced = {name: _numpy(value) for name, value in saved.items()}
    replaced = {name: value for name, value in replaced.items() if value is not saved[name]}
    model.__dict__.update(replaced)
    try:
        yield
    finally:
        model.__dict__.update({name: saved[name] for name in replaced})


def _numpy(value):
    """A NumPy array of a sparse matrix or an array API array; NumPy arrays unchanged."""
    if sp.issparse(value):
        return value.toarray()
    if isinstance(value, np.ndarray):
        return value
    from sklearn.externals import array_api_compat
    from sklearn.utils._array_api import _convert_to_numpy

    # The array's own namespace, whether or not array API dispatch is enabled.
    return _convert_to_numpy(value, array_api_compat.array_namespace(value))
