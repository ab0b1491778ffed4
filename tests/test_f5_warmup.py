"""tools/warmup.py: load + warm the engine of a config file (tiny model on the CPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from tests.f5_tiny import tiny_files

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("warmup_tool", ROOT / "tools" / "warmup.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_warmup_tool_reads_the_config_and_warms(tmp_path, capsys):
    opts = tiny_files(tmp_path / "m")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"engine": {"type": "f5", **opts}, "voices": {"default": {}, "zh": {}}})
    )
    out = tmp_path / "summary.json"
    assert _tool().main(["--config", str(config), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["engine"] == "f5" and summary["voices"] == ["default", "zh"]
    assert "warm-up done" in capsys.readouterr().out


def test_warmup_tool_reports_a_bad_voice(tmp_path, capsys):
    opts = tiny_files(tmp_path / "m")
    config = tmp_path / "config.yaml"
    voices = {"default": {"ref_audio": "missing.wav", "ref_text": "hi"}}
    config.write_text(yaml.safe_dump({"engine": {"type": "f5", **opts}, "voices": voices}))
    assert _tool().main(["--config", str(config)]) == 1
    assert "missing.wav" in capsys.readouterr().err
