"""Audio as bytes for an HTTP answer, encoded chunk by chunk as the engine makes it: ``pcm``
(16-bit signed little-endian mono, no header), ``wav`` (the same behind a RIFF header whose
sizes say "unknown length", as streaming servers send it) and ``mp3`` (constant bit rate,
through libsndfile's LAME encoder, which the soundfile wheels bundle: no new dependency)."""

from __future__ import annotations

import io
import struct
from typing import Protocol

import numpy as np
import soundfile as sf

CONTENT_TYPES = {"pcm": "audio/pcm", "wav": "audio/wav", "mp3": "audio/mpeg"}
UNKNOWN_SIZE = 0xFFFFFFFF  # a streamed RIFF's sizes: decoders read to the end


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


class _Appended(io.RawIOBase):
    """A write-only file that keeps only what is appended: libsndfile seeks back at close to
    fill in a header, which a stream already sent cannot take (CBR MP3 needs none)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.pos = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.pos == self.size:
            self.out += data
        self.pos += len(data)
        self.size = max(self.size, self.pos)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def take(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out


class Mp3Encoder:
    def __init__(self, sample_rate: int) -> None:
        self._file = _Appended()
        self._sf = sf.SoundFile(
            self._file,
            "w",
            sample_rate,
            1,
            format="MP3",
            bitrate_mode="CONSTANT",  # a variable rate needs a header rewritten at the end
            compression_level=0.5,
        )

    def encode(self, samples: np.ndarray) -> bytes:
        self._sf.write(np.asarray(samples, dtype=np.float32))
        return self._file.take()

    def finish(self) -> bytes:
        self._sf.close()
        return self._file.take()


def mp3_available() -> bool:
    return "MP3" in sf.available_formats()


def encoder(fmt: str, sample_rate: int) -> Encoder:
    if fmt == "mp3":
        return Mp3Encoder(sample_rate)
    return PcmEncoder(sample_rate, header=fmt == "wav")
