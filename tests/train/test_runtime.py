"""Runtime settings of training: denormals flushed inside training, and only there."""

import threading

import numpy as np
import pytest
import torch

from psilon.train import Callback, build_network, flush_denormals, flushing_denormals, train_members

SUPPORTED = torch.set_flush_denormal(False)  # also leaves this thread in the default state
needs_ftz = pytest.mark.skipif(not SUPPORTED, reason="this CPU cannot flush denormals (not x86 with SSE3)")
TINY = torch.finfo(torch.float32).tiny


def _denormal_product() -> float:
    a = torch.tensor([1e-20], dtype=torch.float32)
    return (a * a).item()


@needs_ftz
def test_flushing_inside_the_block_and_restored_after():
    assert not flushing_denormals() and 0 < _denormal_product() < TINY
    with flush_denormals() as supported:
        assert supported and flushing_denormals() and _denormal_product() == 0.0
        with flush_denormals():  # nested: still on, and still on after the inner block
            pass
        assert flushing_denormals()
    assert not flushing_denormals() and _denormal_product() > 0


@needs_ftz
def test_a_thread_that_already_flushes_keeps_flushing_and_an_error_restores():
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
    with pytest.raises(RuntimeError, match="boom"):
        with flush_denormals():
            raise RuntimeError("boom")
    assert not flushing_denormals()


@needs_ftz
def test_the_setting_is_per_thread_and_new_threads_inherit_it():
    asked, seen = threading.Event(), {}

    def existing():
        asked.wait()
        seen["existing"] = flushing_denormals()

    before = threading.Thread(target=existing)
    before.start()  # a thread that exists before the block (like a running thread pool's)
    with flush_denormals():
        asked.set()
        before.join()
        born = threading.Thread(target=lambda: seen.setdefault("born inside", flushing_denormals()))
        born.start()
        born.join()
    assert seen == {"existing": False, "born inside": True}  # as the docstring says
    assert not flushing_denormals()


class _Record(Callback):
    def __init__(self):
        self.flags = []

    def on_step_end(self, loop, step):
        self.flags.append(flushing_denormals())

    def on_evaluation(self, loop, done):
        self.flags.append(flushing_denormals())


@needs_ftz
def test_training_flushes_denormals_and_leaves_the_thread_as_it_was():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 1]).astype(np.float32)
    record = _Record()
    net = build_network("standard", 3, 1, width=8, depth=3)
    train_members(net, X, y, lambdas=1e-3, max_steps=6, eval_every=3, batch_size=32,
                  val_data=(X, y), callbacks=[record])
    assert record.flags == [True] * 8  # 6 steps and 2 evaluations
    assert not flushing_denormals()
