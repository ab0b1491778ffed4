"""Our sampler against upstream ``CFM.sample`` on a tiny random model (same weights, noise and
steps), through the real model classes."""

from __future__ import annotations

import types

import pytest
import torch

from ishowtts.engines.f5 import fastdit, graphs, sampler, upstream
from tests.f5_tiny import rel, tiny_cfm


# v1 (the default) and v0 (F5TTS_Base: RoPE on one head, unmasked text fillers), which many
# fine-tuned checkpoints still use.
@pytest.fixture(scope="module", params=["F5TTS_v1_Base", "F5TTS_Base"])
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def setup(variant):
    cfm = tiny_cfm(0, variant)
    g = torch.Generator().manual_seed(7)
    ref_mel = cfm.mel_spec(torch.randn(1, 24000, generator=g) * 0.1).permute(0, 2, 1)[0]
    chars = upstream.to_pinyin_tokens(["Hello there, 你好世界。"])[0]
    tokens = torch.tensor([cfm.vocab_char_map.get(c, 0) for c in chars])
    return cfm, ref_mel, chars, tokens


def upstream_mel(cfm, ref_mel, chars, frames, steps, seed=123):
    out, _ = cfm.sample(
        cond=ref_mel[None],
        text=[chars],
        duration=frames,
        steps=steps,
        cfg_strength=2.0,
        sway_sampling_coef=-1.0,
        seed=seed,
    )
    return out[0].float()


@pytest.mark.parametrize("steps", [7, 16, 32, 9])
def test_fp32_matches_upstream(setup, steps):
    cfm, ref_mel, chars, tokens = setup
    frames = ref_mel.shape[0] + 50
    want = upstream_mel(cfm, ref_mel, chars, frames, steps)
    fast = fastdit.FastDiT(cfm.transformer)
    got = sampler.sample_eager(
        fast, [sampler.Job(ref_mel, tokens, frames, seed=123)], steps, 2.0, -1.0
    )[0]
    new = slice(ref_mel.shape[0], frames)
    assert want[new].abs().mean() > 0.1  # the random model really does something
    assert rel(got[new], want[new]) <= 1e-5


def test_padded_batch_matches_unpadded(setup):
    """A request padded into a longer bucket (masked) gives the upstream result."""
    cfm, ref_mel, chars, tokens = setup
    frames = ref_mel.shape[0] + 40
    want = upstream_mel(cfm, ref_mel, chars, frames, 16)
    fast = fastdit.FastDiT(cfm.transformer)
    jobs = [
        sampler.Job(ref_mel, tokens, frames, seed=123),
        sampler.Job(ref_mel, tokens, frames + 37, seed=5),
    ]
    got = sampler.sample_eager(fast, jobs, 16, 2.0, -1.0)[0]
    new = slice(ref_mel.shape[0], frames)
    assert rel(got[new], want[new]) <= 1e-5


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 1e-2), (torch.bfloat16, 3e-2)])
def test_half_precision_close_to_fp32_upstream(setup, variant, dtype, tol):
    cfm, ref_mel, chars, tokens = setup
    frames = ref_mel.shape[0] + 50
    want = upstream_mel(cfm, ref_mel, chars, frames, 16)
    half = tiny_cfm(0, variant).to(dtype)
    fast = fastdit.FastDiT(half.transformer)
    got = sampler.sample_eager(
        fast, [sampler.Job(ref_mel, tokens, frames, seed=123)], 16, 2.0, -1.0
    )[0]
    new = slice(ref_mel.shape[0], frames)
    assert torch.isfinite(got).all()
    assert rel(got[new], want[new]) <= tol


def test_pruned_schedules():
    idx7 = [0, 2, 4, 6, 8, 16, 24, 32]
    idx16 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32]
    assert torch.allclose(fastdit.timesteps(7, None), torch.tensor(idx7) / 32)
    assert torch.allclose(fastdit.timesteps(16, None), torch.tensor(idx16) / 32)
    assert torch.allclose(fastdit.timesteps(9, None), torch.linspace(0, 1, 10))
    t = fastdit.timesteps(16, -1.0)
    assert t[0] == 0 and abs(t[-1].item() - 1) < 1e-6 and (t.diff() > 0).all()
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fastdit.timesteps(0, None)


