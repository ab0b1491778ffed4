"""``ishowtts`` on checkpoint files that cannot work (tiny upstream-format files): check-config,
say and run print one line naming the engine key and the fix and exit 2 (a restart cannot fix
a wrong file); with ``engine.fallback`` the daemon speaks with the fallback and logs why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.f5_tiny import TINY_ARCH, save_checkpoint, save_vocoder, tiny_cfm
from tests.f5_upstream_files import expand_vocab

TERMINAL = {"spoken", "dropped", "expired", "evicted", "removed", "failed"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    good = save_checkpoint(tiny_cfm(2), root / "good.safetensors")
    data = good.read_bytes()
    (root / "truncated.safetensors").write_bytes(data[: len(data) // 3])
    expand_vocab(good, root / "extended.safetensors", 4)
    (root / "F5TTS_v1_Base").mkdir()
    (root / "F5TTS_v1_Base" / "model_1250000.safetensors").write_bytes(data)
    flat = load_file(good)
    flat["ema_model.transformer.proj_out.weight"][1, 2] = float("inf")
    save_file(flat, root / "inf.safetensors")
    save_vocoder(root / "vocos")
    return {p.stem: p for p in root.glob("*.safetensors")} | {
        "v1": root / "F5TTS_v1_Base" / "model_1250000.safetensors",
        "vocos": root / "vocos",
    }


def configure(tmp: Path, files: dict[str, Path], checkpoint: str, extra: str = "") -> Path:
    chat = [{"t": 0.0, "kind": "danmaku", "user": {"id": "1", "name": "a"}, "text": "hello"},
            {"t": 0.05, "kind": "danmaku", "user": {"id": "2", "name": "b"}, "text": "second"}]  # fmt: skip
    (tmp / "chat.jsonl").write_text("\n".join(json.dumps(x) for x in chat) + "\n")
    arch = json.dumps(TINY_ARCH)
    (tmp / "config.yaml").write_text(
        "engine:\n"
        "  type: f5\n"
        f"{extra}"
        "  device: cpu\n"
        "  compile: false\n"
        f"  arch: {arch}\n"
        f"  vocoder: {files['vocos']}\n"
        f"  checkpoint: {files[checkpoint]}\n"
        "connectors: [{type: replay, path: chat.jsonl}]\n"
        "player: {device: none, lookahead_s: 0.5}\n"
        "filters: {rate: null}\n"
        "api: {enabled: false}\n"
        "log: {format: json}\n",
        encoding="utf-8",
    )
    return tmp / "config.yaml"


def ishowtts(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ishowtts", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=config.parent,
        timeout=300,
    )


def _line_of(config: Path, key: str) -> int:
    lines = config.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(f"{key}:"))


@pytest.mark.parametrize(
    ("checkpoint", "extra", "key", "says"),
    [
        ("truncated", "", "checkpoint", "is truncated or corrupt"),
        ("extended", "", "vocab", "set engine.vocab to the vocab.txt that came with"),
        ("v1", "  model: F5TTS_Base\n", "model", "set engine.model: F5TTS_v1_Base"),
    ],
    ids=["truncated", "extended vocab", "v1 file under v0"],
)
def test_check_config_refuses_a_file_that_cannot_work(tmp_path, files, checkpoint, extra, key,
                                                       says):  # fmt: skip
    """The old check-config passed all three (exit 0), and the daemon found out at load."""
    config = configure(tmp_path, files, checkpoint, extra)
    result = ishowtts(config, "check-config")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"config error: engine.{key}: "), lines
    assert says in lines[0]
    if key != "vocab":  # not in the file: the engine section is named instead
        assert lines[0].endswith(f"(config.yaml:{_line_of(config, key)})"), lines[0]


def test_say_and_run_stop_on_a_truncated_file_before_loading(tmp_path, files):
    config = configure(tmp_path, files, "truncated")
    for args in (["say", "hello", "--out", str(tmp_path / "a.wav")], ["run"]):
        result = ishowtts(config, *args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("config error: engine.checkpoint: ")


def test_weights_found_bad_only_by_loading_are_one_line_and_exit_2(tmp_path, files):
    """inf weights pass check-config (values are not read there); say and run load them and
    stop with the key and the fix: say used to print a traceback and exit 1, run to exit 1
    (systemd restarted it, to fail the same way)."""
    config = configure(tmp_path, files, "inf")
    assert ishowtts(config, "check-config").returncode == 0
    say = ishowtts(config, "say", "hello", "--out", str(tmp_path / "a.wav"))
    assert say.returncode == 2 and "Traceback" not in say.stderr, say.stderr[-3000:]
    errors = [x for x in say.stderr.splitlines() if x.startswith("config error:")]
    assert len(errors) == 1 and errors[0].startswith("config error: engine.checkpoint: ")
    assert "hold NaN or inf" in errors[0] and errors[0].endswith(
        f"(config.yaml:{_line_of(config, 'checkpoint')})"
    )

    run = ishowtts(config, "run")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    records = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    failed = [r for r in records if r.get("event") == "daemon_failed"]
    assert len(failed) == 1 and failed[0]["key"] == "engine.checkpoint"
    assert "hold NaN or inf" in failed[0]["error"]


def test_with_a_fallback_the_daemon_speaks_and_says_why(tmp_path, files):
    """check-config warns; run reads the chat with eSpeak and logs the file's problem."""
    config = configure(tmp_path, files, "truncated", "  fallback: espeak\n")
    check = ishowtts(config, "check-config")
    assert check.returncode == 0, check.stderr
    assert any(
        x.strip().startswith("warning: engine.checkpoint: ") and "truncated" in x
        for x in check.stdout.splitlines()
    ), check.stdout
    run = ishowtts(config, "run", "--until-idle")
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    warned = [r for r in records if r.get("event") == "engine_fallback"]
    assert len(warned) == 1 and warned[0]["fallback"] == "espeak"
    assert "WeightsUnusable" in warned[0]["reason"] and "truncated" in warned[0]["reason"]
    ended = [r for r in records if r.get("event") in TERMINAL]
    assert sorted(r["event"] for r in ended) == ["spoken", "spoken"], ended
