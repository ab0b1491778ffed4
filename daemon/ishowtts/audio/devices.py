"""Sound devices as PortAudio lists them (outputs for the player, inputs for listening), and a
config value → a device index.

sounddevice is imported where used: importing it loads PortAudio, which a daemon playing on
``player.device: none`` (a GPU server, CI) neither needs nor may have."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Literal

from ..errors import Temporary

Direction = Literal["output", "input"]


class DeviceError(Temporary, RuntimeError):
    """A configured device cannot be used (not found, ambiguous, wrong direction). Temporary:
    a device unplugged at start may be back for the next."""


class PlayerError(DeviceError):
    """The configured output device cannot be used."""


class ListenDeviceError(DeviceError):
    """The configured input device (``listen.device``) cannot be used."""


_ERRORS: dict[Direction, type[DeviceError]] = {"output": PlayerError, "input": ListenDeviceError}


class NoSoundOutput(PlayerError):
    """PortAudio has no output device at all: no sound server (PulseAudio, PipeWire) runs and
    no sound card is usable. Not the config's fault: one may come up later."""

    ways_out = (
        "start PulseAudio or PipeWire (`pulseaudio --start`, or `systemctl --user start "
        "pipewire pipewire-pulse`); or set `player.device: none` to play nowhere; or let OBS "
        "play the voice from its browser source, the control API's /overlay?audio=1"
    )


def list_devices(direction: Direction) -> list[dict[str, Any]]:
    """The devices that can play (``output``) or record (``input``), as PortAudio sees them."""
    import sounddevice as sd

    hostapis = sd.query_hostapis()
    slot = 1 if direction == "output" else 0
    try:
        default = sd.default.device[slot]
    except (TypeError, IndexError):
        default = -1
    if default is None or default < 0:
        with contextlib.suppress(sd.PortAudioError, ValueError):
            default = sd.query_devices(kind=direction)["index"]
    channels = f"max_{direction}_channels"
    out = []
    for dev in sd.query_devices():
        if dev[channels] <= 0:
            continue
        out.append(
            {
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "channels": dev[channels],
                "default_samplerate": dev["default_samplerate"],
                "is_default": dev["index"] == default,
            }
        )
    return out


def list_output_devices() -> list[dict[str, Any]]:
    """Output-capable devices, for ``ishowtts devices`` and ``player.device``."""
    return list_devices("output")


def list_input_devices() -> list[dict[str, Any]]:
    """Input-capable devices, for ``ishowtts devices`` and ``listen.device``."""
    return list_devices("input")


def resolve_device(device: str | int | None, direction: Direction) -> int | None:
    """A device index from a config value: an index, a digit string, or a name substring
    (case-insensitive; an exact name wins over substrings). ``None`` is the default device."""
    if device is None:
        return None
    error = _ERRORS[direction]
    devices = list_devices(direction)
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        if any(d["index"] == index for d in devices):
            return index
        raise error(f"no {direction} device with index {index}; {_names(devices, direction)}")
    wanted = device.strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    if exact:
        return int(exact[0]["index"])
    matches = [d for d in devices if wanted in d["name"].lower()]
    if len(matches) == 1:
        return int(matches[0]["index"])
    if not matches:
        raise error(f"no {direction} device matches {device!r}; {_names(devices, direction)}")
    raise error(
        f"{direction} device {device!r} is ambiguous: "
        + ", ".join(f"[{d['index']}] {d['name']}" for d in matches)
    )


def resolve_output_device(device: str | int | None) -> int | None:
    return resolve_device(device, "output")


def check_device(device: str | int | None) -> None:
    """PlayerError if ``device`` names an output PortAudio does not list. When it lists none at
    all there is nothing to judge by (no sound server yet): no error, the player retries."""
    if list_output_devices():
        resolve_output_device(device)


def open_target(device: str | int | None) -> tuple[int | None, int]:
    """The device index for ``device`` and how many output channels it has, looked up again in
    a fresh device list if the first look fails (a device re-plugged, a sound server started
    since PortAudio listed its devices). NoSoundOutput when PortAudio lists no output at all,
    PlayerError when ``device`` is not among those it lists. Only while no stream is open."""
    import sounddevice as sd

    for fresh in (False, True):
        if fresh:
            rescan()
        if not list_output_devices():
            continue
        try:
            index = resolve_output_device(device)
            return index, int(sd.query_devices(index, kind="output")["max_output_channels"])
        except (PlayerError, sd.PortAudioError, ValueError):
            if fresh:
                raise
    raise NoSoundOutput(f"no sound output: {why_no_output()}")


def why_no_output() -> str:
    """Why PortAudio lists no output device, as far as can be told without a sound server."""
    server = pulse_socket()
    if server is None:
        return f"PortAudio finds no output device (PULSE_SERVER is {os.environ['PULSE_SERVER']!r})"
    if not answers(server):
        return (
            f"no PulseAudio or PipeWire server answers at {server} and PortAudio finds no "
            f"sound card"
        )
    return (
        f"a sound server answers at {server} but PortAudio finds no output device (is the ALSA "
        f"pulse plugin installed? apt-get install libasound2-plugins)"
    )


def pulse_socket() -> Path | None:
    """The local socket a PulseAudio client (PipeWire's pulse server takes the same place)
    would connect to; None when ``$PULSE_SERVER`` names a server that is not a local socket."""
    named = os.environ.get("PULSE_SERVER", "").split()
    if named:
        first = named[0].removeprefix("unix:")
        return Path(first) if first.startswith("/") else None
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return Path(runtime) / "pulse" / "native"


def answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def rescan() -> None:
    """PortAudio lists devices once; re-initialise so a re-plugged device shows up.
    Only safe while the process has no stream open."""
    import sounddevice as sd

    with contextlib.suppress(Exception):
        sd._terminate()
        sd._initialize()


def _names(devices: list[dict[str, Any]], direction: Direction) -> str:
    listed = ", ".join(f"[{d['index']}] {d['name']}" for d in devices)
    return f"{direction} devices: {listed or 'none'} (see `ishowtts devices`)"