def test_seeded_noise_is_reproducible_and_fresh_noise_differs(setup):
    cfm, ref_mel, _, tokens = setup
    fast = fastdit.FastDiT(cfm.transformer)
    frames = ref_mel.shape[0] + 20

    def run(seed):
        job = sampler.Job(ref_mel, tokens, frames, seed=seed)
        return sampler.sample_eager(fast, [job], 7, 2.0, -1.0)[0]

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(None), run(None))


def test_job_longer_than_bucket_is_refused(setup):
    cfm, ref_mel, _, tokens = setup
    fast = fastdit.FastDiT(cfm.transformer)
    with pytest.raises(ValueError, match="does not fit"):
        sampler.batch_inputs(fast, [sampler.Job(ref_mel, tokens, ref_mel.shape[0] + 10)], 16)


def test_bucket_wide_preparation_matches_per_sample(setup):
    """The CUDA-graph path embeds text over the whole bucket with a length mask; for the real
    frames it must equal upstream's embedding at the exact length (GRN norms included)."""
    cfm, ref_mel, _, tokens = setup
    fast = fastdit.FastDiT(cfm.transformer)
    frames = ref_mel.shape[0] + 40
    n = frames + 30
    _, pre, _, _ = sampler.batch_inputs(fast, [sampler.Job(ref_mel, tokens, frames)], n)
    padded_tokens = torch.full((1, n), -1)
    padded_tokens[0, : len(tokens)] = tokens
    cond = torch.zeros(1, n, 100)
    cond[0, : ref_mel.shape[0]] = ref_mel
    got = fast.prepare_padded(cond, padded_tokens, torch.tensor([frames]))
    assert rel(got[:, :frames], pre[:, :frames]) <= 1e-6


def test_noise_drawn_in_place_is_noise_for():
    """``draw_noise`` gives ``noise_for``'s numbers, drawn in place into a contiguous row or
    copied into a strided slab, and a job's own noise as given."""
    cpu = torch.device("cpu")
    job = sampler.Job(torch.zeros(5, 100), torch.zeros(3, dtype=torch.long), 40, seed=9)
    rows = torch.zeros(2, 48, 100)
    sampler.draw_noise(rows[1, :40], job)
    assert torch.equal(rows[1, :40], sampler.noise_for(job, 100, cpu))
    assert not rows[0].any() and not rows[1, 40:].any()
    slabs = torch.zeros(4, 2, 48, 100)
    sampler.draw_noise(slabs[:3, 1, :40], job)
    assert torch.equal(slabs[:3, 1, :40], sampler.noise_for(job, 100, cpu, 3))
    given = sampler.Job(job.cond, job.tokens, 40, noise=torch.randn(40, 100))
    sampler.draw_noise(rows[0, :40], given)
    assert torch.equal(rows[0, :40], given.noise)


def test_runner_requests_in_a_row_each_match_eager(setup):
    """One runner (its graphs replayed as plain calls) serving requests in a row, with
    another voice's shorter reference, fewer tokens, fewer frames, another step count and
    another guidance: each gives the eager result, nothing of the request before leaks into
    it (staged sizes and tokens, the reference mel kept per voice, the tables kept per
    schedule)."""
    cfm, ref_mel, _, tokens = setup
    fast = fastdit.FastDiT(cfm.transformer)
    schedules = sampler.Schedules(fast)
    n = ref_mel.shape[0] + 60
    runner = graphs.GraphRunner(fast, n, 1, 16, masked=True)
    bodies = {"prepare": runner._prepare, "step": runner._step}
    runner.graphs = {k: types.SimpleNamespace(replay=f) for k, f in bodies.items()}  # type: ignore[misc]
    other = ref_mel[:-20] * 0.5 + 1.0
    cases = [
        (ref_mel, tokens, n, 16, 2.0),
        (other, tokens[:7], n - 30, 16, 2.0),
        (other, tokens[:7], n - 30, 7, 2.0),
        (ref_mel, tokens, n, 7, 1.0),
        (ref_mel, tokens, n, 16, 2.0),
    ]
    for cond, text, frames, steps, cfg in cases:
        job = sampler.Job(cond, text, frames, seed=frames + steps)
        want = sampler.sample_eager(fast, [job], steps, cfg, -1.0, schedules)[0]
        got, audio = runner.run([job], steps, cfg, -1.0, schedules)[0]
        assert audio is None
        assert rel(got, want[cond.shape[0] :]) <= 1e-6, (frames, steps, cfg)


