"""Runtime settings of training: denormals flushed inside training, and only there."""

import threading

import numpy as np
import pytest
import torch

from psilon.train import Callback, build_network, flush_denormals, flushing_denormals, train_members
from psilon.train.runtime import _gomp_parallel, _in_each_team_thread

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


needs_openmp = pytest.mark.skipif(_gomp_parallel() is None, reason="no OpenMP runtime (GOMP_parallel) in this torch build")


@pytest.fixture
def two_threads_pool_started():
    """torch on two threads, its OpenMP pool created (by a parallel product) before any flushing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.randn(256, 256) @ torch.randn(256, 256)
    yield
    torch.set_num_threads(threads)


@needs_ftz
@needs_openmp
def test_the_openmp_team_an_existing_pool_included_flushes_inside_and_is_restored(two_threads_pool_started):
    assert len(_in_each_team_thread(threading.get_ident)) == 2  # the caller and one pool thread
    assert not any(_in_each_team_thread(flushing_denormals).values())
    with flush_denormals():
        assert list(_in_each_team_thread(flushing_denormals).values()) == [True, True]
        assert flushing_denormals(team=True)
    assert not any(_in_each_team_thread(flushing_denormals).values())


@needs_ftz
@needs_openmp
def test_each_team_thread_gets_its_own_previous_setting_back(two_threads_pool_started):
    torch.set_flush_denormal(True)  # the calling thread only: the pool thread does not flush
    try:
        before = _in_each_team_thread(flushing_denormals)
        assert sorted(before.values()) == [False, True]
        with flush_denormals():
            assert flushing_denormals(team=True)
        assert _in_each_team_thread(flushing_denormals) == before
    finally:
        torch.set_flush_denormal(False)


def test_an_error_in_a_team_thread_is_raised_in_the_caller():
    def fail():
        raise ArithmeticError("in a team thread")

    with pytest.raises(ArithmeticError, match="in a team thread"):
        _in_each_team_thread(fail)


class _Record(Callback):
    def __init__(self, team=False):
        self.flags, self.team = [], team

    def on_step_end(self, loop, step):
        self.flags.append(flushing_denormals(team=self.team))

    def on_evaluation(self, loop, done):
        self.flags.append(flushing_denormals(team=self.team))


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


@needs_ftz
@needs_openmp
def test_training_on_two_threads_flushes_in_every_thread_of_the_pool(two_threads_pool_started):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 1]).astype(np.float32)
    record = _Record(team=True)
    net = build_network("standard", 3, 1, width=8, depth=3)
    train_members(net, X, y, lambdas=1e-3, max_steps=3, eval_every=3, batch_size=32,
                  val_data=(X, y), callbacks=[record])
    assert record.flags == [True] * 4  # 3 steps and 1 evaluation, both threads flushing each time
    assert not flushing_denormals(team=True) and not any(_in_each_team_thread(flushing_denormals).values())
