"""DMOSpeech 2's teacher-guided start (engine option ``teacher_steps``) on tiny random weights,
checked against an independent reading of the reference (yl4579/DMOSpeech2 ``src/infer.py``:
``generate`` with ``teacher_steps > 0``, ``_teacher_sampling``, ``_student_sampling``): the
teacher and the student are upstream's v0 DiT run through upstream's own forward; the time
grid, its cut at the stopping time, the Euler loop (what ``odeint(method="euler")`` does on
that grid), the final jump, the eta noise and its index are re-derived below as written there.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ishowtts.engines import Voice, WeightsUnusable
from ishowtts.engines.f5 import F5Engine, fastdit, graphs, loader, sampler, synthetic, upstream
from tests.f5_tiny import TINY_ARCH, rel, sample_request, save_vocoder

SCALE = 1.7
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A student file with its teacher (a different random DiT) and one without."""
    root = tmp_path_factory.mktemp("teacher")
    student = synthetic.random_student(TINY_ARCH, seed=3, std=0.2)
    teacher = synthetic.random_student(TINY_ARCH, seed=4, std=0.2)
    both = synthetic.save_student(student, root / "with_teacher.pt", SCALE, teacher)
    alone = synthetic.save_student(student, root / "student_only.pt", SCALE)
    return both, alone


@pytest.fixture(scope="module")
def models(files):
    """(student cfm, teacher cfm), fp32, loaded from the file through our loader."""
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    out = []
    for teacher in (False, True):
        cfm = loader.build_cfm(loader.STUDENT_MODEL, TINY_ARCH, vocab)
        assert loader.load_weights(cfm, files[0], student=not teacher, teacher=teacher) == SCALE
        out.append(cfm.eval())
    return out


@pytest.fixture(scope="module")
def request_():
    return sample_request()


def fast_pair(models) -> tuple[fastdit.FastDiT, fastdit.FastDiT]:
    """Our student (unguided) and teacher (guided) over the loaded models."""
    student, teacher = models
    return (
        fastdit.FastDiT(student.transformer, guided=False, mel_scale=SCALE),
        fastdit.FastDiT(teacher.transformer, guided=True, mel_scale=SCALE),
    )


def reference_generate(
    teacher,
    student,
    ref,
    tokens,
    frames,
    y0,
    noise_seq,
    student_noise,
    teacher_steps=16,
    stopping_time=0.07,
    start=1,
    eta=1.0,
    cfg=2.0,
    sway=-1.0,
):
    """``generate`` from its inputs on: ``_teacher_sampling`` then ``_student_sampling``."""
    cond = F.pad(ref / SCALE, (0, 0, 0, frames - ref.shape[0]))[None]
    text = tokens[None]

    def fn(t, x):
        pred = teacher(x=x, cond=cond, text=text, time=t, drop_audio_cond=False, drop_text=False)
        if cfg > 1e-5:
            null = teacher(x=x, cond=cond, text=text, time=t, drop_audio_cond=True, drop_text=True)
            pred = pred + (pred - null) * cfg
        if eta > 0:
            step_idx = min(int((1.0 - t.item()) * len(noise_seq)), len(noise_seq) - 1)
            alpha, sigma = 1.0 - t.item(), t.item()
            scale = torch.sqrt(torch.tensor(sigma**2 / (alpha**2 + sigma**2) * eta))
            return pred + scale * noise_seq[step_idx]
        return pred

    t = torch.linspace(0, 1, teacher_steps + 1)
    t = t + sway * (torch.cos(torch.pi / 2 * t) - 1 + t)
    t = t[: (t > stopping_time).float().argmax() + 2]
    t = t[:-1]
    y = y0[None]
    for a, b in itertools.pairwise(t):  # odeint's fixed-grid Euler on the grid t
        y = y + (b - a) * fn(a, y)
    x1 = y + (1 - t[-1]) * fn(t[-1], y)

    steps = torch.tensor([0, 0.25, 0.5, 0.75])
    steps = steps + sway * (torch.cos(torch.pi / 2 * steps) - 1 + steps)
    for k, step in enumerate(steps[start:]):
        time = step[None]
        phi = (1 - step) * student_noise[k][None] + step * x1
        pred = student(
            x=phi, cond=cond, text=text, time=time, drop_audio_cond=False, drop_text=False
        )
        x1 = phi + (1 - step) * pred
    return (x1 * SCALE)[0]


