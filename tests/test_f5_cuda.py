"""CUDA paths of the f5 sampler (skipped without a GPU): CUDA graphs per bucket, compiled or
not, give the eager (upstream-matching) result."""

from __future__ import annotations

import pytest
import torch

from ishowtts.engines.f5 import graphs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _setup(dtype, model="F5TTS_v1_Base", **arch):
    from ishowtts.engines.f5 import fastdit, sampler, upstream
    from tests.f5_tiny import tiny_cfm

    cfm = tiny_cfm(0, model, **arch)
    g = torch.Generator().manual_seed(7)
    ref = cfm.mel_spec(torch.randn(1, 24000, generator=g) * 0.1).permute(0, 2, 1)[0]
    chars = upstream.to_pinyin_tokens(["Hello there, 你好世界。"])[0]
    tokens = torch.tensor([cfm.vocab_char_map.get(c, 0) for c in chars])
    cfm = cfm.to("cuda", dtype)
    fast = fastdit.FastDiT(cfm.transformer)
    job = sampler.Job(ref.cuda(), tokens, ref.shape[0] + 50, seed=123)
    return cfm, fast, job, sampler


def _vocoder():
    from ishowtts.engines.f5 import loader
    from tests.f5_tiny import TINY_VOCOS

    return loader.load_vocoder("", None, random_config=TINY_VOCOS).cuda().requires_grad_(False)


@pytest.mark.parametrize(("compiled", "shared"), [(False, False), (True, False), (True, True)])
def test_graph_runner_matches_eager(compiled, shared):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    _, fast, job, sampler = _setup(torch.float32)
    schedules = sampler.Schedules(fast)
    want = sampler.sample_eager(fast, [job], 16, 2.0, -1.0, schedules)[0]
    if compiled:
        fast.compile()
    pool = torch.cuda.graph_pool_handle() if shared else None
    vocoder = _vocoder()
    outs = []
    for n in (job.frames + 14, job.frames + 78):  # two buckets, one compiled graph
        runner = graphs.GraphRunner(fast, n, 1, 32, pool, vocoder)
        runner.capture()
        assert set(runner.graphs) == {"prepare", "step", "vocode"}, runner.vocode_error
        outs.append(runner.run([job], 16, 2.0, -1.0, schedules)[0])
        outs.append(runner.run([job], 7, 2.0, -1.0, schedules)[0])  # replays reset cleanly
    want7 = sampler.sample_eager(fast, [job], 7, 2.0, -1.0, schedules)[0]
    tol = 1e-4 if compiled else 1e-5
    nref = job.cond.shape[0]
    for (got, audio), ref in zip(outs, [want, want7, want, want7], strict=True):
        ref = ref[nref:]
        assert ((got - ref).norm() / ref.norm()).item() <= tol
        assert audio is not None and torch.isfinite(audio).all()
        assert audio.shape[-1] == (job.frames - nref) * 256


def test_v0_model_in_compiled_padded_graphs_matches_eager():
    """F5TTS_Base (v0): RoPE on one head, text fillers unmasked, in a padded bucket."""
    torch.backends.cuda.matmul.allow_tf32 = False
    _, fast, job, sampler = _setup(torch.float32, "F5TTS_Base")
    assert fast.rope_heads == 1
    schedules = sampler.Schedules(fast)
    want = sampler.sample_eager(fast, [job], 16, 2.0, -1.0, schedules)[0][job.cond.shape[0] :]
    fast.compile()
    runner = graphs.GraphRunner(fast, job.frames + 20, 1, 16, None)
    runner.capture()
    got = runner.run([job], 16, 2.0, -1.0, schedules)[0][0]
    assert ((got - want).norm() / want.norm()).item() <= 1e-4


def test_unmasked_bucket_of_exact_length_matches_eager():
    """Durations quantised to the bucket: no padding, no mask, same result as eager."""
    _, fast, job, sampler = _setup(torch.float32)
    schedules = sampler.Schedules(fast)
    want = sampler.sample_eager(fast, [job], 16, 2.0, -1.0, schedules)[0][job.cond.shape[0] :]
    fast.compile()
    runner = graphs.GraphRunner(fast, job.frames, 1, 16, None, _vocoder(), masked=False)
    runner.capture()
    got, audio = runner.run([job], 16, 2.0, -1.0, schedules)[0]
    assert ((got - want).norm() / want.norm()).item() <= 1e-4
    assert audio is not None and torch.isfinite(audio).all()
    with pytest.raises(ValueError, match="does not fit"):
        runner.run([sampler.Job(job.cond, job.tokens, job.frames - 1)], 16, 2.0, -1.0, schedules)


