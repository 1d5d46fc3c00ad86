"""SoftmaxClassifierCV: softmax regression with C (and l1_ratio) chosen by cross-validation.

Each fold's training data is copied once and wrapped in one objective; the
whole grid of C values is then fitted along a regularization path, in
increasing C, each run warm-started from the previous solution; with
``l1_ratios``, one such path per l1_ratio. Only the penalty factors change
between runs. Folds run concurrently in Python threads (the kernel releases
the GIL) and share the OpenMP threads.
"""

import inspect
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np
from sklearn import config_context, get_config
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.metrics import get_scorer, get_scorer_names, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)

from skcce._array_api import array_namespace
from skcce._base import (
    COMPATIBILITY_CONSTRAINTS,
    SoftmaxModelBase,
    check_solver,
    resolve_penalty,
)
from skcce._callbacks import CallbackSupportMixin, start_path_callbacks
from skcce._classifier import SoftmaxClassifier
from skcce._fit import check_finite_attributes, run_solver
from skcce._layout import CoefLayout
from skcce._metrics import categorical_crossentropy
from skcce._objective import (
    CrossEntropyObjective,
    InMemoryData,
    check_weight_sum,
    penalty_strengths,
)
from skcce._precondition import rescaled
from skcce._sparse import is_sparse, kernel_csr
from skcce._targets import is_soft_targets
from skcce._threads import effective_n_threads, single_threaded_blas
from skcce._weights import (
    check_non_negative_sample_weight,
    class_mass,
    class_weights,
    effective_sample_weight,
)