def test_default_plan_is_the_reference_grid():
    """The reference's defaults (16 points, stop at .07, sway -1, student from step 1) are 4
    Euler steps at 1 - cos(pi k / 32), k = 0..3, and a final evaluation at the student's
    step-1 time; eta adds the reference's 16th draw (k = 1..3) and its 15th (final)."""
    t, dt, coef, slab = sampler.teacher_plan(4, 4, -1.0, 1.0)
    want = 1 - torch.cos(math.pi / 2 * torch.arange(5) / 16)
    assert torch.allclose(t, want, atol=1e-7)
    assert t[-1] == pytest.approx(float(sampler.student_times(4, -1.0)[1]))
    assert torch.allclose(dt[:-1], want[1:] - want[:-1], atol=1e-7) and dt[-1] == 1 - t[-1]
    assert slab.tolist() == [0, 0, 0, 0, 1] and coef[0] == 0 and (coef[1:] > 0).all()
    _, _, coef0, slab0 = sampler.teacher_plan(4, 4, -1.0, 0.0)
    assert not coef0.any() and not slab0.any()
    with pytest.raises(ValueError, match="student steps > student_start_step"):
        sampler.teacher_plan(4, 1, -1.0, 1.0)
    with pytest.raises(ValueError, match="student steps > student_start_step"):
        sampler.teacher_plan(4, 4, -1.0, 1.0, start=4)
    # The reference demo's "more teacher steps": 24 points stopped at .25, student from step 2
    # (1 - cos(pi/4) = .2929, the student's step-2 time).
    t, _, _, slab = sampler.teacher_plan(12, 4, -1.0, 1.0, start=2)
    assert torch.allclose(t, 1 - torch.cos(math.pi / 2 * torch.arange(13) / 24), atol=1e-7)
    assert t[-1] == pytest.approx(float(sampler.student_times(4, -1.0)[2]))
    assert slab[-1] == 23 - int((1 - t[-1].item()) * 24)


def reference_run(models, request_, frames, seed, grid=16, stopping_time=0.07, start=1,
                  **kw):  # type: ignore[no-untyped-def]  # fmt: skip
    """The reference's output for the request at ``frames`` from noise drawn with ``seed`` (its
    start, ``grid`` draws, one per student step from ``start``), and that noise in our layout
    for a plan of ``draws`` (``noise_for(draws)``): draw 0 the teacher's start, then one per
    student step (those before ``start`` unused), then the reference's draws from its last
    one down."""
    student, teacher = models
    ref, tokens = request_
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(frames, 100, generator=g)
    noise_seq = [torch.randn(1, frames, 100, generator=g) for _ in range(grid)]
    student_noise = torch.randn(4 - start, frames, 100, generator=g)
    with torch.no_grad():
        want = reference_generate(teacher.transformer, student.transformer, ref, tokens, frames,
                                  y0, noise_seq, student_noise, grid, stopping_time,
                                  start=start, **kw)  # fmt: skip

    def noise_for(draws: int) -> torch.Tensor:
        unused = [torch.full_like(y0, float("nan"))] * (start - 1)
        drawn = [noise_seq[grid - 1 - k][0] for k in range(draws)]
        return torch.stack([y0, *unused, *student_noise, *drawn])

    return want, noise_for


