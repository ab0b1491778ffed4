"""``ishowtts doctor`` on a healthy install and on deliberately broken ones.

A broken install is made by putting a folder first on PYTHONPATH that shadows one package with
a copy that fails to import as the real breakage does (and, for torchaudio, a dist-info saying
2.11.1: the release whose extension does not load with torch 2.11.0)."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ishowtts.shell.doctor import Finding, Problem, Step, _release, report, run_checks


def doctor(shadow: Path | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "ishowtts", "doctor", *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def shadow_package(root: Path, name: str, error: str, version: str | None = None) -> Path:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"raise {error}\n")
    if version is not None:
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


@pytest.mark.slow
def test_healthy_install_passes_every_check() -> None:
    run = doctor(None, "--verbose")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "problem" not in run.stdout
    assert run.stdout.strip().splitlines()[-1].startswith("ishowtts doctor: all")


@pytest.mark.slow
def test_mismatched_torchaudio_is_one_line_with_the_fix(tmp_path: Path) -> None:
    torch_release = ".".join(map(str, _release(md.version("torch"))))
    shadow = shadow_package(
        tmp_path,
        "torchaudio",
        "OSError('Could not load this library: libtorchaudio.so')",
        version="2.11.1" if torch_release != "2.11.1" else "2.10.0",
    )
    run = doctor(shadow)
    assert run.returncode == 1
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, lines  # vocos and F5 fail through torchaudio: not reported again
    assert "does not match torch" in lines[0]
    assert f"pip install torchaudio=={torch_release}" in lines[0]


@pytest.mark.slow
def test_missing_portaudio_names_the_package(tmp_path: Path) -> None:
    shadow = shadow_package(tmp_path, "sounddevice", "OSError('PortAudio library not found')")
    run = doctor(shadow)
    assert run.returncode == 1
    problems = [line for line in run.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1, run.stdout
    assert "PortAudio" in problems[0] and "apt-get install libportaudio2" in problems[0]


def test_a_failed_check_skips_what_needs_it_and_sets_the_status() -> None:
    def broken() -> str:
        raise Problem("base is broken: reinstall base")

    steps = (
        Step("base", broken),
        Step("child", lambda: "child fine", ("base",)),
        Step("grandchild", lambda: "fine", ("child",)),
        Step("other", lambda: "other fine"),
    )
    findings = run_checks(steps)
    assert [f.ok for f in findings] == [False, None, None, True]
    lines, status = report(findings)
    assert status == 1 and lines == ["problem: base is broken: reinstall base"]
    verbose, _ = report(findings, verbose=True)
    assert "skip: skipped: needs base" in verbose and "ok: other fine" in verbose


def test_all_passing_is_status_zero() -> None:
    lines, status = report([Finding("a", True, "a 1.0")])
    assert status == 0 and lines == ["ishowtts doctor: all 1 checks passed"]


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("2.11.0+cu130", (2, 11, 0)),
        ("2.5.0a0+872d972e41.nv24.08", (2, 5, 0)),
        ("2.11.1", (2, 11, 1)),
    ],
)
def test_release_ignores_local_labels(version: str, release: tuple[int, ...]) -> None:
    assert _release(version) == release


@pytest.mark.slow
def test_an_engine_that_cannot_import_is_a_broken_install_not_a_config_error(
    tmp_path: Path,
) -> None:
    """`run` and `check-config` say "broken install" and point at doctor, exiting 3 (which the
    unit does not restart), where they used to call a broken torchaudio a config error."""
    shadow = shadow_package(
        tmp_path / "shadow", "torchaudio", "OSError('libtorchaudio.so: undefined symbol')"
    )
    config = tmp_path / "config.yaml"
    config.write_text("engine:\n  type: f5\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    for command in ("check-config", "run"):
        run = subprocess.run(
            [sys.executable, "-m", "ishowtts", command, "-c", str(config)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 3, (command, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("broken install: engine 'f5'"), lines
        assert "ishowtts doctor" in lines[0] and "config error" not in lines[0]
