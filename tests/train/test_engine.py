"""The training engine: stacked members equal members trained alone; validation, early
stopping, pruning, divergence, determinism, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, stack_members
from psilon.sparsity import exact_sparsity
from psilon.train import PAPER_LAMBDAS, build_network, lambda_path, train_members
from psilon.train.callbacks import Callback
from psilon.train.loop import forward_members

from _helpers import max_state_diff, regression_data

SMALL = dict(width=8, depth=3, max_steps=40, batch_size=16, learning_rate=1e-2)


@settings(max_examples=6, deadline=None)
@given(
    lambdas=st.lists(st.floats(1e-5, 1.0), min_size=2, max_size=4),
    architecture=st.sampled_from(["mlp", "resnet"]),
    seed=st.integers(0, 1000),
)
def test_each_member_equals_its_lambda_trained_alone(lambdas, architecture, seed):
    X, y = regression_data()
    kw = dict(SMALL, architecture=architecture, seed=seed, val_data=(X[:20], y[:20]))
    path = lambda_path(X, y, lambdas=lambdas, **kw)
    for k, lam in enumerate(lambdas):
        alone = lambda_path(X, y, lambdas=lam, **kw)
        assert max_state_diff(path.net.member(k), alone.net.member(0)) < 1e-5
        assert abs(path.val_loss[k] - alone.val_loss[0]) < 1e-5


def test_members_with_different_inits_equal_single_training():
    """The engine on any stacked network: member k == net.member(k) trained alone."""
    X, y = regression_data()
    torch.manual_seed(1)
    nets = [PSiLONNet(4, 1, width=8, depth=3) for _ in range(3)]
    stacked = stack_members(nets)
    lams = [1e-4, 1e-2, 3e-1]
    res = train_members(stacked, X, y, lambdas=lams, max_steps=30, batch_size=16, seed=5)
    for k in range(3):
        alone = train_members(nets[k], X, y, lambdas=lams[k], max_steps=30, batch_size=16, seed=5)
        assert max_state_diff(res.net.member(k), alone.net) < 1e-5


def test_cv_folds_as_members():
    X, y = regression_data(n=45)
    folds = [(np.arange(15, 45), np.arange(0, 15)), (np.r_[0:15, 30:45], np.arange(15, 30))]
    lams = [1e-3, 1e-1]
    res = lambda_path(X, y, lambdas=lams, folds=folds, **SMALL)
    assert res.net.n_members == 4
    assert res.folds.tolist() == [0, 0, 1, 1] and res.lambdas.tolist() == lams * 2
    for f in range(2):
        for j, lam in enumerate(lams):
            alone = lambda_path(X, y, lambdas=lam, folds=[folds[f]], **SMALL)
            assert max_state_diff(res.net.member(2 * f + j), alone.net.member(0)) < 1e-5
            assert abs(res.val_loss[2 * f + j] - alone.val_loss[0]) < 1e-5
    # the validation loss is the fold's own rows
    m = res.net.member(3)
    with torch.no_grad():
        pred = m(torch.as_tensor(X[15:30])).squeeze(1).numpy()
    assert abs(np.mean((pred - y[15:30]) ** 2) - res.val_loss[3]) < 1e-4


def test_deterministic_per_seed():
    X, y = regression_data()
    a = lambda_path(X, y, lambdas=[1e-3, 1e-2], seed=3, **SMALL)
    b = lambda_path(X, y, lambdas=[1e-3, 1e-2], seed=3, **SMALL)
    c = lambda_path(X, y, lambdas=[1e-3, 1e-2], seed=4, **SMALL)
    assert max_state_diff(a.net, b.net) == 0.0
    assert max_state_diff(a.net, c.net) > 1e-3


def test_diverged_member_is_stopped_reported_and_isolated():
    X, y = regression_data()
    torch.manual_seed(0)
    one = PSiLONNet(4, 1, width=8, depth=3)
    net = stack_members([one, one])
    with torch.no_grad():
        net.embed.bias[1, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match=r"member 1 \(lambda=0.01\) diverged at step 0"):
        res = train_members(net, X, y, lambdas=[1e-3, 1e-2], val_data=(X[:20], y[:20]), max_steps=30, batch_size=16)
    assert res.status == ["ok", "diverged"]
    assert res.diverged == [{"member": 1, "lambda": 0.01, "fold": -1, "step": 0}]
    assert np.isnan(res.val_loss[1]) and np.isfinite(res.val_loss[0])
    assert set(res.history["member"]) == {0}
    alone = train_members(one, X, y, lambdas=1e-3, val_data=(X[:20], y[:20]), max_steps=30, batch_size=16)
    assert max_state_diff(res.net.member(0), alone.net) < 1e-5


def test_restore_best_keeps_the_lowest_validation_state():
    X, y = regression_data()
    Xv, yv = X[:20] + 0.5, y[:20]  # a shifted validation set so the curve is not monotone
    res = lambda_path(X, y, lambdas=[1e-4, 1e-1], val_data=(Xv, yv), restore="best", eval_every=2,
                      **{**SMALL, "learning_rate": 5e-2})
    for k in range(2):
        h = res.history[res.history.member == k]
        assert res.val_loss[k] == pytest.approx(h.val_loss.min(), abs=1e-6)
        assert res.kept_step[k] == int(h.step[h.val_loss.idxmin()])
        with torch.no_grad():
            pred = res.net.member(k)(torch.as_tensor(Xv)).squeeze(1).numpy()
        assert np.mean((pred - yv) ** 2) == pytest.approx(res.val_loss[k], abs=1e-5)


class _ValObjective(Callback):
    """Records each member's validation objective (data loss + lambda * path norm) at every evaluation."""

    def __init__(self, Xv, yv):
        self.Xv, self.yv, self.rows = torch.as_tensor(Xv), torch.as_tensor(yv), []

    def on_evaluation(self, loop, done):
        net, lam = loop.work.net, loop.work.lam
        with torch.no_grad():
            pred = forward_members(net.eval(), self.Xv).squeeze(-1)
            obj = ((pred - self.yv) ** 2).mean(1) + lam * net.regularizer_members()
        net.train()
        for j, m in enumerate(loop.work.members):
            self.rows.append((done, int(m), float(obj[j])))


