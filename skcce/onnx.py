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
    for model, alias in _ALIASES.items():
        update_registered_converter(
            model, alias, calculate_linear_classifier_output_shapes,
            convert_softmax_classifier, options=dict(_OPTIONS),
        )
    return dict(_ALIASES)


def convert_softmax_classifier(scope, operator, container):
    """skl2onnx converter of a fitted softmax model: skl2onnx's linear classifier.

    A ``coef_`` made sparse by ``sparsify()`` is handed to skl2onnx dense for the
    conversion (it reads ``coef_`` as an array) and restored afterwards.

    Parameters
    ----------
    scope, operator, container
        skl2onnx's conversion state; ``operator.raw_operator`` is the model.
    """
    from skl2onnx.operator_converters.linear_classifier import (
        convert_sklearn_linear_classifier,
    )

    model = operator.raw_operator
    coef = model.coef_
    if not sp.issparse(coef):
        convert_sklearn_linear_classifier(scope, operator, container)
        return
    model.coef_ = coef.toarray()
    try:
        convert_sklearn_linear_classifier(scope, operator, container)
    finally:
        model.coef_ = coef
