"""Reference voices: clip → mono, resampled, RMS-normalised → mel, kept resident.

Every check happens here, at load time, so a bad clip is a config error naming the voice and the
file rather than a failure at the first chat message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from pydantic import Field
from torch import Tensor, nn

from ...confload import Section
from ..base import Voice
from . import upstream
from .textfront import Rate, normalize

SAMPLE_RATE = 24000
HOP = 256


class F5VoiceOptions(Section):
    """A voice's F5 keys (beside ref_audio, ref_text and speed in the YAML)."""

    steps: int | None = Field(None, ge=1, le=64)  # NFE for this voice; None: engine.steps
    # Without ref_audio: which clip f5-tts ships to use; None: engine.language.
    language: Literal["auto", "en", "zh"] | None = None
    # New speech length: the clip's speaking rate, or DMOSpeech2's learned predictor;
    # None: engine.duration.
    duration: Literal["rate", "predictor"] | None = None


def voice_options(voice: Voice) -> F5VoiceOptions:
    """The voice's F5 options: as validated from the config, or built from a mapping."""
    o = voice.options
    return o if isinstance(o, F5VoiceOptions) else F5VoiceOptions.model_validate(o or {})


@dataclass(frozen=True)
class ClipLimits:
    min_seconds: float = 1.0
    max_seconds: float = 15.0
    min_rms: float = 1e-3  # below this the clip is silence (or nearly)
    target_rms: float = 0.1


@dataclass
class LoadedVoice:
    name: str
    path: Path
    ref_text: str  # normalised, ready to be followed by new text
    speed: float
    steps: int | None
    mel: Tensor  # [n_ref, mel] fp32 on the engine's device
    rate: Rate
    duration: str = "rate"  # rate | predictor: how new speech lengths are estimated

    @property
    def frames(self) -> int:
        return int(self.mel.shape[0])


def pick_default(voice: Voice, language: str) -> tuple[Path, str]:
    """The shipped clip for a voice without ``ref_audio``: the voice's ``language`` option,
    else the engine's, else a hint in the voice name (zh/cn/chinese), else English."""
    clips = upstream.shipped_clips()
    lang = (voice_options(voice).language or language or "auto").lower()
    if lang == "auto":
        name = voice.name.lower()
        lang = "zh" if any(k in name for k in ("zh", "cn", "chinese", "中")) else "en"
    if lang not in clips:
        raise ValueError(f"voice {voice.name!r}: no shipped clip for language {lang!r} (en, zh)")
    path, text = clips[lang]
    return path, (voice.ref_text or text)


def read_clip(name: str, path: Path, limits: ClipLimits) -> np.ndarray:
    """Mono float32 at 24 kHz, RMS-normalised; ValueError naming the voice and file."""
    where = f"voice {name!r}: reference clip {path}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist")
    try:
        # The header first: a clip hours long must be refused before it is decoded (10 h of
        # audio is gigabytes of float32).
        info = sf.info(str(path))
    except Exception as exc:
        raise ValueError(f"{where} is not readable audio ({exc})") from None
    sr = int(info.samplerate)
    seconds = info.frames / sr if sr and info.frames > 0 else 0.0
    if not limits.min_seconds <= seconds <= limits.max_seconds:
        raise ValueError(_length_error(where, seconds, limits))
    try:
        # At most the longest accepted clip, whatever the header said.
        most = int(limits.max_seconds * sr) + 1
        data, sr = sf.read(str(path), frames=most, dtype="float32", always_2d=True)
    except Exception as exc:
        raise ValueError(f"{where} is not readable audio ({exc})") from None
    mono = data.mean(axis=1)
    seconds = len(mono) / sr if sr else 0.0
    if not limits.min_seconds <= seconds <= limits.max_seconds:
        raise ValueError(_length_error(where, seconds, limits))
    if not np.isfinite(mono).all():
        raise ValueError(f"{where} contains NaN/inf samples")
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    if rms < limits.min_rms:
        raise ValueError(f"{where} is silent (RMS {rms:.2e})")
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if sr != SAMPLE_RATE:
        wave = AF.resample(wave, sr, SAMPLE_RATE)
    wave = wave * (limits.target_rms / rms)
    return wave.numpy().astype(np.float32)


def _length_error(where: str, seconds: float, limits: ClipLimits) -> str:
    return (
        f"{where} is {seconds:.2f} s long; it must be {limits.min_seconds:g}–"
        f"{limits.max_seconds:g} s (trim it, or change min/max_ref_seconds)"
    )


def prepare_voice(voice: Voice, limits: ClipLimits, language: str) -> tuple[Path, str, np.ndarray]:
    """Every check of a voice that needs no model: (clip path, normalised transcript, wave).
    ``ishowtts check-config`` runs it alone; a ValueError names the voice and the file."""
    if voice.ref_audio is None:
        path, text = pick_default(voice, language)
    else:
        path, text = Path(voice.ref_audio), voice.ref_text
    ref_text = normalize(text, "drop")
    if not ref_text:
        raise ValueError(f"voice {voice.name!r}: ref_text (the clip's transcript) is empty")
    if voice.speed <= 0:
        raise ValueError(f"voice {voice.name!r}: speed must be positive")
    return path, ref_text, read_clip(voice.name, path, limits)


def load_voice(
    voice: Voice,
    mel_spec: nn.Module,
    device: torch.device,
    limits: ClipLimits,
    language: str,
    min_frames: int,
    duration: str = "rate",
) -> LoadedVoice:
    path, ref_text, wave = prepare_voice(voice, limits, language)
    with torch.no_grad():
        mel = mel_spec(torch.from_numpy(wave)[None])[0].T.contiguous()  # [n, mel]
    # Upstream separates transcript and new text by a space after Latin script.
    if ord(ref_text[-1]) < 0x2E80:
        ref_text += " "
    rate = Rate.from_reference(ref_text, mel.shape[0], min_frames)
    steps = voice_options(voice).steps
    how = voice_options(voice).duration or duration
    return LoadedVoice(voice.name, path, ref_text, voice.speed, steps, mel.to(device), rate, how)
