"""``save`` / ``load`` of fitted estimators as plain data.

A model file is a ``torch.save`` zip archive of ``{"format", "version", "meta", "state"}``:
``state`` the selected network's tensors, ``meta`` a JSON string with everything else
(parameters, the frozen default preprocessing, ``path_``, ``history_``, the subclass's
``extra`` state). Reading uses ``torch.load(weights_only=True)``: a file that carries
pickled objects is refused without running them.
"""

from __future__ import annotations

import json
import os
import pickle
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer

import psilon.nn as _nn
from psilon.estimators._preprocessing import FrozenPreprocessor, plain

__all__ = ["FORMAT", "FORMAT_VERSION", "load_estimator", "save_estimator"]

FORMAT = "psilon.estimator"
FORMAT_VERSION = 1
MODULE_CLASSES = ("PSiLONNet", "PSiLONResNet", "StandardNet", "WeightNormNet")


# --------------------------------------------------------------------------- save
def _frame_to_split(frame: pd.DataFrame) -> dict:
    data = frame.to_dict(orient="split")
    return {"columns": [plain(c) for c in data["columns"]], "data": [[plain(v) for v in row] for row in data["data"]]}


def _frame_from_split(data: dict) -> pd.DataFrame:
    return pd.DataFrame(data["data"], columns=data["columns"])


def _preprocessor_state(est):
    """The fitted default preprocessing as plain data; ``None`` for ``'passthrough'``."""
    if est.preprocessor is None:
        pre = est.preprocessor_
        return (FrozenPreprocessor.from_fitted(pre) if isinstance(pre, ColumnTransformer) else pre).state
    if isinstance(est.preprocessor, str) and est.preprocessor == "passthrough":
        return None
    raise ValueError(
        f"{type(est).__name__}.save supports the default preprocessing or preprocessor='passthrough'; this "
        "estimator has a custom preprocessor: use joblib.dump (load only files you trust), or put the "
        "preprocessor in a Pipeline and save the estimator with preprocessor='passthrough'"
    )


def _saved_params(est) -> dict:
    params = est.get_params(deep=False)
    if params["lambdas"] is not None:
        params["lambdas"] = np.atleast_1d(np.asarray(params["lambdas"], dtype=float)).tolist()
    if params["random_state"] is not None and not isinstance(params["random_state"], Integral):
        params["random_state"] = None  # a RandomState object is not data
    return {k: plain(v) for k, v in params.items()}


def _meta(est, pre_state) -> dict:
    names = getattr(est, "feature_names_in_", None)
    selected = getattr(est, "selected_features_", None)
    return {
        "class": type(est).__name__,
        "params": _saved_params(est),
        "module_class": type(est.module_).__name__,
        "module_config": est.module_.config(),
        "preprocessor": pre_state,
        "n_features_in_": int(est.n_features_in_),
        "feature_names_in_": None if names is None else [str(c) for c in names],
        "n_preprocessed_features_": int(est.n_preprocessed_features_),
        "lambda_": est.lambda_,
        "n_steps_": int(est.n_steps_),
        "path_": _frame_to_split(est.path_.reset_index()),
        "history_": _frame_to_split(est.history_.reset_index()),
        "selected_features_": None if selected is None else [str(s) for s in selected],
        "extra": est._extra_state(),
    }


def save_estimator(est, path) -> None:
    """Write the fitted ``est`` to ``path`` (see the module docstring)."""
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "meta": json.dumps(_meta(est, _preprocessor_state(est))),
        "state": {k: v.detach().clone() for k, v in est.module_.state_dict().items()},
    }
    torch.save(payload, os.fspath(path))


# --------------------------------------------------------------------------- load
def _torch_load(path):
    """The file's payload; refuses pickled objects."""
    try:
        return torch.load(os.fspath(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"refusing to load {path!s}: it is not a plain-data psilon file (it holds pickled objects, which "
            f"could run code). Details: {exc}"
        ) from None


def _read_meta(payload, path, cls) -> dict:
    """The decoded ``meta`` of a payload with the psilon header; checks the class."""
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        raise ValueError(f"{path!s} is not a psilon estimator file (no '{FORMAT}' header)")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!s} has format version {payload.get('version')}, this psilon reads {FORMAT_VERSION}")
    meta = json.loads(payload["meta"])
    if meta["class"] != cls.__name__:
        raise ValueError(f"{path!s} holds a {meta['class']}; load it with {meta['class']}.load")
    return meta


def _module(meta: dict, state: dict, path):
    module_cls = meta["module_class"]
    if module_cls not in MODULE_CLASSES:
        raise ValueError(f"{path!s}: unknown module class {module_cls!r}")
    config = dict(meta["module_config"])
    module = getattr(_nn, module_cls)(config.pop("in_features"), config.pop("out_features"), **config)
    module.load_state_dict(state)
    return module


def _history(data: dict) -> pd.DataFrame:
    hist = _frame_from_split(data)
    hist = hist.set_index("step") if "step" in hist.columns else hist
    if len(hist.columns):
        hist.columns = pd.Index(hist.columns.astype(float), name="lambda")
    return hist


def load_estimator(cls, path):
    """Read an estimator of class ``cls`` written by :func:`save_estimator`."""
    payload = _torch_load(path)
    meta = _read_meta(payload, path, cls)
    est = cls(**meta["params"])
    module = _module(meta, payload["state"], path)
    est.preprocessor_ = None if meta["preprocessor"] is None else FrozenPreprocessor.from_state(meta["preprocessor"])
    est.n_features_in_ = meta["n_features_in_"]
    if meta["feature_names_in_"] is not None:
        est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
    est.n_preprocessed_features_ = meta["n_preprocessed_features_"]
    est.lambda_ = meta["lambda_"]
    est.n_steps_ = meta["n_steps_"]
    est.diverged_ = []
    est.path_ = _frame_from_split(meta["path_"]).set_index("lambda")
    est.history_ = _history(meta["history_"])
    if meta["selected_features_"] is not None:
        est.selected_features_ = np.asarray(meta["selected_features_"], dtype=object)
    est._restore_extra(meta["extra"])
    est._set_fitted_module(module, pruned=False)
    return est
