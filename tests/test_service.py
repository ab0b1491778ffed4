"""``python -m ishowtts run`` as systemd runs it: a subprocess with a notify socket and a
watchdog, driven by signals (SIGHUP reload, SIGTERM drain) and read through its JSON log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio_utils import PulseServer, start_pulseaudio

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}

CONFIG = """\
engine: {{type: tone, seconds_per_char: {spc}}}
connectors:
{connectors}
player: {{device: pulse, lookahead_s: {lookahead}}}
filters:
  block_keywords: [{blocked}]
  rate: null
api: {{host: "{host}", port: 0, token_env: ISHOWTTS_TEST_TOKEN}}
log: {{format: json}}
"""


def write_config(
    path: Path,
    *,
    replay: Path | None = None,
    blocked: str = "spam",
    host: str = "127.0.0.1",
    spc: float = 0.06,
    lookahead: float = 0.5,
) -> Path:
    # Without a replay only the API's http connector feeds the daemon.
    connectors = f"  - {{type: replay, path: {replay}}}" if replay else "  []"
    path.write_text(
        CONFIG.format(
            connectors=connectors, blocked=blocked, host=host, spc=spc, lookahead=lookahead
        )
    )
    return path


class DaemonProcess:
    """The daemon in a subprocess; its stderr (JSON lines) is collected as it comes."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.raw.append(line)
                with contextlib.suppress(json.JSONDecodeError):
                    self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        """The first log line matching ``predicate`` (a bound on a hang, not a timing test)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "".join(self.raw[-20:])
                    raise AssertionError(f"no matching log line; last lines:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def event(self, name: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        return self.wait_for(
            lambda ln: ln.get("event") == name and all(ln.get(k) == v for k, v in fields.items()),
            timeout,
        )

    @property
    def port(self) -> int:
        return int(self.event("api_listening")["port"])

    def http(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def launch(pulse: Any) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        p = DaemonProcess(config, env)
        started.append(p)
        return p

    yield make
    for p in started:
        p.kill()


class NotifyListener:
    """A notify socket like systemd's, read in a thread so the daemon never finds it full."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(0.2)
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = dict(ln.split("=", 1) for ln in data.decode().splitlines() if "=" in ln)
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def until(self, key: str, timeout: float = 30, after: int = 0) -> list[dict[str, str]]:
        """All messages up to and including the first that carries ``key`` (looking from
        message number ``after`` on)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, msg in enumerate(self.messages):
                    if key in msg and i >= after:
                        return self.messages[: i + 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key} notification; got {self.messages[-5:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


@pytest.mark.audio
def test_sighup_with_a_broken_config_keeps_the_old_one(
    tmp_path: Path, launch: Callable[..., DaemonProcess], notify: NotifyListener
) -> None:
    config = write_config(tmp_path / "config.yaml", blocked="spam")
    d = launch(config, {"NOTIFY_SOCKET": notify.path})
    d.event("ready")
    assert notify.until("READY")[-1]["READY"] == "1"
    config.write_text(config.read_text() + "queue: {max_items: -3}\n")
    d.proc.send_signal(signal.SIGHUP)
    rejected = d.event("reload_rejected")
    assert "queue.max_items" in rejected["error"]
    # systemd is told: RELOADING=1 (with the monotonic time it began), then READY=1 again.
    upto = notify.until("RELOADING")
    assert upto[-1]["RELOADING"] == "1" and int(upto[-1]["MONOTONIC_USEC"]) > 0
    assert notify.until("READY", after=len(upto))[-1]["READY"] == "1"
    # Still running, still the old filters: "spam" is blocked, "eggs" is spoken.
    assert d.http("GET", "/healthz") == (200, {"status": "ok"})
    status, said = d.http("POST", "/say", {"text": "eggs and spam", "user": "a"})
    assert status == 202
    assert d.event("dropped", id=said["id"])["rule"] == "blocked_keyword"
    status, said = d.http("POST", "/say", {"text": "eggs and ham", "user": "b"})
    d.event("spoken", id=said["id"])
    # A good config is taken: now "eggs" is blocked and "spam" passes.
    write_config(config, blocked="eggs")
    d.proc.send_signal(signal.SIGHUP)
    d.event("reloaded")
    status, said = d.http("POST", "/say", {"text": "more spam please", "user": "c"})
    d.event("spoken", id=said["id"])
    status, said = d.http("POST", "/say", {"text": "green eggs", "user": "d"})
    assert d.event("dropped", id=said["id"])["rule"] == "blocked_keyword"
    assert d.stop() == 0


@pytest.mark.audio
def test_sigterm_drains_and_accounts_for_every_queued_event(
    tmp_path: Path,
    launch: Callable[..., DaemonProcess],
    notify: NotifyListener,
) -> None:
    replay = tmp_path / "chat.jsonl"
    replay.write_text(
        "".join(
            json.dumps(
                {
                    "t": 0,
                    "kind": "danmaku",
                    "user": {"id": str(i), "name": f"u{i}"},
                    "text": f"message number {i} says something",
                }
            )
            + "\n"
            for i in range(25)
        )
    )
    # Seconds of audio made ahead: at SIGTERM several utterances are made but not started.
    config = write_config(tmp_path / "config.yaml", replay=replay, spc=0.05, lookahead=5)
    d = launch(config, {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    before_ready = notify.until("READY")
    assert before_ready[-1]["READY"] == "1"
    # Progress lines of the engine's load and warm-up went out as STATUS before READY.
    statuses = [m["STATUS"] for m in before_ready[:-1] if "STATUS" in m]
    assert any("tone engine" in s for s in statuses), statuses
    d.event("ready")
    notify.until("WATCHDOG")  # fed from the loop at half of WATCHDOG_USEC
    d.event("speaking")
    # Ready now waits for the output to play, so speech may start before the replay has
    # handed over its last line: wait for all 25 (most are still queued at SIGTERM).
    d.event("received", uid="24")
    assert d.stop(signal.SIGTERM) == 0
    # Nothing starts after shutdown began: audio made ahead but not yet heard is not played.
    events = [ln.get("event") for ln in d.lines]
    assert "speaking" not in events[events.index("stopping") :]
    after = notify.until("STOPPING")
    assert after[-1]["STOPPING"] == "1"
    assert sum("READY" in m for m in after) == 1

    received = [ln["id"] for ln in d.lines if ln.get("event") == "received"]
    assert len(received) == 25
    fates: dict[str, list[str]] = {i: [] for i in received}
    for ln in d.lines:
        if ln.get("event") in TERMINAL and ln.get("id") in fates:
            fates[ln["id"]].append(ln["event"])
    assert all(len(f) == 1 for f in fates.values()), fates  # exactly one fate each
    states = [f[0] for f in fates.values()]
    assert "spoken" in states  # the utterance playing at SIGTERM was finished
    shutdown = [
        ln
        for ln in d.lines
        if ln.get("event") in ("removed", "evicted") and ln.get("rule") == "shutdown"
    ]
    assert shutdown, "the queue left at SIGTERM is logged as removed by shutdown"
    stopped = d.event("stopped")
    assert stopped["open"] == 0 and stopped["received"] == 25
    assert d.event("exit")["code"] == 0


def test_sigterm_during_warm_up_stops_there(tmp_path: Path, notify: NotifyListener) -> None:
    """A warm-up of 60 steps of 0.5 s: SIGTERM after the first ends it at the next step, exit 0,
    never READY (a real engine reports each shape bucket it warms)."""
    config = write_config(tmp_path / "config.yaml")
    config.write_text(
        config.read_text().replace(
            "type: tone,", "type: tone, warmup_steps: 60, warmup_step_s: 0.5,"
        )
    )
    d = DaemonProcess(config, {"NOTIFY_SOCKET": notify.path})
    try:
        d.event("startup", step="tone warm-up: step 1/60")
        assert d.stop(signal.SIGTERM, timeout=20) == 0  # a full warm-up would take 30 s
    finally:
        d.kill()
    assert d.event("startup_cancelled")["at"].startswith("tone warm-up: step")
    assert not any("READY" in m for m in notify.until("STOPPING"))
    assert d.event("exit")["code"] == 0


def test_exposed_api_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", host="0.0.0.0")
    env = {k: v for k, v in os.environ.items() if k != "ISHOWTTS_TEST_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing_to_start" in proc.stderr and "ISHOWTTS_TEST_TOKEN" in proc.stderr
    assert '"event": "startup"' not in proc.stderr  # refused before loading the model


def test_a_bad_config_file_exits_2_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("engine: {type: tone}\nqueue: {max_items: zero}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "queue.max_items" in proc.stderr and "config.yaml:2" in proc.stderr


class FakeWorker:
    def __init__(self) -> None:
        self.current: Any = None
        self.state = "ready"


def test_stall_guard_withholds_the_watchdog_when_synthesis_hangs() -> None:
    from types import SimpleNamespace

    from ishowtts.app.health_checks import StallGuard

    now = [0.0]
    worker = FakeWorker()
    guard = StallGuard(worker, limit=100.0, clock=lambda: now[0])
    assert guard()
    worker.current = SimpleNamespace(id="a")
    now[0] = 50.0
    assert guard()  # started being current at 50
    now[0] = 140.0
    assert guard()  # 90 s on it: still within the limit
    worker.current = SimpleNamespace(id="b")  # moved on: the clock restarts
    now[0] = 200.0
    assert guard()
    now[0] = 301.0
    assert not guard()  # 101 s on one utterance: hung
    worker.current = None
    assert guard()  # idle is healthy however long it lasts
    now[0] = 10_000.0
    assert guard()
    worker.state = "broken"
    assert not guard()


def test_a_failed_start_exits_1_and_never_says_ready(
    tmp_path: Path, notify: NotifyListener
) -> None:
    config = write_config(tmp_path / "config.yaml")
    config.write_text(config.read_text().replace("device: pulse", "device: no-such-device-xyz"))
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
        cwd=ROOT,
        env={**os.environ, "NOTIFY_SOCKET": notify.path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1  # systemd's Restart=on-failure retries: the device may appear
    assert "no-such-device-xyz" in proc.stderr and "daemon_failed" in proc.stderr
    messages = notify.until("STOPPING")
    assert not any("READY" in m for m in messages)


def slow_warmup(config: Path, steps: int = 30, step_s: float = 0.1) -> Path:
    config.write_text(
        config.read_text().replace(
            "type: tone,", f"type: tone, warmup_steps: {steps}, warmup_step_s: {step_s},"
        )
    )
    return config


@pytest.mark.audio
def test_sighup_during_start_up_reloads_after_ready(
    tmp_path: Path, launch: Callable[..., DaemonProcess], notify: NotifyListener
) -> None:
    config = slow_warmup(write_config(tmp_path / "config.yaml"))
    d = launch(config, {"NOTIFY_SOCKET": notify.path})
    d.event("startup", step="tone warm-up: step 1/30")
    d.proc.send_signal(signal.SIGHUP)
    d.event("reload_deferred")
    first = notify.until("READY")
    # Nothing about a reload before the daemon is ready: READY=1 then means ready.
    assert not any("RELOADING" in m for m in first)
    assert d.event("ready")
    # The reload asked for is not lost: it runs once ready, and systemd hears of it.
    d.event("reloaded")
    upto = notify.until("RELOADING", after=len(first))
    assert notify.until("READY", after=len(upto))[-1]["READY"] == "1"
    assert d.stop() == 0


@pytest.mark.audio
def test_sigterm_completes_while_the_engine_hangs(
    tmp_path: Path, launch: Callable[..., DaemonProcess], notify: NotifyListener
) -> None:
    """A synthesis that never returns (a hung GPU): SIGTERM still ends the process, with the
    hung utterance accounted for and exit 0, instead of waiting on the engine's thread."""
    config = write_config(tmp_path / "config.yaml")
    config.write_text(config.read_text().replace("type: tone,", "type: tone, delay_s: 3600,"))
    d = launch(config, {"NOTIFY_SOCKET": notify.path})
    d.event("ready")
    status, said = d.http("POST", "/say", {"text": "this never finishes"})
    assert status == 202
    d.wait_for(lambda _: d.http("GET", "/status")[1]["engine"]["state"] == "synthesizing")
    assert d.stop(signal.SIGTERM, timeout=40) == 0
    assert d.event("engine_abandoned")["state"] == "synthesizing"
    assert d.event("removed", id=said["id"])["rule"] == "shutdown"
    assert d.event("exit")["code"] == 0