@pytest.mark.parametrize("patience", [None, 3])
def test_monitor_objective_keeps_the_lowest_validation_objective(patience):
    X, y = regression_data()
    Xv, yv = X[:20] + 0.5, y[:20]
    cb = _ValObjective(Xv, yv)
    lambdas = [1e-4, 3e-2, 3e-1]
    res = lambda_path(X, y, lambdas=lambdas, val_data=(Xv, yv), restore="best", patience=patience, eval_every=2,
                      monitor="objective", callbacks=[cb], **{**SMALL, "max_steps": 80, "learning_rate": 5e-2})
    rec = pd.DataFrame(cb.rows, columns=["step", "member", "objective"])
    for k, lam in enumerate(lambdas):
        r = rec[rec.member == k]
        assert res.kept_step[k] == int(r.step[r.objective.idxmin()])
        with torch.no_grad():
            member = res.net.member(k)
            pred = member(torch.as_tensor(Xv)).squeeze(1)
            data = float(((pred - torch.as_tensor(yv)) ** 2).mean())
            reg = float(member.regularizer_members()[0])
        assert data == pytest.approx(res.val_loss[k], abs=1e-5)  # the reported loss is the data loss
        assert data + lam * reg == pytest.approx(r.objective.min(), abs=1e-5)
    # the data monitor keeps a different state for the strongest lambda here (its data loss is lowest early)
    plain = lambda_path(X, y, lambdas=lambdas, val_data=(Xv, yv), restore="best", patience=patience, eval_every=2,
                        **{**SMALL, "max_steps": 80, "learning_rate": 5e-2})
    assert plain.val_loss[2] <= res.val_loss[2]


