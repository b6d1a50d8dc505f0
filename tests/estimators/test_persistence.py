"""pickle / joblib round trips and save/load with torch.load(weights_only=True)."""

import copy
import io
import json
import os
import pickle
import re

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from psilon import PSiLONClassifier, PSiLONRegressor
from psilon.estimators._preprocessing import FrozenPreprocessor

FAST = dict(width=8, depth=3, lambdas=(1e-4, 1e-1), max_steps=40, batch_size=32, learning_rate=2e-2,
            eval_every=20, random_state=0)


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "w": rng.normal(size=n),
                       "cat": rng.choice(["u", "v", "w"], size=n).astype(object)})
    df.loc[::5, "x"] = np.nan
    df.loc[::6, "cat"] = None
    y = df["w"].to_numpy() * 2 + (df["cat"] == "u").to_numpy()
    return df, y


@pytest.fixture(scope="module")
def fitted():
    df, y = _frame()
    reg = PSiLONRegressor(**FAST, prune=10).fit(df, y)
    labels = np.where(y > np.median(y), "high", "low")
    clf = PSiLONClassifier(**FAST).fit(df, labels)
    X = np.random.default_rng(0).normal(size=(60, 3))
    clf3 = PSiLONClassifier(**FAST).fit(X, np.array([1, 2, 5])[np.arange(60) % 3])
    return df, reg, clf, clf3, X


def test_pickle_and_joblib_round_trip(fitted, tmp_path):
    df, reg, clf, _, _ = fitted
    for est in (reg, clf):
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.predict(df), est.predict(df))
        joblib.dump(est, tmp_path / "m.joblib")
        np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict(df), est.predict(df))


def test_save_load_identical_predictions(fitted, tmp_path):
    df, reg, clf, clf3, X = fitted
    probe = df.copy()
    probe.loc[probe.index[:3], "cat"] = ["never-seen", None, "v"]
    for est, data in ((reg, probe), (clf, probe), (clf3, X)):
        path = tmp_path / f"{type(est).__name__}.pt"
        est.save(path)
        loaded = type(est).load(path)
        np.testing.assert_array_equal(loaded.predict(data), est.predict(data))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(data), est.predict_proba(data))
            np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.lambda_ == est.lambda_
        pd.testing.assert_frame_equal(loaded.path_, est.path_, check_dtype=False)
        pd.testing.assert_frame_equal(loaded.history_, est.history_, check_dtype=False)
        assert loaded.lipschitz_bound_ == pytest.approx(est.lipschitz_bound_)
        assert loaded.n_features_in_ == est.n_features_in_
        assert loaded.diverged_ == est.diverged_
    loaded = PSiLONRegressor.load(tmp_path / "PSiLONRegressor.pt")
    np.testing.assert_array_equal(loaded.selected_features_, reg.selected_features_)
    assert list(loaded.feature_names_in_) == ["x", "w", "cat"]
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(df.rename(columns={"x": "q"}))


def test_save_load_identical_predictions_for_arrays_without_pruning(tmp_path):
    """The frozen preprocessing returned a Fortran-ordered matrix, and the network's products
    rounded differently on it: predictions after load differed in the last bit."""
    X = np.random.default_rng(0).normal(size=(120, 4))
    y = X[:, 0] - X[:, 1]
    model = PSiLONRegressor(**FAST).fit(X, y)
    model.save(tmp_path / "m.pt")
    np.testing.assert_array_equal(PSiLONRegressor.load(tmp_path / "m.pt").predict(X), model.predict(X))


def test_frozen_preprocessor_reproduces_the_column_transformer(fitted):
    df, reg, _, _, _ = fitted
    frozen = FrozenPreprocessor.from_fitted(reg.preprocessor_)
    probe = pd.concat([df, pd.DataFrame({"x": [np.nan, 1e3], "w": [0.0, np.nan], "cat": ["zzz", None]})])
    np.testing.assert_allclose(frozen.transform(probe), reg.preprocessor_.transform(probe), rtol=1e-12, atol=1e-12)


def test_diverged_lambdas_are_saved(fitted, tmp_path):
    _, reg, _, _, _ = fitted
    reg = copy.deepcopy(reg)
    reg.diverged_ = [{"member": 1, "lambda": 0.1, "fold": -1, "step": np.int64(7)}]
    reg.save(tmp_path / "m.pt")
    assert PSiLONRegressor.load(tmp_path / "m.pt").diverged_ == [{"member": 1, "lambda": 0.1, "fold": -1, "step": 7}]


