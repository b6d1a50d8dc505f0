"""Checkpoints of the lambda path (warm: per lambda; independent: run snapshots): an
interrupted path resumes with the same result."""

import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import psilon.train.checkpoint as checkpoint_module
import psilon.train.path as path_module
from psilon.train import Callback, SuccessiveHalving, lambda_path
from psilon.train.checkpoint import RunCheckpoint
from psilon.train.loop import TrainLoop

from _helpers import regression_data

SMALL = dict(width=8, depth=3, max_steps=20, batch_size=16, learning_rate=1e-2, path="warm")
LAMBDAS = [1e-3, 1e-2, 1e-1]


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
    X, y = regression_data()
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
    X, y = regression_data()
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
    X, y = regression_data()
    kw = dict(SMALL, lambdas=LAMBDAS, seed=1, val_data=(X[:20], y[:20]))
    plain = lambda_path(X, y, **kw)
    lambda_path(X, y, checkpoint=tmp_path, **kw)
    (tmp_path / "fold-1-lambda1.pt").write_bytes(b"not a checkpoint")
    counting = _CountingTrain()
    monkeypatch.setattr(path_module, "train_members", counting)
    _assert_same(lambda_path(X, y, checkpoint=tmp_path, **kw), plain)
    assert counting.calls == 1


# ---------------------------------------------------------------- independent path: run snapshots

_REAL_STEP = TrainLoop._step
RUN = dict(width=8, depth=3, max_steps=40, batch_size=16, learning_rate=1e-2, eval_every=5)
#: Settings that exercise every part of the run's state: early stopping with members
#: leaving the stacked network (shrink) or frozen in it, best states, CV folds (a batch
#: stream per fold, validation masks), successive halving, pruning, the per-epoch schedule.
RUN_SETTINGS = {
    "final": dict(),
    "patience-best": dict(patience=2, restore="best", monitor="objective"),
    "patience-frozen": dict(patience=2, restore="best", shrink=False),
    "folds": dict(patience=3, restore="best"),
    "halving": dict(restore="best", callbacks=[SuccessiveHalving(at=(0.3,), keep=1)]),
    "pruning": dict(prune_steps=15, lr_step_every=5),
}


def _run_kw(X, y, setting):
    where = dict(folds=[(np.arange(20, 60), np.arange(0, 20)), (np.arange(0, 40), np.arange(40, 60))]) \
        if setting == "folds" else dict(val_data=(X[:20], y[:20]))
    return dict(RUN, lambdas=LAMBDAS, seed=5, **where, **RUN_SETTINGS[setting])


def _kill_at(monkeypatch, n):
    """Make the ``n``-th optimizer step of every later run raise KeyboardInterrupt."""
    real, calls = TrainLoop._step, []

    def step(self, i):
        calls.append(i)
        if len(calls) == n:
            raise KeyboardInterrupt("simulated kill")
        return real(self, i)

    monkeypatch.setattr(TrainLoop, "_step", step)
    return calls


@pytest.mark.parametrize("setting", sorted(RUN_SETTINGS))
def test_an_interrupted_independent_run_resumes_bit_for_bit(tmp_path, monkeypatch, setting):
    X, y = regression_data()
    kw = _run_kw(X, y, setting)
    plain = lambda_path(X, y, **kw)
    monkeypatch.setattr(RunCheckpoint, "due", lambda self: True)  # a snapshot at every evaluation
    calls = _kill_at(monkeypatch, 23)  # dies in step 23: the last snapshot is at step 20
    with pytest.raises(KeyboardInterrupt):
        lambda_path(X, y, checkpoint=tmp_path, **kw)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # atomic: no temporaries left
    saved = torch.load(tmp_path / "run.pt", weights_only=False)["state"]
    assert saved["steps_done"] == 20 or setting in ("patience-best", "folds", "halving")  # unless all stopped

    monkeypatch.undo()
    resumed_steps = _kill_at(monkeypatch, 10**9)
    _assert_same(lambda_path(X, y, checkpoint=tmp_path, **kw), plain)
    assert resumed_steps[:1] == [saved["steps_done"]]  # it went on from the snapshot, not from step 0
    assert len(calls) == 23


