"""PSiLONRegressor: regression on robustly scaled targets, mapped back at predict."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from psilon.estimators._base import _PSiLONBase
from psilon.estimators._certificates import check_eps, output_bound
from psilon.estimators._inputs import check_regression_targets, num_rows
from psilon.estimators._preprocessing import robust_target_scaling

__all__ = ["PSiLONRegressor"]

#: The largest scaled target trained on: the squared error of a batch is summed in
#: float32, so beyond ~1.8e19 a single square overflows; 1e15 leaves room for the sum.
_SCALED_TARGET_MAX = 1e15


class PSiLONRegressor(RegressorMixin, _PSiLONBase):
    """PSiLON Net / ResNet regression over a lambda path with validation selection.

    Parameters (keyword-only). The defaults are psilon's recipe, built to reach the paper
    recipe's quality in a fifth of its steps (``docs/results/convergence``); the paper's
    own recipe is ``init='paper', length_lr_scale=1, max_steps=5000, restore='final',
    patience=None`` (``width=500`` at the paper's size).

    model : ``'psilon'`` (PSiLON Net / ResNet) or ``'standard'`` (the StandardNet baseline).
    architecture : ``'mlp'`` or ``'resnet'`` (CReLU residual blocks).
    width, depth : hidden width and number of weight layers.
    lambdas : positive float or grid; default the paper's 13 values 5e-5 ... 5e-1.
    selection : ``'holdout'`` (``validation_fraction``) or ``'cv'`` (``cv`` folds, trained
        as members together with the lambdas, then a refit on all data).
    max_steps / epochs : optimizer steps, or epochs (``epochs * (n_train // batch)`` steps).
        ``'auto'`` (default): ``clip(500 epochs, 1000, 2000)`` steps, i.e. 1,000 below
        1,200 training rows and 2,000 from 1,600 on at batch 400 (see
        :func:`psilon.estimators._params.auto_steps`).
    batch_size, learning_rate : minibatch size, Adam's peak learning rate (one-cycle;
        default 1e-2, the paper's 2e-3).
    length_lr_scale : the lengths' learning rate relative to ``learning_rate`` (default 5:
        Adam moves a parameter by about its learning rate per step, and from the paper's
        init ``g = 1`` a length must travel far; 1 is the paper's recipe).
    init : the lengths' initialization, ``'paper'`` (g = 1, ResNet blocks 0), ``'variance'``
        (unit rows) or ``'open'`` (g = 1, ResNet blocks too; see :mod:`psilon.nn.init`).
    eval_every : steps between validations (default ``max_steps // 100``).
    restore : ``'best'`` validation state per lambda, ``'final'`` (paper) or ``'auto'``
        (default: ``'best'``, ``'final'`` when pruning).
    patience : early stopping per lambda after that many evaluations without improvement;
        ``'auto'`` (default): 20 evaluations (20% of the budget), off when pruning.
    monitor : what the best state and early stopping compare per lambda: ``'objective'``
        (default: validation data loss plus lambda times the path norm, the lambda's own
        criterion, so a strongly regularized lambda keeps a regularized state) or
        ``'data'`` (the validation data loss alone); see ``docs/estimators.md``. The
        selection across lambdas uses the data loss either way.
    halving : successive halving: drop lambdas far behind on validation at 25% and 50%
        of the budget, so that the stacked step gets cheaper.
    prune : ``False``; ``True`` prunes over the last 20% of steps; an int: that many steps.
    path : ``'independent'`` (every lambda from the same init, one stacked run) or
        ``'warm'`` (the reference code's sequential warm-started path).
    checkpoint_dir : ``None`` or a folder for the lambda path's checkpoints: with
        ``path='warm'`` each finished lambda is saved there, with ``'independent'`` a
        snapshot of the stacked run every few minutes. A fit with the same data and
        parameters loads them instead of training that part again, so an interrupted fit
        resumes with the result of an uninterrupted one (:mod:`psilon.train.checkpoint`).
        The refit after cross-validation is not checkpointed. The folder is kept; delete
        it when done.
    lr_step_every, final_div_factor : schedule details (the reference code steps its
        one-cycle schedule once per epoch of 5 batches and ends near ``lr / 20 / 2``).
    preprocessor : ``None`` (default preprocessing), ``'passthrough'``, or a transformer.
    device : ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'``, ...
    random_state : seed of the split, the initial weights and the batches.
    verbose : show a progress bar over steps.
    lipschitz_max : ``None`` (default) or a budget: select the best validation loss among
        the lambdas whose certified bound (``path_["lipschitz_bound"]``, as
        ``lipschitz_bound_`` reports it) is at most this; ValueError naming the smallest
        bound reached when none is (see ``docs/certificates.md``).

    Fitted attributes: ``lambda_``, ``path_`` (DataFrame indexed by lambda: ``val_loss``
    (MSE of the scaled target), ``near_sparsity``, ``lipschitz_bound``, ``status``, ...),
    ``history_`` (validation loss, index step, one column per lambda), ``module_`` (the
    selected ``members=None`` torch network), ``lipschitz_bound_``, ``near_sparsity_``,
    ``n_features_in_``, ``feature_names_in_``, ``preprocessor_``, ``y_center_``,
    ``y_scale_`` (see :func:`robust_target_scaling`), ``y_ndim_`` (1 or 2: the shape of
    the predictions), ``n_steps_``, ``diverged_`` and, with ``prune``,
    ``selected_features_`` (names of the preprocessed features the pruned network uses),
    ``feature_path_norms_`` (the 1-path-norm of ``module_`` per preprocessed feature; sums
    to the path norm, 0 for the features pruning removed).

    Certificates (``docs/certificates.md``): :meth:`prediction_bounds`,
    :meth:`certified_lipschitz_bound`, :meth:`perturbation_weights`,
    :meth:`feature_importances`, :meth:`plot_frontier`; deployment: :meth:`export_onnx`.
    """

    def fit(self, X, y, *, eval_set=None):
        """Fit the lambda path on ``X, y`` and select ``lambda_`` (see :mod:`psilon.estimators`)."""
        X = self._validate_X(X, reset=True)
        y = check_regression_targets(y, num_rows(X), owner=type(self).__name__)
        self.y_ndim_ = y.ndim
        y2 = y.reshape(len(y), -1).astype(np.float64)
        self.y_center_, self.y_scale_ = robust_target_scaling(y2)
        return self._fit(X, self._scaled(y2, "y"), "mse", y2.shape[1], eval_set)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _scaled(self, y2: np.ndarray, name: str) -> np.ndarray:
        """``(y - y_center_) / y_scale_`` as float32 (the network's target)."""
        scaled = (y2 - self.y_center_) / self.y_scale_
        biggest = float(np.abs(scaled).max()) if scaled.size else 0.0
        if biggest > _SCALED_TARGET_MAX:
            raise ValueError(
                f"{name} has values too far from the median relative to the interquartile range: "
                f"{biggest:.3g} interquartile half-ranges (at most {_SCALED_TARGET_MAX:.0e}: their squared error "
                "would overflow float32); remove the outliers or transform y (e.g. a log)"
            )
        return scaled.astype(np.float32)

    def _encode_eval_y(self, y):
        y = check_regression_targets(y, None, owner=type(self).__name__, name="y_val")
        return self._scaled(y.reshape(len(y), -1).astype(np.float64), "y_val")

    def _output_scale(self) -> np.ndarray:
        return np.asarray(self.y_scale_, dtype=float).reshape(-1)

    def predict(self, X):
        """Predictions ``(n,)`` (or ``(n, targets)`` for a 2-d ``y``) in the units of ``y``."""
        out = self._raw_predict(X) * self.y_scale_ + self.y_center_
        return out.ravel() if self.y_ndim_ == 1 else out

    def prediction_bounds(self, X, eps, *, space: str = "input"):
        """Certified intervals ``(lower, upper)`` of the prediction under any perturbation of norm <= ``eps``.

        ``lower = f(x) - L eps``, ``upper = f(x) + L eps`` in the units of ``y``, with ``L``
        the certified bound per output (:meth:`certified_lipschitz_bound` for ``space``):
        for every ``d`` with ``||d||_inf <= eps``, ``lower <= predict(x + d) <= upper``.
        ``eps``: a number or one per row. ``space='input'`` (default): ``eps`` in the units
        of ``X`` (numeric columns perturbed; categorical and indicator columns fixed);
        ``'standardized'``: in the preprocessed feature space. Shapes as :meth:`predict`.
        """
        pred = self.predict(X)
        eps = check_eps(eps, len(pred))
        bound = output_bound(self, space)  # (outputs,)
        width = eps[:, None] * bound[None, :] if pred.ndim == 2 else eps * bound[0]
        return pred - width, pred + width

    def _extra_state(self) -> dict:
        return {"y_center": self.y_center_.tolist(), "y_scale": self.y_scale_.tolist(), "y_ndim": self.y_ndim_}

    def _restore_extra(self, extra: dict) -> None:
        self.y_center_ = np.asarray(extra["y_center"], dtype=float)
        self.y_scale_ = np.asarray(extra["y_scale"], dtype=float)
        self.y_ndim_ = int(extra["y_ndim"])