class SoftmaxClassifierCV(CallbackSupportMixin, SoftmaxModelBase):
    """Softmax regression with the inverse regularization C chosen by cross-validation.

    The cross-validated counterpart of :class:`SoftmaxClassifier`, with the
    API of scikit-learn's ``LogisticRegressionCV`` where it applies. For every
    fold, the grid ``Cs`` is fitted as a regularization path: the fold's
    training data is copied once, and the C values are fitted in increasing
    order, each run started from the previous solution. With ``l1_ratios``,
    the grid is (C, l1_ratio): one path over ``Cs`` per l1_ratio, fitted by
    OWL-QN where ``l1_ratio > 0``. Folds run concurrently in threads that
    share the cores. This selects the same C (and l1_ratio) as
    ``GridSearchCV(SoftmaxClassifier(), {"C": Cs, "l1_ratio": l1_ratios})``
    with the same splits and scoring, several times faster.

    Parameters
    ----------
    Cs : int or array-like of float, default=10
        The grid of C values (inverse regularization strengths, > 0;
        ``np.inf`` means no penalty). An int n means
        ``np.logspace(-4, 4, n)``, as in ``LogisticRegressionCV``.
    l1_ratios : array-like of float or None, default=None
        The grid of elastic-net mixing parameters, each in [0, 1], as
        ``l1_ratio`` of :class:`SoftmaxClassifier` (0: L2 penalty, 1: L1
        penalty). None means the L2 penalty only, and the attributes have no
        l1_ratio axis; an array-like (even ``[0.0]``) adds that axis to
        ``scores_``, ``coefs_paths_`` and ``n_iter_``, as in
        ``LogisticRegressionCV(use_legacy_attributes=False)``.
    cv : int, cross-validation generator or iterable, default=None
        Determines the splits, through
        :func:`sklearn.model_selection.check_cv` with ``classifier=True``:
        None means 5 folds, stratified for class labels; an int the number of
        folds. Soft targets cannot be stratified: an int or None then means
        :class:`~sklearn.model_selection.KFold` (unshuffled).
    scoring : str, callable or None, default=None
        Scorer used to choose C (greater is better) and by :meth:`score`.
        None means accuracy for class labels, as in ``LogisticRegressionCV``;
        for soft targets it means the negative mean categorical crossentropy
        (:func:`skcce.categorical_crossentropy`) between the soft targets
        and ``predict_proba``. ``"neg_log_loss"`` is the better choice when the
        probabilities matter: it is smooth in C and does not tie on small
        folds the way accuracy does. Scorers whose metric takes ``labels``
        (``neg_log_loss``, ...) receive all classes, so a test fold that lacks a
        class is still scored, as in ``LogisticRegressionCV``. scikit-learn's
        named scorers take class labels: with soft targets, a string raises a
        ValueError; use None or a callable scorer (for instance
        ``make_scorer(categorical_crossentropy, greater_is_better=False,
        response_method="predict_proba")``).
    refit : bool, default=True
        If True, choose the C with the best mean score over the folds and fit
        the final model with it on all the data, warm-started from the mean of
        the fold solutions at that C (as ``LogisticRegressionCV`` does). The
        result is the model of ``SoftmaxClassifier(C=C_)`` with the same
        settings, up to the optimizer's tolerance. If False, take each fold's
        best C, average the fold solutions at those C values into ``coef_``
        and ``intercept_``, and set ``C_`` to the mean of those C values (as
        ``LogisticRegressionCV(refit=False)``).
    fit_intercept : bool, default=True
        Whether to fit an (unpenalized) intercept per class.
    tol : float, default=1e-4
        The optimizer stops when the largest absolute gradient entry (of the
        pseudo-gradient where ``l1_ratio > 0``) is <= tol.
    max_iter : int, default=100
        Maximum number of L-BFGS (OWL-QN) iterations per fit (per C,
        l1_ratio and fold).
    class_weight : dict, "balanced" or None, default=None
        Weights per class, as in :class:`SoftmaxClassifier`. As in
        ``LogisticRegressionCV``, "balanced" weights are computed once, on all
        the data (and ``sample_weight``), and every fold uses those same
        weights (``GridSearchCV`` over a :class:`SoftmaxClassifier` would
        balance each training fold separately).
    label_smoothing : float, default=0.0
        Label smoothing of the training targets, as in
        :class:`SoftmaxClassifier`; scores are computed against the
        unsmoothed targets.
    n_jobs : int, default=None
        Total number of threads, as in :class:`SoftmaxClassifier` (None: all
        usable cores). ``min(n_folds, n_threads)`` folds run at once, each
        with an equal share of the threads; when fewer folds than that remain,
        the idle threads go to the running folds. All results are bitwise
        identical for every value.
    verbose : int, default=0
        If > 0, print one line per fitted (fold, l1_ratio, C); if > 1, also
        the refit's iterations.
    penalty : {'l1', 'l2', 'elasticnet'}, default='l2'
        Accepted for code written for ``LogisticRegressionCV``, with its
        deprecation (scikit-learn 1.8): setting it warns (FutureWarning).
        ``'l2'`` means ``l1_ratios=[0]``, ``'l1'`` means ``l1_ratios=[1]``,
        and ``'elasticnet'`` the given ``l1_ratios``.
    solver : {'lbfgs'}, default='lbfgs'
        Accepted for code written for ``LogisticRegressionCV``; other solver
        names raise a ValueError (see :class:`SoftmaxClassifier`).
    random_state : int, RandomState instance or None, default=None
        Accepted for code written for ``LogisticRegressionCV`` and unused:
        the solver is deterministic. (To shuffle the folds, pass a splitter
        with its own ``random_state`` as ``cv``.)

    Attributes
    ----------
    C_ : float
        The selected C. A scalar: the model is one multinomial model, whereas
        ``LogisticRegressionCV``'s ``C_`` repeats it per class. With
        ``refit=False``, the mean of the folds' best C values.
    Cs_ : ndarray of shape (n_Cs,)
        The grid of C values, in the order given (the path is fitted in
        increasing C whatever that order).
    l1_ratio_ : float
        The selected l1_ratio (0.0 when ``l1_ratios`` is None). With
        ``refit=False``, the mean of the folds' best l1_ratio values.
    l1_ratios_ : ndarray of shape (n_l1_ratios,)
        The grid of l1_ratio values, in the order given (``[0.0]`` when
        ``l1_ratios`` is None).
    scores_ : ndarray of shape (n_folds, n_Cs) or (n_folds, n_l1_ratios, n_Cs)
        The score of each fold's test set for each C (and l1_ratio, when
        ``l1_ratios`` is given). ``LogisticRegressionCV`` keeps one copy of
        this array per class in a dict, unless
        ``use_legacy_attributes=False``.
    coefs_paths_ : ndarray of shape (n_folds, n_Cs, n_classes_or_1, n_features + fit_intercept) \
            or (n_folds, n_l1_ratios, n_Cs, n_classes_or_1, n_features + fit_intercept)
        The fitted coefficients of each fold and C (and l1_ratio), with the
        intercept in the last column. For two classes, only the row of
        ``classes_[1]``, as in ``coef_`` (the multinomial solution is
        ``[-w, w]``).
    n_iter_ : ndarray of shape (n_folds, n_Cs) or (n_folds, n_l1_ratios, n_Cs)
        Iterations of each fold and C (and l1_ratio).
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(K)`` for soft targets).
    coef_ : ndarray of shape (n_classes, n_features) or (1, n_features)
        Coefficients of the final model (see ``refit``).
    intercept_ : ndarray of shape (n_classes,) or (1,)
        Intercepts of the final model.
    loss_curve_ : list of float
        Objective after each L-BFGS iteration of the refit (``refit=True``
        only).
    final_gradient_norm_ : float
        Largest absolute gradient entry at the refit's solution
        (``refit=True`` only).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when they are all strings.

    See Also
    --------
    SoftmaxClassifier : The model for one given C.

    Notes
    -----
    A C that cannot be fitted on a fold (``1 / (C * sum(sample_weight))`` not
    finite, or a non-finite solution) is scored NaN there, as ``GridSearchCV``
    does with ``error_score=np.nan``, with a ``FitFailedWarning`` naming it;
    it is never selected, its ``coefs_paths_`` entries are NaN, and the next
    C of the path starts from the last finite solution. If every fit fails,
    ``fit`` raises a ValueError.

    **Callbacks** (scikit-learn >= 1.9, :meth:`set_callbacks`): the fit task
    has one sub-task per fold, whose sub-tasks are the fits of its path (one
    per C, in increasing C, each ending with that model; their ``X`` and
    ``y`` are the fold's training data), and a ``"refit"`` sub-task whose
    sub-tasks are the refit's L-BFGS iterations.

    **Metadata routing** (``sklearn.set_config(enable_metadata_routing=True)``):
    ``fit`` routes its metadata to the splitter (``groups``, ...) and to the
    scorer, as ``LogisticRegressionCV`` does; the scorer receives only what
    it requests (for instance ``make_scorer(...).set_score_request(sample_weight=True)``),
    sliced to each test fold. Without routing, ``groups`` goes to the splitter
    and ``sample_weight`` to the scorer when its metric accepts it.

    Each fit of the path solves exactly the problem of
    ``SoftmaxClassifier(C=C, l1_ratio=l1_ratio).fit(X[train], y[train],
    sample_weight[train])``
    (with ``class_weight`` resolved on all the data, see above), with all
    classes of ``y`` (a class missing from a training fold gets coefficients
    too). Test scores receive ``sample_weight[test]`` when the
    scorer's metric accepts ``sample_weight``. Warm starts change the
    optimizer's starting points, not the optima: with a tight ``tol`` the
    path and independent fits agree closely.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skcce import SoftmaxClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxClassifierCV(Cs=5, scoring="neg_log_loss", max_iter=1000).fit(X, y)
    >>> float(clf.C_)
    100.0
    >>> clf.scores_.shape, clf.coefs_paths_.shape
    ((5, 5), (5, 5, 3, 5))
    >>> clf.predict(X[:2])
    array([0, 0])
    """

    _parameter_constraints: dict = {
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like", None],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "refit": ["boolean"],
        **{
            name: SoftmaxClassifier._parameter_constraints[name]
            for name in ("fit_intercept", "tol", "max_iter", "class_weight",
                         "label_smoothing", "n_jobs", "verbose")
        },
        **COMPATIBILITY_CONSTRAINTS,
        # As LogisticRegressionCV: no penalty=None (C is what is chosen).
        "penalty": [StrOptions({"l1", "l2", "elasticnet"}), Hidden(StrOptions({"deprecated"}))],
    }

    def __init__(self, Cs=10, *, l1_ratios=None, cv=None, scoring=None, refit=True,
                 fit_intercept=True, tol=1e-4, max_iter=100, class_weight=None,
                 label_smoothing=0.0, n_jobs=None, verbose=0, penalty="deprecated",
                 solver="lbfgs", random_state=None):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.penalty = penalty
        self.solver = solver
        self.random_state = random_state

    # Attributes only a refit produces; a later fit with refit=False drops them.
    _fit_may_drop = ("loss_curve_", "final_gradient_norm_")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, groups=None, **params):
        """Cross-validate every C (and l1_ratio), choose one, and fit the final model.

        The fit is transactional: if it fails or is interrupted, the estimator
        is left exactly as it was before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (float32 data is used without conversion).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels, or soft targets (rows of probabilities), as in
            :meth:`SoftmaxClassifier.fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights. Each fit uses the weights of its training
            samples; each test score those of its test samples, when the
            scorer accepts ``sample_weight``.
        groups : array-like of shape (n_samples,), default=None
            Group labels for group-aware splitters (``GroupKFold``, ...).
        **params : dict
            With metadata routing enabled, metadata for the splitter and the
            scorer, routed to them as they request it (see Notes).

        Returns
        -------
        self : SoftmaxClassifierCV
            The fitted estimator.
        """
        _raise_for_params(params, self, "fit")
        _, penalty_l1_ratio = resolve_penalty(self, None)
        check_solver(self)
        return self._transactional_fit(X, y, sample_weight, groups, params, penalty_l1_ratio)

    def _fit(self, X, y, sample_weight, groups, params, penalty_l1_ratio):
        """Fit without touching ``self``'s model; return the new attributes."""
        if array_namespace(X) is not None:
            raise TypeError(
                "SoftmaxClassifierCV takes NumPy arrays and sparse matrices, not arrays of "
                "another array API namespace (neither does LogisticRegressionCV). Convert "
                "X to NumPy, or search C with GridSearchCV over SoftmaxClassifier, which "
                "fits such arrays on their device."
            )
        X, y, classes, targets = self._validate_fit_data(X, y)
        soft = is_soft_targets(y)
        # What splitters and scorers see: the labels, or the soft targets.
        y_score = y if soft else classes[targets]
        if sample_weight is not None:
            sample_weight = check_non_negative_sample_weight(sample_weight, X)
        class_weight = self._resolve_class_weight(X, targets, classes, sample_weight)
        Cs = _check_Cs(self.Cs)
        _check_soft_scoring(self.scoring, soft)
        # The sum of all the weights must be finite (every fold's is then).
        all_weights = effective_sample_weight(class_weight, X, targets, classes,
                                              sample_weight)
        if all_weights is not None:
            check_weight_sum(_finite_sum(all_weights))
        l1_ratios = _check_l1_ratios(self.l1_ratios if penalty_l1_ratio is None
                                     else [penalty_l1_ratio])
        scorer = _path_scorer(self._scorer(soft, n_jobs=1), classes, soft)
        if _routing_enabled():
            metadata = {key: value for key, value in
                        dict(params, sample_weight=sample_weight, groups=groups).items()
                        if value is not None}
            routed = process_routing(self, "fit", **metadata)
            split_params, score_params = routed.splitter.split, routed.scorer.score
        else:
            split_params = {"groups": groups}
            score_weight = self._score_weight(scorer, sample_weight)
            score_params = {} if score_weight is None else {"sample_weight": score_weight}
        folds = list(check_cv(self.cv, y_score, classifier=True).split(
            X, y_score, **split_params))

        callbacks = start_path_callbacks(
            self, len(folds), len(l1_ratios) * len(Cs), self.refit, self.max_iter, X, y,
            None if sample_weight is None else {"sample_weight": sample_weight})
        path = _RegularizationPath(
            X, targets, y_score, classes, sample_weight, class_weight, score_params, Cs,
            l1_ratios, scorer, self, callbacks,
        )
        n_threads = effective_n_threads(self.n_jobs)
        with single_threaded_blas():
            fold_paths = _run_folds(path, folds, n_threads)
        _report_failed_fits(fold_paths, Cs, l1_ratios, self.refit)
        _warn_path_convergence(fold_paths, Cs, l1_ratios, self.l1_ratios is not None)

        # Internally the grid always has an l1_ratio axis (axis 1 here).
        full_coefs = np.stack([fold.coefs for fold in fold_paths])
        scores = np.stack([fold.scores for fold in fold_paths])
        n_iter = np.stack([fold.n_iter for fold in fold_paths])
        if self.refit:
            fitted = self._refit(X, y, targets, classes, sample_weight, class_weight, Cs,
                                 l1_ratios, scores, full_coefs, n_threads, callbacks)
        else:
            layout = CoefLayout(classes.shape[0], X.shape[1], self.fit_intercept)
            fitted = _average_best(scores, full_coefs, Cs, l1_ratios, classes, layout,
                                   X.dtype)
        coefs_paths = full_coefs[..., 1:, :] if classes.shape[0] == 2 else full_coefs
        if self.l1_ratios is None:  # no l1_ratio axis, as without elastic net
            coefs_paths, scores, n_iter = coefs_paths[:, 0], scores[:, 0], n_iter[:, 0]
        fitted.update({
            "Cs_": Cs,
            "l1_ratios_": l1_ratios,
            "scores_": scores,
            "coefs_paths_": coefs_paths,
            "n_iter_": n_iter,
        })
        if callbacks is not None:
            callbacks.end(fitted)
        return fitted

    def _score_weight(self, scorer, sample_weight):
        """The weights for the test folds: None if the scorer cannot take them."""
        if sample_weight is None or _accepts_sample_weight(scorer):
            return sample_weight
        warnings.warn(
            f"The scoring {self.scoring!r} does not support sample_weight: the test "
            "folds are scored without weights, which may lead to statistically "
            "incorrect results.", UserWarning, stacklevel=5,
        )
        return None

    def _resolve_class_weight(self, X, targets, classes, sample_weight):
        """Per-class weights from all the data (as LogisticRegressionCV), or None.

        Every fold and the refit use these same weights, so "balanced" means
        balanced over the whole data set.
        """
        if self.class_weight is None:
            return None
        weights = check_non_negative_sample_weight(sample_weight, X)
        return class_weights(self.class_weight, targets, classes, weights)

    def _refit(self, X, y, targets, classes, sample_weight, class_weight, Cs, l1_ratios,
               scores, full_coefs, n_threads, callbacks):
        """Fit on all the data at the best mean-score (C, l1_ratio), warm-started."""
        mean_scores = scores.mean(axis=0)
        if np.all(np.isnan(mean_scores)):
            raise ValueError(
                "No C of the grid was fitted and scored in every fold (see the "
                "FitFailedWarning): there is no C to refit with."
            )
        best_l1, best_C = _best_grid_index(mean_scores)
        C, l1_ratio = float(Cs[best_C]), float(l1_ratios[best_l1])
        data = InMemoryData(
            X, targets, CoefLayout(classes.shape[0], X.shape[1], self.fit_intercept),
            sample_weight=effective_sample_weight(
                class_weight, X, targets, classes, sample_weight),
            label_smoothing=self.label_smoothing, n_threads=n_threads,
        )
        objective = CrossEntropyObjective(data, *penalty_strengths(C, l1_ratio, data))
        params0 = data.layout.flatten(full_coefs[:, best_l1, best_C].mean(axis=0))
        bridge = None
        if callbacks is not None:
            metadata = None if sample_weight is None else {"sample_weight": sample_weight}

            def model_attributes(params):
                return data.layout.model_attributes(params, classes, X.dtype)

            bridge = callbacks.refit_bridge(X, y, metadata, model_attributes, params0)
        result = run_solver(rescaled(objective), params0, l1_weights=objective.l1_weights(),
                            max_iter=self.max_iter, tol=self.tol,
                            verbose=max(0, self.verbose - 1),
                            on_iteration=None if bridge is None else bridge.iteration_done)
        if bridge is not None:
            bridge.close()
        where = f"C={C:.6g}" if self.l1_ratios is None else f"C={C:.6g}, l1_ratio={l1_ratio:.6g}"
        result.warn_if_not_converged(prefix=f"Refit at {where}: ", stacklevel=5)
        refitted = data.layout.model_attributes(result.params, classes, X.dtype)
        check_finite_attributes(refitted)
        refitted.update({
            "C_": C,
            "l1_ratio_": l1_ratio,
            "loss_curve_": result.loss_curve,
            "final_gradient_norm_": result.final_gradient_norm,
        })
        if bridge is not None:
            callbacks.refit_end(X, y, metadata, refitted)
        return refitted

    def _scorer(self, soft, n_jobs):
        """The scorer for ``scoring``; None means accuracy, or -crossentropy if soft."""
        if self.scoring is not None:
            return get_scorer(self.scoring)
        if soft:
            return make_scorer(categorical_crossentropy, greater_is_better=False,
                               response_method="predict_proba", n_jobs=n_jobs)
        return get_scorer("accuracy")

    def score(self, X, y, sample_weight=None, **score_params):
        """Score of the final model on the given data, with the ``scoring`` option.

        As in ``LogisticRegressionCV``: accuracy when ``scoring`` is None (the
        negative mean categorical crossentropy for soft targets).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            True labels, or soft targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed to the scorer.
        **score_params : dict
            With metadata routing enabled, metadata routed to the scorer as it
            requests it.

        Returns
        -------
        score : float
            Greater is better.
        """
        _raise_for_params(score_params, self, "score")
        soft = is_soft_targets(y)
        _check_soft_scoring(self.scoring, soft)
        scorer = self._scorer(soft, n_jobs=self.n_jobs)
        if _routing_enabled():
            if sample_weight is not None:
                score_params["sample_weight"] = sample_weight
            kwargs = process_routing(self, "score", **score_params).scorer.score
        else:
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return scorer(self, X, y, **kwargs)

    def get_metadata_routing(self):
        """Get the metadata routing of this object, as ``LogisticRegressionCV``'s.

        ``fit`` routes to the splitter's ``split`` and the scorer's
        ``score``; ``score`` routes to the scorer.

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter`
            encapsulating the routing information.
        """
        return (
            MetadataRouter(owner=type(self).__name__)
            .add_self_request(self)
            .add(splitter=self.cv,
                 method_mapping=MethodMapping().add(caller="fit", callee="split"))
            .add(scorer=self._scorer(soft=False, n_jobs=1),
                 method_mapping=MethodMapping()
                 .add(caller="score", callee="score")
                 .add(caller="fit", callee="score"))
        )


