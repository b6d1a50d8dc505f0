"""Checkpoints of the warm lambda path: an interrupted path resumes with the same result."""

import numpy as np
import pandas as pd
import pytest

import psilon.train.path as path_module
from psilon.train import lambda_path

SMALL = dict(width=8, depth=3, max_steps=20, batch_size=16, learning_rate=1e-2, path="warm")
LAMBDAS = [1e-3, 1e-2, 1e-1]


def _data(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


def _assert_same(a, b):
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k].numpy(), sb[k].numpy()), k
    np.testing.assert_array_equal(a.lambdas, b.lambdas)
    np.testing.assert_array_equal(a.folds, b.folds)
    np.testing.assert_array_equal(a.kept_step, b.kept_step)
    np.testing.assert_array_equal(a.val_loss, b.val_loss)
    assert a.status == b.status and a.steps == b.steps and a.member_steps == b.member_steps
    pd.testing.assert_frame_equal(a.history, b.history)


class _CountingTrain:
    """``train_members`` that counts its calls and can fail on the ``fail_on``-th one."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on, self.real = 0, fail_on, path_module.train_members

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("simulated kill")
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("folds", [False, True])
def test_an_interrupted_warm_path_resumes_with_the_uninterrupted_result(tmp_path, monkeypatch, folds):
    X, y = _data()
    where = dict(folds=[(np.arange(20, 60), np.arange(0, 20)), (np.arange(0, 40), np.arange(40, 60))]) if folds \
        else dict(val_data=(X[:20], y[:20]))
    plain = lambda_path(X, y, lambdas=LAMBDAS, seed=3, **where, **SMALL)

    killed = _CountingTrain(fail_on=3)  # dies while training the third lambda (of the first fold)
    monkeypatch.setattr(path_module, "train_members", killed)
    with pytest.raises(KeyboardInterrupt):
        lambda_path(X, y, lambdas=LAMBDAS, seed=3, checkpoint=tmp_path, **where, **SMALL)
    first = -1 if not folds else 0
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [f"fold{first}-lambda0.pt", f"fold{first}-lambda1.pt"]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries

    resumed = _CountingTrain()
    monkeypatch.setattr(path_module, "train_members", resumed)
    result = lambda_path(X, y, lambdas=LAMBDAS, seed=3, checkpoint=tmp_path, **where, **SMALL)
    runs = 2 if folds else 1
    assert resumed.calls == runs * len(LAMBDAS) - 2  # the two saved lambdas are loaded, not trained
    _assert_same(result, plain)

    again = _CountingTrain()
    monkeypatch.setattr(path_module, "train_members", again)
    _assert_same(lambda_path(X, y, lambdas=LAMBDAS, seed=3, checkpoint=tmp_path, **where, **SMALL), plain)
    assert again.calls == 0


@pytest.mark.parametrize("change", ["seed", "data", "option", "grid"])
def test_a_checkpoint_of_other_data_or_settings_is_not_used(tmp_path, monkeypatch, change):
    X, y = _data()
    val = (X[:20], y[:20])
    lambda_path(X, y, lambdas=LAMBDAS, seed=3, val_data=val, checkpoint=tmp_path, **SMALL)
    kw = dict(SMALL, lambdas=LAMBDAS, seed=3, val_data=val)
    if change == "seed":
        kw["seed"] = 4
    elif change == "data":
        X = X.copy()
        X[5, 1] += 1e-3
    elif change == "option":
        kw["learning_rate"] = 5e-3
    else:
        kw["lambdas"] = [1e-3, 1e-2, 2e-1]
    fresh = lambda_path(X, y, **kw)
    counting = _CountingTrain()
    monkeypatch.setattr(path_module, "train_members", counting)
    result = lambda_path(X, y, checkpoint=tmp_path, **kw)
    assert counting.calls == len(LAMBDAS)
    _assert_same(result, fresh)


def test_a_damaged_checkpoint_file_is_retrained(tmp_path, monkeypatch):
    X, y = _data()
    kw = dict(SMALL, lambdas=LAMBDAS, seed=1, val_data=(X[:20], y[:20]))
    plain = lambda_path(X, y, **kw)
    lambda_path(X, y, checkpoint=tmp_path, **kw)
    (tmp_path / "fold-1-lambda1.pt").write_bytes(b"not a checkpoint")
    counting = _CountingTrain()
    monkeypatch.setattr(path_module, "train_members", counting)
    _assert_same(lambda_path(X, y, checkpoint=tmp_path, **kw), plain)
    assert counting.calls == 1


def test_checkpoint_needs_the_warm_path(tmp_path):
    X, y = _data()
    with pytest.raises(ValueError, match="checkpoint needs path='warm'"):
        lambda_path(X, y, lambdas=LAMBDAS, checkpoint=tmp_path, **{**SMALL, "path": "independent"})
    assert not any(tmp_path.iterdir())
