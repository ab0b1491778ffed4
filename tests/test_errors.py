"""One error vocabulary: each failure's kind says what the supervisor should do, and one
mapping (ishowtts.errors.exit_code) gives the status that the CLI and the service both use."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ishowtts import errors
from ishowtts.audio.devices import PlayerError
from ishowtts.config import BrokenInstall, ConfigError
from ishowtts.control.api import ApiCannotListen, ApiUnprotected
from ishowtts.engines import WeightsUnavailable, WeightsUnusable
from ishowtts.engines.f5.loader import ModelFileMissing
from ishowtts.engines.faults import DeviceLost
from ishowtts.shell import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ConfigError(["queue.max_items: not a number (config.yaml:2)"]), 2),
        (WeightsUnusable("checkpoint", "the file is truncated"), 2),
        (ApiUnprotected("api.host is '0.0.0.0', not loopback"), 2),
        (BrokenInstall("engine 'f5' cannot be imported"), 3),
        (DeviceLost("CUDA error: an illegal memory access"), 75),
        (WeightsUnavailable("cannot get 'model.safetensors' from the hub"), 1),
        (ModelFileMissing("no such file: model.safetensors"), 1),
        (ApiCannotListen("cannot listen on 127.0.0.1:8080: address in use"), 1),
        (PlayerError("no output device matches 'obs'"), 1),
        (RuntimeError("a bug"), 1),
    ],
)
def test_each_failure_kind_has_its_status(exc: Exception, status: int) -> None:
    assert errors.exit_code(exc) == status


def test_the_cli_prints_a_failure_one_line_per_problem_with_its_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: object) -> int:
        raise ConfigError(["a.b: wrong (config.yaml:1)", "c: also wrong (config.yaml:2)"])

    monkeypatch.setattr(cli, "cmd_devices", broken)
    assert cli.main(["devices"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "config error: a.b: wrong (config.yaml:1)",
        "config error: c: also wrong (config.yaml:2)",
    ]


def test_a_taken_api_port_exits_1_before_the_model(tmp_path: Path) -> None:
    """The port may be free at the next start: systemd retries (status 1, not 2)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(
            f"engine: {{type: tone}}\nconnectors: []\nplayer: {{device: none}}\n"
            f"api: {{port: {port}}}\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "ishowtts", "run", "-c", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "api_failed" in proc.stderr and "cannot listen on" in proc.stderr
    assert "Traceback" not in proc.stderr