@pytest.mark.parametrize(
    ("teacher_steps", "ref_grid", "stopping_time", "eta", "start"),
    [(4, 16, 0.07, 1.0, 1), (2, 8, 0.05, 0.0, 1), (3, 12, 0.07, 0.5, 1), (12, 24, 0.25, 1.0, 2)],
    ids=["reference defaults", "eta 0", "eta 0.5", "reference demo: student from step 2"],
)
def test_fp32_guided_start_matches_reference(
    models, request_, teacher_steps, ref_grid, stopping_time, eta, start
):
    ref, tokens = request_
    frames = ref.shape[0] + 60
    want, noise_for = reference_run(models, request_, frames, 11, ref_grid, stopping_time,
                                    start=start, eta=eta)  # fmt: skip
    fast, fast_t = fast_pair(models)
    plan = sampler.Schedules(fast_t).teacher(teacher_steps, 4, -1.0, eta, start)
    assert plan.evals == teacher_steps + 1
    noise = noise_for(plan.draws)
    job = sampler.Job(ref, tokens, frames, noise=noise)
    got = sampler.sample_guided_start_eager(fast, fast_t, [job], 4, plan, 2.0, -1.0)[0]
    new = slice(ref.shape[0], frames)
    assert want[new].abs().mean() > 0.1
    assert rel(got[new], want[new]) <= 1e-5
    # The teacher matters: the student alone from step 0 gives something else.
    plain_noise = torch.nan_to_num(noise[:4])
    alone = sampler.sample_student_eager(
        fast, [sampler.Job(ref, tokens, frames, noise=plain_noise)], 4, -1.0
    )[0]
    assert rel(alone[new], want[new]) > 0.05


def test_padded_batch_matches_single(models, request_):
    """Two requests of different lengths in one batch (the shorter one masked)."""
    ref, tokens = request_
    fast, fast_t = fast_pair(models)
    plan = sampler.Schedules(fast_t).teacher(4, 4, -1.0, 1.0)
    short = sampler.Job(ref, tokens, ref.shape[0] + 40, seed=5)
    long = sampler.Job(ref, tokens, ref.shape[0] + 73, seed=6)
    alone = sampler.sample_guided_start_eager(fast, fast_t, [short], 4, plan, 2.0, -1.0)[0]
    both = sampler.sample_guided_start_eager(fast, fast_t, [short, long], 4, plan, 2.0, -1.0)
    assert both[0].shape == alone.shape and both[1].shape[0] == long.frames
    new = slice(ref.shape[0], short.frames)
    assert rel(both[0][new], alone[new]) <= 1e-5


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 1e-2), (torch.bfloat16, 3e-2)])
def test_half_precision_close_to_fp32_reference(files, models, request_, dtype, tol):
    ref, tokens = request_
    frames = ref.shape[0] + 50
    want, noise_for = reference_run(models, request_, frames, 9)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    halves = []
    for is_teacher in (False, True):
        cfm = loader.build_cfm(loader.STUDENT_MODEL, TINY_ARCH, vocab)
        loader.load_weights(cfm, files[0], student=not is_teacher, teacher=is_teacher)
        halves.append(
            fastdit.FastDiT(cfm.eval().to(dtype).transformer, guided=is_teacher, mel_scale=SCALE)
        )
    fast, fast_t = halves
    plan = sampler.Schedules(fast_t).teacher(4, 4, -1.0, 1.0)
    job = sampler.Job(ref, tokens, frames, noise=noise_for(plan.draws))
    got = sampler.sample_guided_start_eager(fast, fast_t, [job], 4, plan, 2.0, -1.0)[0]
    new = slice(ref.shape[0], frames)
    assert torch.isfinite(got).all() and rel(got[new], want[new]) <= tol


def test_the_teacher_is_read_from_its_own_keys(files, models):
    student, teacher = models
    raw = torch.load(str(files[0]), weights_only=True)["model_state_dict"]
    key = "transformer_blocks.0.attn.to_q.weight"
    assert torch.equal(
        teacher.transformer.transformer_blocks[0].attn.to_q.weight, raw[loader.TEACHER_PREFIX + key]
    )
    assert not torch.equal(
        teacher.transformer.transformer_blocks[0].attn.to_q.weight,
        student.transformer.transformer_blocks[0].attn.to_q.weight,
    )


