"""Threads: grad mode, anomaly mode and snapshot observers are per thread, so graphs built and
backpropagated at once in two threads each get exactly their own gradients."""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
from functions import notebook_loss

import autodiff as ad
from autodiff import viz


def train(seed: int, steps: int = 200, loss_of=notebook_loss) -> np.ndarray:
    """A few SGD steps of a small network (the loss by `loss_of`); returns the final weights."""
    rng = np.random.default_rng(seed)
    x, y = ad.tensor(rng.standard_normal((8, 4))), ad.tensor(np.eye(3)[rng.integers(0, 3, 8)])
    w1 = ad.tensor(rng.standard_normal((4, 5)) * 0.5, requires_grad=True)
    w2 = ad.tensor(rng.standard_normal((5, 3)) * 0.5, requires_grad=True)
    for _ in range(steps):
        loss = loss_of(x, y, w1, w2)
        loss.backward()
        with ad.no_grad():  # toggled constantly: it must not leak into the other thread
            for w in (w1, w2):
                w.data -= 0.1 * w.grad.data
                w.grad = None
    return np.concatenate([w1.data.ravel(), w2.data.ravel()])


def test_two_threads_training_at_once_get_exactly_the_gradients_they_get_alone():
    alone = [train(seed) for seed in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            together = list(pool.map(train, (1, 2)))
            for a, b in zip(alone, together):
                np.testing.assert_array_equal(a, b)
    assert ad.is_grad_enabled()


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    inside, recorded = threading.Event(), []
    release = threading.Event()

    def hold_no_grad():
        with ad.no_grad():
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold_no_grad)
    holder.start()
    inside.wait(5)
    x = ad.tensor([1.0], requires_grad=True)
    recorded.append((x * 2).requires_grad)
    release.set()
    holder.join()
    assert recorded == [True] and ad.is_grad_enabled()


def test_a_new_thread_starts_with_grad_enabled_whatever_the_parent_does():
    seen = []
    with ad.no_grad():
        thread = threading.Thread(target=lambda: seen.append(ad.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_detect_anomaly_in_one_thread_does_not_affect_another():
    seen = []
    with ad.detect_anomaly():
        def other():
            x = ad.tensor([-1.0], requires_grad=True)
            with np.errstate(invalid="ignore"):
                seen.append(np.isnan(x.log().item()))  # no AnomalyError here
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == [True]


def test_a_snapshot_sees_only_its_own_threads_backward():
    """Another thread walks the same graph while this one holds a snapshot open: the snapshot
    records nothing of it."""
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    with viz.snapshot(y) as snap:
        thread = threading.Thread(target=lambda: y.backward(retain_graph=True))
        thread.start()
        thread.join()
    assert snap.backward_order == [] and x.grad.tolist() == [3.0, 3.0]
    with snap:
        y.backward()
    assert len(snap.backward_order) == 3  # y, x * 3, x: this thread's own backward


def test_one_compiled_step_used_by_two_threads_at_once_gives_each_its_own_result():
    """Two threads trace it at once, then replay it side by side, each with its own weights:
    tracing is per thread (the hooks, the index notes), replays share nothing but the program,
    and its buffers (lent for every array here), each set to one call at a time."""
    step = ad.compile(notebook_loss)
    alone = [train(seed, 100) for seed in (1, 2)]
    with ThreadPoolExecutor(2) as pool, mock.patch.object(
            importlib.import_module("autodiff.program"), "LEND_FROM", 0):
        for _ in range(3):
            together = list(pool.map(lambda seed: train(seed, 100, step), (1, 2)))
            for a, b in zip(alone, together):
                np.testing.assert_array_equal(a, b)
    assert all(program.buffers.specs for program in step.programs)  # they did lend buffers
