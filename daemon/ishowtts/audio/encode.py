"""Audio as bytes for an HTTP answer, encoded chunk by chunk as the engine makes it: ``pcm``
(16-bit signed little-endian mono, no header), ``wav`` (the same behind a RIFF header whose
sizes say "unknown length", as streaming servers send it) and ``mp3`` (constant bit rate,
through LAME: lameenc's wheels carry it for x86-64 and aarch64, where the Jetson's system
libsndfile, which soundfile uses there, is too old to write MP3)."""

from __future__ import annotations

import struct
from typing import Protocol

import lameenc
import numpy as np

CONTENT_TYPES = {"pcm": "audio/pcm", "wav": "audio/wav", "mp3": "audio/mpeg"}
UNKNOWN_SIZE = 0xFFFFFFFF  # a streamed RIFF's sizes: decoders read to the end
MP3_KBPS = 64  # mono speech: transparent enough, a tenth of the PCM
FORMATS = ("mp3", "wav", "pcm")


class Encoder(Protocol):
    def encode(self, samples: np.ndarray) -> bytes: ...
    def finish(self) -> bytes: ...


def pcm16(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] → 16-bit signed little-endian (clipped, never wrapped)."""
    clipped = np.clip(samples, -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono PCM RIFF header with unknown sizes."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


class PcmEncoder:
    def __init__(self, sample_rate: int, header: bool) -> None:
        self._pending = wav_header(sample_rate) if header else b""

    def encode(self, samples: np.ndarray) -> bytes:
        out, self._pending = self._pending + pcm16(samples), b""
        return out

    def finish(self) -> bytes:
        out, self._pending = self._pending, b""
        return out


class Mp3Encoder:
    """Constant bit rate MP3 through LAME (lameenc), frame by frame as the audio comes."""

    def __init__(self, sample_rate: int) -> None:
        self._lame = lameenc.Encoder()
        self._lame.set_in_sample_rate(sample_rate)
        self._lame.set_channels(1)
        self._lame.set_bit_rate(MP3_KBPS)
        self._lame.set_quality(5)  # LAME's speed/quality middle: far faster than real time

    def encode(self, samples: np.ndarray) -> bytes:
        return bytes(self._lame.encode(pcm16(samples)))

    def finish(self) -> bytes:
        return bytes(self._lame.flush())


def encoder(fmt: str, sample_rate: int) -> Encoder:
    if fmt == "mp3":
        return Mp3Encoder(sample_rate)
    return PcmEncoder(sample_rate, header=fmt == "wav")
