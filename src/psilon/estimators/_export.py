"""ONNX export of a fitted estimator: the compacted network, with the default numeric
preprocessing and the target scaling folded into its first and last layers.

The graph (opset 17, operators MatMul, Add, Relu, Neg, Concat, Gather, Where, IsNaN,
Cast, Sigmoid, Sub, Softmax) has one input ``X`` ``(n, n_features_in_)`` and outputs:

* regressor: ``predictions`` ``(n, outputs)`` in the units of ``y``;
* classifier: ``logits`` ``(n, 1)`` (binary) or ``(n, classes)`` and ``probabilities``
  ``(n, classes)`` in the order of ``classes_`` (labels: ``classes_[argmax]``).

``preprocessing='fold'`` (default; numeric default preprocessing or ``'passthrough'``):
``X`` holds the raw numeric columns; missing values may be NaN. The default
preprocessing of column ``j`` is ``z_j = x_j a_j + c_j`` (``a_j = 1 / s_j``) with a missing
value replaced by 0 and flagged in an indicator column: the graph replaces NaN by the raw
value that standardizes to 0, appends the indicators, and the affine map is folded into
the first layer (``W_1 diag(a)``, ``b_1 + W_1 c``). ``preprocessing='none'``: ``X`` holds
the preprocessed features (``est.preprocessor_.transform`` output), for categorical
columns or a custom preprocessor (apply it in Python, as a scikit-learn pipeline step).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.utils.validation import check_is_fitted

from psilon.estimators._preprocessing import FrozenPreprocessor
from psilon.sparsity import compact

__all__ = ["export_onnx", "folded_preprocessing"]

OPSET = 17
_DTYPES = {"float64": np.float64, "float32": np.float32}


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError(
            "export_onnx needs the 'onnx' package: pip install 'psilon[onnx]' (or pip install onnx onnxruntime)"
        ) from None
    return onnx, helper, numpy_helper


def folded_preprocessing(est) -> dict:
    """The default numeric preprocessing as data: ``fill``, ``a``, ``c`` per column and ``indicators``.

    ``None`` for ``'passthrough'``. ValueError for categorical columns or a custom
    preprocessor (export with ``preprocessing='none'`` then).
    """
    pre = est.preprocessor_
    if pre is None:
        return None
    if isinstance(pre, FrozenPreprocessor):
        num, has_cat = pre.state["num"], pre.state["cat"] is not None
        state = None if num is None else (num["exponent"], num["mean"], num["scale"], num["indicators"])
    elif isinstance(pre, ColumnTransformer) and est.preprocessor is None:
        names = [name for name, _, cols in pre.transformers_ if len(cols)]
        has_cat, state = "cat" in names, None
        if "num" in names:
            pipe = pre.named_transformers_["num"]
            scale, imp = pipe.named_steps["scale"], pipe.named_steps["impute"]
            ind = imp.indicator_.features_.tolist() if imp.indicator_ is not None else []
            state = (scale.exponent_, scale.mean_, scale.scale_, ind)
    else:
        state, has_cat = None, True
    if has_cat or state is None or len(state[0]) != est.n_features_in_:
        raise ValueError(
            f"{type(est).__name__}.export_onnx: folding the preprocessing needs all-numeric columns and the default "
            "preprocessing (or 'passthrough'); use preprocessing='none' and apply est.preprocessor_ in Python"
        )
    exponent, mean, scale, indicators = (np.asarray(v) for v in state)
    s = np.ldexp(scale.astype(float), exponent.astype(int))  # z = x / s - mean / scale
    return {"a": 1.0 / s, "c": -mean / scale, "fill": mean * np.ldexp(1.0, exponent.astype(int)),
            "indicators": indicators.astype(int).reshape(-1)}


def _layers(est, fold: dict | None):
    """``(weights, biases, feature_indices)`` of the compacted network with preprocessing and target scale folded in."""
    # compacted from a float64 copy: the same weights predict() computes with
    net, idx = compact(copy.deepcopy(est.module_).double())
    ws = [w.detach().double().numpy().copy() for w in net.weights]
    bs = [b.detach().double().numpy().copy() for b in net.biases]
    idx = idx.numpy().astype(np.int64)
    if fold is not None:
        a = np.concatenate([fold["a"], np.ones(fold["indicators"].size)])[idx]
        c = np.concatenate([fold["c"], np.zeros(fold["indicators"].size)])[idx]
        bs[0] = bs[0] + ws[0] @ c
        ws[0] = ws[0] * a[None, :]
    scale = np.asarray(est._output_scale(), dtype=float).reshape(-1)
    if hasattr(est, "y_center_"):
        center = np.asarray(est.y_center_, dtype=float).reshape(-1)
        ws[-1], bs[-1] = ws[-1] * scale[:, None], bs[-1] * scale + center
    return ws, bs, idx


def _graph_nodes(helper, est, ws, architecture: str, final: str) -> list:
    """The network's nodes from ``feat`` (selected inputs) to ``final``."""
    nodes, z = [], "z0"
    nodes.append(helper.make_node("MatMul", ["feat", "W0"], ["m0"]))
    nodes.append(helper.make_node("Add", ["m0", "b0"], [z]))
    for i in range(1, len(ws)):
        if architecture == "mlp":
            nodes.append(helper.make_node("Relu", [z], [f"a{i}"]))
        else:
            nodes += [
                helper.make_node("Relu", [z], [f"pos{i}"]),
                helper.make_node("Neg", [z], [f"nz{i}"]),
                helper.make_node("Relu", [f"nz{i}"], [f"rn{i}"]),
                helper.make_node("Neg", [f"rn{i}"], [f"neg{i}"]),
                helper.make_node("Concat", [f"pos{i}", f"neg{i}"], [f"a{i}"], axis=1),
            ]
        nodes.append(helper.make_node("MatMul", [f"a{i}", f"W{i}"], [f"m{i}"]))
        last = i == len(ws) - 1
        out = final if last else (f"y{i}" if architecture == "resnet" else f"z{i}")
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [out]))
        if architecture == "resnet" and not last:
            nodes.append(helper.make_node("Add", [z, out], [f"z{i}"]))
        z = f"z{i}"
    return nodes


