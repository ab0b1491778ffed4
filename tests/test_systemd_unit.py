"""The systemd units: the settings the service relies on, and ``systemd-analyze verify``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ishowtts import errors
from ishowtts.app.daemon import EXIT_RESTART, Daemon

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "systemd" / "ishowtts.service"
USER = ROOT / "systemd" / "ishowtts-user.service"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd keys may repeat: DeviceAllow, Environment)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(m.group(1), {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{n}: not key=value: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values, f"{key} is not set"
    return values[-1]


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "ms": 0.001}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert m and m.group(2) in units, value
    return float(m.group(1)) * units[m.group(2)]


@pytest.mark.parametrize("path", [SYSTEM, USER], ids=["system", "user"])
def test_both_units_notify_watchdog_restart_reload(path: Path) -> None:
    svc = parse_unit(path)["Service"]
    assert one(svc, "Type") == "notify"
    assert seconds(one(svc, "WatchdogSec")) >= 10
    assert one(svc, "Restart") == "on-failure"
    assert "kill -HUP $MAINPID" in one(svc, "ExecReload")
    assert re.search(r"/ishowtts run\b", one(svc, "ExecStart"))
    # A config error and a broken install are not retried: the unit and the code agree.
    assert one(svc, "RestartPreventExitStatus").split() == [
        str(errors.ConfigInvalid.exit_code),
        str(errors.BrokenInstall.exit_code),
    ]
    # A lost GPU (CUDA fault) exits with EXIT_RESTART: restarted whatever Restart= says.
    assert one(svc, "RestartForceExitStatus") == str(EXIT_RESTART)
    assert errors.DeviceFault.exit_code == EXIT_RESTART
    assert str(EXIT_RESTART) not in svc.get("SuccessExitStatus", [""])[0].split()
    # systemd must wait for the drain (current utterance, bounded) before it kills.
    grace = Daemon.__init__.__kwdefaults__["shutdown_grace_s"]
    assert seconds(one(svc, "TimeoutStopSec")) > grace + 5
    assert seconds(one(svc, "TimeoutStartSec")) >= 300  # first start: weights + compile
    assert one(svc, "NoNewPrivileges") == "yes"
    assert "MemoryDenyWriteExecute" not in svc  # would break CUDA/Triton JIT


def test_system_unit_user_hardening_and_devices() -> None:
    unit = parse_unit(SYSTEM)
    svc = unit["Service"]
    assert one(svc, "User") == "ishowtts"
    assert "audio" in one(svc, "SupplementaryGroups").split()
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelModules": "yes",
        "RestrictSUIDSGID": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert one(svc, key) == value, key
    assert one(svc, "CapabilityBoundingSet") == ""
    assert svc.get("PrivateDevices", ["no"])[-1] == "no"  # the GPU lives in /dev
    allowed = " ".join(svc["DeviceAllow"])
    for device in ("char-nvidia*", "char-nvhost*", "/dev/nvmap", "char-alsa"):
        assert device in allowed, device
    # Writable places under ProtectSystem=strict: state and cache directories, caches in them.
    assert one(svc, "StateDirectory") == "ishowtts"
    assert one(svc, "CacheDirectory") == "ishowtts"
    env = dict(v.split("=", 1) for v in svc["Environment"])
    for key in ("HF_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "XDG_CACHE_HOME"):
        assert env[key].startswith("/var/cache/ishowtts"), key
    assert env["HOME"] == "/var/lib/ishowtts"
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def test_user_unit_runs_in_the_session() -> None:
    unit = parse_unit(USER)
    assert "User" not in unit["Service"]
    assert one(unit["Install"], "WantedBy") == "default.target"
    assert "pipewire-pulse.service" in one(unit["Unit"], "After")
    # $STATE_DIRECTORY: where the console's mute list is kept (the config folder may be read-only)
    assert one(unit["Service"], "StateDirectory") == "ishowtts"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
@pytest.mark.parametrize("path", [SYSTEM, USER], ids=["system", "user"])
def test_systemd_analyze_verify(path: Path, tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this checkout's entry point.
    exe = Path(sys.executable).parent / "ishowtts"
    if not exe.exists():
        pytest.skip(f"{exe} not installed (pip install -e .)")
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={exe}", path.read_text())
    unit = tmp_path / "ishowtts.service"
    unit.write_text(text)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    args = ["systemd-analyze", *(["--user"] if path == USER else []), "verify", str(unit)]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        check=False,
    )
    # verify exits 0 on unknown keys but warns: any output is a finding.
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