def test_noise_drawn_in_place_on_cuda_is_noise_for():
    from ishowtts.engines.f5 import sampler

    job = sampler.Job(torch.zeros(5, 100), torch.zeros(3, dtype=torch.long), 400, seed=11)
    rows = torch.zeros(2, 448, 100, device="cuda")
    sampler.draw_noise(rows[1, :400], job)
    assert torch.equal(rows[1, :400], sampler.noise_for(job, 100, rows.device))


def test_vocoder_graph_on_tf32_is_close_and_restores_the_flag():
    """``vocoder_tf32``: the vocoder graph is captured with TF32 matmuls allowed (audio as
    close as fp16's mantissa allows); the global flag is as it was afterwards."""
    _, fast, job, sampler = _setup(torch.float16)
    schedules = sampler.Schedules(fast)
    vocoder = _vocoder()
    seen: list[bool] = []
    vocoder.backbone.register_forward_pre_hook(
        lambda *_: seen.append(torch.backends.cuda.matmul.allow_tf32)
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    audio = {}
    for tf32 in (False, True):
        seen.clear()
        runner = graphs.GraphRunner(
            fast, job.frames, 1, 16, None, vocoder, masked=False, vocoder_tf32=tf32
        )
        runner.capture()
        assert seen and set(seen) == {tf32}
        assert torch.backends.cuda.matmul.allow_tf32 is False
        audio[tf32] = runner.run([job], 16, 2.0, -1.0, schedules)[0][1]
    assert ((audio[True] - audio[False]).norm() / audio[False].norm()).item() <= 3e-3


def test_fp16_graph_is_finite_and_close():
    _, fast, job, sampler = _setup(torch.float16)
    schedules = sampler.Schedules(fast)
    want = sampler.sample_eager(fast, [job], 16, 2.0, -1.0, schedules)[0]
    fast.compile()
    runner = graphs.GraphRunner(fast, job.frames + 30, 1, 16, torch.cuda.graph_pool_handle())
    runner.capture()
    got = runner.run([job], 16, 2.0, -1.0, schedules)[0][0]
    want = want[job.cond.shape[0] :]
    assert torch.isfinite(got).all()
    assert ((got - want).norm() / want.norm()).item() <= 1e-2


def test_fused_conv_kernel_gives_the_torch_path_result():
    """At 16 channels a group (the tiny model has 4) the Triton convolution is used; eager and
    in a compiled, padded bucket it gives what the torch path (tested against upstream) gives."""
    torch.backends.cuda.matmul.allow_tf32 = False
    cfm, fused, job, sampler = _setup(torch.float32, dim=256)
    from ishowtts.engines.f5 import fastdit

    plain = fastdit.FastDiT(cfm.transformer, fused_conv=False)
    # Eagerly the kernel is launched as it is; compiled code calls it through its custom op.
    assert fused.conv_fn is fastdit.conv_mish_launched and plain.conv_fn is fastdit.conv_mish
    schedules = sampler.Schedules(plain)
    want = sampler.sample_eager(plain, [job], 16, 2.0, -1.0, schedules)[0][job.cond.shape[0] :]
    got = sampler.sample_eager(fused, [job], 16, 2.0, -1.0, schedules)[0][job.cond.shape[0] :]
    assert ((got - want).norm() / want.norm()).item() <= 1e-5
    fused.compile()
    assert fused.conv_fn is fastdit.conv_mish_fused
    runner = graphs.GraphRunner(fused, job.frames + 14, 1, 32, None)
    runner.capture()
    got = runner.run([job], 16, 2.0, -1.0, schedules)[0][0]
    assert ((got - want).norm() / want.norm()).item() <= 1e-4


def test_cudnn_attention_gives_the_flash_result_in_fp16():
    """The default attention on CUDA (cuDNN first) against flash attention, compiled graphs."""
    cfm, fast, job, sampler = _setup(torch.float16, dim=256)
    from ishowtts.engines.f5 import fastdit

    flash = fastdit.FastDiT(cfm.transformer, attention="flash")
    assert fast.attention == fastdit.ATTENTION["cudnn"]
    schedules = sampler.Schedules(fast)
    results = []
    for f in (fast, flash):
        f.compile()
        runner = graphs.GraphRunner(f, job.frames, 1, 16, None, masked=False)
        runner.capture()
        results.append(runner.run([job], 16, 2.0, -1.0, schedules)[0][0].float())
    got, want = results
    assert torch.isfinite(got).all()
    assert ((got - want).norm() / want.norm()).item() <= 1e-2


def warm_fully(engine) -> int:  # type: ignore[no-untyped-def]
    """What the synth worker does between lines, until nothing is left: pieces taken."""
    import time

    pieces = 0
    while (delay := engine.background_step()) is not None:
        pieces += delay == 0
        time.sleep(delay)
    return pieces


def test_background_warmup_speaks_at_once_then_compiles_and_captures_between_lines(tmp_path):
    """Ready with the eager path; the first line made before the compile thread starts (its
    imports would share the GIL with it), a line while it works; then, a piece at a time, the
    compiled functions put in place and every bucket captured; the graphs say what the eager
    path said."""
    import time

    import numpy as np

    from ishowtts.engines import Voice
    from ishowtts.engines.f5 import F5Engine, warmer
    from tests.f5_tiny import tiny_files

    torch._dynamo.reset()
    engine = F5Engine(
        {
            **tiny_files(tmp_path),
            "device": "cuda",
            "cuda_graphs": True,
            "compile": True,
            "max_frames": 768,
            "seed": 3,
        }
    )
    engine.load({"default": Voice("default")}, lambda s: None)
    engine.warmup(lambda s: None)
    assert not engine.runners and engine.describe()["warm"] is False
    assert engine.fast is not None and not engine.fast.mark_dynamic  # the plain functions
    line = "主播今天唱得真好听，再来一首吧"
    eager = np.concatenate(list(engine.synthesize(line, "default")))
    assert len(eager) > 0 and np.isfinite(eager).all()
    assert engine.warmer._compiling is None  # not started at ready, nor by the first steps
    assert engine.background_step() == warmer.POLL_S and engine.warmer._compiling is None
    time.sleep(warmer.COMPILE_AFTER_S)
    assert engine.background_step() == warmer.POLL_S and engine.warmer._compiling is not None
    during = np.concatenate(list(engine.synthesize(line, "default")))
    compiling = not engine.warmer._compiling.done()
    assert abs(len(during) - len(eager)) <= 256
    pieces = warm_fully(engine)
    assert engine.fast.mark_dynamic and engine.warmer.graph_vocoder is not None
    assert set(engine.runners) == set(engine.buckets()) and engine.describe()["warm"] is True
    assert pieces == len(engine.buckets()) + 1  # the functions put in place, then each bucket
    graphed = np.concatenate(list(engine.synthesize(line, "default")))
    assert abs(len(graphed) - len(eager)) <= 256
    # Away from the ends (the eager vocoder sees no reference frames before the new ones)
    a, b = eager[32 * 256 : len(eager) - 32 * 256], graphed[32 * 256 : len(eager) - 32 * 256]
    assert len(a) > 24000 and np.linalg.norm(b - a) / np.linalg.norm(a) <= 5e-2
    print(f"a line during the compile: {compiling}")
    engine.close()


FIRST_LINE = """
import sys
from pathlib import Path
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: "ok"
from ishowtts.engines import Voice
from ishowtts.engines.f5 import F5Engine, rope
from tests.f5_tiny import tiny_files
engine = F5Engine({**tiny_files(Path(sys.argv[1])), "device": "cuda", "cuda_graphs": True,
                   "compile": True, "max_frames": 768})
engine.load({"default": Voice("default")}, lambda s: None)
engine.warmup(lambda s: None)
assert engine.fast.rope is rope.rope_kernel_launched, engine.fast.rope  # the fused path
for _ in engine.synthesize("主播今天唱得真好听，再来一首吧", "default"):
    pass
assert engine.background_step() is not None  # the compile is still to come
heavy = [m for m in ("torch._dynamo", "torch._inductor", "sympy") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""


def test_ready_and_the_first_line_import_neither_dynamo_nor_inductor(tmp_path):
    """Up to the first line the fused kernels run as plain launches: a custom op's first call
    imports torch._dynamo, which took 5 s of a start on the H200 host."""
    from tests.scripts import assert_script_passes

    assert_script_passes(FIRST_LINE, str(tmp_path))


def test_reload_with_a_shorter_clip_or_more_steps_captures_what_it_needs(tmp_path):
    """A voice reload never leaves a chunk without its CUDA graph: a shorter reference needs
    smaller buckets, a voice asking for more steps needs graphs that many steps long."""
    import numpy as np
    import soundfile as sf

    from ishowtts.engines import Voice
    from ishowtts.engines.f5 import F5Engine
    from tests.f5_tiny import tiny_files

    engine = F5Engine(
        {
            **tiny_files(tmp_path),
            "device": "cuda",
            "cuda_graphs": True,
            "max_frames": 1024,
            "seed": 3,
        }
    )
    engine.load({"default": Voice("default")}, lambda s: None)
    engine.warmup(lambda s: None)
    warm_fully(engine)
    before = min(engine.runners)
    t = np.arange(int(1.5 * 24000)) / 24000
    clip = tmp_path / "short.wav"
    sf.write(clip, (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 24000)
    engine.set_voices(
        {
            "default": Voice("default"),
            "short": Voice("short", clip, "Short one.", options={"steps": 32}),
        }
    )
    assert min(engine.runners) < before and set(engine.buckets()) <= set(engine.runners)
    assert all(r.max_steps >= 32 for r in engine.runners.values())
    audio = np.concatenate(list(engine.synthesize("ok", "short")))
    assert len(audio) > 0 and np.isfinite(audio).all()


def _student(dtype, **arch):
    from ishowtts.engines.f5 import fastdit, loader, sampler, synthetic, upstream
    from tests.f5_tiny import TINY_ARCH

    cfm = synthetic.random_student({**TINY_ARCH, **arch}, seed=3, std=0.2)
    _, _, MelSpec = upstream.classes()
    g = torch.Generator().manual_seed(7)
    ref = MelSpec(**loader.MEL)(torch.randn(1, 24000, generator=g) * 0.1)[0].T
    chars = upstream.to_pinyin_tokens(["Hello there, 你好世界。"])[0]
    tokens = torch.tensor([cfm.vocab_char_map.get(c, 0) for c in chars])
    cfm = cfm.to("cuda", dtype)
    fast = fastdit.FastDiT(cfm.transformer, guided=False, mel_scale=1.7)
    frames = ref.shape[0] + 50
    noise = torch.randn(4, frames, 100, generator=torch.Generator().manual_seed(11))
    return fast, sampler.Job(ref.cuda(), tokens, frames, noise=noise.cuda()), sampler


@pytest.mark.parametrize("compiled", [False, True])
def test_student_graphs_match_student_eager(compiled):
    """The student's step (fresh noise each step, no guidance half, mel scale) as CUDA graphs
    in a padded and an exact bucket, 4 and 2 steps, against the eager student sampler (which
    is checked against the reference on the CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # Compiled code is cached per function across tests: earlier tests' variants (guided,
    # other masks and dtypes) would count against dynamo's recompile limit.
    torch._dynamo.reset()
    fast, job, sampler = _student(torch.float32)
    schedules = sampler.Schedules(fast)
    nref = job.cond.shape[0]
    jobs = {s: sampler.Job(job.cond, job.tokens, job.frames, noise=job.noise[:s]) for s in (4, 2)}
    # Eager results first, uncompiled (as the F5 graph tests do).
    wants = {
        s: sampler.sample_student_eager(fast, [j], s, -1.0, schedules)[0][nref:]
        for s, j in jobs.items()
    }
    if compiled:
        fast.compile()
    tol = 1e-4 if compiled else 1e-5
    for n, masked in ((job.frames + 30, True), (job.frames, False)):
        runner = graphs.GraphRunner(fast, n, 1, 4, None, _vocoder(), masked=masked)
        runner.capture()
        assert set(runner.graphs) == {"prepare", "step", "vocode"}, runner.vocode_error
        for steps, j in jobs.items():
            want = wants[steps]
            got, audio = runner.run([j], steps, 0.0, -1.0, schedules)[0]
            assert ((got - want).norm() / want.norm()).item() <= tol
            assert audio is not None and torch.isfinite(audio).all()


def test_student_fp16_graph_close_to_fp32():
    torch._dynamo.reset()
    fast32, job, sampler = _student(torch.float32)
    want = sampler.sample_student_eager(fast32, [job], 4, -1.0)[0][job.cond.shape[0] :]
    fast, _, _ = _student(torch.float16)
    fast.compile()
    runner = graphs.GraphRunner(fast, job.frames, 1, 4, None, masked=False)
    runner.capture()
    got = runner.run([job], 4, 0.0, -1.0, sampler.Schedules(fast))[0][0]
    assert torch.isfinite(got).all()
    assert ((got - want).norm() / want.norm()).item() <= 1e-2


def _teacher_guided(dtype):
    """A tiny student and its (different) teacher on the GPU; teacher plans before 4 and 2
    student steps (from step 1) and before 4 from step 2, keyed (steps, start), with a job
    for each whose noise holds the teacher's start, the student's draws and the teacher's."""
    from ishowtts.engines.f5 import fastdit, synthetic
    from tests.f5_tiny import TINY_ARCH

    fast, job, sampler = _student(dtype)
    teacher = synthetic.random_student(TINY_ARCH, seed=4, std=0.2).to("cuda", dtype)
    fast_t = fastdit.FastDiT(teacher.transformer, guided=True, mel_scale=fast.mel_scale)
    schedules = sampler.Schedules(fast_t)
    plans = {
        (4, 1): schedules.teacher(4, 4, -1.0, 1.0),
        (2, 1): schedules.teacher(4, 2, -1.0, 1.0),
        (4, 2): schedules.teacher(6, 4, -1.0, 0.5, start=2),
    }
    g = torch.Generator().manual_seed(12)
    jobs = {
        k: sampler.Job(
            job.cond,
            job.tokens,
            job.frames,
            noise=torch.randn(k[0] + p.draws, job.frames, 100, generator=g).cuda(),
        )
        for k, p in plans.items()
    }
    return fast, fast_t, plans, jobs, sampler


@pytest.mark.parametrize("compiled", [False, True])
def test_teacher_guided_graphs_match_eager(compiled):
    """The teacher-guided start as CUDA graphs (the teacher's preparation and step, then the
    student's steps from its start step) in a padded and an exact bucket, against the eager
    sampler (checked against the reference on the CPU); the same runner still serves the
    plain student."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch._dynamo.reset()
    fast, fast_t, plans, jobs, sampler = _teacher_guided(torch.float32)
    schedules = sampler.Schedules(fast)
    nref = jobs[4, 1].cond.shape[0]
    wants = {
        k: sampler.sample_guided_start_eager(
            fast, fast_t, [jobs[k]], k[0], p, 2.0, -1.0, schedules
        )[0][nref:]
        for k, p in plans.items()
    }
    j4 = jobs[4, 1]
    plain = sampler.Job(j4.cond, j4.tokens, j4.frames, noise=j4.noise[:4])
    want_plain = sampler.sample_student_eager(fast, [plain], 4, -1.0, schedules)[0][nref:]
    if compiled:
        fast.compile()
        fast_t.compile()
    tol = 1e-4 if compiled else 1e-5
    evals = max(p.evals for p in plans.values())
    draws = max(p.draws for p in plans.values())
    frames = j4.frames
    for n, masked in ((frames + 30, True), (frames, False)):
        runner = graphs.GraphRunner(fast, n, 1, 4, None, _vocoder(), masked, fast_t, evals, draws)
        runner.capture()
        assert set(runner.graphs) == {
            "prepare",
            "step",
            "vocode",
            "teacher_prepare",
            "teacher_step",
        }, runner.vocode_error
        for k in ((4, 1), (2, 1), (4, 2), (4, 1)):  # replays reset cleanly
            got, audio = runner.run([jobs[k]], k[0], 2.0, -1.0, schedules, plans[k])[0]
            want = wants[k]
            assert ((got - want).norm() / want.norm()).item() <= tol
            assert audio is not None and torch.isfinite(audio).all()
            # Vocos' centred inverse STFT gives n - 1 hops for n frames: the exact bucket
            # lacks the last hop (as upstream's decode of the same frames does).
            assert audio.shape[-1] == (frames - nref - (0 if masked else 1)) * 256
        got, _ = runner.run([plain], 4, 2.0, -1.0, schedules)[0]
        assert ((got - want_plain).norm() / want_plain.norm()).item() <= tol
        assert ((got - wants[4, 1]).norm() / wants[4, 1].norm()).item() > 0.05  # teacher ran


def test_teacher_guided_fp16_graph_close_to_fp32():
    torch._dynamo.reset()
    fast32, teacher32, plans, jobs, sampler = _teacher_guided(torch.float32)
    job = jobs[4, 1]
    nref = job.cond.shape[0]
    want = sampler.sample_guided_start_eager(fast32, teacher32, [job], 4, plans[4, 1], 2.0, -1.0)[
        0
    ][nref:]
    fast, fast_t, plans16, _, _ = _teacher_guided(torch.float16)
    fast.compile()
    fast_t.compile()
    p = plans16[4, 1]
    runner = graphs.GraphRunner(
        fast,
        job.frames,
        1,
        4,
        None,
        masked=False,
        teacher=fast_t,
        teacher_evals=p.evals,
        teacher_draws=p.draws,
    )
    runner.capture()
    got = runner.run([job], 4, 2.0, -1.0, sampler.Schedules(fast), p)[0][0]
    assert torch.isfinite(got).all()
    assert ((got - want).norm() / want.norm()).item() <= 1e-2


def test_engine_with_teacher_steps_captures_the_teacher_graphs(tmp_path):
    """The option through the engine on CUDA: every bucket's runner has the teacher's graphs,
    and what it speaks is finite and reproducible."""
    import numpy as np

    from ishowtts.engines import Voice
    from ishowtts.engines.f5 import F5Engine, synthetic
    from tests.f5_tiny import TINY_ARCH, save_vocoder

    torch._dynamo.reset()  # earlier tests' compiled variants must not fill the recompile limit
    student = synthetic.random_student(TINY_ARCH, seed=3, std=0.2)
    teacher = synthetic.random_student(TINY_ARCH, seed=4, std=0.2)
    path = synthetic.save_student(student, tmp_path / "s.pt", 1.7, teacher)
    engine = F5Engine(
        {
            "model": "DMOSpeech2",
            "checkpoint": str(path),
            "arch": dict(TINY_ARCH),
            "vocoder": str(save_vocoder(tmp_path / "vocos")),
            "device": "cuda",
            "teacher_steps": 4,
            "max_frames": 768,
            "seed": 3,
        }
    )
    engine.load({"default": Voice("default")}, lambda s: None)
    engine.warmup(lambda s: None)
    warm_fully(engine)  # the teacher compiled in the background too
    assert engine.teacher is not None and engine.teacher.mark_dynamic
    assert engine.runners and all("teacher_step" in r.graphs for r in engine.runners.values())
    # Every step count up to the largest runs in the graphs (2 steps needs 3 noise draws).
    for r in engine.runners.values():
        assert all(r.fits(s, engine._teacher_plan(s)) for s in (2, 3, 4))
    a = np.concatenate(list(engine.synthesize("主播666", "default")))
    b = np.concatenate(list(engine.synthesize("主播666", "default")))
    assert len(a) > 0 and np.isfinite(a).all() and np.array_equal(a, b)
    engine.close()


if __name__ == "__main__":  # the GPU machine may lack pytest
    import sys

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    for c, sh in ((False, False), (True, False), (True, True)):
        test_graph_runner_matches_eager(c, sh)
        print(f"graph runner (compiled={c}, shared pool={sh}) matches eager: ok", flush=True)
    test_unmasked_bucket_of_exact_length_matches_eager()
    print("unmasked exact bucket: ok", flush=True)
    test_fp16_graph_is_finite_and_close()
    print("fp16 graph: ok")
    for c in (False, True):
        test_teacher_guided_graphs_match_eager(c)
        print(f"teacher-guided graphs (compiled={c}) match eager: ok", flush=True)
    test_teacher_guided_fp16_graph_close_to_fp32()
    print("teacher-guided fp16 graph: ok", flush=True)
