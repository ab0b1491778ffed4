"""Chat commands: which danmaku are commands, and which command each is.

A line is a command when it starts with a prefix (``!``, ``！``) followed by a word: one of ours
(``commands.words``, matched without regard to case) or, for other bots' commands, an ASCII word
(``!uptime``, ``!so_someone``). "!!!" or "！真的吗" are excitement, not commands. Pure and
bounded: only the line's head is looked at, and the arguments are cut to ``MAX_ARGS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config.chat import MAX_WORD, CommandsConfig

MAX_ARGS = 500  # characters of arguments kept: far above any command's need, and than max_chars
OTHER = ""  # Command.name of another bot's command
_OTHER_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # ours (tts, voice, skip, ...) or OTHER
    word: str  # as written
    args: str  # the rest of the line, stripped

    @property
    def arg_words(self) -> list[str]:
        return self.args.split()


class CommandParser:
    def __init__(self, cfg: CommandsConfig) -> None:
        self.cfg = cfg
        self.prefixes = sorted(cfg.prefixes, key=len, reverse=True)
        self.words = {
            word.casefold(): name
            for name, words in cfg.words.model_dump().items()
            for word in words
        }
        self.moderators = frozenset(m.casefold() for m in cfg.moderators)

    def parse(self, text: str) -> Command | None:
        head = text.lstrip()[: MAX_WORD + 8 + MAX_ARGS]
        prefix = next((p for p in self.prefixes if head.startswith(p)), None)
        if prefix is None:
            return None
        word, _, args = head[len(prefix) :].partition(" ")
        word, args = _split(word, args)
        if not word or len(word) > MAX_WORD:
            return None
        name = self.words.get(word.casefold())
        if name is None:
            if not _OTHER_WORD.fullmatch(word):
                return None
            name = OTHER
        return Command(name, word, " ".join(args[:MAX_ARGS].split()))

    def is_moderator(self, is_flagged: bool, ids: tuple[str, ...]) -> bool:
        """The platform flags the user (room admin, moderator, broadcaster), or the config
        names one of the user's ids. Never a display name: anyone can take one (YouTube's are
        not unique, a renamed moderator's old name is free) and so a moderator's powers."""
        return is_flagged or any(i.casefold() in self.moderators for i in ids)


def _split(word: str, args: str) -> tuple[str, str]:
    """The word ends at the first whitespace of any kind (a tab, a full-width space)."""
    for i, ch in enumerate(word):
        if ch.isspace():
            return word[:i], word[i + 1 :] + " " + args
    return word, args
