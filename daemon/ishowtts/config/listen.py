"""The ``listen:`` section: turn-taking with the streamer (audio/listener.py does it).

A foundation module of its own so that config.py (which every wing reads) stays small and imports
no wing; the listener, the mixer's ducking and the voice-activity child all read this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..confload import Section

MAX_DEVICE_CHARS = 200


class ListenConfig(Section):
    # The streamer's voice: an input device (index or part of its name, as `ishowtts devices`
    # lists under "inputs"), e.g. their microphone or the monitor of what they send to OBS.
    # null (the default): off, the bot never waits for the streamer.
    device: str | int | None = None
    # What a line already playing does while the streamer speaks: "duck" plays on, lowered by
    # duck_db; "pause" fades out and holds its place. Either way no new line starts.
    mode: Literal["duck", "pause"] = "duck"
    duck_db: float = Field(18.0, ge=3.0, le=60.0)
    # Silero VAD's speech probability (0-1) from which a 32 ms frame counts as speech.
    threshold: float = Field(0.5, ge=0.05, le=0.95)
    # Speech this long before the bot yields: a cough or a click is not a turn.
    min_speech_ms: float = Field(64.0, ge=0.0, le=2000.0)
    # Quiet this long and the streamer's turn is over: the bot resumes.
    quiet_s: float = Field(0.45, ge=0.1, le=5.0)
    # The ducking ramps: down when the streamer starts, back up when they stop.
    duck_ms: float = Field(40.0, ge=5.0, le=2000.0)
    restore_ms: float = Field(250.0, ge=5.0, le=5000.0)
    # A turn longer than this no longer holds the bot (a VAD stuck on music must not silence it
    # for good): lines start again, at full level, until the streamer next goes quiet. 0: never.
    max_hold_s: float = Field(30.0, ge=0.0, le=3600.0)

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            raise ValueError("expected a device index or name, or null (off)")
        if isinstance(value, int) and value < 0:
            raise ValueError("a device index is 0 or more (see `ishowtts devices`)")
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("empty; use null to turn listening off")
            if len(value) > MAX_DEVICE_CHARS or not value.isprintable():
                raise ValueError(
                    f"expected a device name (printable, at most {MAX_DEVICE_CHARS} characters)"
                )
        return value

    @property
    def enabled(self) -> bool:
        return self.device is not None

    @property
    def duck_gain(self) -> float:
        """The gain of a line playing while the streamer speaks (0 in pause mode)."""
        return 0.0 if self.mode == "pause" else 10.0 ** (-self.duck_db / 20.0)
