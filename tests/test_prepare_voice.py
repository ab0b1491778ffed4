"""tools/prepare_voice.py: a stereo 44.1 kHz clip with silence and hum in, a clean reference out."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "prepare_voice.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prepare_voice", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["prepare_voice"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


pv = load_tool()


def speechlike(seconds: float, rate: int, amplitude: float = 0.05, seed: int = 0) -> np.ndarray:
    """A voiced sound (harmonics of a wandering pitch, syllable-like envelope)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return amplitude * envelope * voiced + 0.001 * rng.standard_normal(len(t))


def clip(speech_s: float, rate: int = 44100, lead: float = 1.0, tail: float = 1.5) -> np.ndarray:
    """Stereo: silence (with a faint noise floor), speech, silence; right channel quieter."""
    rng = np.random.default_rng(1)
    mono = np.concatenate(
        [
            0.0005 * rng.standard_normal(round(lead * rate)),
            speechlike(speech_s, rate),
            0.0005 * rng.standard_normal(round(tail * rate)),
        ]
    )
    return np.stack([mono, 0.5 * mono], axis=1) + 0.01  # plus a DC offset


def test_prepare_trims_resamples_and_normalises() -> None:
    out, report = pv.prepare(clip(5.0), 44100, target_lufs=-20.0, pad_ms=100)
    assert out.dtype == np.float32 and out.ndim == 1
    assert report.source_channels == 2 and report.source_rate == 44100
    # 1 s lead and 1.5 s tail of silence gone, up to the padding and one 20 ms frame.
    assert 5.0 <= report.duration_s <= 5.0 + 2 * 0.1 + 0.05
    assert report.trimmed_head_s == pytest.approx(0.9, abs=0.05)
    assert report.trimmed_tail_s == pytest.approx(1.4, abs=0.05)
    loudness = pyloudnorm.Meter(24000).integrated_loudness(out.astype(np.float64))
    assert loudness == pytest.approx(-20.0, abs=0.3)
    assert abs(float(out.mean())) < 1e-3  # DC removed
    assert report.warnings == []


def test_resampling_keeps_the_pitch() -> None:
    rate = 44100
    t = np.arange(rate * 4) / rate
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    out, _ = pv.prepare(tone, rate, pad_ms=0)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(len(out), 1 / 24000)[spectrum.argmax()] == pytest.approx(440, abs=1)


def test_peaks_cap_the_gain() -> None:
    spiky = speechlike(4.0, 24000, amplitude=0.01)
    spiky[24000] = 0.9  # one click far above the speech
    out, report = pv.prepare(spiky, 24000, target_lufs=-10.0, peak_db=-1.0)
    assert report.peak_limited
    assert float(np.abs(out).max()) <= 10 ** (-1 / 20) + 1e-6
    assert any("peaks limited" in w for w in report.warnings)


@pytest.mark.parametrize(("seconds", "advice"), [(1.5, "record more"), (14.0, "cut it shorter")])
def test_durations_outside_3_to_12_s_warn(seconds: float, advice: str) -> None:
    _, report = pv.prepare(speechlike(seconds, 24000), 24000, pad_ms=0)
    assert any(advice in w for w in report.warnings)


def test_silence_and_crumbs_are_errors() -> None:
    with pytest.raises(pv.VoiceError, match="silent"):
        pv.prepare(np.zeros(48000), 24000)
    with pytest.raises(pv.VoiceError, match="too short"):
        pv.prepare(speechlike(0.2, 24000), 24000, pad_ms=0)


def test_command_line(tmp_path: Path) -> None:
    src, dst = tmp_path / "raw.flac", tmp_path / "voices" / "me.wav"
    sf.write(src, clip(2.0, rate=48000), 48000)
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(src), str(dst)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(dst))
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    assert "warning:" in proc.stderr and "record more" in proc.stderr  # 2 s of speech
    assert "LUFS" in proc.stdout
    bad = subprocess.run(
        [sys.executable, str(TOOL), str(tmp_path / "missing.wav"), str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "cannot read" in bad.stderr
