"""The engine's parts: shrinking working set, warm path, runaway detection, callbacks,
options, init schemes, devices, the schedule stepped per epoch."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet
from psilon.nn.init import init_lengths_
from psilon.train import (
    Callback,
    SuccessiveHalving,
    TrainOptions,
    build_network,
    lambda_path,
    one_cycle_lr,
    take_members,
    train_members,
)

from _helpers import max_state_diff, regression_data

SMALL = dict(width=8, depth=3, max_steps=40, batch_size=16, learning_rate=1e-2)


class _StopAt(Callback):
    """Stops the given original members with status 'halved' at evaluation ``done``."""

    def __init__(self, done, members):
        self.done, self.members = done, members
        self.widths = []

    def on_step_end(self, loop, step):
        self.widths.append(loop.work.net.n_members)

    def on_evaluation(self, loop, done):
        if done == self.done:
            loop.stop_members(self.members, "halved", done)


def test_stopped_members_leave_the_working_network_and_the_rest_is_unchanged():
    """Stopped members shrink K; every member still equals its lambda trained alone."""
    X, y = regression_data()
    kw = dict(SMALL, val_data=(X[:20], y[:20]), eval_every=5, max_steps=60, seed=1)
    lams = [1e-4, 1e-2, 3e-1]
    stop = _StopAt(20, [1])
    res = lambda_path(X, y, lambdas=lams, callbacks=[stop], **kw)
    assert res.status == ["ok", "halved", "ok"]
    assert stop.widths[:20] == [3] * 20 and stop.widths[20:] == [2] * 40
    assert res.member_steps == 20 * 3 + 40 * 2
    for k, lam in enumerate(lams):
        alone = lambda_path(X, y, lambdas=lam, callbacks=[_StopAt(20, [0] if k == 1 else [])], **kw)
        assert max_state_diff(res.net.member(k), alone.net.member(0)) < 1e-5
        assert res.kept_step[k] == alone.kept_step[0] == (20 if k == 1 else 60)
    no_shrink = lambda_path(X, y, lambdas=lams, shrink=False, callbacks=[_StopAt(20, [1])], **kw)
    assert max_state_diff(res.net, no_shrink.net) < 1e-5


def test_early_stopped_members_leave_and_keep_their_best_state():
    X, y = regression_data()
    Xv, yv = X[:20] + 1.0, -y[:20]  # validation worsens as training fits: members stop early
    kw = dict(SMALL, val_data=(Xv, yv), patience=2, eval_every=1, max_steps=120, learning_rate=5e-2, seed=1)
    res = lambda_path(X, y, lambdas=[1e-4, 1e-2, 3e-1], **kw)
    assert res.status.count("early_stopped") == 3 and res.steps < 120
    for k in range(3):
        h = res.history[res.history.member == k]
        assert res.kept_step[k] == int(h.step[h.val_loss.idxmin()])


def test_take_members_copies_and_repeats():
    torch.manual_seed(0)
    net = PSiLONResNet(4, 2, width=6, depth=4, members=3)
    sub = take_members(net, [2, 0, 2])
    assert sub.n_members == 3
    assert max_state_diff(sub.member(0), net.member(2)) == 0.0
    assert max_state_diff(sub.member(1), net.member(0)) == 0.0
    with torch.no_grad():
        sub.embed.bias.add_(1.0)
    assert max_state_diff(sub.member(1), net.member(0)) == 1.0  # a copy, not a view


def test_build_network_members_start_equal_without_reinitializing():
    a = build_network("psilon", 4, 1, width=8, depth=3, members=5, seed=3)
    one = build_network("psilon", 4, 1, width=8, depth=3, seed=3)
    for k in range(5):
        assert max_state_diff(a.member(k), one) == 0.0


@settings(max_examples=4, deadline=None)
@given(architecture=st.sampled_from(["mlp", "resnet"]), seed=st.integers(0, 100))
def test_warm_path_member_k_starts_from_member_k_minus_1(architecture, seed):
    X, y = regression_data()
    lams = [1e-3, 1e-2, 1e-1]
    kw = dict(SMALL, architecture=architecture, val_data=(X[:20], y[:20]))
    warm = lambda_path(X, y, lambdas=lams, path="warm", seed=seed, **kw)
    assert warm.lambdas.tolist() == lams and warm.net.n_members == 3
    start = build_network("psilon", 4, 1, architecture=architecture, width=8, depth=3, seed=seed)
    prev = start
    for k, lam in enumerate(lams):
        alone = train_members(take_members(prev, [0]), X, y, lambdas=lam, val_data=(X[:20], y[:20]), seed=seed,
                              **{k2: v for k2, v in SMALL.items() if k2 not in ("width", "depth")})
        assert max_state_diff(warm.net.member(k), alone.net.member(0)) < 1e-6
        assert warm.status[k] == alone.status[0]
        assert warm.val_loss[k] == pytest.approx(alone.val_loss[0], abs=1e-6, nan_ok=True)
        prev = alone.net
    independent = lambda_path(X, y, lambdas=lams, seed=seed, **kw)
    assert max_state_diff(warm.net.member(0), independent.net.member(0)) < 1e-6  # the first lambda starts cold
    assert max_state_diff(warm.net.member(2), independent.net.member(2)) > 1e-4
    assert set(warm.history.member) == {0, 1, 2}


def test_warm_path_with_folds_runs_one_path_per_fold():
    X, y = regression_data(n=45)
    folds = [(np.arange(15, 45), np.arange(0, 15)), (np.arange(0, 30), np.arange(30, 45))]
    res = lambda_path(X, y, lambdas=[1e-3, 1e-1], folds=folds, path="warm", **SMALL)
    assert res.folds.tolist() == [0, 0, 1, 1]
    assert np.isfinite(res.val_loss).all()


def test_runaway_member_fails_with_a_warning():
    """Issue 13 item 1: a finite but exploding loss is a failed member, not a model."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 1]).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="runaway"):
        res = lambda_path(X, y, lambdas=[1e-3, 1e-2], width=8, depth=3, max_steps=100, batch_size=64,
                          learning_rate=1e3, val_data=(X, y))
    assert res.status == ["diverged", "diverged"]
    assert len(res.diverged) == 2 and np.isnan(res.val_loss).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy fit raises no warning
        ok = lambda_path(X, y, lambdas=[1e-3], width=8, depth=3, max_steps=100, batch_size=64,
                         learning_rate=1e-2, val_data=(X, y))
    assert ok.status == ["ok"]


