"""scikit-learn callbacks (``sklearn.callback``, scikit-learn >= 1.9) for L-BFGS fits.

Where scikit-learn has no callback API, :data:`CallbackSupportMixin` is an
empty mixin and :func:`start_fit_callbacks` returns None: the estimator works
the same, only ``set_callbacks`` is absent.
"""

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9

    class CallbackSupportMixin:
        """Placeholder: this scikit-learn has no callback API."""


CALLBACKS_AVAILABLE = hasattr(CallbackSupportMixin, "_init_callback_context")


def start_fit_callbacks(estimator, max_iter, X, y, metadata):
    """Open the fit task; None when the callback API is unavailable.

    As in ``LogisticRegression``, the fit task has one sub-task per L-BFGS
    iteration, plus one that never runs (see :class:`LbfgsCallbackBridge`).
    """
    if not CALLBACKS_AVAILABLE:
        return None
    context = estimator._init_callback_context(max_subtasks=max(max_iter, 1) + 1)
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    return context


def end_fit_callbacks(context, estimator, X, y, metadata, fitted_attributes):
    """Close the fit task, handing the callbacks the final model."""
    if context is not None:
        context.call_on_fit_task_end(
            estimator=estimator, X=X, y=y, metadata=metadata,
            reconstruction_attributes=fitted_attributes,
        )


class LbfgsCallbackBridge:
    """Forward each L-BFGS iteration to the callbacks as one sub-task.

    At the end of an iteration, the iteration's sub-task ends with the
    intermediate model (``coef_``, ``intercept_``, ``classes_``) so callbacks
    such as ``ScoringMonitor`` can evaluate it, and the next sub-task begins.
    The sub-task begun after the last iteration never runs; :meth:`close`
    ends it empty.

    Parameters
    ----------
    context : CallbackContext
        The fit task's context.
    estimator : estimator instance
    X, y, metadata
        What the callbacks receive.
    model_attributes : callable
        Maps the flat L-BFGS parameter vector to the fitted attributes.
    params0 : ndarray
        The starting point.
    """

    def __init__(self, context, estimator, X, y, metadata, model_attributes, params0):
        self._context = context
        self._estimator = estimator
        self._data = dict(X=X, y=y, metadata=metadata)
        self._model_attributes = model_attributes
        self._iteration = self._begin(params0)

    def _begin(self, params):
        context = self._context.subcontext(task_name="lbfgs-iter")
        context.call_on_fit_task_begin(
            estimator=self._estimator, **self._data,
            reconstruction_attributes=lambda: self._model_attributes(params),
        )
        return context

    def iteration_done(self, params):
        """End the finished iteration's sub-task and begin the next one."""
        # Evaluated lazily, only if a callback asks for the fitted estimator.
        self._iteration.call_on_fit_task_end(
            estimator=self._estimator, **self._data,
            reconstruction_attributes=lambda: self._model_attributes(params),
        )
        self._iteration = self._begin(params)

    def close(self):
        """End the sub-task that was begun but never ran."""
        self._iteration.call_on_fit_task_end(estimator=self._estimator)
