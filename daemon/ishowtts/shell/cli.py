"""``ishowtts``: run the daemon, check a config, list sound devices, say one line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from .. import __version__, logs
from ..config import Config, ConfigError, load_config
from ..errors import EXIT_FAILED, EXIT_USAGE, Failure
from . import logs_command

DEFAULT_PATHS = (Path("config.yaml"), Path("/etc/ishowtts/config.yaml"))


def default_config_path() -> Path:
    env = os.environ.get("ISHOWTTS_CONFIG")
    if env:
        return Path(env)
    return next((p for p in DEFAULT_PATHS if p.is_file()), DEFAULT_PATHS[0])


def _load(path: Path | None, voices: bool = True, fallback: bool = False) -> Config:
    """The config, its voices checked too (clips read as the engine will, no model): any
    problem raises ConfigError (exit 2) before a model is loaded. With
    ``fallback`` (the daemon) and ``engine.fallback`` set, model files that cannot be had are
    no error: the fallback engine speaks, and the start-up says so in its log."""
    return _load_checked(path, voices, fallback)[0]


def _load_checked(path: Path | None, voices: bool = True,
                  fallback: bool = False) -> tuple[Config, list[str]]:  # fmt: skip
    """``_load``, and the engine-file problems the fallback covers (checked once: judging a
    checkpoint reads its index)."""
    config = load_config(path or default_config_path())
    covered: list[str] = []
    if voices:
        from ..synth.voices import check_engine_files, check_voices

        files = check_engine_files(config)
        if files and fallback and config.engine.fallback:
            covered, files = files, []
        if problems := files + check_voices(config):
            raise ConfigError(problems)
    return config, covered


def cmd_run(args: argparse.Namespace) -> int:
    from ..app import hangup

    hangup.install()  # before the imports and the config load: a SIGHUP now must not kill us
    from ..app.daemon import Daemon
    from .service import serve

    config = _load(args.config, fallback=True)
    logs.configure(config.log.level, config.log.format)

    async def main() -> int:
        # Built inside the loop: the Daemon's events and tasks belong to it.
        return await serve(Daemon(config, until_idle=args.until_idle))

    return asyncio.run(main())


def cmd_check_config(args: argparse.Namespace) -> int:
    config, missing = _load_checked(args.config, fallback=True)
    names = ", ".join(f"{c.name} ({c.type})" for c in config.connectors) or "none"
    print(f"{config.path}: OK")
    print(f"  engine: {config.engine.type}; voices: {', '.join(config.voices)}")
    if config.engine.fallback:
        for problem in missing:  # not an error: the fallback will speak
            print(f"  warning: {problem}")
        speaks = " (it will speak: the engine's files are missing or unusable)" if missing else ""
        print(f"  fallback: {config.engine.fallback}{speaks}")
    print(f"  connectors: {names}")
    device = config.player.device
    print(f"  output device: {device if device is not None else 'default'}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from ..audio.devices import (
        NoSoundOutput,
        list_input_devices,
        list_output_devices,
        why_no_output,
    )

    outputs, inputs = list_output_devices(), list_input_devices()
    if not outputs:
        print(f"no sound output: {why_no_output()}\nWays out: {NoSoundOutput.ways_out}")
        return EXIT_FAILED
    for title, devices, key in (
        ("outputs", outputs, "player.device"),
        ("inputs", inputs, "listen.device"),
    ):
        print(f"{title} (for {key}):")
        for d in devices:
            mark = "*" if d.get("is_default") else " "
            print(
                f"{mark} {d['index']:>3}  {d['name']}  [{d['hostapi']}, {d['channels']} ch, "
                f"{d['default_samplerate']:.0f} Hz]"
            )
        if not devices:
            print("    none")
    print(
        "\nUse the index or a unique part of the name as player.device or listen.device in "
        "config.yaml.\nWith PulseAudio or PipeWire, `pulse` records the default source; "
        "PULSE_SOURCE=<source> picks another (docs/listen.md)."
    )
    return 0


def _unwritable(out: Path) -> str | None:
    """Why a WAV file cannot be written at ``out`` (a folder, no such folder), or None."""
    if out.is_dir():
        return "is a folder; name a file (hello.wav)"
    if not out.parent.is_dir():
        return f"no folder {out.parent}"
    return None


def cmd_say(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from .. import engines
    from ..pipeline.normalize import Normalizer
    from ..synth.voices import voices_from

    config = _load(args.config)
    logs.configure(config.log.level, config.log.format)
    voice = args.voice or config.routing.default
    if voice not in config.voices:
        print(f"no voice named {voice!r}; voices: {', '.join(config.voices)}", file=sys.stderr)
        return EXIT_USAGE
    if args.out and (problem := _unwritable(args.out)):  # before a model loads, not after
        print(f"--out {args.out}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # Checked before the model loads: emoji, links and symbols are dropped, so a line can be
    # empty after normalisation though not before.
    text = Normalizer(config.normalize)(args.text)
    if not any(ch.isalnum() for ch in text):
        print(
            f"nothing to say: {args.text!r} has no words once normalised ({text!r})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    engine = engines.build(config.engine.type, config.engine.options)
    progress = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        engine.load(voices_from(config), progress)
    except engines.WeightsUnusable as exc:  # found only by loading (NaN weights, a hub file)
        from ..synth.voices import engine_key_problem  # worded as check-config, with the line

        raise ConfigError([engine_key_problem(config, exc.option, str(exc))]) from None
    started = time.monotonic()
    audio = np.concatenate([np.zeros(0, np.float32), *engine.synthesize(text, voice)])
    took = time.monotonic() - started
    seconds = len(audio) / engine.sample_rate
    if not len(audio):
        print(f"the engine made no audio for {text!r}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{seconds:.2f} s of audio in {took:.2f} s (RTF {took / max(seconds, 1e-9):.3f})",
        file=sys.stderr,
    )
    if args.out:
        try:  # WAV whatever the name ends with (the format came from the suffix: ".out" failed)
            sf.write(args.out, audio, engine.sample_rate, subtype="PCM_16", format="WAV")
        except (OSError, sf.LibsndfileError) as exc:  # a full disk, say
            print(f"--out {args.out}: cannot write: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    from ..audio.null_output import is_null_device

    if is_null_device(config.player.device):
        print("player.device is none: nothing to play to (use --out FILE)", file=sys.stderr)
        return EXIT_USAGE
    import sounddevice as sd

    sd.play(audio, engine.sample_rate, device=config.player.device, blocking=True)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report, run_checks

    lines, status = report(run_checks(), verbose=args.verbose)
    for line in lines:
        print(line)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ishowtts", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ishowtts {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="config file (default: $ISHOWTTS_CONFIG, ./config.yaml, "
            "/etc/ishowtts/config.yaml)",
        )
        return p

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once every finite connector (replay) is done and everything queued is spoken",
    )
    run.set_defaults(func=cmd_run)
    with_config(sub.add_parser("check-config", help="validate the config and exit")).set_defaults(
        func=cmd_check_config
    )
    sub.add_parser("devices", help="list sound output and input devices").set_defaults(
        func=cmd_devices
    )
    say = with_config(sub.add_parser("say", help="synthesise one line and play or save it"))
    say.add_argument("text")
    say.add_argument("--out", type=Path, help="write a WAV file instead of playing")
    say.add_argument("--voice", help="voice name from the config (default: routing.default)")
    say.set_defaults(func=cmd_say)
    doctor = sub.add_parser(
        "doctor", help="check the install: torch/torchaudio, vocos, F5, PortAudio, eSpeak, pip"
    )
    doctor.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    doctor.set_defaults(func=cmd_doctor)
    logs_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command's exit status: a failure it raises is printed one line per problem, without
    a traceback, and its kind gives the status (ishowtts.errors)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Failure as exc:
        for line in exc.lines():
            print(f"{exc.label}: {line}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