def test_bce_targets_must_be_zero_or_one():
    X, y = regression_data()
    labels = np.where(y > 0, 2.0, 0.0).astype(np.float32)
    with pytest.raises(ValueError, match="0 or 1"):
        lambda_path(X, labels, lambdas=[1e-3], loss="bce", **SMALL)


def test_successive_halving_drops_members_far_behind():
    X, y = regression_data(n=120)
    Xv, yv = regression_data(n=60, seed=1)
    lams = [1e-4, 1e-3, 3e-1, 5e-1]  # the two largest lambdas underfit badly
    res = lambda_path(X, y, lambdas=lams, val_data=(Xv, yv), restore="best", eval_every=5,
                      callbacks=[SuccessiveHalving(at=(0.3,), tolerance=0.05, keep=2)],
                      **{**SMALL, "max_steps": 100})
    assert res.status.count("halved") >= 1
    assert res.status[0] == "ok"
    assert res.member_steps < res.steps * len(lams)
    for k, s in enumerate(res.status):
        if s == "halved":
            assert res.kept_step[k] < res.steps
            assert res.val_loss[k] > np.nanmin(res.val_loss)


def test_projected_training_keeps_unit_l1_rows_and_learns():
    X, y = regression_data()
    res = lambda_path(X, y, lambdas=[1e-4], projected=True, val_data=(X, y), eval_every=5, **SMALL)
    for layer in res.net.layers():
        norms = layer.direction.detach().abs().sum(-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    h = res.history.val_loss.to_numpy()
    assert h[-1] < h[0]


def test_schedule_stepped_per_epoch():
    X, y = regression_data()
    seen = []

    class Lr(Callback):
        def on_step_end(self, loop, step):
            seen.append(loop.work.optimizer.param_groups[0]["lr"])

    lambda_path(X, y, lambdas=[1e-3], lr_step_every=5, callbacks=[Lr()], **{**SMALL, "max_steps": 20})
    assert len(set(seen[:5])) == 1 and seen[5] != seen[4]
    assert seen == pytest.approx([one_cycle_lr(s // 5, 4, lr=1e-2) for s in range(20)])


def test_length_learning_rate_group():
    X, y = regression_data()
    seen = {}

    class Groups(Callback):
        def on_step_end(self, loop, step):
            seen.update({g["lr_scale"]: g["lr"] for g in loop.work.optimizer.param_groups})

    lambda_path(X, y, lambdas=[1e-3], length_lr_scale=10.0, callbacks=[Groups()], **SMALL)
    assert set(seen) == {1.0, 10.0}
    assert seen[10.0] == pytest.approx(10 * seen[1.0])
    a = lambda_path(X, y, lambdas=[1e-3], **SMALL)
    b = lambda_path(X, y, lambdas=[1e-3], length_lr_scale=1.0, **SMALL)
    assert max_state_diff(a.net, b.net) == 0.0


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet, StandardNet])
def test_variance_init_gives_unit_rows_on_average(cls):
    torch.manual_seed(0)
    net = cls(10, 3, width=64, depth=4)
    paper = [layer.length.detach().clone() for layer in net.layers()]
    init_lengths_(net, "paper")
    assert all(torch.equal(p, layer.length) for p, layer in zip(paper, net.layers()))
    init_lengths_(net, "variance")
    layers = net.layers()
    for i, layer in enumerate(layers):
        w = layer.weight().detach()
        if net.architecture == "resnet":
            if 0 < i < len(layers) - 1:
                assert (layer.length == 0).all()  # blocks stay the identity
                continue
            w = w[..., : w.shape[-1] // 2] if i > 0 else w  # the CReLU predictor's W+
            gain = 1.0
        else:
            gain = math.sqrt(2.0) if i > 0 else 1.0
        rows = torch.linalg.vector_norm(w, dim=-1)
        assert rows.mean().item() == pytest.approx(gain, rel=0.02 if layer.shared else 1e-5)
    with pytest.raises(ValueError, match="init"):
        init_lengths_(net, "xavier")


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_open_init_opens_only_the_residual_blocks(cls):
    torch.manual_seed(0)
    net = cls(6, 2, width=16, depth=5)
    paper = [layer.length.detach().clone() for layer in net.layers()]
    init_lengths_(net, "open")
    layers = net.layers()
    for i, (before, layer) in enumerate(zip(paper, layers)):
        block = net.architecture == "resnet" and 0 < i < len(layers) - 1
        assert torch.equal(layer.length, torch.ones_like(before) if block else before)
        if block:
            assert (before == 0).all()
    if net.architecture == "resnet":  # tied halves: an open block is still linear at init
        z = torch.randn(7, 16)
        block = layers[1]
        assert torch.allclose(block(z), block(-z).neg(), atol=1e-6)


def test_options_are_validated_once_with_clear_errors():
    X, y = regression_data()
    net = PSiLONNet(4, 1, width=8)
    with pytest.raises(TypeError, match="unknown option"):
        train_members(net, X, y, lambdas=1e-3, max_step=10)
    with pytest.raises(ValueError, match="max_steps"):
        train_members(net, X, y, lambdas=1e-3, max_steps=np.int64(0))
    with pytest.raises(ValueError, match="shrink"):
        train_members(net, X, y, lambdas=1e-3, shrink="no")
    with pytest.raises(ValueError, match="compile"):
        train_members(net, X, y, lambdas=1e-3, compile="always")
    res = train_members(net, X, y, lambdas=1e-3, max_steps=np.int64(5), batch_size=np.int32(16))
    assert res.steps == 5
    opts = TrainOptions(max_steps=3000).checked()
    assert opts.compiled and not TrainOptions(max_steps=300).checked().compiled
    assert not TrainOptions(max_steps=3000, compile=False).checked().compiled


def test_devices():
    X, y = regression_data()
    res = lambda_path(X, y, lambdas=[1e-3], device="cpu", **SMALL)
    assert res.net.embed.direction.device.type == "cpu"
    auto = lambda_path(X, y, lambdas=[1e-3], device="auto", **SMALL)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto.net.embed.direction.device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            lambda_path(X, y, lambdas=[1e-3], device="cuda", **SMALL)
    with pytest.raises(ValueError, match="device"):
        lambda_path(X, y, lambdas=[1e-3], device="gpu0", **SMALL)


def test_no_host_sync_per_step_on_the_meta_device():
    """The step runs on a device whose values can't be read: any .item()/bool() in it
    would raise. Only the evaluations (every eval_every steps) read values back."""
    from psilon.train.data import TrainData, BatchStream
    from psilon.train.loop import TrainLoop
    from psilon.train.tracker import MemberTracker

    meta = torch.device("meta")
    net = PSiLONResNet(4, 1, width=8, depth=3, members=2).to(meta)
    # prepare_data validates values on the host on purpose (once): build the loop's data by hand
    data = TrainData(torch.empty(60, 4, device=meta), torch.empty(60, 1, device=meta), "mse",
                     [BatchStream(torch.arange(60), 16, 0, meta)], torch.zeros(2, dtype=torch.long, device=meta))
    tracker = MemberTracker([1e-3, 1e-2], [-1, -1], has_val=False, keep_best=False, patience=None,
                            params=dict(net.named_parameters()))
    loop = TrainLoop(net, data, tracker, lambdas=np.array([1e-3, 1e-2]), max_steps=10, eval_every=10,
                     schedule=dict(lr=1e-2, warmup=0.2, div_factor=20.0, final_div_factor=1e4), callbacks=[])
    for step in range(9):  # nine steps, no evaluation: nothing may be read back
        loop._set_lr(step)
        loop._step(step)
    assert loop.work.acc_n == 9
    assert loop.work.net.embed.direction.device.type == "meta"