class _FoldPath:
    """One fold's results along the grid (arrays indexed like ``(l1_ratios, Cs)``)."""

    def __init__(self, n_l1_ratios, n_Cs, layout):
        self.coefs = np.zeros((n_l1_ratios, n_Cs, layout.n_classes, layout.n_dof))
        self.scores = np.zeros((n_l1_ratios, n_Cs))
        self.n_iter = np.zeros((n_l1_ratios, n_Cs), dtype=np.int32)
        # (index in l1_ratios, index in Cs, ConvergenceWarning message)
        self.failures = []
        self.errors = []  # (index in l1_ratios, index in Cs, why the fit failed): NaN


class _RegularizationPath:
    """Fits the grid of (l1_ratio, C) values on one fold's training data; scores on its test data.

    Holds the full validated data and the estimator's settings; the threads
    only read them.
    """

    def __init__(self, X, targets, y_score, classes, sample_weight, class_weight,
                 score_params, Cs, l1_ratios, scorer, estimator, callbacks=None):
        self.X, self.targets, self.y_score = X, targets, y_score
        self.classes = classes
        self.sample_weight = sample_weight
        # Metadata for the scorer, over all the samples (sliced per test fold).
        self.score_params = score_params
        self.callbacks = callbacks
        self.class_weight = class_weight  # per class, resolved on all the data
        self.Cs, self.l1_ratios, self.scorer = Cs, l1_ratios, scorer
        self.settings = estimator.get_params()
        self.stop = threading.Event()

    def fold_objective(self, train):
        """The objective on the training fold: the one copy of X[train]."""
        X_train, targets_train = self.X[train], self.targets[train]
        if is_sparse(X_train):
            X_train = kernel_csr(X_train)
        weights = None if self.sample_weight is None else self.sample_weight[train]
        layout = CoefLayout(self.classes.shape[0], X_train.shape[1],
                            self.settings["fit_intercept"])
        return _PathObjective(InMemoryData(
            X_train, targets_train, layout,
            sample_weight=effective_sample_weight(
                self.class_weight, X_train, targets_train, self.classes, weights),
            label_smoothing=self.settings["label_smoothing"],
        ))

    def fit_fold(self, fold_index, train, test, share):
        """The paths of one fold: per l1_ratio, every C in increasing order, warm-started."""
        objective = self.fold_objective(train)
        prior = _prior_params(objective.data)
        path = _FoldPath(len(self.l1_ratios), len(self.Cs), objective.layout)
        share.start(objective)
        callback_data = None
        if self.callbacks is not None:
            callback_data = self._callback_data(train)
            self.callbacks.fold_begin(fold_index, **callback_data)
        try:
            for i in range(len(self.l1_ratios)):
                params = prior
                previous = None  # (params, score) of the previous C fitted
                for j in np.argsort(self.Cs, kind="stable"):
                    if self.stop.is_set():
                        return path
                    if callback_data is not None:
                        context = self.callbacks.path_fit_begin(fold_index, **callback_data)
                    try:
                        fitted = self._fit_one(objective, params, i, j, path)
                    except ValueError as error:
                        # This C cannot be fitted: scored NaN; the next C starts
                        # from the last finite solution.
                        path.errors.append((i, j, str(error)))
                        if callback_data is not None:
                            self.callbacks.path_fit_end(context, **callback_data,
                                                        model_attributes=None)
                        path.coefs[i, j] = np.nan
                        path.scores[i, j] = np.nan
                        self._report(fold_index, i, j, path)
                        continue
                    params = fitted
                    if callback_data is not None:
                        self.callbacks.path_fit_end(
                            context, **callback_data,
                            model_attributes=self._model_attributes(params, objective))
                    if previous is not None and np.array_equal(previous[0], params):
                        path.scores[i, j] = previous[1]  # already optimal: the same model
                    else:
                        path.scores[i, j] = self._score(params, objective, test)
                    previous = (params, path.scores[i, j])
                    self._report(fold_index, i, j, path)
        finally:
            share.finish(objective)
        if callback_data is not None:
            self.callbacks.fold_end(fold_index, **callback_data)
        return path

    def _callback_data(self, train):
        """X, y and metadata of a training fold, as the callbacks receive them."""
        metadata = None
        if self.sample_weight is not None:
            metadata = {"sample_weight": self.sample_weight[train]}
        return {"X": self.X[train], "y": self.y_score[train], "metadata": metadata}

    def _model_attributes(self, params, objective):
        """The fitted attributes of the path's model at ``params``, built when called."""
        def build():
            return objective.layout.model_attributes(params, self.classes, self.X.dtype)
        return build

    def _report(self, fold_index, i, j, path):
        """With verbose > 0, one line per fitted (fold, l1_ratio, C)."""
        if self.settings["verbose"] > 0:
            l1_ratio = ("" if self.settings["l1_ratios"] is None
                        else f"l1_ratio={self.l1_ratios[i]:.4g}  ")
            print(f"[SoftmaxClassifierCV] fold {fold_index}  {l1_ratio}C={self.Cs[j]:.4g}  "
                  f"n_iter={path.n_iter[i, j]}  score={path.scores[i, j]:.6g}", flush=True)

    def _fit_one(self, objective, params, i, j, path):
        """Fit at ``(l1_ratios[i], Cs[j])`` from ``params``; record the solution; return it.

        Raises ValueError, recording nothing, if C is too small for the
        fold's weights or the fit ends with a non-finite model.
        """
        objective.l2_reg_strength, objective.l1_reg_strength = penalty_strengths(
            self.Cs[j], self.l1_ratios[i], objective.data)
        result = run_solver(rescaled(objective), params, l1_weights=objective.l1_weights(),
                            max_iter=self.settings["max_iter"], tol=self.settings["tol"],
                            final_gradient_norm=False)
        check_finite_attributes(
            objective.layout.model_attributes(result.params, self.classes, self.X.dtype))
        if result.failure is not None:
            path.failures.append((i, j, result.failure))
        path.n_iter[i, j] = result.n_iter
        path.coefs[i, j] = objective.layout.matrix(result.params)
        return result.params

    def _score(self, params, objective, test):
        """Score of the model ``params`` on the test fold."""
        # Predict with this fold's share of the threads, not every core:
        # the other folds are running at the same time.
        model = SoftmaxClassifier(n_jobs=objective.n_threads)
        model.__dict__.update(
            objective.layout.model_attributes(params, self.classes, self.X.dtype))
        model.n_features_in_ = objective.layout.n_features
        kwargs = {key: _fold_values(value, test, self.X.shape[0])
                  for key, value in self.score_params.items()}
        return float(self.scorer(model, self.X[test], self.y_score[test], **kwargs))


