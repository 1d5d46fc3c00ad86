"""scikit-learn callbacks (``sklearn.callback``, scikit-learn >= 1.9) for L-BFGS fits.

Where scikit-learn has no callback API, :data:`CallbackSupportMixin` is an
empty mixin and :func:`start_fit_callbacks` returns None: the estimator works
the same, only ``set_callbacks`` is absent.
"""

import threading

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


class PathCallbacks:
    """The callbacks of a cross-validated regularization path.

    The fit task has one sub-task per fold (the folds run concurrently, so
    their task ids are the fold indices) and, with a refit, one for the refit,
    whose sub-tasks are its L-BFGS iterations (:class:`LbfgsCallbackBridge`).
    A fold's sub-tasks are the fits of its path, one per C in the order
    fitted; each ends with that fold's model at that C, and its X, y and
    metadata are the fold's training data. Fold threads call the hooks one at
    a time.

    Parameters
    ----------
    estimator : SoftmaxClassifierCV
    n_folds, n_Cs : int
    refit : bool
    max_iter : int
        Of the refit.
    X, y, metadata
        What the fit task's hooks receive.
    """

    def __init__(self, estimator, n_folds, n_Cs, refit, max_iter, X, y, metadata):
        self._estimator = estimator
        self._data = dict(X=X, y=y, metadata=metadata)
        self._lock = threading.Lock()
        self._root = estimator._init_callback_context(
            max_subtasks=n_folds + int(refit), sequential_subtasks=False)
        self._root.call_on_fit_task_begin(estimator=estimator, **self._data)
        # Created here, before the fold threads start: contexts are not thread-safe.
        self._folds = [
            self._root.subcontext(task_name="fold", task_id=i, max_subtasks=n_Cs)
            for i in range(n_folds)
        ]
        self._refit = None
        if refit:
            self._refit = self._root.subcontext(
                task_name="refit", task_id=n_folds, max_subtasks=max(max_iter, 1) + 1)

    def fold_begin(self, fold_index, X, y, metadata):
        with self._lock:
            self._folds[fold_index].call_on_fit_task_begin(
                estimator=self._estimator, X=X, y=y, metadata=metadata)

    def fold_end(self, fold_index, X, y, metadata):
        with self._lock:
            self._folds[fold_index].call_on_fit_task_end(
                estimator=self._estimator, X=X, y=y, metadata=metadata)

    def path_fit_begin(self, fold_index, X, y, metadata):
        """Begin the next fit of a fold's path; returns its context."""
        with self._lock:
            context = self._folds[fold_index].subcontext(task_name="path-C")
            context.call_on_fit_task_begin(
                estimator=self._estimator, X=X, y=y, metadata=metadata)
        return context

    def path_fit_end(self, context, X, y, metadata, model_attributes):
        """End a fit of a path with its model (``model_attributes``, lazily built)."""
        with self._lock:
            context.call_on_fit_task_end(
                estimator=self._estimator, X=X, y=y, metadata=metadata,
                reconstruction_attributes=model_attributes)

    def refit_bridge(self, X, y, metadata, model_attributes, params0):
        """Begin the refit task; its L-BFGS iterations go through the bridge returned."""
        self._refit.call_on_fit_task_begin(estimator=self._estimator, X=X, y=y,
                                           metadata=metadata)
        return LbfgsCallbackBridge(self._refit, self._estimator, X, y, metadata,
                                   model_attributes, params0)

    def refit_end(self, X, y, metadata, fitted_attributes):
        self._refit.call_on_fit_task_end(
            estimator=self._estimator, X=X, y=y, metadata=metadata,
            reconstruction_attributes=fitted_attributes)

    def end(self, fitted_attributes):
        """End the fit task with the final model."""
        self._root.call_on_fit_task_end(
            estimator=self._estimator, **self._data,
            reconstruction_attributes=fitted_attributes)


def start_path_callbacks(estimator, n_folds, n_Cs, refit, max_iter, X, y, metadata):
    """:class:`PathCallbacks` for the estimator, or None without the callback API."""
    if not CALLBACKS_AVAILABLE:
        return None
    return PathCallbacks(estimator, n_folds, n_Cs, refit, max_iter, X, y, metadata)
