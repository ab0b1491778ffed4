"""Sound output devices as PortAudio lists them, and a config value → a device index.

sounddevice is imported where used: importing it loads PortAudio, which a daemon playing on
``player.device: none`` (a GPU server, CI) neither needs nor may have."""

from __future__ import annotations

import contextlib
from typing import Any

from ..errors import Temporary


class PlayerError(Temporary, RuntimeError):
    """The configured output device cannot be used (not found, not an output). Temporary: a
    device unplugged at start may be back for the next."""


def list_output_devices() -> list[dict[str, Any]]:
    """Output-capable devices as PortAudio sees them, for ``ishowtts devices``."""
    import sounddevice as sd

    hostapis = sd.query_hostapis()
    try:
        default_out = sd.default.device[1]
    except (TypeError, IndexError):
        default_out = -1
    if default_out is None or default_out < 0:
        with contextlib.suppress(sd.PortAudioError, ValueError):
            default_out = sd.query_devices(kind="output")["index"]
    out = []
    for dev in sd.query_devices():
        if dev["max_output_channels"] <= 0:
            continue
        out.append(
            {
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "channels": dev["max_output_channels"],
                "default_samplerate": dev["default_samplerate"],
                "is_default": dev["index"] == default_out,
            }
        )
    return out


def resolve_output_device(device: str | int | None) -> int | None:
    """A device index from a config value: an index, a digit string, or a name substring
    (case-insensitive; an exact name wins over substrings). ``None`` is the default device."""
    if device is None:
        return None
    devices = list_output_devices()
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        if any(d["index"] == index for d in devices):
            return index
        raise PlayerError(f"no output device with index {index}; {_names(devices)}")
    wanted = device.strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    if exact:
        return int(exact[0]["index"])
    matches = [d for d in devices if wanted in d["name"].lower()]
    if len(matches) == 1:
        return int(matches[0]["index"])
    if not matches:
        raise PlayerError(f"no output device matches {device!r}; {_names(devices)}")
    raise PlayerError(
        f"output device {device!r} is ambiguous: "
        + ", ".join(f"[{d['index']}] {d['name']}" for d in matches)
    )


def rescan() -> None:
    """PortAudio lists devices once; re-initialise so a re-plugged device shows up.
    Only safe while the process has no stream open."""
    import sounddevice as sd

    with contextlib.suppress(Exception):
        sd._terminate()
        sd._initialize()


def _names(devices: list[dict[str, Any]]) -> str:
    listed = ", ".join(f"[{d['index']}] {d['name']}" for d in devices)
    return f"output devices: {listed or 'none'} (see `ishowtts devices`)"