def _fold_values(value, indices, n_samples):
    """A metadata value for the rows ``indices``: sliced when it has one entry per sample."""
    if hasattr(value, "shape") and len(value.shape) >= 1 and value.shape[0] == n_samples:
        return value[indices]
    if isinstance(value, (list, tuple)) and len(value) == n_samples:
        return np.asarray(value)[indices]
    return value


def _prior_params(data):
    """W = 0 and intercepts at the prior: the start of each fold's path.

    The intercepts are the centered log of the mean (weighted, smoothed)
    target: the exact optimum for W = 0 (SoftmaxClassifier starts from zeros,
    see its ``_initial_params``).
    """
    layout = data.layout
    mass = class_mass(data.targets, data.sample_weight, layout.n_classes)
    prior = mass / mass.sum()
    eps = data.label_smoothing
    prior = (1.0 - eps) * prior + eps / layout.n_classes
    return layout.from_prior(prior)


class _PathObjective(CrossEntropyObjective):
    """A fold's objective that remembers the data term of its last evaluation.

    Each L-BFGS run of the path starts with an evaluation at the previous
    solution, the last point evaluated: only the penalty has changed, so the
    data term is reused and no pass over X is made.
    """

    _last = None  # (params, data loss, data gradient)

    def data_loss_gradient(self, params):
        if self._last is not None and np.array_equal(self._last[0], params):
            return self._last[1], self._last[2].copy()
        loss, grad = super().data_loss_gradient(params)
        self._last = (params.copy(), loss, grad.copy())
        return loss, grad


