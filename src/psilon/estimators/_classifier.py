"""PSiLONClassifier: binary (one logit, BCE) and multiclass (softmax) classification."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder

from psilon.estimators._base import _PSiLONBase
from psilon.estimators._certificates import certified_radius
from psilon.estimators._inputs import check_labels, num_rows
from psilon.estimators._preprocessing import plain

__all__ = ["PSiLONClassifier"]


class PSiLONClassifier(ClassifierMixin, _PSiLONBase):
    """PSiLON Net / ResNet classification (binary: one logit, BCE; multiclass: softmax).

    Same parameters and fitted attributes as :class:`PSiLONRegressor` (``val_loss`` is the
    validation log loss; ``lipschitz_bound_`` bounds the logits), plus ``classes_``, and
    :meth:`certified_radius` (per-sample certified l_inf radius) besides the certificates
    of :class:`PSiLONRegressor` (``docs/certificates.md``).
    Labels may be any hashable values of one kind (strings, integers, booleans); missing
    labels (None, NaN) are an error.
    """

    def fit(self, X, y, *, eval_set=None):
        """Fit the lambda path on ``X, y`` and select ``lambda_`` (see :mod:`psilon.estimators`)."""
        X = self._validate_X(X, reset=True)
        y = check_labels(y, num_rows(X), owner=type(self).__name__)
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        if self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data contains "
                f"only one class: {plain(self.classes_[0])!r}"
            )
        y_int = enc.transform(y)
        if self.classes_.size == 2:
            return self._fit(X, y_int.astype(np.float32).reshape(-1, 1), "bce", 1, eval_set)
        return self._fit(X, y_int.astype(np.int64), "ce", self.classes_.size, eval_set)

    def _encode_eval_y(self, y):
        y = check_labels(y, None, owner=type(self).__name__, name="y_val")
        unknown = set(np.unique(y).tolist()) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"eval_set y has labels not seen in y: {sorted(map(str, unknown))}")
        if self.classes_.dtype.kind != "O":
            y_int = np.searchsorted(self.classes_, y)
        else:
            y_int = LabelEncoder().fit(self.classes_).transform(y)
        if self.classes_.size == 2:
            return y_int.astype(np.float32).reshape(-1, 1)
        return y_int.astype(np.int64)

    def predict_proba(self, X):
        """Class probabilities ``(n, n_classes)`` in the order of ``classes_``."""
        logits = torch.from_numpy(self._raw_predict(X))
        if self.classes_.size == 2:
            p = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p, p], dim=1).numpy()
        return torch.softmax(logits, dim=1).numpy()

    def decision_function(self, X):
        """Logits: ``(n,)`` for binary problems, ``(n, n_classes)`` otherwise."""
        logits = self._raw_predict(X)
        return logits[:, 0] if self.classes_.size == 2 else logits

    def certified_radius(self, X, norm: str = "linf", *, space: str = "input"):
        """Per sample of ``X``: a radius ``r`` such that no perturbation ``d`` with ``||d||_inf < r``
        changes the predicted class.

        Binary (one logit ``f``, certified bound ``L``): ``r = |f(x)| / L``. Multiclass,
        top logit ``t``: ``r = min_{j != t} (f_t(x) - f_j(x)) / L_tj``, where ``L_tj``
        certifies the difference ``f_t - f_j``: the predictor is linear, so that difference
        is a network with the same hidden layers and the single output row
        ``W_K,t - W_K,j``, whose path bound is computed exactly
        (:func:`psilon.pathnorm.pairwise_lipschitz_bound`; ``L_tj <= L_t + L_j``). Then
        ``f_t(x+d) - f_j(x+d) >= f_t(x) - f_j(x) - L_tj ||d|| > 0`` for every ``j``.

        ``space='input'`` (default): radii in the units of ``X`` as passed, perturbing the
        numeric columns only (one-hot categorical and missing-indicator columns, and
        missing entries, are held fixed); ``'standardized'``: in the preprocessed feature
        space, every feature perturbed. ``norm``: ``'linf'`` (the radius holds a fortiori
        for any l_p norm). Returns ``(n,)`` floats (``inf`` when nothing can flip it).
        """
        return certified_radius(self, X, norm, space)

    def predict(self, X):
        """Most probable class per sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _extra_state(self) -> dict:
        kind = self.classes_.dtype.kind
        return {"classes": [plain(c) for c in self.classes_], "classes_kind": kind, "classes_dtype": str(self.classes_.dtype)}

    def _restore_extra(self, extra: dict) -> None:
        if extra["classes_kind"] in "biufU":
            self.classes_ = np.asarray(extra["classes"], dtype=np.dtype(extra["classes_dtype"]))
        else:
            self.classes_ = np.asarray(extra["classes"], dtype=object)
