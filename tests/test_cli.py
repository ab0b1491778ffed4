"""The ``ishowtts`` command as an operator runs it: configuration faults, voices included, are
found before any model loads and reported in one line with exit status 2."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ishowtts.engines.f5.voices import ClipLimits, read_clip

ROOT = Path(__file__).resolve().parent.parent

# F5 with random weights: no checkpoint is read, so a config needs no model files; the voice
# checks are the real ones.
F5 = """\
engine: {{type: f5, random_weights: true, device: cpu}}
voices:
  default:
    ref_audio: {clip}
    ref_text: hello there
"""


def ishowtts(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ishowtts", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def tone(seconds: float, rate: int = 24000, amplitude: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("audio", "problem"),
    [
        (tone(20.0), "is 20.00 s long; it must be 1–15 s"),
        (tone(3.0, amplitude=0.0), "is silent (RMS 0.00e+00)"),
        (None, "does not exist"),
    ],
    ids=["too long", "silent", "missing"],
)
def test_a_bad_voice_clip_is_a_config_error_for_check_config_and_run(
    tmp_path: Path, audio: np.ndarray | None, problem: str
) -> None:
    clip = tmp_path / "voice.wav"
    if audio is not None:
        sf.write(clip, audio, 24000)
    config = tmp_path / "config.yaml"
    config.write_text(F5.format(clip="voice.wav"))
    for command in ("check-config", "run"):
        result = ishowtts(command, "-c", str(config))
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, lines)
        assert lines[0].startswith(f"config error: voices.default: reference clip {clip} ")
        assert problem in lines[0] and lines[0].endswith("(config.yaml:4)")


def test_check_config_passes_a_good_voice(tmp_path: Path) -> None:
    sf.write(tmp_path / "voice.wav", tone(3.0), 24000)
    config = tmp_path / "config.yaml"
    config.write_text(F5.format(clip="voice.wav"))
    result = ishowtts("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{config}: OK" in result.stdout


def sparse_wav(path: Path, seconds: int, rate: int = 8000) -> Path:
    """A 16-bit mono WAV of ``seconds`` of silence that takes no disk space (a sparse file)."""
    data = seconds * rate * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    with path.open("wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", data))
        f.truncate(44 + data)
    return path


def test_a_long_clip_is_refused_from_its_header_without_decoding_it(tmp_path: Path) -> None:
    clip = sparse_wav(tmp_path / "hour.wav", 3600)  # 28.8 M samples: 115 MB as float32
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"is 3600\.00 s long"):
            read_clip("default", clip, ClipLimits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@pytest.mark.parametrize("text", ["", "   ", "😀😀🎉", "？！…"])
def test_say_with_nothing_to_say_is_refused(tmp_path: Path, text: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("engine: {type: tone}\n")
    out = tmp_path / "out.wav"
    result = ishowtts("say", text, "--out", str(out), "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("nothing to say: ")
    assert "RTF" not in result.stderr and not out.exists()


def test_say_writes_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("engine: {type: tone}\n")
    out = tmp_path / "out.wav"
    result = ishowtts("say", "你好 hello", "--out", str(out), "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert sf.info(str(out)).frames > 0


@pytest.mark.parametrize(
    ("out", "problem"), [(".", "is a folder; name a file"), ("no/such/x.wav", "no folder")]
)
def test_say_to_an_unwritable_place_says_so_before_speaking(
    tmp_path: Path, out: str, problem: str
) -> None:
    """A folder gave a TypeError traceback from soundfile (exit 1), after the synthesis."""
    config = tmp_path / "config.yaml"
    config.write_text("engine: {type: tone}\n")
    result = ishowtts("say", "hello", "--out", str(tmp_path / out), "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr and "Traceback" not in result.stderr
    assert "RTF" not in result.stderr  # refused before anything was made


def test_say_writes_wav_whatever_the_name(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("engine: {type: tone}\n")
    out = tmp_path / "hello.out"  # no suffix soundfile knows: it raised TypeError
    result = ishowtts("say", "hello", "--out", str(out), "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert sf.info(str(out)).format == "WAV"


def test_offline_a_checkpoint_missing_from_the_hub_cache_is_a_config_error(tmp_path: Path) -> None:
    """Found by check-config; run and say stop there too, one line each, before any model."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "engine:\n  type: f5\n  device: cpu\n  checkpoint: hf://nobody/nothing/model.safetensors\n"
        "  vocoder: hf://nobody/vocoder\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    for command in (["check-config"], ["run"], ["say", "hello", "--out", str(tmp_path / "a.wav")]):
        result = ishowtts(*command, "-c", str(config), env=env)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert [line.split(":")[1].strip() for line in lines] == [
            "engine.checkpoint",
            "engine.vocoder",
        ], lines
        assert "HF_HUB_OFFLINE is set and the file is not in the hub cache" in lines[0]
        assert lines[0].endswith("(config.yaml:4)") and lines[1].endswith("(config.yaml:5)")


def test_an_unreachable_hub_at_load_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Online but the hub does not answer: exit 1 (a later start may reach it), one line."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "engine:\n  type: f5\n  device: cpu\n  checkpoint: hf://nobody/nothing/model.safetensors\n"
        "log: {format: json}\n"
    )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: nothing listens
    }
    env.pop("HF_HUB_OFFLINE", None)
    for command in (["say", "hello", "--out", str(tmp_path / "a.wav")], ["run"]):
        result = ishowtts(*command, "-c", str(config), env=env)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert "cannot get 'model.safetensors' from the hub repo 'nobody/nothing'" in result.stderr


HANGUP_EARLY = """
import os, signal, sys
from ishowtts.shell import cli
real = cli.load_config
def load_then_hangup(path):  # systemctl reload while a slow config load (F5: torch) runs
    os.kill(os.getpid(), signal.SIGHUP)
    return real(path)
cli.load_config = load_then_hangup
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_sighup_before_the_daemon_handles_it_is_a_reload_not_a_kill(tmp_path: Path) -> None:
    replay = tmp_path / "chat.jsonl"
    replay.write_text('{"t": 0, "user": {"id": "1", "name": "a"}, "text": "hello"}\n')
    config = tmp_path / "config.yaml"
    config.write_text(
        "engine: {type: tone, seconds_per_char: 0.01}\n"
        f"connectors: [{{type: replay, path: {replay}}}]\n"
        "player: {device: none}\napi: {enabled: false}\nlog: {format: json}\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", HANGUP_EARLY, "run", "-c", str(config), "--until-idle"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    events = [json.loads(line).get("event") for line in run.stderr.splitlines() if line[:1] == "{"]
    assert "reload_deferred" in events and "reloaded" in events and "spoken" in events
    assert events.index("ready") < events.index("reloaded")
