"""The README's first run on a machine where PulseAudio is installed but no sound server runs:
``ishowtts run -c config.yaml --until-idle`` with the shipped config, a real PortAudio that
finds no output. One clear line says so and names the ways out, the retries do not flood the
log, ``/healthz`` says degraded and why, and the run ends (status 1) instead of waiting
forever, the paid demo lines saved for the next start. A sound server that comes up while the
daemon waits is found, and the demo is read."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.audio_utils import PulseServer, start_pulseaudio

pytestmark = [
    pytest.mark.audio,
    pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="PulseAudio is not installed"),
]

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}
PLAYER_NOISE = {"player_open_failed", "player_reopen_failed", "player_stream_lost",
                "output_not_playing_yet"}  # fmt: skip


def no_sound_machine(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose PulseAudio is installed but not running (and will not
    be autospawned), offline with an empty hub cache: the shipped config speaks with eSpeak."""
    (tmp_path / "home").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "client.conf").write_text("autospawn = no\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PULSE_") and k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    }
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_RUNTIME_DIR=str(tmp_path / "run"),
        PULSE_CLIENTCONFIG=str(tmp_path / "client.conf"),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "empty-hf"),
    )
    return env


def shipped_config(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    assert config["player"]["device"] is None  # the default output, as shipped
    config["api"]["port"] = 0
    config["log"]["format"] = "json"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return path


class Run:
    """``ishowtts run --until-idle`` as a process, its JSON log lines read as they come."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", str(config)],
            cwd=config.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.raw: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.raw.append(raw)
            if raw.startswith("{"):
                line = json.loads(raw)
                self.lines.append(line)
                self._new.put(line)

    def event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.get("event") == name:
                return line
        raise AssertionError(f"no {name!r} line in {timeout} s:\n{''.join(self.raw)[-3000:]}")

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(timeout=10)  # every line read

    def named(self, name: str) -> list[dict[str, Any]]:
        return [ln for ln in self.lines if ln.get("event") == name]

    def assert_every_event_closed_once(self) -> None:
        received = [ln["id"] for ln in self.named("received")]
        closed = [ln["id"] for ln in self.lines if ln.get("event") in TERMINAL]
        assert received and sorted(closed) == sorted(received), (received, closed)


def healthz(port: int) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_no_sound_server_one_line_degraded_and_the_run_ends(tmp_path: Path) -> None:
    run = Run(shipped_config(tmp_path), no_sound_machine(tmp_path))
    port = run.event("api_listening")["port"]
    said = run.event("no_sound_output")
    run.event("ready")
    status, body = healthz(port)
    assert status == 503 and body["status"] == "degraded"
    assert "no sound output" in body["reasons"]["player"], body

    code = run.wait()
    assert code == 1, "".join(run.raw)[-3000:]
    # -- one clear line: what is missing and the three ways out --------------------------------
    assert said["level"] == "error"
    assert str(tmp_path / "run" / "pulse" / "native") in said["reason"]
    ways = said["ways_out"]
    assert "PulseAudio" in ways and "PipeWire" in ways
    assert "player.device: none" in ways and "/overlay?audio=1" in ways
    # -- the retries (one every few seconds for 20 s) say nothing more -------------------------
    assert len(run.named("no_sound_output")) == 1
    noise = [ln for ln in run.lines if ln.get("event") in PLAYER_NOISE]
    assert noise == [], noise
    assert not any("Error querying device" in raw for raw in run.raw)
    # -- the run ends, every event accounted for, the paid demo lines kept ---------------------
    gave_up = run.named("no_output_gave_up")
    assert len(gave_up) == 1 and "no sound output" in gave_up[0]["error"]
    assert run.named("exit")[-1]["code"] == 1
    run.assert_every_event_closed_once()
    saved = [ln for ln in run.lines if ln.get("event") == "removed" and ln.get("rule") == "saved"]
    paid = {
        ln["id"] for ln in run.named("received") if ln["kind"] in ("super_chat", "gift", "guard")
    }
    assert saved and {ln["id"] for ln in saved} <= paid
    assert run.named("pending_saved")[0]["count"] == len(saved)


def test_a_sound_server_started_meanwhile_is_found_and_the_demo_read(tmp_path: Path) -> None:
    env = no_sound_machine(tmp_path)
    base = tmp_path / "later-pulse"  # where the user's server will be once started
    env.update(PULSE_SERVER=f"unix:{base}/run/pulse/native", PULSE_SINK="obs_tts")
    run = Run(shipped_config(tmp_path), env)
    server: PulseServer | None = None
    try:
        assert str(base) in run.event("no_sound_output")["reason"]
        server = start_pulseaudio(base)
        reopened = run.event("player_reopened", timeout=30)
        code = run.wait()
    finally:
        if server is not None:
            server.stop()
    assert code == 0, "".join(run.raw)[-3000:]
    assert reopened["attempts"] >= 1
    run.assert_every_event_closed_once()
    assert not run.named("no_output_gave_up")
    # Heard once the server was there; every paid line read (or merged into one that was).
    spoken = run.named("spoken")
    assert spoken and all(ln["timestamp"] > reopened["timestamp"] for ln in spoken)
    fates = {ln["id"]: ln for ln in run.lines if ln.get("event") in TERMINAL}
    paid = [ln["id"] for ln in run.named("received") if ln["kind"] in ("super_chat", "gift")]
    assert paid and all(
        fates[i]["event"] == "spoken" or fates[i].get("rule") == "merged" for i in paid
    ), [fates[i] for i in paid]


def test_devices_says_why_there_is_none(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ishowtts", "devices"], cwd=ROOT, env=no_sound_machine(tmp_path),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    first, ways = run.stdout.splitlines()
    assert first.startswith("no sound output: no PulseAudio or PipeWire server answers at ")
    assert str(tmp_path / "run" / "pulse" / "native") in first
    assert ways.startswith("Ways out: start PulseAudio or PipeWire")
