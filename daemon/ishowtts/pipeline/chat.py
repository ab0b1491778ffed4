"""Chat commands, obeyed before the filters read a line: "!tts <text>" is read (the text only),
"!voice" picks the sender's own voice, moderators skip, mute, pause and switch the reading
from chat, and other bots' commands ("!uptime") are not read.

A command line is never read aloud itself: the pipeline closes it in the ledger as dropped with
rule ``command`` and the fields of ``Done`` (the command, its outcome, the answer), which the
log and the console show. Moderators are the platforms' own (``User.is_moderator``: Bilibili
room admins, Twitch moderators and the broadcaster) and those ``commands.moderators`` names;
every moderator command is logged with who gave it, refused ones too.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ..config.chat import CommandsConfig, ReadingMode
from ..events import ChatEvent, Kind
from .commands import OTHER, Command, CommandParser
from .mutes import MuteError
from .reading import Reading
from .viewer_voices import ViewerVoices

log = structlog.get_logger("ishowtts.pipeline.chat")

MODES = {m.value: m for m in ReadingMode}
SWITCH = {"on": True, "off": False}
MAX_CHATTERS = 5000  # recent senders remembered, so "!mute name" can mute by id


class Moderation(Protocol):
    """What moderators drive from chat (``ishowtts.app.daemon.Daemon``'s operator controls)."""

    def skip(self) -> str | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def mute(self, platform: str, uid: str, name: str) -> tuple[Any, int]: ...
    def unmute(self, platform: str, uid: str, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Read:
    """Read this event (its text may be a "!tts" command's); ``via_tts``: it came as one."""

    event: ChatEvent
    via_tts: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """The line was a command and is not read: the ledger's fields for it."""

    fields: dict[str, str]


class ChatCommands:
    def __init__(
        self,
        cfg: CommandsConfig,
        reading: Reading,
        voices: ViewerVoices,
        moderation: Moderation | None = None,
    ) -> None:
        self.reading = reading
        self.voices = voices
        self.moderation = moderation
        self._chatters: OrderedDict[tuple[str, str], str] = OrderedDict()  # (platform, name) → id
        self.reconfigure(cfg)

    def reconfigure(self, cfg: CommandsConfig) -> None:
        self.cfg = cfg
        self.parser = CommandParser(cfg)

    def take(self, event: ChatEvent, now: float) -> Read | Done:
        self.voices.saw(event)
        if event.kind is not Kind.DANMAKU:
            return Read(event)
        self._remember(event)
        cmd = self.parser.parse(event.text)
        if cmd is None:
            return Read(event)
        if cmd.name == OTHER:
            if self.cfg.read_other:
                return Read(event)
            return Done({"command": cmd.word[:32], "outcome": "another bot's command"})
        if cmd.name == "tts":
            return self._tts(event, cmd)
        if cmd.name == "voice":
            answer = self.voices.command(event, cmd.args, now)
            log.info(
                "viewer_voice", platform=event.platform, user=event.user.name,
                uid=event.user.id, outcome=answer.outcome, answer=answer.text,
            )  # fmt: skip
            if answer.outcome == "listed" and self.voices.cfg.list_aloud:
                return Read(dataclasses.replace(event, text=answer.text), via_tts=True)
            return Done({"command": "voice", "outcome": answer.outcome, "answer": answer.text})
        return self._moderate(event, cmd)

    def is_moderator(self, event: ChatEvent) -> bool:
        return self.parser.is_moderator(event.user.is_moderator, event.user.ids())

    def _tts(self, event: ChatEvent, cmd: Command) -> Read | Done:
        word = cmd.args.casefold()
        if word in SWITCH or word in MODES:
            return self._moderate(event, cmd)
        if not cmd.args:
            return Done({"command": "tts", "outcome": "nothing to read"})
        return Read(dataclasses.replace(event, text=cmd.args), via_tts=True)

    def _moderate(self, event: ChatEvent, cmd: Command) -> Done:
        if not self.is_moderator(event):
            outcome = "refused: not a moderator"
        elif cmd.name == "tts":
            outcome = self._switch(cmd.args.casefold())
        elif self.moderation is None:
            outcome = "refused: no controls in this process"
        else:
            outcome = self._act(self.moderation, event, cmd)
        user = event.user
        log.info(
            "moderator_command", platform=event.platform, by=user.name, uid=user.id,
            command=cmd.name, args=cmd.args[:64], outcome=outcome,
        )  # fmt: skip
        return Done({"command": cmd.name, "outcome": outcome})

    def _switch(self, word: str) -> str:
        if word in SWITCH:
            self.reading.enabled = SWITCH[word]
            return f"reading {word}"
        self.reading.mode = MODES[word]
        return f"mode {word}"

    def _act(self, m: Moderation, event: ChatEvent, cmd: Command) -> str:
        if cmd.name == "skip":
            skipped = m.skip()
            return f"skipped {skipped}" if skipped else "nothing was playing"
        if cmd.name == "pause":
            m.pause()
            return "paused"
        if cmd.name == "resume":
            m.resume()
            return "resumed"
        words = cmd.arg_words
        if not words:
            return f"refused: {cmd.name} whom?"
        name = words[0].lstrip("@")[:128]
        uid = self._chatters.get((event.platform, name.casefold()), "")
        try:
            if cmd.name == "mute":
                _, removed = m.mute(event.platform, uid, name)
                return f"muted {name} ({removed} waiting line(s) removed)"
            done = m.unmute(event.platform, uid, name) or m.unmute(event.platform, "", name)
        except MuteError as exc:
            return f"refused: {exc}"
        return f"unmuted {name}" if done else f"{name} was not muted"

    def _remember(self, event: ChatEvent) -> None:
        user = event.user
        if user.name and user.id:
            key = (event.platform, user.name.casefold())
            self._chatters[key] = user.id
            self._chatters.move_to_end(key)
            if len(self._chatters) > MAX_CHATTERS:
                self._chatters.popitem(last=False)
