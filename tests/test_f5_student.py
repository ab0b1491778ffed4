"""The DMOSpeech 2 student and duration predictor on tiny random weights, checked against an
independent reading of the reference (yl4579/DMOSpeech2 ``infer.py``: ``_student_sampling``,
``predict_duration``; ``duration_predictor.py``): the reference's DiT is upstream's v0 DiT
class (F5TTS_Base), run here through upstream's own forward; the sampler loop and the
predictor's transformer are re-derived below from plain tensor operations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ishowtts.engines import Voice, WeightsUnusable
from ishowtts.engines.f5 import F5Engine, duration, fastdit, loader, sampler, synthetic, upstream
from tests.f5_tiny import TINY_ARCH, rel, sample_request, save_checkpoint, save_vocoder, tiny_cfm

SCALE = 1.7  # a mel scale other than 1, so dividing and multiplying by it is tested


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("student")
    cfm = synthetic.random_student(TINY_ARCH, seed=3, std=0.2)
    teacher = synthetic.random_student(TINY_ARCH, seed=4, std=0.2)
    return synthetic.save_student(cfm, root / "student.pt", SCALE, teacher)


@pytest.fixture(scope="module")
def loaded(student_file):
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm(loader.STUDENT_MODEL, TINY_ARCH, vocab)
    scale = loader.load_weights(cfm, student_file, student=True)
    return cfm.eval(), scale


@pytest.fixture(scope="module")
def request_():
    return sample_request()


def reference_student(dit, ref, tokens, frames, noise, scale, sway=-1.0):
    """DMOSpeech 2's ``_student_sampling`` from step 0 (no teacher), as read: the reference
    mel divided by the scale, zero-padded, is both the condition and the first estimate; each
    step mixes fresh noise and the estimate at time t and takes one conditional forward."""
    steps = noise.shape[0]
    t_all = torch.tensor([i / steps for i in range(steps)])
    t_all = t_all + sway * (torch.cos(math.pi / 2 * t_all) - 1 + t_all)
    cond = F.pad(ref / scale, (0, 0, 0, frames - ref.shape[0]))[None]
    x1 = cond.clone()
    for i, t in enumerate(t_all):
        phi = (1 - t) * noise[i][None] + t * x1
        pred = dit(
            x=phi,
            cond=cond,
            text=tokens[None],
            time=t[None],
            drop_audio_cond=False,
            drop_text=False,
        )
        x1 = phi + (1 - t) * pred
    return (x1 * scale)[0]


def test_checkpoint_layout_and_scale(student_file, loaded):
    cfm, scale = loaded
    assert scale == pytest.approx(SCALE)
    raw = torch.load(str(student_file), weights_only=True)
    want = raw["model_state_dict"]["feedforward_model.transformer_blocks.0.attn.to_q.weight"]
    assert torch.equal(cfm.transformer.transformer_blocks[0].attn.to_q.weight, want)


def test_wrong_model_for_the_file_is_named(student_file, tmp_path):
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    f5 = loader.build_cfm("F5TTS_Base", TINY_ARCH, vocab)
    with pytest.raises(WeightsUnusable, match="model: DMOSpeech2"):
        loader.load_weights(f5, student_file)
    plain = save_checkpoint(tiny_cfm(0, "F5TTS_Base"), tmp_path / "f5.pt", "plain-pt")
    with pytest.raises(WeightsUnusable, match="no student weights"):
        loader.load_weights(f5, plain, student=True)


def test_student_times_are_the_reference_steps():
    assert torch.allclose(sampler.student_times(4, None), torch.tensor([0, 0.25, 0.5, 0.75]))
    t = sampler.student_times(4, -1.0)
    assert torch.allclose(t, 1 - torch.cos(math.pi / 2 * torch.tensor([0, 0.25, 0.5, 0.75])))


def reference_case(loaded, request_, new: int, steps: int, seed: int):
    """(frames, per-step noise, the reference sampler's mel) for ``new`` frames after the
    reference clip."""
    cfm, scale = loaded
    ref, tokens = request_
    frames = ref.shape[0] + new
    noise = torch.randn(steps, frames, 100, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want = reference_student(cfm.transformer, ref, tokens, frames, noise, scale)
    return frames, noise, want


@pytest.mark.parametrize("steps", [4, 2])
def test_fp32_student_matches_reference(loaded, request_, steps):
    cfm, scale = loaded
    ref, tokens = request_
    frames, noise, want = reference_case(loaded, request_, 60, steps, seed=11)
    fast = fastdit.FastDiT(cfm.transformer, guided=False, mel_scale=scale)
    job = sampler.Job(ref, tokens, frames, noise=noise)
    got = sampler.sample_student_eager(fast, [job], steps, -1.0)[0]
    new = slice(ref.shape[0], frames)
    assert want[new].abs().mean() > 0.1  # the random student really does something
    assert rel(got[new], want[new]) <= 1e-5


def test_padded_student_batch_matches_reference(loaded, request_):
    """Two requests of different lengths in one batch (the shorter one masked)."""
    cfm, scale = loaded
    ref, tokens = request_
    frames, noise, want = reference_case(loaded, request_, 40, 4, seed=5)
    fast = fastdit.FastDiT(cfm.transformer, guided=False, mel_scale=scale)
    jobs = [sampler.Job(ref, tokens, frames, noise=noise), sampler.Job(ref, tokens, frames + 33)]
    got = sampler.sample_student_eager(fast, jobs, 4, -1.0)[0]
    new = slice(ref.shape[0], frames)
    assert rel(got[new], want[new]) <= 1e-5


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 1e-2), (torch.bfloat16, 3e-2)])
def test_half_precision_student_close_to_fp32_reference(loaded, request_, student_file, dtype, tol):
    _, scale = loaded
    ref, tokens = request_
    frames, noise, want = reference_case(loaded, request_, 50, 4, seed=9)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    half = loader.build_cfm(loader.STUDENT_MODEL, TINY_ARCH, vocab)
    loader.load_weights(half, student_file, student=True)
    fast = fastdit.FastDiT(half.eval().to(dtype).transformer, guided=False, mel_scale=scale)
    got = sampler.sample_student_eager(
        fast, [sampler.Job(ref, tokens, frames, noise=noise)], 4, -1.0
    )[0]
    new = slice(ref.shape[0], frames)
    assert torch.isfinite(got).all() and rel(got[new], want[new]) <= tol


def test_guided_model_refused_by_the_student_sampler(loaded, request_):
    cfm, _ = loaded
    ref, tokens = request_
    with pytest.raises(ValueError, match="unguided"):
        sampler.sample_student_eager(
            fastdit.FastDiT(cfm.transformer), [sampler.Job(ref, tokens, ref.shape[0] + 9)], 4, -1.0
        )


# ---- duration predictor ------------------------------------------------------------------

# 8 heads, as the reference (the head count is not in the weights, so ``read`` assumes it).
SMALL = {
    "vocab_size": 2545,
    "hidden": 32,
    "text_layers": 2,
    "cross_layers": 2,
    "heads": 8,
    "classes": 301,
}


def _mha(x, mem, w_in, b_in, w_out, b_out, heads, mask=None):
    d = x.shape[-1]
    q = x @ w_in[:d].T + b_in[:d]
    k = mem @ w_in[d : 2 * d].T + b_in[d : 2 * d]
    v = mem @ w_in[2 * d :].T + b_in[2 * d :]

    def split(t):
        return t.view(t.shape[0], -1, heads, d // heads).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    out = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(x.shape)
    return out @ w_out.T + b_out


def _ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def reference_predictor(sd, text_ids, mel, heads):
    """``SpeechLengthPredictor.forward`` re-derived: post-norm layers (attention, add, norm;
    ReLU feed-forward, add, norm), sin/cos positions, a causal decoder over mel frames."""

    def pe(n, dim):
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
        out = torch.zeros(n, dim)
        out[:, 0::2], out[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        return out

    def ff(x, p):
        h = torch.relu(x @ sd[p + "linear1.weight"].T + sd[p + "linear1.bias"])
        return h @ sd[p + "linear2.weight"].T + sd[p + "linear2.bias"]

    def attn(x, mem, p, mask=None):
        return _mha(
            x,
            mem,
            sd[p + "in_proj_weight"],
            sd[p + "in_proj_bias"],
            sd[p + "out_proj.weight"],
            sd[p + "out_proj.bias"],
            heads,
            mask,
        )

    dim = sd["text_embedder.weight"].shape[1]
    x = sd["text_embedder.weight"][text_ids] + pe(text_ids.shape[1], dim)
    i = 0
    while f"text_encoder.layers.{i}.linear1.weight" in sd:
        p = f"text_encoder.layers.{i}."
        x = _ln(x + attn(x, x, p + "self_attn."), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        x = _ln(x + ff(x, p), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        i += 1
    y = mel @ sd["mel_embedder.weight"].T + sd["mel_embedder.bias"] + pe(mel.shape[1], dim)
    causal = torch.triu(torch.ones(mel.shape[1], mel.shape[1]), diagonal=1).bool()
    i = 0
    while f"decoder.layers.{i}.linear1.weight" in sd:
        p = f"decoder.layers.{i}."
        y = _ln(
            y + attn(y, y, p + "self_attn.", causal), sd[p + "norm1.weight"], sd[p + "norm1.bias"]
        )
        y = _ln(y + attn(y, x, p + "multihead_attn."), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        y = _ln(y + ff(y, p), sd[p + "norm3.weight"], sd[p + "norm3.bias"])
        i += 1
    return y @ sd["predictor.weight"].T + sd["predictor.bias"]


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory):
    model = synthetic.random_predictor(seed=2, **SMALL)
    return synthetic.save_predictor(model, tmp_path_factory.mktemp("dp") / "dp.pt")


def test_predictor_matches_reference_math(predictor_file, request_):
    ref, tokens = request_
    model = duration.read(predictor_file, torch.device("cpu"))  # sizes read from the weights
    assert model.text_encoder.num_layers == 2 and model.classes == 301
    sd = torch.load(str(predictor_file), weights_only=True)["model_state_dict"]
    with torch.no_grad():
        got = model(tokens[None], ref[None])
        want = reference_predictor(sd, tokens[None], ref[None], heads=8)
    assert got.shape == (1, ref.shape[0], 301)
    assert rel(got, want) <= 1e-5


def test_predictor_window_and_fallback(request_):
    ref, tokens = request_
    model = synthetic.random_predictor(seed=4, **SMALL)
    with torch.no_grad():
        logits = model(tokens[None], ref[None])[0, -1]
    for rate in (57, 230, 1200):
        est = rate // 10
        lo, hi = max(int(est * 0.7), 0), min(int(est * 1.7), 301)
        masked = torch.full_like(logits, float("-inf"))
        masked[lo:hi] = logits[lo:hi]
        assert model.frames(tokens, ref, rate) == int(masked.argmax()) * 10
    assert model.frames(tokens, ref, 9) is None  # no class in the window: keep the estimate
    assert model.frames(tokens, ref, 10_000) is None


def test_predictor_file_errors(tmp_path, student_file):
    with pytest.raises(ValueError, match="duration predictor"):
        duration.read(student_file, torch.device("cpu"))


# ---- the engine --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(student_file, predictor_file, tmp_path_factory):
    voc = save_vocoder(tmp_path_factory.mktemp("voc") / "vocos")
    e = F5Engine(
        {
            "model": "DMOSpeech2",
            "checkpoint": str(student_file),
            "vocoder": str(voc),
            "arch": dict(TINY_ARCH),
            "device": "cpu",
            "compile": False,
            "cuda_graphs": False,
            "seed": 1,
            "duration_predictor": str(predictor_file),
        }
    )
    lines: list[str] = []
    voices = {"rate": Voice("rate"), "learned": Voice("learned", options={"duration": "predictor"})}
    e.load(voices, lines.append)
    assert e.predictor is not None  # loaded because a voice asks for it
    e.warmup(lines.append)
    return e


def test_engine_serves_the_student(engine):
    d = engine.describe()
    assert d["steps"] == 4 and d["guidance"] is False
    assert engine.fast is not None and engine.fast.mel_scale == pytest.approx(SCALE)
    chunks = list(engine.synthesize("Hello chat, 你好！", "rate"))
    assert chunks and all(np.isfinite(c).all() and c.dtype == np.float32 for c in chunks)
    a = np.concatenate(list(engine.synthesize("主播666", "rate")))
    b = np.concatenate(list(engine.synthesize("主播666", "rate")))
    assert np.array_equal(a, b)  # seeded: the per-step noise is reproducible


def test_engine_duration_from_the_predictor(engine):
    voice = engine.voices["learned"]
    assert voice.duration == "predictor" and engine.voices["rate"].duration == "rate"
    text = "Thanks for the follow, 谢谢关注！"
    got = engine.new_frames(voice, text)
    assert got % 10 == 0 and got != voice.rate.frames(text)
    audio = np.concatenate(list(engine.synthesize(text, "learned")))
    assert abs(len(audio) - got * 256) <= 256 + engine.options.cross_fade * 24000