@pytest.mark.parametrize("padding", ["center", "same"])
def test_overlap_add_istft_is_vocos_istft(padding):
    """The graph-safe inverse STFT gives what Vocos' own ISTFT (torch.istft for "center")
    gives, at Vocos' 24 kHz shape."""
    from vocos.spectral_ops import ISTFT

    ref = ISTFT(n_fft=1024, hop_length=256, win_length=1024, padding=padding)
    g = torch.Generator().manual_seed(0)
    spec = torch.polar(
        torch.rand(2, 513, 40, generator=g) * 3, torch.rand(2, 513, 40, generator=g) * 6.3
    )
    want = ref(spec)
    got = graphs.ola_istft(spec, 1024, 256, ref.window, padding)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_vocode_window_bounds():
    ctx = graphs.VOCODE_CONTEXT
    # A runner for references of >= 60 frames in a 200-frame bucket vocodes 172 frames.
    width = 200 - 60 + ctx
    assert graphs.vocode_window(60, 200, 200, width) == 60 - ctx
    assert graphs.vocode_window(100, 200, 200, width) == 200 - width  # more context, same end
    assert graphs.vocode_window(10, 150, 200, 200) == 0
    assert graphs.vocode_window(59, 200, 200, width) is None  # a shorter clip than promised


@pytest.mark.parametrize(("nref", "frames"), [(60, 96), (75, 96), (60, 80)])
def test_windowed_vocoder_gives_the_whole_bucket_audio(nref, frames):
    """The graph's vocoder pass over a window (the new frames plus VOCODE_CONTEXT of
    reference) gives the audio of the new frames that vocoding the whole bucket gives, with
    Vocos' real depth (8 ConvNeXt blocks); also with silence after a shorter job."""
    from ishowtts.engines.f5 import loader
    from tests.f5_tiny import TINY_VOCOS

    cfg = {**TINY_VOCOS, "backbone": {**TINY_VOCOS["backbone"]}}
    # Layer scale 1 (not Vocos' 1/8 at init) so that far frames matter as in a trained model.
    init = {"num_layers": 8, "layer_scale_init_value": 1.0}
    cfg["backbone"]["init_args"] = {**cfg["backbone"]["init_args"], **init}
    torch.manual_seed(0)
    voc = loader.load_vocoder("", None, random_config=cfg)
    fast = fastdit.FastDiT(tiny_cfm().transformer)
    n = 96
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(1, n, fast.mel_dim, generator=g)
    audio = []
    for min_ref in (0, 60):
        runner = graphs.GraphRunner(fast, n, 1, 4, vocoder=voc, masked=True, min_ref=min_ref)
        runner.x.copy_(mel)
        runner.cond[0, :nref] = mel[0, :nref] * 0.5
        runner.ref[0, :nref] = True
        runner.mask.zero_()
        runner.mask[0, :frames] = True
        start = graphs.vocode_window(nref, frames, n, runner.vwidth)
        assert start is not None
        runner.vstart[0] = start
        with torch.no_grad():
            runner._vocode()
        assert runner.audio is not None
        assert runner.audio.shape[-1] == (runner.vwidth - 1) * sampler.HOP
        audio.append(runner.audio[0, (nref - start) * sampler.HOP : (frames - start) * sampler.HOP])
    whole, window = audio
    assert runner.vwidth < n
    # Exact up to float rounding: with 8 frames of context instead the error is ~1e-6.
    torch.testing.assert_close(window, whole, rtol=0, atol=1e-7)
