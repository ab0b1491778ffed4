"""``ishowtts doctor``: does this install work? Each check imports or runs one heavy piece the
daemon needs and turns a failure into one line saying what is wrong and how to fix it.

A broken install otherwise shows up late and far from its cause (a config error naming the
engine, a traceback in the middle of start-up); here it is one line each, before anything runs.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .. import registry

LOCK_HINT = (
    "reinstall through the lock: "
    'PIP_CONSTRAINT="$PWD/requirements/lock-x86_64.txt" pip install -e .'
)


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool | None  # None: skipped, a check it needs failed
    detail: str  # what was found (ok) or what is wrong and how to fix it (not ok)


Check = Callable[[], str]  # returns what it found; raises Problem with the fix otherwise


class Problem(Exception):
    """A check failed; the message is the whole line for the operator (what, then the fix)."""


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """2.11.0+cu130 -> (2, 11, 0): the public release part, local labels dropped."""
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3])


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def check_torch() -> str:
    try:
        import torch
    except Exception as exc:
        raise Problem(
            f"torch does not import ({_short(exc)}): {LOCK_HINT} (on a Jetson: NVIDIA's JetPack "
            "torch wheel, see the README)"
        ) from None
    cuda = torch.cuda.is_available()
    return f"torch {torch.__version__} (CUDA {'available' if cuda else 'not available'})"


def check_torchaudio() -> str:
    torch_v, audio_v = _version("torch"), _version("torchaudio")
    if audio_v is None:
        pair = torch_v or "<torch's version>"
        raise Problem(f"torchaudio is not installed: pip install torchaudio=={pair}")
    mismatch = torch_v is not None and _release(torch_v) != _release(audio_v)
    try:
        import torchaudio  # loads its compiled extension (libtorchaudio.so)
        import torchaudio.transforms  # what vocos and f5_tts use
    except Exception as exc:
        if mismatch:
            pair = ".".join(map(str, _release(torch_v or "")))
            raise Problem(
                f"torchaudio {audio_v} does not match torch {torch_v} (its compiled extension "
                f"fails to load: {_short(exc)}): pip install torchaudio=={pair}, or {LOCK_HINT}"
            ) from None
        raise Problem(
            f"torchaudio {audio_v} does not import ({_short(exc)}): {LOCK_HINT}"
        ) from None
    if mismatch:
        pair = ".".join(map(str, _release(torch_v or "")))
        raise Problem(
            f"torchaudio {audio_v} does not match torch {torch_v} (they are released as a pair): "
            f"pip install torchaudio=={pair}"
        )
    return f"torchaudio {torchaudio.__version__}"


def _load(what: str, fix: str, load: Callable[[], str]) -> str:
    """What ``load`` found, or a Problem saying that ``what`` does not load and ``fix``."""
    try:
        return load()
    except Exception as exc:
        raise Problem(f"{what} does not load ({_short(exc)}): {fix}") from None


def check_vocos() -> str:
    def load() -> str:
        from vocos import Vocos  # noqa: F401

        return f"vocos {_version('vocos')}"

    return _load("vocos", "pip install vocos==0.1.0", load)


def check_f5() -> str:
    def load() -> str:
        from ..engines.f5 import upstream

        upstream.classes()
        return f"f5-tts {_version('f5-tts')} model classes"

    fix = f"pip install f5-tts==1.1.22, or {LOCK_HINT}"
    return _load("the upstream F5-TTS model code", fix, load)


def check_portaudio() -> str:
    def load() -> str:
        import sounddevice

        return f"PortAudio {sounddevice.get_portaudio_version()[1]}"

    return _load("PortAudio (sounddevice)", "apt-get install libportaudio2", load)


def check_soundfile() -> str:
    def load() -> str:
        import soundfile

        return f"libsndfile {soundfile.__libsndfile_version__}"

    return _load("libsndfile (soundfile)", "apt-get install libsndfile1", load)


def check_espeak() -> str:
    def load() -> str:
        import ctypes

        import espeakng_loader

        ctypes.CDLL(espeakng_loader.get_library_path())
        return f"espeak-ng (espeakng-loader {_version('espeakng-loader')})"

    return _load("the eSpeak NG fallback voice", "pip install espeakng-loader", load)


def check_vad() -> str:
    def load() -> str:
        from ..audio.vad import SileroVad

        SileroVad()
        return (
            f"Silero VAD (silero-vad {_version('silero-vad')}, "
            f"onnxruntime {_version('onnxruntime')})"
        )

    fix = f"pip install silero-vad onnxruntime, or {LOCK_HINT}"
    return _load("the voice-activity detector (listen.device)", fix, load)


def check_plugins() -> str:
    """Every installed engine and connector imports (what a config's `type` would load)."""
    names = []
    for group in registry.GROUPS:
        for ep in registry.installed(group):
            try:
                ep.load()
            except Exception as exc:
                raise Problem(
                    f"{registry.what(group)} {ep.name!r} ({ep.value}) does not import "
                    f"({_short(exc)}): {LOCK_HINT}"
                ) from None
            names.append(ep.name)
    return f"plugins import: {', '.join(sorted(names))}"


# What f5-tts declares only for training and its web UI: inference never imports it, and a
# Jetson installs f5-tts with --no-deps and leaves it out (README, requirements/jetson.in).
F5_UNUSED_AT_INFERENCE = frozenset(
    [
        "accelerate",
        "bitsandbytes",
        "cached-path",
        "click",
        "datasets",
        "ema-pytorch",
        "gradio",
        "hydra-core",
        "matplotlib",
        "pydub",
        "tomli",
        "torchcodec",
        "transformers",
        "transformers-stream-generator",
        "unidecode",
        "wandb",
    ]
)
_F5_MISSING = re.compile(r"^f5-tts [^ ]+ requires ([A-Za-z0-9_.\-]+), which is not installed")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pip() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    broken = []
    for line in proc.stdout.splitlines():
        missing = _F5_MISSING.match(line.strip())
        if missing and _canonical(missing.group(1)) in F5_UNUSED_AT_INFERENCE:
            continue  # left out on purpose (the Jetson install)
        if line.strip() and not line.startswith("No broken requirements"):
            broken.append(line.strip())
    if broken:
        raise Problem(f"pip check: {'; '.join(broken[:5])}: {LOCK_HINT}")
    return "pip check: no broken requirements"


@dataclass(frozen=True)
class Step:
    name: str
    run: Check
    needs: tuple[str, ...] = ()  # checks whose failure would make this one fail too


# In dependency order. A check whose prerequisite failed is skipped: one cause, one line.
CHECKS: tuple[Step, ...] = (
    Step("torch", check_torch),
    Step("torchaudio", check_torchaudio, ("torch",)),
    Step("vocos", check_vocos, ("torchaudio",)),
    Step("f5-tts", check_f5, ("torchaudio",)),
    Step("portaudio", check_portaudio),
    Step("soundfile", check_soundfile),
    Step("espeak", check_espeak),
    Step("vad", check_vad),
    Step("plugins", check_plugins, ("vocos", "f5-tts", "portaudio", "soundfile", "espeak")),
    Step("pip", check_pip),
)


def run_checks(steps: tuple[Step, ...] = CHECKS) -> list[Finding]:
    findings: list[Finding] = []
    failed: set[str] = set()
    for step in steps:
        blocked = [n for n in step.needs if n in failed]
        if blocked:
            failed.add(step.name)
            findings.append(Finding(step.name, None, f"skipped: needs {', '.join(blocked)}"))
            continue
        try:
            findings.append(Finding(step.name, True, step.run()))
        except Problem as problem:
            failed.add(step.name)
            findings.append(Finding(step.name, False, str(problem)))
    return findings


def report(findings: list[Finding], verbose: bool = False) -> tuple[list[str], int]:
    """The lines to print and the exit status (0: healthy, 1: at least one problem). Only
    problems are printed (with ``verbose``, what was found and skipped too)."""
    lines = []
    for f in findings:
        if f.ok is False:
            lines.append(f"problem: {f.detail}")
        elif verbose:
            lines.append(f"{'ok' if f.ok else 'skip'}: {f.detail}")
    problems = sum(f.ok is False for f in findings)
    if not problems:
        lines.append(f"ishowtts doctor: all {len(findings)} checks passed")
    return lines, 1 if problems else 0