def test_monitor_must_be_known():
    X, y = regression_data()
    with pytest.raises(ValueError, match="monitor"):
        lambda_path(X, y, lambdas=[1e-3], val_data=(X, y), monitor="val", **SMALL)


def test_early_stopping_per_member():
    X, y = regression_data()
    Xv, yv = X[:20] + 1.0, -y[:20]  # validation gets worse as training fits: stops early
    res = lambda_path(X, y, lambdas=[1e-4, 1e-3], val_data=(Xv, yv), patience=2, eval_every=1,
                      **{**SMALL, "max_steps": 200, "learning_rate": 5e-2})
    assert "early_stopped" in res.status
    assert res.steps < 200 or res.status.count("early_stopped") < 2
    for k, s in enumerate(res.status):
        if s == "early_stopped":
            h = res.history[res.history.member == k]
            assert res.kept_step[k] == int(h.step[h.val_loss.idxmin()])


def test_pruning_phase_gives_exact_zeros():
    X, y = regression_data()
    res = lambda_path(X, y, lambdas=[1e-3, 1e-1], prune_steps=10, **SMALL)
    assert res.net.prune_alpha == 1.0
    assert (exact_sparsity(res.net)["overall"] > 0).all()
    with pytest.raises(ValueError, match="restore='final'"):
        lambda_path(X, y, lambdas=[1e-3], prune_steps=10, restore="best", val_data=(X, y), **SMALL)


def test_multiclass_and_binary_losses_decrease():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3)).astype(np.float32)
    labels = np.argmax(X, axis=1)
    ce = lambda_path(X, labels, lambdas=[1e-3], loss="ce", val_data=(X, labels), eval_every=10, **{**SMALL, "max_steps": 80})
    assert ce.net.out_features == 3
    h = ce.history.val_loss.to_numpy()
    assert h[-1] < 0.7 * h[0]
    yb = (X[:, 0] > 0).astype(np.float32)
    bce = lambda_path(X, yb, lambdas=[1e-3], loss="bce", val_data=(X, yb), eval_every=10, **{**SMALL, "max_steps": 80})
    h = bce.history.val_loss.to_numpy()
    assert h[-1] < 0.7 * h[0]


def test_build_network_models_and_same_init():
    a = build_network("psilon", 4, 1, architecture="resnet", width=8, depth=3, members=3, seed=2)
    assert isinstance(a, PSiLONResNet)
    assert max_state_diff(a.member(0), a.member(2)) == 0.0
    assert isinstance(build_network("standard", 4, 1, width=8, depth=3), StandardNet)
    state = torch.random.get_rng_state()
    build_network("psilon", 4, 1, width=8, seed=9)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_paper_lambdas():
    assert len(PAPER_LAMBDAS) == 13 and PAPER_LAMBDAS[0] == 5e-5 and PAPER_LAMBDAS[-1] == 5e-1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lambdas=[0.0]), "positive"),
        (dict(lambdas=[-1e-3]), "positive"),
        (dict(lambdas=[1e-3], restore="best"), "validation"),
        (dict(lambdas=[1e-3], patience=3), "validation"),
        (dict(lambdas=[1e-3], loss="hinge"), "loss"),
        (dict(lambdas=[1e-3], max_steps=0), "max_steps"),
    ],
)
def test_errors(kwargs, match):
    X, y = regression_data()
    with pytest.raises(ValueError, match=match):
        lambda_path(X, y, **{**SMALL, **kwargs})


def test_nan_inputs_rejected():
    X, y = regression_data()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lambda_path(X, y, lambdas=[1e-3], **SMALL)
    X, y = regression_data()
    y[0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        lambda_path(X, y, lambdas=[1e-3], **SMALL)
