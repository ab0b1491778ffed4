"""The README's first command on a machine that cannot get the F5 weights (offline, empty hub
cache, no ``engine.checkpoint``): ``ishowtts run -c config.yaml --until-idle`` with the shipped
config reads the whole demo aloud through the eSpeak NG fallback, Mandarin and English lines,
into the PulseAudio null sink, accounts for every event and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ishowtts.engines import Voice
from ishowtts.engines.espeak import EspeakEngine
from tests.audio_utils import Recorder, sound_segments

pytestmark = pytest.mark.audio

ROOT = Path(__file__).resolve().parent.parent
SR = 24000
TERMINAL = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}


def test_shipped_config_offline_reads_the_demo_with_the_fallback(pulse, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    assert config["engine"]["type"] == "f5" and "checkpoint" not in config["engine"]
    config["player"]["device"] = "pulse"
    config["api"]["port"] = 0  # the API runs as shipped, on any free port
    config["log"]["format"] = "json"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    }
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"), PULSE_SINK="obs_tts")

    with Recorder(sample_rate=SR) as recorder:
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", "config.yaml"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        took = time.monotonic() - started
        heard = recorder.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]

    # -- one loud line says why, and the start-up summary says who speaks ----------------------
    warnings = [r for r in lines if r.get("event") == "engine_fallback"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert warnings[0]["primary"] == "f5" and warnings[0]["fallback"] == "espeak"
    assert warnings[0]["at"] == "start"
    assert "HF_HUB_OFFLINE" in warnings[0]["reason"] and "checkpoint" in warnings[0]["reason"]
    ready = next(r for r in lines if r.get("event") == "ready")
    assert ready["speaking"] == "fallback" and ready["speaking_engine"] == "espeak"

    # -- every event accounted, nothing failed --------------------------------------------------
    received = {r["id"] for r in lines if r.get("event") == "received"}
    ended = [r for r in lines if r.get("event") in TERMINAL]
    assert len(received) >= 15 and sorted(r["id"] for r in ended) == sorted(received)
    states = {r["event"] for r in ended}
    assert "failed" not in states and {"spoken", "dropped", "removed"} <= states, states
    spoken = [r["text"] for r in ended if r["event"] == "spoken"]
    assert any("hello from Twitch" in t for t in spoken), spoken  # English
    assert any("主播晚上好" in t for t in spoken), spoken  # Mandarin
    # The super chat (its template may be the short one when a backlog waits: airtime).
    assert any("支持主播" in t for t in spoken), spoken

    # -- and heard: speech in the sink, as long as eSpeak makes those lines ---------------------
    segments = sound_segments(heard, SR)
    assert segments, "nothing was heard"
    engine = EspeakEngine()
    engine.load({"default": Voice("default", options={"language": "zh"})}, lambda _: None)
    expected_s = sum(
        sum(len(c) for c in engine.synthesize(t, "default")) / SR for t in spoken
    )  # fmt: skip
    loud = np.abs(heard) > 0.02
    # speech has pauses between words: the active part of what eSpeak makes is compared
    active = [np.abs(np.concatenate(list(engine.synthesize(t, "default")))) > 0.02 for t in spoken]
    expected_active_s = sum(a.sum() for a in active) / SR
    heard_active_s = loud.sum() / SR
    assert heard_active_s > 0.8 * expected_active_s, (heard_active_s, expected_active_s)
    assert heard_active_s < 1.2 * expected_active_s + 0.5
    spectrum = np.abs(np.fft.rfft(heard[loud][: 10 * SR]))
    assert (spectrum > 0.1 * spectrum.max()).sum() > 200  # speech, not a tone
    print(f"fallback demo: {took:.1f} s wall, {expected_s:.1f} s of speech, {len(spoken)} spoken")


def test_check_config_offline_warns_that_the_fallback_will_speak(tmp_path: Path) -> None:
    """Missing F5 files are a config error without a fallback (tests/test_cli.py); with the
    shipped config's `fallback: espeak` they are a warning: the daemon will speak anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"))
    result = subprocess.run(
        [sys.executable, "-m", "ishowtts", "check-config", "-c", str(ROOT / "config.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    warnings = [x for x in result.stdout.splitlines() if x.strip().startswith("warning:")]
    assert [w.split(":")[1].strip() for w in warnings] == ["engine.checkpoint", "engine.vocoder"]
    assert "fallback: espeak (it will speak" in result.stdout