class _ThreadShare:
    """Splits ``n_threads`` OpenMP threads among the folds running at once.

    While folds are waiting, each of the ``n_workers`` slots gets an equal
    share; when fewer folds than slots remain, the running ones get the idle
    threads. A fold's share never decreases, and a share grows only after
    another fold has released its threads, so the threads in use never exceed
    ``n_threads``. An objective reads ``n_threads`` at each evaluation; the
    kernel's result does not depend on it.
    """

    def __init__(self, n_threads, n_workers, n_tasks):
        self._n_threads, self._n_workers = n_threads, n_workers
        self._pending = n_tasks
        self._running = []  # objectives, in start order
        self._lock = threading.Lock()

    def start(self, objective):
        with self._lock:
            self._pending -= 1
            self._running.append(objective)
            self._rebalance()

    def finish(self, objective):
        with self._lock:
            self._running.remove(objective)
            self._rebalance()

    def _rebalance(self):
        slots = min(self._n_workers, len(self._running) + self._pending)
        base, extra = divmod(self._n_threads, max(slots, 1))
        for i, objective in enumerate(self._running):
            objective.n_threads = max(1, base + (i < extra))


def _run_folds(path, folds, n_threads):
    """Every fold's path, in fold order; folds run concurrently in threads."""
    n_workers = max(1, min(len(folds), n_threads))
    share = _ThreadShare(n_threads, n_workers, len(folds))
    tasks = [(i, train, test) for i, (train, test) in enumerate(folds)]
    if n_workers == 1:
        return [path.fit_fold(i, train, test, share) for i, train, test in tasks]
    # scikit-learn's configuration is thread-local: carry it into the workers.
    config = get_config()

    def run(task):
        with config_context(**config):
            return path.fit_fold(*task, share)

    executor = ThreadPoolExecutor(max_workers=n_workers,
                                  thread_name_prefix="SoftmaxClassifierCV")
    try:
        futures = [executor.submit(run, task) for task in tasks]
        return [future.result() for future in futures]
    except BaseException:
        # Error or interrupt: stop the other folds between two fits.
        path.stop.set()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _report_failed_fits(fold_paths, Cs, l1_ratios, refit):
    """A FitFailedWarning for the (fold, C) fits that failed; ValueError if none is usable.

    Failed fits are scored NaN (they never win), as GridSearchCV does with
    ``error_score=np.nan``. The fit raises when every fit failed, when no
    point of the grid (C, or (l1_ratio, C)) was fitted in every fold
    (``refit=True``: nothing to refit with), or when a fold has no fitted
    point (``refit=False``: nothing to average).
    """
    errors = [(f, i, j, message) for f, fold in enumerate(fold_paths)
              for i, j, message in fold.errors]
    if not errors:
        return
    n_fits = len(fold_paths) * len(l1_ratios) * len(Cs)
    f, i, j, message = errors[0]
    at = f"C={float(Cs[j])!r}" if len(l1_ratios) == 1 else \
        f"l1_ratio={float(l1_ratios[i])!r}, C={float(Cs[j])!r}"
    first = f"the first, fold {f} at {at}: {message}"
    grid = "folds x Cs" if len(l1_ratios) == 1 else "folds x l1_ratios x Cs"
    failed = np.zeros((len(fold_paths), len(l1_ratios), len(Cs)), dtype=bool)
    for fold_index, l1_index, C_index, _ in errors:
        failed[fold_index, l1_index, C_index] = True
    if failed.all():
        raise ValueError(
            f"All the {n_fits} regularization-path fits ({grid}) failed; {first}")
    if refit and failed.any(axis=0).all():
        raise ValueError(
            "No C of the grid was fitted in every fold, so none can be chosen and "
            f"refitted; {len(errors)} of {n_fits} fits failed, {first}")
    if not refit and failed.reshape(len(fold_paths), -1).all(axis=1).any():
        raise ValueError(
            "A fold has no fitted C, so the folds' solutions cannot be averaged; "
            f"{len(errors)} of {n_fits} fits failed, {first}")
    failed_Cs = sorted({float(Cs[j]) for _, _, j, _ in errors})
    warnings.warn(
        f"{len(errors)} of {n_fits} regularization-path fits ({grid}) failed and "
        f"are scored NaN, at C in {failed_Cs}; {first}",
        FitFailedWarning, stacklevel=5,
    )