def test_samplers_refuse_the_wrong_models(models, request_):
    ref, tokens = request_
    fast, fast_t = fast_pair(models)
    plan = sampler.Schedules(fast_t).teacher(4, 4, -1.0, 1.0)
    job = sampler.Job(ref, tokens, ref.shape[0] + 9, seed=1)
    with pytest.raises(ValueError, match="unguided student and a guided teacher"):
        sampler.sample_guided_start_eager(fast_t, fast_t, [job], 4, plan, 2.0, -1.0)
    with pytest.raises(ValueError, match="a teacher plan for 4 student steps, not 2"):
        sampler.sample_guided_start_eager(fast, fast_t, [job], 2, plan, 2.0, -1.0)


def test_graph_runner_bookkeeping_on_the_cpu(models, request_):
    """The CUDA-graph runner's step bodies (its static buffers, counters, noise layout and
    tables), called in replay order on the CPU instead of being captured: exactly the eager
    sampler, with and without the teacher, padded and exact buckets. The graphs themselves
    are checked on CUDA in tests/test_f5_cuda.py."""
    student, teacher = models
    ref, tokens = request_
    fast = fastdit.FastDiT(student.transformer, guided=False, mel_scale=SCALE)
    fast_t = fastdit.FastDiT(teacher.transformer, guided=True, mel_scale=SCALE)
    schedules, teacher_schedules = sampler.Schedules(fast), sampler.Schedules(fast_t)
    plans = {
        (4, 1): teacher_schedules.teacher(4, 4, -1.0, 1.0),
        (2, 1): teacher_schedules.teacher(4, 2, -1.0, 1.0),
        (4, 2): teacher_schedules.teacher(6, 4, -1.0, 0.5, start=2),
    }
    evals = max(p.evals for p in plans.values())
    draws = max(p.draws for p in plans.values())
    frames = ref.shape[0] + 50
    g = torch.Generator().manual_seed(3)
    for n, masked in ((frames + 30, True), (frames, False)):
        runner = graphs.GraphRunner(fast, n, 1, 4, None, None, masked, fast_t, evals, draws)
        bodies = {
            "prepare": runner._prepare,
            "step": runner._step,
            "teacher_prepare": runner._teacher_prepare,
            "teacher_step": runner._teacher_step,
        }
        runner.graphs = {k: types.SimpleNamespace(replay=f) for k, f in bodies.items()}  # type: ignore[misc]
        for steps, start in ((4, 1), (2, 1), (4, 2), (4, 1)):  # replays reset cleanly
            plan = plans[steps, start]
            noise = torch.randn(steps + plan.draws, frames, 100, generator=g)
            job = sampler.Job(ref, tokens, frames, noise=noise)
            want = sampler.sample_guided_start_eager(
                fast, fast_t, [job], steps, plan, 2.0, -1.0, schedules
            )[0][ref.shape[0] :]
            got = runner.run([job], steps, 2.0, -1.0, schedules, plan)[0][0]
            assert torch.equal(got, want)
        job = sampler.Job(ref, tokens, frames, noise=torch.randn(4, frames, 100, generator=g))
        want = sampler.sample_student_eager(fast, [job], 4, -1.0, schedules)[0][ref.shape[0] :]
        assert torch.equal(runner.run([job], 4, 2.0, -1.0, schedules)[0][0], want)
        with pytest.raises(ValueError, match="teacher plan does not fit"):
            runner.run(
                [job], 4, 2.0, -1.0, schedules, sampler.Schedules(fast_t).teacher(8, 4, -1.0, 1.0)
            )


# ---- the engine --------------------------------------------------------------------------


def engine_options(checkpoint: Path, vocoder: Path, **more):
    return {
        "model": "DMOSpeech2",
        "checkpoint": str(checkpoint),
        "vocoder": str(vocoder),
        "arch": dict(TINY_ARCH),
        "device": "cpu",
        "compile": False,
        "cuda_graphs": False,
        "seed": 1,
        **more,
    }


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory):
    return save_vocoder(tmp_path_factory.mktemp("voc") / "vocos")