@pytest.mark.audio
def test_sigterm_completes_while_a_start_up_step_hangs(
    tmp_path: Path, launch: Callable[..., DaemonProcess], notify: NotifyListener
) -> None:
    """A warm-up step that never returns (a CUDA graph capture wedged): the stop cannot wait
    for the next step; after the shutdown grace the start-up is abandoned and the process
    exits 0 without ever saying READY."""
    config = slow_warmup(write_config(tmp_path / "config.yaml"), steps=2, step_s=3600)
    d = launch(config, {"NOTIFY_SOCKET": notify.path})
    d.event("startup", step="tone engine ready at 24000 Hz")
    assert d.stop(signal.SIGTERM, timeout=60) == 0
    assert d.event("startup_cancelled")["at"] == "hung while warming"
    assert d.event("engine_abandoned")["state"] == "warming"
    assert not any("READY" in m for m in notify.until("STOPPING"))


@pytest.fixture
def frozen_pulse(pulse: Any) -> Iterator[PulseServer]:
    """A PulseAudio server of this test's own (the test freezes it: the session's is shared)."""
    server = start_pulseaudio()
    yield server
    server.stop()  # thaws it first


@pytest.mark.audio
def test_sigterm_completes_while_the_sound_server_is_frozen(
    tmp_path: Path, launch: Callable[..., DaemonProcess], frozen_pulse: PulseServer
) -> None:
    """The sound server stops answering while a line plays (SIGSTOP: what a wedged backend
    looks like to PortAudio, whose calls then block for good). SIGTERM still ends the process
    well within systemd's stop timeout (45 s), every line accounted for, instead of waiting
    forever on a thread stuck closing the stream."""
    config = write_config(tmp_path / "config.yaml", spc=0.08, lookahead=2)
    env = {"PULSE_SERVER": frozen_pulse.address, "PULSE_SINK": "obs_tts"}
    d = launch(config, env)
    d.event("ready")
    ids = [d.http("POST", "/say", {"text": f"line {i} " + "la " * 40})[1]["id"] for i in range(3)]
    d.event("speaking", id=ids[0])
    os.kill(frozen_pulse.pid, signal.SIGSTOP)
    time.sleep(1)  # the stream's next calls into the server block
    started = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=60) == 0
    took = time.monotonic() - started
    assert took < 40, f"exit took {took:.1f} s"
    fates = {ln["id"]: ln for ln in d.lines if ln.get("event") in TERMINAL and ln.get("id") in ids}
    assert sorted(fates) == sorted(ids)
    assert all(f["event"] == "removed" and f["rule"] == "shutdown" for f in fates.values()), fates
    assert d.event("player_output_abandoned")
    assert d.event("exit")["code"] == 0


@pytest.mark.audio
def test_a_thawed_sound_server_plays_the_rest(
    tmp_path: Path, launch: Callable[..., DaemonProcess], frozen_pulse: PulseServer
) -> None:
    """The hung close is abandoned (one error line, however many reopen attempts wait behind
    it), and once the server answers again the output reopens and every line is heard."""
    config = write_config(tmp_path / "config.yaml", spc=0.08, lookahead=2)
    d = launch(config, {"PULSE_SERVER": frozen_pulse.address, "PULSE_SINK": "obs_tts"})
    d.event("ready")
    ids = [d.http("POST", "/say", {"text": f"line {i} " + "la " * 40})[1]["id"] for i in range(3)]
    d.event("speaking", id=ids[0])
    os.kill(frozen_pulse.pid, signal.SIGSTOP)
    assert d.event("player_output_abandoned")["call"] == "close"
    d.event("player_reopen_failed")  # the reopen waits behind the stuck close, then gives up
    os.kill(frozen_pulse.pid, signal.SIGCONT)
    d.event("player_output_answered", call="close")
    for i in ids:
        d.event("spoken", id=i, timeout=60)
    assert sum(ln.get("event") == "player_output_abandoned" for ln in d.lines) == 1
    assert d.stop() == 0