def _finite_sum(weights):
    """The sum of non-negative weights, inf if it overflows (without a warning)."""
    with np.errstate(over="ignore"):
        return float(np.sum(weights))


def _check_soft_scoring(scoring, soft):
    """Named scorers take class labels: refuse them for soft targets, saying why."""
    if soft and isinstance(scoring, str):
        raise ValueError(
            f"scoring={scoring!r} needs class labels, but y holds soft targets "
            "(rows of probabilities). Use scoring=None (the negative mean categorical "
            "crossentropy), or a scorer made from skcce.categorical_crossentropy: "
            "make_scorer(categorical_crossentropy, greater_is_better=False, "
            "response_method='predict_proba')."
        )


def _warn_path_convergence(fold_paths, Cs, l1_ratios, with_l1_ratios):
    """One ConvergenceWarning for all the path fits that did not converge."""
    failures = [(f, i, j, message) for f, fold in enumerate(fold_paths)
                for i, j, message in fold.failures]
    if not failures:
        return
    f, i, j, message = failures[0]
    n_fits = len(fold_paths) * len(l1_ratios) * len(Cs)
    grid = "folds x l1_ratios x Cs" if with_l1_ratios else "folds x Cs"
    where = f"C={Cs[j]:.6g}" + (f", l1_ratio={l1_ratios[i]:.6g}" if with_l1_ratios else "")
    warnings.warn(
        f"{len(failures)} of {n_fits} regularization-path fits ({grid}) did not "
        f"converge; the first, fold {f} at {where}: {message}",
        ConvergenceWarning, stacklevel=5,
    )


