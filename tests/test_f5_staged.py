"""Parts of the staged warm-up that run on the CPU: the attention preference shared by threads,
a FastDiT twin running other step functions on the same weights, an engine without graphs that
is warm at once. The GPU path (compile thread, one bucket a step) is in tests/test_f5_cuda.py."""

from __future__ import annotations

import threading

import torch
from torch.nn.attention import SDPBackend

from ishowtts.engines import Voice
from ishowtts.engines.f5 import F5Engine, fastdit, rope
from ishowtts.engines.f5.attention import prefer
from tests.f5_tiny import tiny_cfm, tiny_files


def test_a_thread_leaving_does_not_undo_the_preference_another_is_inside() -> None:
    """Two threads inside the preference at once: the first to leave keeps it set for the
    other (a compile traced then would otherwise keep the wrong kernel); the last restores."""
    before = torch.backends.cuda.flash_sdp_enabled()
    assert before
    inside, left = threading.Event(), threading.Event()
    seen: list[bool] = []

    def compile_thread() -> None:
        with prefer([SDPBackend.MATH]):
            inside.set()
            assert left.wait(5)
            seen.append(torch.backends.cuda.flash_sdp_enabled())

    t = threading.Thread(target=compile_thread)
    with prefer([SDPBackend.MATH]):
        t.start()
        assert inside.wait(5)
    left.set()  # this thread has left; the other is still inside
    t.join(5)
    assert seen == [False]
    assert torch.backends.cuda.flash_sdp_enabled() == before  # the last one out restored it


def test_a_twin_runs_its_own_functions_on_the_same_weights() -> None:
    fast = fastdit.FastDiT(tiny_cfm(0).transformer)
    calls: list[str] = []

    def head(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append("twin")
        return fastdit.head(*args, **kw)

    twin = fast.twin({"head_fn": head})
    assert twin.head_fn is head and twin.mark_dynamic
    assert fast.head_fn is fastdit.head and not fast.mark_dynamic  # untouched
    assert twin.blocks is fast.blocks and twin.w_x is fast.w_x  # no copy of the weights
    x = torch.zeros(1, 8, fast.mel_dim)
    pre = torch.zeros(2, 8, fast.dim)
    mods = torch.zeros(fast.depth, 6, fast.dim)
    fmods = torch.zeros(2, fast.dim)
    cos, sin = rope.rope_tables(8, fast.dim_head, fast.device)
    fast.velocity(x, pre, mods, fmods, cos, sin, None, torch.tensor(2.0))
    assert calls == []
    twin.mark_dynamic = False  # (marking is for torch.compile)
    twin.velocity(x, pre, mods, fmods, cos, sin, None, torch.tensor(2.0))
    assert calls == ["twin"]


def test_without_cuda_graphs_the_engine_is_warm_when_ready(tmp_path) -> None:
    engine = F5Engine({**tiny_files(tmp_path), "seed": 1})
    engine.load({"default": Voice("default")}, lambda _: None)
    engine.warmup(lambda _: None)
    assert engine.background_step() is None
    assert engine.describe()["warm"] is True


def test_a_compile_steps_aside_while_a_line_is_made_and_stops_at_close() -> None:
    """The compile thread's profile hook holds it while the engine speaks (the two would share
    the GIL op by op), lets it go on afterwards, and ends it once the engine closes."""
    import sys
    import time

    from ishowtts.engines.f5.warmer import CompileAbandoned, Pause

    pause, steps, ended = Pause(), [0], threading.Event()

    def compile_thread() -> None:
        sys.setprofile(pause.hook)
        try:
            while True:
                steps[0] += 1
                abs(-1)  # a call: the hook runs
        except CompileAbandoned:
            ended.set()
        finally:
            sys.setprofile(None)

    t = threading.Thread(target=compile_thread, daemon=True)
    t.start()
    while steps[0] < 1000:
        time.sleep(0.01)
    with pause.speaking():
        time.sleep(0.05)
        held = steps[0]
        time.sleep(0.2)
        assert steps[0] <= held + 1  # held while the line is made
    while steps[0] < held + 1000:  # and going on after it
        time.sleep(0.01)
    pause.closing = True
    t.join(5)
    assert ended.is_set() and not t.is_alive()
