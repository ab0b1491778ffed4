"""End to end with the real F5 engine on the CPU: a tiny random checkpoint and vocoder saved on
disk and loaded through the real loader, the daemon replaying chat into the PulseAudio null sink.
With a fixed seed the engine is deterministic, so what the sink's monitor heard must be the very
audio ``ishowtts say --out`` makes for the same line, in the order the queue dictates."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.audio_utils import Recorder, sound_segments
from tests.f5_tiny import tiny_files

pytestmark = pytest.mark.audio

SR = 24000
# The super chat arrives last but is read right after the first line. It has its own voice, so
# the wrong order cannot look right (tiny random models sound alike for one voice and seed).
ORDER = ["大家好，今天我们来玩一个新游戏。", "谢谢老板的醒目留言", "hello chat 666"]


def _config(tmp_path: Path) -> Path:
    engine = {"type": "f5", **tiny_files(tmp_path / "model"), "seed": 7, "steps": 7}
    config = {
        "engine": engine,
        "voices": {"default": {"language": "zh"}, "sc": {"language": "en"}},
        "routing": {"default": "default", "kinds": {"super_chat": "sc"}},
        "connectors": [{"type": "replay", "path": "chat.jsonl"}],
        "speech": {"templates": {"danmaku": "{text}", "super_chat": "{text}"}},
        "player": {"device": "pulse", "lookahead_s": 0.5},
        "api": {"enabled": False},
        "log": {"format": "json"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _ishowtts(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PULSE_SINK": "obs_tts"}
    return subprocess.run(
        [sys.executable, "-m", "ishowtts", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _best_match(heard: np.ndarray, clip: np.ndarray) -> tuple[int, float]:
    """Where ``clip`` lies in ``heard`` (sample offset) and the normalised correlation there."""
    n = len(heard) + len(clip)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(clip, size)), size)
    xc = xc[: len(heard) - len(clip) + 1]
    at = int(np.argmax(xc))
    window = heard[at : at + len(clip)]
    corr = float(xc[at] / (np.linalg.norm(window) * np.linalg.norm(clip) + 1e-12))
    return at, corr


def test_daemon_speaks_f5_audio_into_the_sink(pulse, tmp_path: Path) -> None:
    _config(tmp_path)
    events = [
        {"t": 0.0, "kind": "danmaku", "user": {"id": "1", "name": "a"}, "text": ORDER[0]},
        {"t": 0.05, "kind": "danmaku", "user": {"id": "2", "name": "b"}, "text": ORDER[2]},
        {"t": 0.1, "kind": "super_chat", "user": {"id": "3", "name": "c"}, "text": ORDER[1],
         "amount": 30},
    ]  # fmt: skip
    (tmp_path / "chat.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )

    # What the engine makes for each line, alone (same seed, so the same samples).
    clips = {}
    for i, text in enumerate(ORDER):
        out = tmp_path / f"say{i}.wav"
        voice = "sc" if text == ORDER[1] else "default"
        said = _ishowtts(
            "say", text, "--voice", voice, "--out", str(out), "-c", "config.yaml", cwd=tmp_path
        )
        assert said.returncode == 0, said.stderr[-3000:]
        clips[text], sr = sf.read(out, dtype="float32")
        assert sr == SR and len(clips[text]) > 0.5 * SR

    with Recorder(sample_rate=SR) as recorder:
        run = _ishowtts("run", "--until-idle", "-c", "config.yaml", cwd=tmp_path)
        heard = recorder.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    spoken = [r for r in lines if r.get("event") == "spoken"]
    assert len(spoken) == 3, [r for r in lines if r.get("event") in ("failed", "dropped")]
    ready = next(r for r in lines if r.get("event") == "ready")
    assert ready["engine"] == "f5" and ready["device"] == "cpu"

    # Each line was heard, whole, as the engine made it, in priority order and back to back:
    # each one is found where the previous one ended (fades aside, no gap over 50 ms).
    assert sound_segments(heard, SR), "nothing was heard"
    at, corr = _best_match(heard, clips[ORDER[0]])
    assert corr > 0.9, f"first line: best correlation {corr:.3f}"
    slack = int(0.05 * SR)
    for before, text in itertools.pairwise(ORDER):
        end = at + len(clips[before])
        window = heard[max(0, end - slack) : end + slack + len(clips[text])]
        found, corr = _best_match(window, clips[text])
        assert corr > 0.9, f"{text!r} not heard right after {before!r} ({corr:.3f})"
        at = max(0, end - slack) + found


def test_shipped_config_replays_the_demo_to_the_end(pulse, tmp_path: Path) -> None:
    """``config.yaml`` as shipped, but for the weights (tiny, local) and the output device: the
    bundled demo log goes through the whole path and every event ends in one terminal state."""
    root = Path(__file__).resolve().parent.parent
    config = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    config["engine"].update(tiny_files(tmp_path / "model"), steps=7)
    config["connectors"][0]["speed"] = 4.0
    config["player"]["device"] = "pulse"
    config["api"]["port"] = 0  # any free port: the API runs as shipped, without clashing
    config["log"]["format"] = "json"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")

    with Recorder(sample_rate=SR) as recorder:
        run = _ishowtts("run", "--until-idle", "-c", "config.yaml", cwd=tmp_path)
        heard = recorder.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    received = {r["id"] for r in lines if r.get("event") == "received"}
    terminal = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
    ended = [r for r in lines if r.get("event") in terminal]
    assert len(received) >= 15 and sorted(r["id"] for r in ended) == sorted(received)
    states = {r["event"] for r in ended}
    assert "failed" not in states and {"spoken", "dropped", "removed"} <= states, states
    assert sound_segments(heard, SR), "nothing was heard"
