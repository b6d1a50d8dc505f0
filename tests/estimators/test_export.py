"""ONNX export (issue 14): the compacted network with the preprocessing folded in matches
predict / predict_proba to 1e-5 in onnxruntime on real data."""

import numpy as np
import pandas as pd
import pytest

from psilon.estimators import PSiLONClassifier, PSiLONRegressor


onnx = pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' extra: pip install 'psilon[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the round trip needs onnxruntime: pip install 'psilon[onnx]'")

FAST = dict(width=32, max_steps=300, random_state=0, lambdas=[1e-3, 1e-2])


def _run(path, X):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": np.asarray(X, dtype=np.float64)})


@pytest.mark.parametrize("architecture", ["mlp", "resnet"])
def test_classifier_round_trip(architecture, tmp_path, real_dataset):
    ds = real_dataset("pmlb:breast_cancer_wisconsin")
    est = PSiLONClassifier(architecture=architecture, prune=True, **FAST).fit(ds.X, ds.y)
    logits, proba = _run(est.export_onnx(tmp_path / "m.onnx"), ds.X)
    np.testing.assert_allclose(proba, est.predict_proba(ds.X), atol=1e-5)
    np.testing.assert_allclose(logits[:, 0], est.decision_function(ds.X), atol=1e-5)
    np.testing.assert_array_equal(est.classes_[proba.argmax(1)], est.predict(ds.X))


def test_multiclass_round_trip_after_load(tmp_path, real_dataset):
    ds = real_dataset("pmlb:vehicle")
    est = PSiLONClassifier(architecture="resnet", **FAST).fit(ds.X, ds.y)
    est.save(tmp_path / "m.pt")
    loaded = PSiLONClassifier.load(tmp_path / "m.pt")  # the frozen preprocessing folds as well
    _, proba = _run(loaded.export_onnx(tmp_path / "m.onnx"), ds.X)
    np.testing.assert_allclose(proba, est.predict_proba(ds.X), atol=1e-5)
    np.testing.assert_array_equal(est.classes_[proba.argmax(1)], est.predict(ds.X))


def test_regressor_round_trip_with_missing_values(tmp_path, real_dataset):
    ds = real_dataset("pmlb:1028_SWD")
    X = ds.X.astype(float).copy()
    X.iloc[::7, 1] = np.nan  # missing values: imputed and flagged by an indicator column
    est = PSiLONRegressor(**FAST).fit(X, ds.y)
    assert est.n_preprocessed_features_ == X.shape[1] + 1
    (pred,) = _run(est.export_onnx(tmp_path / "r.onnx"), X)
    np.testing.assert_allclose(pred[:, 0], est.predict(X), atol=1e-5, rtol=0)
    (pred32,) = ort.InferenceSession(str(est.export_onnx(tmp_path / "r32.onnx", dtype="float32"))).run(
        None, {"X": X.to_numpy(np.float32)})
    np.testing.assert_allclose(pred32[:, 0], est.predict(X), rtol=1e-4)


def test_categorical_columns_export_without_folding(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=100), "c": rng.choice(["u", "v"], 100)})
    y = (X["a"] > 0).astype(int)
    est = PSiLONClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="preprocessing='none'"):
        est.export_onnx(tmp_path / "m.onnx")
    _, proba = _run(est.export_onnx(tmp_path / "m.onnx", preprocessing="none"), est.preprocessor_.transform(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5)


def test_export_argument_errors(tmp_path, real_dataset):
    ds = real_dataset("pmlb:breast_cancer_wisconsin")
    est = PSiLONClassifier(**FAST).fit(ds.X, ds.y)
    with pytest.raises(ValueError, match="preprocessing must be"):
        est.export_onnx(tmp_path / "m.onnx", preprocessing="yes")
    with pytest.raises(ValueError, match="dtype must be"):
        est.export_onnx(tmp_path / "m.onnx", dtype="int8")