def _average_best(scores, full_coefs, Cs, l1_ratios, classes, layout, dtype):
    """refit=False: the mean of each fold's solution at that fold's best (l1_ratio, C).

    As LogisticRegressionCV(refit=False); ``C_`` and ``l1_ratio_`` are the
    means of those values.
    """
    if np.any(np.all(np.isnan(scores.reshape(scores.shape[0], -1)), axis=1)):
        raise ValueError(
            "A fold has no C of the grid that was fitted and scored (see the "
            "FitFailedWarning): its solutions cannot be averaged."
        )
    best = [_best_grid_index(fold_scores) for fold_scores in scores]
    coef = np.mean([full_coefs[f, i, j] for f, (i, j) in enumerate(best)], axis=0)
    fitted = layout.model_attributes(layout.flatten(coef), classes, dtype)
    fitted["C_"] = float(np.mean(Cs[[j for _, j in best]]))
    fitted["l1_ratio_"] = float(np.mean(l1_ratios[[i for i, _ in best]]))
    return fitted


def _best_grid_index(scores):
    """``(l1_ratio index, C index)`` of the best of (n_l1_ratios, n_Cs) scores.

    Ties go to the first C, then the first l1_ratio (LogisticRegressionCV's
    order); NaN scores never win.
    """
    i_C, i_l1 = np.unravel_index(_best_index(scores.T.ravel()), scores.T.shape)
    return int(i_l1), int(i_C)


