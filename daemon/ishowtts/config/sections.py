"""The config's sections that are plain settings: logs, normalisation, filters, failover,
dedupe, gifts, the queue, speech templates, voices, routing, the player and the API."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PositiveFloat,
    SecretStr,
    field_validator,
    model_validator,
)

from ..confload import (
    Section,
    checked_template,
)
from ..events import Kind


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class PluginConfig(BaseModel):
    """A connector or engine entry: ``type`` picks the plug-in, the rest are its options."""

    type: str
    name: str = ""
    enabled: bool = True
    options: Any = None  # the plug-in's validated Options (or the raw mapping)
    # engine only: the engine that speaks when this one cannot (espeak), or None
    fallback: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class NormalizeConfig(Section):
    fullwidth: bool = True  # ＡＢＣ１２３ → ABC123
    max_repeat: int = Field(3, ge=1, le=50)  # 哈哈哈哈哈哈 → 哈哈哈, 666666 → 666
    links: Literal["drop", "word"] = "word"
    link_word: str = "链接"
    emoji: Literal["drop", "name", "keep"] = "drop"
    emoji_language: str = "zh"
    stickers: Literal["drop", "name", "keep"] = "name"  # Bilibili [doge]-style codes
    # Characters kept before any clean-up: far above every platform's own limit (Bilibili 100,
    # Twitch 500), so only a hostile or broken source is cut.
    max_input_chars: int = Field(2000, ge=1, le=1_000_000)


class UserLists(Section):
    block: list[str] = []  # user ids or names never read
    allow: list[str] = []  # when not empty, only these users are read (paid events too)


class RateLimit(Section):
    messages: int = Field(3, ge=1)
    per_seconds: float = Field(15.0, gt=0)


class FiltersConfig(Section):
    block_keywords: list[str] = []
    block_regex: list[str] = []
    users: UserLists = UserLists()
    min_chars: int = Field(1, ge=0)  # graphemes after normalisation; danmaku only
    max_chars: int = Field(80, ge=1)
    drop_punctuation_only: bool = True
    rate: RateLimit | None = RateLimit()  # per user, danmaku only; null turns it off
    kinds: list[Kind] = list(Kind)  # kinds read at all
    # Users muted from the console, kept across restarts (JSON; the daemon writes it). Relative
    # to the config's folder; default: mutes-<config>-<hash>.json in $STATE_DIRECTORY under
    # systemd, else next to the config (docs/state-files.md). Locked and read at start.
    mute_file: str | None = None

    @field_validator("block_regex")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _lengths(self) -> FiltersConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


class FailoverConfig(Section):
    """When the primary engine counts as broken, and how often it is retried meanwhile."""

    # Consecutive failed lines after which the primary counts as broken: rebuilt once, and
    # failing again, replaced by engine.fallback. One bad text must not cost the voice.
    fail_limit: int = Field(3, ge=1, le=100)
    # While the fallback speaks, the primary is retried after retry_first_s, the wait doubling
    # up to retry_max_s (a reload retries at once).
    retry_first_s: float = Field(60.0, ge=1.0, le=86_400.0)
    retry_max_s: float = Field(900.0, ge=1.0, le=86_400.0)

    @model_validator(mode="after")
    def _order(self) -> FailoverConfig:
        if self.retry_max_s < self.retry_first_s:
            raise ValueError(
                f"retry_max_s ({self.retry_max_s:g}) is shorter than retry_first_s "
                f"({self.retry_first_s:g})"
            )
        return self


class DedupeConfig(Section):
    window_s: float = Field(30.0, ge=0)  # 0 turns dedupe off
    max_entries: int = Field(5000, ge=1)


class GiftsConfig(Section):
    merge_window_s: float = Field(10.0, ge=0)  # same user + gift while queued → one "x N"
    min_amount: float = Field(0.0, ge=0)  # gifts worth less are not read (dropped: gift_value)


DEFAULT_PRIORITY = {
    Kind.SYSTEM: 60,
    Kind.SUPER_CHAT: 50,
    Kind.GUARD: 40,
    Kind.GIFT: 30,
    Kind.DANMAKU: 20,
    Kind.FOLLOW: 10,
    Kind.ENTER: 10,
    Kind.SHARE: 10,
    Kind.LIKE: 5,
}
DEFAULT_TTL = {
    Kind.SYSTEM: 120.0,
    Kind.SUPER_CHAT: 600.0,
    Kind.GUARD: 300.0,
    Kind.GIFT: 120.0,
    Kind.DANMAKU: 30.0,
    Kind.FOLLOW: 15.0,
    Kind.ENTER: 10.0,
    Kind.SHARE: 15.0,
    Kind.LIKE: 10.0,
}


class QueueConfig(Section):
    max_items: int = Field(100, ge=1)  # lines waiting, paid ones not counted
    # Paid lines (super chats, gifts and guards with an amount) have their own room and are
    # never evicted; past it a newcomer is lost loudly (error line, /status, metrics).
    max_paid: int = Field(1000, ge=1, le=100_000)
    # Paid messages still waiting at a stop or restart are saved here and read after the next
    # start. auto: pending-paid-<config>-<hash>.json in $STATE_DIRECTORY (systemd's
    # StateDirectory), else $XDG_STATE_HOME/ishowtts, else ~/.local/state/ishowtts; a path
    # (relative to the config file); null: not saved.
    pending_file: str | None = "auto"
    priority: dict[Kind, int] = {}  # merged over DEFAULT_PRIORITY
    ttl_s: dict[Kind, PositiveFloat] = {}  # merged over DEFAULT_TTL

    def priority_of(self, kind: Kind) -> int:
        return self.priority.get(kind, DEFAULT_PRIORITY[kind])

    def ttl_of(self, kind: Kind) -> float:
        return self.ttl_s.get(kind, DEFAULT_TTL[kind])


DEFAULT_TEMPLATES = {
    Kind.DANMAKU: "{text}",
    Kind.SUPER_CHAT: "{user}的醒目留言：{text}",
    Kind.GIFT: "谢谢{user}送的{gift}{count_text}",
    Kind.GUARD: "感谢{user}开通{gift}",
    Kind.FOLLOW: "欢迎{user}关注",
    Kind.ENTER: "欢迎{user}",
    Kind.SHARE: "谢谢{user}分享直播间",
    Kind.LIKE: "谢谢{user}点赞",
    Kind.SYSTEM: "{text}",
}
# Under a backlog (airtime.busy_backlog_s) a kind with a short form is said with it.
DEFAULT_SHORT_TEMPLATES = {Kind.GIFT: "谢谢{user}的{gift}", Kind.SUPER_CHAT: "{user}：{text}"}
TEMPLATE_FIELDS = frozenset({"text", "user", "gift", "count", "count_text", "amount", "platform"})


def _template(template: str) -> str:
    return checked_template(template, TEMPLATE_FIELDS)


# Checked one by one, so an error names the kind and its line.
Template = Annotated[str, AfterValidator(_template)]


class SpeechConfig(Section):
    templates: dict[Kind, Template] = {}  # merged over DEFAULT_TEMPLATES
    short_templates: dict[Kind, Template] = {}  # merged over DEFAULT_SHORT_TEMPLATES
    # Said for {user} when the platform gives no name (Bilibili masks names without a login).
    anonymous: str = "这位观众"

    def template_for(self, kind: Kind) -> str:
        return self.templates.get(kind, DEFAULT_TEMPLATES[kind])

    def short_template_for(self, kind: Kind) -> str | None:
        """The short form, if any: a kind whose template was changed has only its own."""
        if kind in self.short_templates or kind in self.templates:
            return self.short_templates.get(kind)
        return DEFAULT_SHORT_TEMPLATES.get(kind)


class VoiceConfig(Section):
    """A voice: the keys every engine reads; its other keys in the YAML are the engine's own,
    validated by the engine's ``VoiceOptions`` model into ``options`` (see ``_voices``)."""

    ref_audio: str | None = None  # path, relative to the config file; None: the engine's default
    ref_text: str = ""
    speed: float = Field(1.0, gt=0.2, le=3.0)
    options: Any = None  # the engine's VoiceOptions instance; None: the engine's defaults


