"""The f5 engine end to end on the CPU: tiny random model and vocoder on disk, shipped and
custom reference clips, streaming chunks, errors at load time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from ishowtts.engines import Engine, EngineError, Voice
from ishowtts.engines.f5 import F5Engine
from tests.f5_tiny import tiny_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny_files(tmp_path_factory.mktemp("f5"))


@pytest.fixture(scope="module")
def engine(files):
    e = F5Engine({**files, "seed": 1})
    lines: list[str] = []
    e.load({"default": Voice("default"), "zh": Voice("zh")}, lines.append)
    e.warmup(lines.append)
    assert any("ready" in line for line in lines) and any("warm-up" in line for line in lines)
    return e


def test_is_an_engine_with_defaults_from_the_shipped_clips(engine):
    assert isinstance(engine, Engine)
    d = engine.describe()
    assert d["device"] == "cpu" and d["precision"] == "float32" and d["voices"] == ["default", "zh"]
    assert engine.voices["default"].path.name == "basic_ref_en.wav"
    assert engine.voices["zh"].path.name == "basic_ref_zh.wav"


def test_long_text_streams_in_chunks_first_sentence_first(engine):
    text = "Hello chat! 今天是2024年5月1日，涨了50%。" + " Thanks for the follow." * 20
    plan = engine.plan(text, engine.voices["default"])
    assert len(plan) >= 2 and plan[0] == "Hello chat!"
    chunks = list(engine.synthesize(text, "default"))
    assert len(chunks) >= 2
    assert all(c.dtype == np.float32 and c.ndim == 1 and np.isfinite(c).all() for c in chunks)
    # The first chunk is the first sentence only, so it is short.
    rate = engine.voices["default"].rate
    first_max = rate.frames("Hello chat!") * 256
    assert len(chunks[0]) <= first_max


def test_same_seed_same_audio(engine):
    a = np.concatenate(list(engine.synthesize("主播666", "zh")))
    b = np.concatenate(list(engine.synthesize("主播666", "zh")))
    assert np.array_equal(a, b) and len(a) > 0


def test_short_message_gets_the_floor_duration(engine):
    audio = np.concatenate(list(engine.synthesize("好", "zh")))
    assert len(audio) >= engine.options.min_seconds * 24000 - 512


def test_emoji_only_says_nothing(engine):
    assert list(engine.synthesize("😂😂 (╯°□°）╯︵ ┻━┻", "default")) == []


def test_unknown_voice_is_an_engine_error(engine):
    with pytest.raises(EngineError, match="unknown voice"):
        list(engine.synthesize("hi", "nobody"))


@pytest.mark.parametrize("part", ["model", "vocoder"])
def test_nan_output_fails_the_utterance_naming_the_part(files, part):
    e = F5Engine(files)
    e.load({"v": Voice("v")}, lambda s: None)
    with torch.no_grad():
        weight = e.fast.out_w if part == "model" else e.vocoder.head.out.weight
        weight.fill_(float("nan"))
    with pytest.raises(EngineError, match=f"the {part} produced NaN/inf"):
        list(e.synthesize("hello there", "v"))


def _clip(path, seconds, amp=0.1, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def test_custom_clip_is_resampled_and_used(engine, tmp_path):
    path = _clip(tmp_path / "me.wav", 3.0, sr=16000)
    engine.set_voices({"me": Voice("me", path, "This is my voice.")})
    try:
        v = engine.voices["me"]
        assert abs(v.frames - 3.0 * 24000 / 256) <= 2
        assert len(np.concatenate(list(engine.synthesize("ok then", "me")))) > 0
    finally:
        engine.set_voices({"default": Voice("default"), "zh": Voice("zh")})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.wav", "does not exist"),
        (lambda p: (p / "junk.wav").write_bytes(b"not audio") and p / "junk.wav", "not readable"),
        (lambda p: _clip(p / "short.wav", 0.3), "0.30 s long"),
        (lambda p: _clip(p / "long.wav", 20.0), "20.00 s long"),
        (lambda p: _clip(p / "silent.wav", 3.0, amp=0.0), "silent"),
    ],
)
def test_bad_clip_is_a_load_error_naming_voice_and_file(engine, tmp_path, make, message):
    path = make(tmp_path)
    before = dict(engine.voices)
    with pytest.raises(ValueError, match="'bad'") as err:
        engine.set_voices({"default": Voice("default"), "bad": Voice("bad", path, "words")})
    assert "'bad'" in str(err.value) and path.name in str(err.value) and message in str(err.value)
    assert engine.voices == before  # a failed reload keeps the old voices


def test_offline_with_nothing_local_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    e = F5Engine({"device": "cpu", "hub_cache": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"model_1250000\.safetensors.*HF_HUB_OFFLINE"):
        e.load({"v": Voice("v")}, lambda s: None)


def test_a_v0_checkpoint_loads_and_speaks(tmp_path):
    """F5TTS_Base (v0: RoPE on one head, unmasked text fillers), as many fine-tunes are."""
    e = F5Engine({**tiny_files(tmp_path, model="F5TTS_Base"), "seed": 2})
    e.load({"v": Voice("v")}, lambda s: None)
    assert e.fast is not None and e.fast.rope_heads == 1
    audio = np.concatenate(list(e.synthesize("你好，hello 666", "v")))
    assert len(audio) > 0.5 * 24000 and np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_options_are_validated():
    with pytest.raises(ValueError, match="steps"):
        F5Engine({"steps": 0})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        F5Engine({"nfe": 16})  # unknown key
    assert F5Engine({"device": "cpu"}).dtype == torch.float32


def test_fused_step_can_be_turned_off_and_speaks_the_same(files, engine):
    """``fused_step: false`` runs the plain torch block (an escape hatch for a board where a
    fused kernel misbehaves); on the CPU the fused step (residuals deferred, RoPE in rows)
    gives the same audio within float rounding."""
    assert engine.fast.fuse == frozenset({"residual", "rows"})
    plain = F5Engine({**files, "seed": 1, "fused_step": False})
    plain.load({"zh": Voice("zh")}, lambda line: None)
    assert plain.fast.fuse == frozenset()
    a = np.concatenate(list(engine.synthesize("主播666", "zh")))
    b = np.concatenate(list(plain.synthesize("主播666", "zh")))
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3 * max(np.abs(b).max(), 1e-3)


def test_speed_makes_fewer_frames_for_the_same_text(engine):
    """The daemon raises ``speed`` under a backlog: the model is asked for fewer frames (its own
    duration control), so the line is shorter; nothing is resampled."""
    voice = engine.voices["zh"]
    text = "主播今天唱得真好听，再来一首吧"
    assert engine.new_frames(voice, text, 1.35) == pytest.approx(
        engine.new_frames(voice, text) / 1.35, abs=1
    )
    slow = np.concatenate(list(engine.synthesize(text, "zh")))
    fast = np.concatenate(list(engine.synthesize(text, "zh", speed=1.35)))
    assert 1.25 < len(slow) / len(fast) < 1.45