def _best_index(scores):
    """Index of the best score, the first among ties; NaN scores never win."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return int(np.argmax(scores))


def _check_Cs(Cs):
    """The grid as a float64 array: logspace(-4, 4, Cs) for an int."""
    if isinstance(Cs, Integral):
        return np.logspace(-4, 4, Cs)
    grid = np.asarray(Cs, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(grid > 0):
        raise ValueError(
            "Cs must be a positive int or a non-empty 1-D array-like of positive "
            f"floats; got {Cs!r}."
        )
    return grid


def _check_l1_ratios(l1_ratios):
    """The grid of l1_ratio values as a float64 array; ``[0.0]`` for None."""
    if l1_ratios is None:
        return np.zeros(1)
    grid = np.asarray(l1_ratios)
    valid = (grid.ndim == 1 and grid.size > 0
             and (np.issubdtype(grid.dtype, np.integer) or np.issubdtype(grid.dtype, np.floating))
             and np.all((grid >= 0) & (grid <= 1)))
    if not valid:
        raise ValueError(
            "l1_ratios must be an array-like of numbers between 0 and 1; "
            f"got (l1_ratios={l1_ratios!r})"
        )
    return grid.astype(np.float64)


def _path_scorer(scorer, classes, soft):
    """The scorer with ``labels=classes`` when its metric takes labels.

    A test fold may lack a class; like LogisticRegressionCV, tell metrics
    such as log_loss every class the model predicts.
    """
    score_func = getattr(scorer, "_score_func", None)
    if soft or score_func is None:
        return scorer
    parameters = inspect.signature(score_func).parameters
    if "labels" not in parameters:
        return scorer
    kwargs = {"labels": classes}
    if classes.shape[0] == 2 and "pos_label" in parameters:
        kwargs["pos_label"] = classes[-1]
    kwargs.update(getattr(scorer, "_kwargs", {}))
    return make_scorer(score_func, greater_is_better=scorer._sign > 0,
                       response_method=scorer._response_method, **kwargs)


def _accepts_sample_weight(scorer):
    """Whether the scorer's metric (or the callable itself) takes sample_weight."""
    func = getattr(scorer, "_score_func", scorer)
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return "sample_weight" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
