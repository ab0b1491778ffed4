"""The Jetson's requirement list (requirements/jetson.in) stays in step with pyproject.toml and
with what f5-tts needs at inference; tools/check_jetson_deps.py (slow, needs PyPI) proves it
installs on aarch64. Its last result is in the README."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

from ishowtts.shell.doctor import F5_UNUSED_AT_INFERENCE, _canonical

ROOT = Path(__file__).resolve().parent.parent
JETPACK_PROVIDES = {"torch", "torchaudio"}


def names(lines: list[str]) -> set[str]:
    return {_canonical(Requirement(line).name) for line in lines}


def jetson_in() -> set[str]:
    text = (ROOT / "requirements" / "jetson.in").read_text()
    return names([x.split("#")[0].strip() for x in text.splitlines() if x.split("#")[0].strip()])


def test_every_project_dependency_is_on_the_jetson_list() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = names(project) - JETPACK_PROVIDES - {"f5-tts"}
    assert wanted - jetson_in() == set()


def test_f5_inference_dependencies_are_on_it_and_the_rest_is_named_unused() -> None:
    declared = {
        _canonical(Requirement(r).name) for r in md.requires("f5-tts") or [] if "extra ==" not in r
    }
    inference = declared - F5_UNUSED_AT_INFERENCE - JETPACK_PROVIDES
    assert inference - jetson_in() == set()
    assert F5_UNUSED_AT_INFERENCE & jetson_in() == set()


def test_jetson_pins_leave_out_what_jetpack_provides() -> None:
    pins = (ROOT / "requirements" / "lock-jetson.txt").read_text().splitlines()
    pinned = {_canonical(p.split("==")[0]) for p in pins if re.match(r"^[A-Za-z0-9]", p)}
    assert "numpy" in pinned and "vocos" in pinned
    assert not pinned & (JETPACK_PROVIDES | {"triton"})
    assert not any(p.startswith("nvidia-") for p in pinned)
