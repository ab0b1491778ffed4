#!/usr/bin/env python3
"""Prepare a reference voice clip for cloning: mono, 24 kHz, silence trimmed from both ends,
loudness normalised (ITU-R BS.1770 integrated loudness, with a peak ceiling), 16-bit WAV.

    python tools/prepare_voice.py raw.m4a.wav voices/streamer.wav
    python tools/prepare_voice.py raw.flac voices/streamer.wav --target-lufs -20

F5-TTS clones best from 3–12 s of clean speech whose exact transcript goes in ``ref_text``;
a clip outside that range is written anyway, with a warning. Reads what libsndfile reads
(WAV, FLAC, OGG, MP3 with libsndfile ≥ 1.1); convert other formats with ffmpeg first.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.signal import resample_poly

RATE = 24000  # F5-TTS's mel front end
MIN_S, MAX_S = 3.0, 12.0


class VoiceError(ValueError):
    """The input cannot be made into a reference clip (silent, too short, unreadable)."""


@dataclass
class Report:
    source_rate: int
    source_channels: int
    source_s: float
    trimmed_head_s: float = 0.0
    trimmed_tail_s: float = 0.0
    loudness_before: float = float("nan")  # LUFS
    loudness_after: float = float("nan")
    peak_limited: bool = False
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) → (frames,) float64, the channels averaged."""
    audio = np.asarray(audio, dtype=np.float64)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    """Polyphase resampling (anti-aliased) by the exact ratio target/rate."""
    if rate == target:
        return audio
    g = gcd(rate, target)
    return resample_poly(audio, target // g, rate // g)


def speech_bounds(
    audio: np.ndarray, rate: int, threshold_db: float = -40.0, frame_ms: float = 20.0
) -> tuple[int, int]:
    """First and one-past-last sample of frames louder than ``threshold_db`` below the loudest
    frame (relative, so a quiet recording is trimmed like a loud one). Raises on silence."""
    frame = max(1, round(rate * frame_ms / 1000))
    n = len(audio) // frame
    if n == 0:
        raise VoiceError("the clip is shorter than one analysis frame")
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    peak = float(rms.max())
    if peak < 1e-5:  # below -100 dBFS: nothing there
        raise VoiceError("the clip is silent")
    loud = np.flatnonzero(rms >= peak * 10 ** (threshold_db / 20))
    return int(loud[0]) * frame, min(len(audio), (int(loud[-1]) + 1) * frame)


def prepare(
    audio: np.ndarray,
    rate: int,
    *,
    target_lufs: float = -20.0,
    peak_db: float = -1.0,
    threshold_db: float = -40.0,
    pad_ms: float = 150.0,
) -> tuple[np.ndarray, Report]:
    """The prepared clip (float32, mono, 24 kHz) and what was done to it."""
    channels = audio.shape[1] if audio.ndim == 2 else 1
    report = Report(rate, channels, len(audio) / rate)
    x = resample(to_mono(audio), rate)
    x = x - x.mean()  # DC offset would skew trimming and loudness
    start, end = speech_bounds(x, RATE, threshold_db)
    pad = round(RATE * pad_ms / 1000)  # keep soft onsets and the breath after the last word
    start, end = max(0, start - pad), min(len(x), end + pad)
    report.trimmed_head_s = start / RATE
    report.trimmed_tail_s = (len(x) - end) / RATE
    x = x[start:end]
    meter = pyloudnorm.Meter(RATE)
    if len(x) < meter.block_size * RATE:
        raise VoiceError(f"only {len(x) / RATE:.2f} s of sound: too short to measure or clone")
    report.loudness_before = float(meter.integrated_loudness(x))
    x = x * 10 ** ((target_lufs - report.loudness_before) / 20)
    ceiling = 10 ** (peak_db / 20)
    peak = float(np.abs(x).max())
    if peak > ceiling:  # a plain gain, no limiter: keeps the waveform's shape
        x = x * (ceiling / peak)
        report.peak_limited = True
    report.loudness_after = float(meter.integrated_loudness(x))
    report.duration_s = len(x) / RATE
    if report.peak_limited:
        report.warnings.append(
            f"peaks limited the loudness to {report.loudness_after:.1f} LUFS "
            f"(target {target_lufs:.1f}); the clip may be clipped or very dynamic"
        )
    if not MIN_S <= report.duration_s <= MAX_S:
        report.warnings.append(
            f"{report.duration_s:.1f} s of speech: F5-TTS clones best from {MIN_S:.0f}–"
            f"{MAX_S:.0f} s; {'record more' if report.duration_s < MIN_S else 'cut it shorter'}"
        )
    return x.astype(np.float32), report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="a .wav file (16-bit PCM, mono, 24 kHz)")
    p.add_argument("--target-lufs", type=float, default=-20.0, help="default: -20")
    p.add_argument("--peak-db", type=float, default=-1.0, help="peak ceiling, dBFS (default -1)")
    p.add_argument(
        "--threshold-db",
        type=float,
        default=-40.0,
        help="silence: frames this far below the loudest (default -40)",
    )
    p.add_argument("--pad-ms", type=float, default=150.0, help="kept around the speech")
    args = p.parse_args(argv)
    try:
        audio, rate = sf.read(str(args.input), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, OSError) as exc:
        print(f"error: cannot read {args.input}: {exc}", file=sys.stderr)
        return 2
    try:
        out, r = prepare(
            audio,
            rate,
            target_lufs=args.target_lufs,
            peak_db=args.peak_db,
            threshold_db=args.threshold_db,
            pad_ms=args.pad_ms,
        )
    except VoiceError as exc:
        print(f"error: {args.input}: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.output), out, RATE, subtype="PCM_16")
    print(
        f"{args.input} ({r.source_channels} ch, {r.source_rate} Hz, {r.source_s:.2f} s) → "
        f"{args.output} (mono, {RATE} Hz, {r.duration_s:.2f} s)\n"
        f"  trimmed {r.trimmed_head_s:.2f} s before, {r.trimmed_tail_s:.2f} s after; "
        f"loudness {r.loudness_before:.1f} → {r.loudness_after:.1f} LUFS"
    )
    for warning in r.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print("Next: put the clip's exact words in ref_text for this voice in config.yaml.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
