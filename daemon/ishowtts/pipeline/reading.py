"""Who and what gets read: the reading mode (switchable live), the on/off switch a moderator's
"!tts off" turns, members, and the chat bots never read.

The mode and the switch are runtime state: a reload keeps them unless the file's
``reading.mode`` itself changed (then the file wins, as the streamer just wrote it).
"""

from __future__ import annotations

from ..config.chat import ReadingConfig, ReadingMode
from ..events import ChatEvent, Kind, User


class Reading:
    def __init__(self, cfg: ReadingConfig) -> None:
        self.cfg = cfg
        self.mode = cfg.mode
        self.enabled = True
        self.bots = frozenset(b.casefold() for b in cfg.bots)

    def reconfigure(self, cfg: ReadingConfig) -> None:
        if cfg.mode != self.cfg.mode:
            self.mode = cfg.mode
        self.cfg = cfg
        self.bots = frozenset(b.casefold() for b in cfg.bots)

    def status(self) -> dict[str, object]:
        return {"mode": self.mode.value, "enabled": self.enabled}

    def is_bot(self, user: User) -> bool:
        return any(n.casefold() in self.bots for n in user.names())

    def is_member(self, user: User) -> bool:
        """A guard (Bilibili 舰长 and up; Twitch subscribers), a VIP, a moderator, or a fan medal
        at ``member_medal_level`` or above when that is set."""
        level = self.cfg.member_medal_level
        return (
            user.guard_level > 0
            or user.is_vip
            or user.is_moderator
            or (level > 0 and user.medal_level >= level)
        )

    def check(self, event: ChatEvent, via_tts: bool) -> str | None:
        """The rule that keeps ``event`` from being read in this mode, or None. The operator's
        own lines (kind system) are always read; ``via_tts``: the line came as "!tts <text>"."""
        kind = event.kind
        if kind is Kind.SYSTEM:
            return None
        if not self.enabled:
            return "tts_off"
        mode = self.mode
        if mode is ReadingMode.ALL or event.is_paid:
            return None
        if mode is ReadingMode.COMMANDS_ONLY:
            return None if via_tts else "mode_commands_only"
        if mode is ReadingMode.MEMBERS_ONLY:
            return None if self.is_member(event.user) else "mode_members_only"
        return f"mode_{mode.value}"
