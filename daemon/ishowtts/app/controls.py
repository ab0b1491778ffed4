"""What the operator can do to a running daemon (the control API, the console): skip, pause,
resume, volume, clear, say, remove a queued line, mute and unmute, the reading mode.

A mixin of ``ishowtts.app.daemon.Daemon``: these are the daemon's own methods, as the API and the
console drive them (``api.ControlTarget``, ``console.ConsoleTarget``); the class names below
the parts they act on.
"""

from __future__ import annotations

import structlog

from ..audio.player import Player
from ..config.chat import ReadingMode
from ..control.feed import EventFeed
from ..events import ChatEvent
from ..pipeline.ingest import Pipeline
from ..pipeline.mutes import Mute, MuteList
from ..queue.scheduler import Scheduler
from .connector_set import ConnectorSet

log = structlog.get_logger("ishowtts")


class OperatorControls:
    player: Player | None  # None until start-up has opened the output
    scheduler: Scheduler
    mutes: MuteList
    feed: EventFeed
    intake: ConnectorSet
    pipeline: Pipeline

    def skip(self) -> str | None:
        utt = self.player.skip() if self.player else None
        return utt.id if utt else None

    def pause(self) -> None:
        if self.player:
            self.player.pause()

    def resume(self) -> None:
        if self.player:
            self.player.resume()

    def clear(self, reason: str = "cleared") -> int:
        return self.scheduler.clear(reason)

    def set_volume(self, volume: float) -> None:
        if self.player:
            self.player.volume = volume

    async def say(self, text: str, user: str = "", voice: str = "") -> ChatEvent:
        http = self.intake.http()
        if http is None:
            raise RuntimeError("no http connector")
        return await http.say(text, user=user, voice=voice)  # type: ignore[attr-defined]

    def remove_queued(self, utterance_id: str) -> bool:
        """Take one waiting utterance out of the queue (the console's ✕)."""
        return self.scheduler.remove(lambda u: u.id == utterance_id, reason="operator") == 1

    def mute(self, platform: str, uid: str, name: str) -> tuple[Mute, int]:
        """Mute a user from now on (and across restarts); what of theirs waits is removed."""
        mute = self.mutes.add(platform, uid, name)
        n = self.scheduler.remove(
            lambda u: mute.covers(u.event.platform, u.event.user.ids(), u.event.user.name),
            reason="muted",
        )
        log.info("muted", platform=mute.platform, uid=mute.uid, user=mute.name, removed=n)
        self.feed.publish("mutes", count=len(self.mutes))
        return mute, n

    def unmute(self, platform: str, uid: str, name: str) -> bool:
        done = self.mutes.remove(platform, uid, name)
        if done:
            log.info("unmuted", platform=platform, uid=uid, user=name)
            self.feed.publish("mutes", count=len(self.mutes))
        return done

    def set_reading(
        self, mode: str | None = None, enabled: bool | None = None
    ) -> dict[str, object]:
        """Switch the reading mode (all, commands_only, paid_only, members_only) or turn reading
        off and on, as a moderator's "!tts <mode>" / "!tts off" does from chat."""
        reading = self.pipeline.reading
        if mode is not None:
            reading.mode = ReadingMode(mode)
        if enabled is not None:
            reading.enabled = enabled
        log.info("reading_changed", by="operator", **reading.status())
        return reading.status()