def test_files_written_before_the_exact_rescaling_still_load(fitted, tmp_path):
    """Files of format 1 written before numeric columns were divided by 2**e have no
    'exponent': their mean and scale are those of the raw columns."""
    df, reg, _, _, _ = fitted
    path = tmp_path / "m.pt"
    reg.save(path)
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    num = meta["preprocessor"]["num"]
    factor = np.ldexp(1.0, np.asarray(num.pop("exponent")))
    num["mean"], num["scale"] = (np.asarray(num["mean"]) * factor).tolist(), (np.asarray(num["scale"]) * factor).tolist()
    payload["meta"] = json.dumps(meta)
    torch.save(payload, path)
    np.testing.assert_array_equal(PSiLONRegressor.load(path).predict(df), reg.predict(df))


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('PSILON_EVIL_MARKER', '/tmp/psilon-evil-marker')}",))


def test_tampered_file_is_refused(fitted, tmp_path, monkeypatch):
    _, reg, _, _, _ = fitted
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PSILON_EVIL_MARKER", str(marker))
    path = tmp_path / "m.pt"
    reg.save(path)
    payload = torch.load(path, weights_only=True)
    payload["meta"] = _Evil()  # an object whose unpickling runs a shell command
    torch.save(payload, path)
    with pytest.raises(ValueError, match="refusing to load"):
        PSiLONRegressor.load(path)
    assert not marker.exists()


def test_load_checks_format_and_class(fitted, tmp_path):
    _, reg, _, _, _ = fitted
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a psilon estimator file"):
        PSiLONRegressor.load(tmp_path / "other.pt")
    reg.save(tmp_path / "reg.pt")
    with pytest.raises(ValueError, match="load it with PSiLONRegressor.load"):
        PSiLONClassifier.load(tmp_path / "reg.pt")


def test_save_refuses_custom_preprocessor(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3))
    m = PSiLONRegressor(**FAST, preprocessor=StandardScaler()).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="custom preprocessor"):
        m.save(tmp_path / "m.pt")
    buf = io.BytesIO()
    joblib.dump(m, buf)  # the documented alternative works


def _overwrite(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes(range(200, 230)) + data[offset + 30 :]


def _rewrite(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def _edit_meta(change):
    def edit(payload):
        meta = json.loads(payload["meta"])
        change(meta)
        payload["meta"] = json.dumps(meta)

    return edit


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-10]),
    "cut in half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(2000)),
    "text": lambda p: p.write_text("hello"),
    "overwritten pickle record": lambda p: p.write_bytes(_overwrite(p.read_bytes(), 60)),
    "overwritten string": lambda p: p.write_bytes(_overwrite(p.read_bytes(), 100)),
    "broken meta JSON": lambda p: _rewrite(p, lambda d: d.update(meta=d["meta"][:-5])),
    "meta not a string": lambda p: _rewrite(p, lambda d: d.update(meta=torch.zeros(2))),
    "missing meta": lambda p: _rewrite(p, lambda d: d.pop("meta")),
    "missing state": lambda p: _rewrite(p, lambda d: d.pop("state")),
    "unknown parameter": lambda p: _rewrite(p, _edit_meta(lambda m: m["params"].update(colour="red"))),
    "bad parameter value": lambda p: _rewrite(p, _edit_meta(lambda m: m["params"].update(width="wide"))),
    "missing meta entry": lambda p: _rewrite(p, _edit_meta(lambda m: m.pop("path_"))),
    "broken frame": lambda p: _rewrite(p, _edit_meta(lambda m: m.update(path_=[1, 2]))),
    "broken preprocessor": lambda p: _rewrite(p, _edit_meta(lambda m: m["preprocessor"]["num"].pop("mean"))),
    "unknown module": lambda p: _rewrite(p, _edit_meta(lambda m: m.update(module_class="os.system"))),
    "wrong weights": lambda p: _rewrite(p, lambda d: d["state"].update({k: torch.zeros(3) for k in d["state"]})),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_model_files_are_reported_as_such(fitted, tmp_path, corruption):
    """Regression (issue 13): OSError Errno 22, EOFError(''), "holds pickled objects",
    JSONDecodeError, KeyError, TypeError; now always a ValueError naming the file."""
    _, reg, _, _, _ = fitted
    path = tmp_path / "m.pt"
    reg.save(path)
    CORRUPTIONS[corruption](path)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a valid psilon model file (")) as info:
        PSiLONRegressor.load(path)
    assert "refusing" not in str(info.value) and "pickled objects" not in str(info.value)


def test_missing_file_stays_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        PSiLONRegressor.load(tmp_path / "nope.pt")
