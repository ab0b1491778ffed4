"""The configured voices as engines take them, and the checks that need the engine but no model
(voice clips, model files that cannot be had).

``check-config`` runs the checks, and so do ``run`` and ``say`` before the model loads: a bad
clip or an unobtainable checkpoint is a config error (exit 2, one line naming the key, the file
and the config line), not a start that fails minutes in and that systemd retries."""

from __future__ import annotations

from .. import engines
from ..config import Config
from ..engines import Voice


def voices_from(config: Config) -> dict[str, Voice]:
    return {
        name: Voice(
            name=name,
            ref_audio=config.resolve(v.ref_audio) if v.ref_audio else None,
            ref_text=v.ref_text,
            speed=v.speed,
            options=v.options,
        )
        for name, v in config.voices.items()
    }


def check_voices(config: Config) -> list[str]:
    """One problem per bad voice, each naming the voice's key and line."""
    problems = []
    for name, voice in voices_from(config).items():
        try:
            engines.check_voice(config.engine.type, config.engine.options, voice)
        except ValueError as exc:
            loc = ("voices", name, "ref_audio") if voice.ref_audio else ("voices", name)
            what = str(exc).removeprefix(f"voice {name!r}: ")
            problems.append(f"voices.{name}: {what} ({config.where(*loc)})")
    return problems


def engine_key_problem(config: Config, key: str, why: str) -> str:
    """One config problem with an engine key: the key, why, and where it is set."""
    return f"engine.{key}: {why} ({config.where('engine', key)})"


def check_engine_files(config: Config) -> list[str]:
    files = engines.check_files(config.engine.type, config.engine.options)
    return [engine_key_problem(config, k, why) for k, why in files.items()]