def test_engine_speaks_with_the_teacher_guided_start(files, vocoder):
    e = F5Engine(engine_options(files[0], vocoder, teacher_steps=4))
    e.load({"default": Voice("default")}, lambda s: None)
    e.warmup(lambda s: None)
    assert e.teacher is not None and e.teacher.guided and e.teacher.mel_scale == SCALE
    assert e.describe()["teacher_steps"] == 4
    a = np.concatenate(list(e.synthesize("主播666, thanks!", "default")))
    b = np.concatenate(list(e.synthesize("主播666, thanks!", "default")))
    assert len(a) > 24000 * 0.5 and np.isfinite(a).all() and a.dtype == np.float32
    assert np.array_equal(a, b)  # seeded: teacher start, its noise and the student's
    # The same line without the teacher is another signal (the teacher really ran).
    plain = F5Engine(engine_options(files[0], vocoder))
    plain.load({"default": Voice("default")}, lambda s: None)
    c = np.concatenate(list(plain.synthesize("主播666, thanks!", "default")))
    assert c.shape == a.shape and not np.allclose(a, c, atol=1e-3)
    # What the engine speaks is the eager sampler's mel, vocoded.
    voice = e.voices["default"]
    text = "主播666, thanks!"
    frames = voice.frames + e.new_frames(voice, text)
    job = sampler.Job(voice.mel, e._tokens(voice.ref_text + text), frames, seed=1)
    assert e.teacher_schedules is not None
    plan = e.teacher_schedules.teacher(4, 4, -1.0, 1.0)
    mel = sampler.sample_guided_start_eager(e.fast, e.teacher, [job], 4, plan, 2.0, -1.0)[0]
    with torch.no_grad():
        want = e.vocoder.decode(mel[voice.frames :].T[None])[0].numpy()
    assert np.allclose(e.chunk_audio(voice, text), want, atol=1e-5)


def test_a_file_without_a_teacher_is_a_clear_error(files, vocoder):
    """A local file is looked into when the options are read; a file only seen at load (a
    hub file) fails there with the same advice."""
    with pytest.raises(ValueError, match=r"(?s)teacher_steps.*has no teacher.*teacher_steps: 0"):
        F5Engine(engine_options(files[1], vocoder, teacher_steps=4))
    e = F5Engine(engine_options(files[0], vocoder, teacher_steps=4))
    # As if the hub had handed over this file (model_copy skips validation).
    e.options = e.options.model_copy(update={"checkpoint": str(files[1])})
    with pytest.raises(WeightsUnusable, match=r"no teacher weights .*teacher_steps: 0"):
        e.load({"default": Voice("default")}, lambda s: None)
    assert loader.has_teacher(files[0]) and not loader.has_teacher(files[1])


def test_teacher_options_are_checked(files, vocoder):
    with pytest.raises(ValueError, match=r"(?s)teacher_steps.*needs model: DMOSpeech2"):
        F5Engine({"model": "F5TTS_v1_Base", "random_weights": True, "teacher_steps": 4})
    with pytest.raises(ValueError, match=r"(?s)teacher_steps.*needs steps > student_start_step"):
        F5Engine(engine_options(files[0], vocoder, teacher_steps=4, steps=1))
    with pytest.raises(ValueError, match=r"(?s)teacher_steps.*needs steps > student_start_step"):
        F5Engine(engine_options(files[0], vocoder, teacher_steps=4, student_start_step=4))
    e = F5Engine(engine_options(files[0], vocoder, teacher_steps=2))
    with pytest.raises(ValueError, match="voice 'one': steps 1 leaves the student no step"):
        e.load({"one": Voice("one", options={"steps": 1})}, lambda s: None)


def test_say_names_the_missing_teacher_as_a_config_error(files, vocoder, tmp_path):
    """The operator's view: ``ishowtts say`` with a student file that has no teacher."""
    arch = ", ".join(f"{k}: {v}" for k, v in TINY_ARCH.items())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"engine: {{type: f5, model: DMOSpeech2, checkpoint: {files[1]}, vocoder: {vocoder},\n"
        f"         device: cpu, teacher_steps: 4, arch: {{{arch}}}}}\n"
    )
    out = tmp_path / "out.wav"
    result = subprocess.run(
        [sys.executable, "-m", "ishowtts", "say", "hello", "--out", str(out), "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: engine.teacher_steps: ")
    assert "has no teacher" in lines[0] and lines[0].endswith("(config.yaml:2)")
    assert not out.exists()
