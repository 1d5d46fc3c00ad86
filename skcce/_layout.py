"""The parameter layout: flat vector <-> (n_dof, K) <-> ``coef_`` / ``intercept_``.

The coefficient matrix ``coef`` of shape (K, n_dof), ``n_dof = d + fit_intercept``,
intercepts in the last column, is stored in Fortran order. Its flat vector
``coef.ravel(order="F")`` (what the optimizer sees) is then the C-contiguous
(n_dof, K) array ``coef.T`` that the kernel takes, with no copy in either
direction. :class:`CoefLayout` is the one place that knows this; nothing else
reshapes parameters.
"""

import numpy as np


class CoefLayout:
    """Shapes and conversions of a softmax model's parameters.

    Parameters
    ----------
    n_classes : int
        K, the number of rows of the full softmax model (2 for a binary problem).
    n_features : int
        d.
    fit_intercept : bool
        Whether the last of the ``n_dof = d + fit_intercept`` columns holds
        intercepts.
    """

    def __init__(self, n_classes, n_features, fit_intercept):
        self.n_classes = int(n_classes)
        self.n_features = int(n_features)
        self.fit_intercept = bool(fit_intercept)
        self.n_dof = self.n_features + int(self.fit_intercept)

    @property
    def n_params(self):
        """Length of the flat parameter vector."""
        return self.n_classes * self.n_dof

    def transposed(self, params):
        """The (n_dof, K) C-ordered view of a flat vector (the kernel's layout)."""
        return params.reshape(self.n_dof, self.n_classes)

    def weights_t(self, params):
        """The (d, K) view of the coefficients (no intercepts)."""
        return self.transposed(params)[: self.n_features]

    def intercept(self, params):
        """The (K,) view of the intercepts, or None without intercept."""
        return self.transposed(params)[-1] if self.fit_intercept else None

    def matrix(self, params):
        """The (K, n_dof) view of a flat vector, intercepts in the last column."""
        return self.transposed(params).T

    def flatten(self, coef):
        """The flat vector of a (K, n_dof) coefficient matrix."""
        return np.asfortranarray(coef).ravel(order="F")

    def zeros(self):
        """The all-zero start (as LogisticRegression's)."""
        return np.zeros(self.n_params)

    def from_model(self, coef_, intercept_):
        """The flat vector of fitted ``coef_`` and ``intercept_`` (a warm start).

        Two classes store the class-1 row ``w`` of the symmetric solution
        ``W = [-w, w]``.
        """
        coef = np.zeros((self.n_classes, self.n_dof), order="F")
        d = self.n_features
        if self.n_classes == 2:
            coef[1, :d], coef[0, :d] = coef_[0], -coef_[0]
            if self.fit_intercept:
                coef[1, -1], coef[0, -1] = intercept_[0], -intercept_[0]
        else:
            coef[:, :d] = coef_
            if self.fit_intercept:
                coef[:, -1] = intercept_
        return self.flatten(coef)

    def from_prior(self, prior):
        """W = 0 and the centered log of the class prior as intercepts.

        The exact optimum for W = 0 when ``prior`` is the mean (weighted,
        smoothed) target; without intercepts, or with a zero prior, zeros.
        """
        coef = np.zeros((self.n_classes, self.n_dof), order="F")
        if self.fit_intercept and np.all(prior > 0):
            log_prior = np.log(prior)
            coef[:, -1] = log_prior - log_prior.mean()
        return self.flatten(coef)

    def model_attributes(self, params, classes, dtype):
        """Fitted attributes (``classes_``, ``coef_``, ``intercept_``) of a flat vector.

        Two classes keep the class-1 row of the symmetric solution.
        """
        coef = self.matrix(params)
        weights = coef[:, : self.n_features]
        intercepts = coef[:, -1] if self.fit_intercept else np.zeros(self.n_classes)
        if self.n_classes == 2:
            weights, intercepts = weights[1:], intercepts[1:]
        return {
            "classes_": classes,
            "coef_": np.array(weights, dtype=dtype, order="C"),
            "intercept_": np.array(intercepts, dtype=dtype),
        }
