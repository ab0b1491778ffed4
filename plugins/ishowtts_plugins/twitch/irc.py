"""IRCv3 message parsing for Twitch chat (tags, prefix, command, params)."""

from __future__ import annotations

from dataclasses import dataclass, field

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


class IrcError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Message:
    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str = ""

    @property
    def nick(self) -> str:
        """The sender's login, from ``nick!user@host``."""
        return self.prefix.split("!", 1)[0] if "!" in self.prefix else ""

    @property
    def trailing(self) -> str:
        return self.params[-1] if self.params else ""


def unescape_tag(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < len(value):  # a lone trailing backslash is dropped
                out.append(_UNESCAPE.get(value[i], value[i]))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse(line: str) -> Message:
    """One line (without CR LF) → Message; IrcError if it is not IRC."""
    rest = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw, _, rest = rest[1:].partition(" ")
        for item in raw.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = unescape_tag(value)
        rest = rest.lstrip(" ")
    prefix = ""
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    if not rest:
        raise IrcError(f"no command in {line[:80]!r}")
    head, sep, trailing = rest.partition(" :")
    parts = head.split()
    command, params = parts[0].upper(), parts[1:]
    if not (command.isalpha() or (command.isdigit() and len(command) == 3)):
        raise IrcError(f"bad command {command[:20]!r}")
    if sep:
        params.append(trailing)
    return Message(command, tuple(params), tags, prefix)


def lines(payload: str) -> list[str]:
    """A WebSocket text message holds one or more CR LF terminated lines."""
    return [ln for ln in payload.split("\r\n") if ln.strip()]