@settings(max_examples=12, deadline=None)
@given(kill=st.integers(1, 39), eval_every=st.sampled_from([1, 3, 7]), every=st.sampled_from([0.0, 1e9]))
def test_resuming_equals_the_uninterrupted_run_wherever_it_was_killed(kill, eval_every, every):
    """Whatever the step of the kill and the snapshot interval (0: every evaluation; 1e9:
    never, so the re-run starts over), the resumed run ends where the uninterrupted one does."""
    X, y = regression_data(seed=1)
    kw = dict(RUN, lambdas=LAMBDAS, seed=2, val_data=(X[:20], y[:20]), eval_every=eval_every, patience=2,
              restore="best")
    plain = lambda_path(X, y, **kw)
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as mp:
        real_init = RunCheckpoint.__init__
        mp.setattr(RunCheckpoint, "__init__", lambda self, f, fp, every_=every: real_init(self, f, fp, every_))
        _kill_at(mp, kill)
        try:
            lambda_path(X, y, checkpoint=folder, **kw)
        except KeyboardInterrupt:
            pass  # killed (a run whose members all stopped before the kill step finishes instead)
        mp.setattr(TrainLoop, "_step", _REAL_STEP)
        _assert_same(lambda_path(X, y, checkpoint=folder, **kw), plain)


@pytest.mark.parametrize("change", ["seed", "data", "grid"])
def test_a_run_snapshot_of_other_data_or_settings_is_not_used(tmp_path, monkeypatch, change):
    X, y = regression_data()
    kw = _run_kw(X, y, "final")
    monkeypatch.setattr(RunCheckpoint, "due", lambda self: True)
    lambda_path(X, y, checkpoint=tmp_path, **kw)  # leaves its last snapshot (step 35)
    if change == "seed":
        kw["seed"] = 6
    elif change == "data":
        X = X.copy()
        X[5, 1] += 1e-3
    else:
        kw["lambdas"] = [1e-3, 1e-2, 2e-1]
    fresh = lambda_path(X, y, **kw)
    steps = _kill_at(monkeypatch, 10**9)
    _assert_same(lambda_path(X, y, checkpoint=tmp_path, **kw), fresh)
    assert steps[0] == 0  # trained from the start


def test_a_damaged_run_snapshot_is_trained_again(tmp_path, monkeypatch):
    X, y = regression_data()
    kw = _run_kw(X, y, "final")
    plain = lambda_path(X, y, **kw)
    (tmp_path / "run.pt").write_bytes(b"not a snapshot")
    steps = _kill_at(monkeypatch, 10**9)
    _assert_same(lambda_path(X, y, checkpoint=tmp_path, **kw), plain)
    assert steps[0] == 0


class _HoldsALock(Callback):
    def __init__(self):
        self.lock = threading.Lock()  # cannot be pickled


def test_a_run_that_cannot_be_snapshotted_warns_and_goes_on(tmp_path, monkeypatch):
    X, y = regression_data()
    kw = _run_kw(X, y, "final")
    plain = lambda_path(X, y, **kw)
    monkeypatch.setattr(RunCheckpoint, "due", lambda self: True)
    with pytest.warns(RuntimeWarning, match="cannot be snapshotted"):
        result = lambda_path(X, y, checkpoint=tmp_path, **{**kw, "callbacks": [_HoldsALock()]})
    _assert_same(result, plain)
    assert not list(tmp_path.iterdir())


def test_snapshots_are_taken_every_so_many_seconds(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(checkpoint_module.time, "monotonic", lambda: clock[0])
    cp = RunCheckpoint(tmp_path, "fp", every=300)
    assert not cp.due()
    clock[0] += 299
    assert not cp.due()
    clock[0] += 1
    assert cp.due()
    cp.save({"steps_done": 7})
    assert not cp.due() and cp.load() == {"steps_done": 7}
    assert RunCheckpoint(tmp_path, "another fingerprint").load() is None


def test_a_snapshot_carries_its_max_steps_and_the_training_time_across_resumes(tmp_path, monkeypatch):
    """For readers of a snapshot (``psilon status``: the pace and the steps left); not used to go on."""
    X, y = regression_data()
    kw = _run_kw(X, y, "final")
    monkeypatch.setattr(RunCheckpoint, "due", lambda self: True)

    def slow(self, i):  # 20 ms a step: the training time is at least the sleeps
        time.sleep(0.02)
        return _REAL_STEP(self, i)

    monkeypatch.setattr(TrainLoop, "_step", slow)
    _kill_at(monkeypatch, 23)  # the last snapshot is at step 20
    with pytest.raises(KeyboardInterrupt):
        lambda_path(X, y, checkpoint=tmp_path, **kw)
    first = torch.load(tmp_path / "run.pt", weights_only=False)["state"]
    assert (first["steps_done"], first["max_steps"]) == (20, 40) and first["seconds"] >= 20 * 0.02

    monkeypatch.setattr(TrainLoop, "_step", _REAL_STEP)
    _kill_at(monkeypatch, 8)  # resumed at step 20, killed in its 8th step: the last snapshot is at step 25
    with pytest.raises(KeyboardInterrupt):
        lambda_path(X, y, checkpoint=tmp_path, **kw)
    second = torch.load(tmp_path / "run.pt", weights_only=False)["state"]
    assert second["steps_done"] == 25 and second["seconds"] > first["seconds"]  # the time before the resume counts
