"""``save`` / ``load`` of fitted estimators as plain data.

A model file is a ``torch.save`` zip archive of ``{"format", "version", "meta", "state"}``:
``state`` the selected network's tensors, ``meta`` a JSON string with everything else
(parameters, the frozen default preprocessing, ``path_``, ``history_``, the subclass's
``extra`` state). Reading uses ``torch.load(weights_only=True)``: a file that carries
pickled objects is refused without running them. A file that cannot be read or decoded
gives ``ValueError("<path> is not a valid psilon model file (<reason>)")``.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
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
META_KEYS = (
    "class", "params", "module_class", "module_config", "preprocessor", "n_features_in_", "feature_names_in_",
    "n_preprocessed_features_", "lambda_", "n_steps_", "path_", "history_", "selected_features_", "extra",
)
_DECODE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def invalid_file(path, reason: str) -> ValueError:
    return ValueError(f"{path!s} is not a valid psilon model file ({reason})")


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
        "diverged_": [{str(k): plain(v) for k, v in d.items()} for d in est.diverged_],
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
def _unpickling_detail(exc: Exception) -> str:
    """The informative line of torch's weights-only unpickling error (its message is mostly advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    found = [line for line in lines if line.startswith(("Unsupported", "WeightsUnpickler", "invalid load key"))]
    return found[-1] if found else (lines[0] if lines else type(exc).__name__)


def _torch_load(path):
    """The file's payload; refuses pickled objects, reports unreadable files."""
    name = os.fspath(path)
    with open(name, "rb") as fh:  # a missing file stays a FileNotFoundError
        head = fh.read(4)
    if not head:
        raise invalid_file(path, "the file is empty")
    if not zipfile.is_zipfile(name):
        raise invalid_file(path, "not a complete zip archive as written by torch.save: truncated or another format")
    try:
        return torch.load(name, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():
            raise invalid_file(path, f"unreadable data record: {_unpickling_detail(exc)}") from None
        raise ValueError(
            f"refusing to load {path!s}: it is not a plain-data psilon file (it holds pickled objects, which "
            f"could run code). Details: {exc}"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as exc:
        raise invalid_file(path, f"unreadable archive: {type(exc).__name__}: {exc}") from None


def _read_meta(payload, path, cls) -> dict:
    """The decoded ``meta`` of a payload with the psilon header; checks keys, class and parameter names."""
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        raise invalid_file(path, f"no '{FORMAT}' header: not a psilon estimator file")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!s} has format version {payload.get('version')}, this psilon reads {FORMAT_VERSION}")
    for key in ("meta", "state"):
        if key not in payload:
            raise invalid_file(path, f"no '{key}' entry")
    try:
        meta = json.loads(payload["meta"])
    except (TypeError, ValueError) as exc:
        raise invalid_file(path, f"the meta data is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("params"), dict):
        raise invalid_file(path, "the meta data is not a JSON object with 'params'")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise invalid_file(path, f"the meta data lacks {missing}")
    if meta["class"] != cls.__name__:
        raise ValueError(f"{path!s} holds a {meta['class']}; load it with {meta['class']}.load")
    unknown = sorted(set(meta["params"]) - set(cls._get_param_names()))
    if unknown:
        raise invalid_file(path, f"unknown parameters {unknown}")
    return meta


def _module(meta: dict, state: dict):
    module_cls = meta["module_class"]
    if module_cls not in MODULE_CLASSES:
        raise ValueError(f"unknown module class {module_cls!r}")
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


def _restore(cls, payload: dict, meta: dict):
    est = cls(**meta["params"])
    est._check_params()
    est.preprocessor_ = None if meta["preprocessor"] is None else FrozenPreprocessor.from_state(meta["preprocessor"])
    est.n_features_in_ = int(meta["n_features_in_"])
    if meta["feature_names_in_"] is not None:
        est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
    est.n_preprocessed_features_ = int(meta["n_preprocessed_features_"])
    est.lambda_ = float(meta["lambda_"])
    est.n_steps_ = int(meta["n_steps_"])
    est.diverged_ = [dict(d) for d in meta.get("diverged_", [])]  # older files lack it
    est.path_ = _frame_from_split(meta["path_"]).set_index("lambda")
    est.history_ = _history(meta["history_"])
    if meta["selected_features_"] is not None:
        est.selected_features_ = np.asarray(meta["selected_features_"], dtype=object)
    est._restore_extra(meta["extra"])
    est._set_fitted_module(_module(meta, payload["state"]), pruned=False)
    return est


def load_estimator(cls, path):
    """Read an estimator of class ``cls`` written by :func:`save_estimator`."""
    payload = _torch_load(path)
    meta = _read_meta(payload, path, cls)
    try:
        return _restore(cls, payload, meta)
    except _DECODE_ERRORS as exc:
        reason = f"missing entry {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise invalid_file(path, reason) from exc