VOICE_KEYS = frozenset({"ref_audio", "ref_text", "speed"})


class RoutingConfig(Section):
    default: str = "default"
    kinds: dict[Kind, str] = {}
    users: dict[str, str] = {}  # user id or name → voice


class PlayerConfig(Section):
    # name (substring) or index; None: the system default; "none": no device, real-time pace
    device: str | int | None = None
    volume: float = Field(1.0, ge=0.0, le=2.0)
    fade_ms: float = Field(6.0, ge=0.0, le=100.0)
    # Audio made ahead of playback, at most. Small keeps priority order responsive (what is made
    # is committed); it must cover one synthesis, so raise it on a slow device.
    lookahead_s: float = Field(3.0, gt=0.0)
    blocksize: int = Field(480, ge=0, le=8192)  # frames per callback; 480 = 20 ms at 24 kHz
    latency: Literal["low", "high"] | float = "low"


class ApiConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token_env: str = "ISHOWTTS_TOKEN"  # bearer token, required when host is not loopback
    # Or the token itself (the environment wins); keep such a file private (chmod 600).
    token: SecretStr | None = None
    max_body_bytes: int = Field(16384, ge=256, le=1 << 20)
    # A connection must finish a request's headers this long after connecting or after its
    # last response, and a body this long after its headers: idle and trickling clients are
    # cut off instead of holding a file descriptor forever.
    idle_timeout_s: float = Field(10.0, gt=0, le=3600)
    body_timeout_s: float = Field(10.0, gt=0, le=3600)
    # Open connections at most (past it a newcomer gets 503 and is closed before anything is
    # parsed), far below the unit's file descriptor limit.
    max_connections: int = Field(64, ge=1, le=4096)
    # Pages playing the voice at once (/overlay?audio=1: OBS browser sources); a reload applies it.
    max_audio_listeners: int = Field(8, ge=1, le=64)