def _input_nodes(helper, numpy_helper, fold: dict | None, dtype) -> tuple[list, list]:
    """Nodes from ``X`` to ``V`` (the preprocessed features up to the folded affine map) and their constants."""
    if fold is None:
        return [helper.make_node("Identity", ["X"], ["V"])], []
    inits = [numpy_helper.from_array(fold["fill"].astype(dtype)[None, :], "fill")]
    nodes = [
        helper.make_node("IsNaN", ["X"], ["isnan"]),
        helper.make_node("Where", ["isnan", "fill", "X"], ["Xf"]),
    ]
    if fold["indicators"].size == 0:
        nodes.append(helper.make_node("Identity", ["Xf"], ["V"]))
        return nodes, inits
    inits.append(numpy_helper.from_array(fold["indicators"].astype(np.int64), "ind_cols"))
    nodes += [
        helper.make_node("Gather", ["isnan", "ind_cols"], ["ind_b"], axis=1),
        helper.make_node("Cast", ["ind_b"], ["ind"], to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype))),
        helper.make_node("Concat", ["Xf", "ind"], ["V"], axis=1),
    ]
    return nodes, inits


def _output_nodes(helper, numpy_helper, est, dtype) -> tuple[list, list, list]:
    """Nodes after ``out`` (the last layer), constants and the graph outputs."""
    tensor = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    n_out = est.module_.out_features
    if not hasattr(est, "classes_"):
        nodes = [helper.make_node("Identity", ["out"], ["predictions"])]
        return nodes, [], [helper.make_tensor_value_info("predictions", tensor, ["n", n_out])]
    n_classes = len(est.classes_)
    outputs = [helper.make_tensor_value_info("logits", tensor, ["n", n_out]),
               helper.make_tensor_value_info("probabilities", tensor, ["n", n_classes])]
    nodes = [helper.make_node("Identity", ["out"], ["logits"])]
    if n_out > 1:
        nodes.append(helper.make_node("Softmax", ["out"], ["probabilities"], axis=1))
        return nodes, [], outputs
    one = numpy_helper.from_array(np.ones((1, 1), dtype=dtype), "one")
    nodes += [
        helper.make_node("Sigmoid", ["out"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    return nodes, [one], outputs


def export_onnx(est, path, *, preprocessing: str = "fold", dtype: str = "float64") -> Path:
    """Write the fitted estimator ``est`` as an ONNX model to ``path`` (see the module docstring)."""
    check_is_fitted(est, "module_")
    if preprocessing not in ("fold", "none"):
        raise ValueError(f"preprocessing must be 'fold' or 'none', got {preprocessing!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float64' (matches predict) or 'float32', got {dtype!r}")
    onnx, helper, numpy_helper = _import_onnx()
    np_dtype = _DTYPES[dtype]
    fold = folded_preprocessing(est) if preprocessing == "fold" else None
    ws, bs, idx = _layers(est, fold)
    inits = [numpy_helper.from_array(idx, "features")]
    inits += [numpy_helper.from_array(w.T.astype(np_dtype).copy(), f"W{i}") for i, w in enumerate(ws)]
    inits += [numpy_helper.from_array(b.astype(np_dtype), f"b{i}") for i, b in enumerate(bs)]
    in_nodes, in_inits = _input_nodes(helper, numpy_helper, fold, np_dtype)
    out_nodes, out_inits, outputs = _output_nodes(helper, numpy_helper, est, np_dtype)
    nodes = in_nodes + [helper.make_node("Gather", ["V", "features"], ["feat"], axis=1)]
    nodes += _graph_nodes(helper, est, ws, est.module_.architecture, "out") + out_nodes
    n_in = est.n_features_in_ if fold is not None or est.preprocessor_ is None else est.n_preprocessed_features_
    tensor = helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))
    graph = helper.make_graph(
        nodes, f"psilon_{type(est).__name__}", [helper.make_tensor_value_info("X", tensor, ["n", n_in])],
        outputs, initializer=inits + in_inits + out_inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="psilon")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
