"""The configuration schema and its loader. One YAML file → frozen, validated models.

Plugins (connectors, engines) validate their own sections: a plugin class may carry an
``Options`` model (a ``Section``); its keys sit beside ``type`` in the YAML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PositiveFloat,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from .. import registry
from ..confload import (
    ConfigError,
    Section,
    SourceMap,
    checked_template,
    format_loc,
    read_yaml,
    validate,
)
from ..errors import BrokenInstall
from ..events import Kind
from .airtime import AirtimeConfig
from .chat import (
    CommandsConfig,
    DictionaryConfig,
    LanguagesConfig,
    ReadingConfig,
    ViewerVoicesConfig,
)
from .listen import ListenConfig
from .speech_api import SpeechApiConfig

__all__ = ["BrokenInstall", "Config", "ConfigError", "PluginConfig", "load_config", "load_plugin"]


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


class Config(Section):
    log: LogConfig = LogConfig()
    connectors: list[PluginConfig] = []
    engine: PluginConfig = PluginConfig(type="f5")
    failover: FailoverConfig = FailoverConfig()
    voices: dict[str, VoiceConfig] = {"default": VoiceConfig()}
    routing: RoutingConfig = RoutingConfig()
    speech: SpeechConfig = SpeechConfig()
    commands: CommandsConfig = CommandsConfig()  # chat commands (chat_config.py)
    reading: ReadingConfig = ReadingConfig()
    viewer_voices: ViewerVoicesConfig = ViewerVoicesConfig()
    dictionary: DictionaryConfig = DictionaryConfig()
    languages: LanguagesConfig = LanguagesConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FiltersConfig = FiltersConfig()
    dedupe: DedupeConfig = DedupeConfig()
    gifts: GiftsConfig = GiftsConfig()
    queue: QueueConfig = QueueConfig()
    airtime: AirtimeConfig = AirtimeConfig()
    player: PlayerConfig = PlayerConfig()
    listen: ListenConfig = ListenConfig()  # turn-taking with the streamer; off by default
    api: ApiConfig = ApiConfig()
    speech_api: SpeechApiConfig = SpeechApiConfig()  # POST /v1/audio/speech
    path: Path = Path("config.yaml")
    # Where each key is in the file, for checks after the schema's (voices, reload).
    _source: SourceMap | None = PrivateAttr(None)

    def top_level_keys(self) -> set[str]:
        """The sections written in the file (empty when not loaded from one)."""
        lines = self._source.lines if self._source is not None else {}
        return {str(loc[0]) for loc in lines if len(loc) == 1}

    def where(self, *loc: str | int) -> str:
        """``config.yaml:LINE`` of a key path (the file name alone when unknown)."""
        return self._source.where(loc) if self._source is not None else self.path.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(os.path.expanduser(str(path)))
        return p if p.is_absolute() else self.base_dir / p

    def voice_for(
        self, kind: Kind, user_id: str, user_name: str, alt_ids: tuple[str, ...] = ()
    ) -> str:
        users = self.routing.users
        return (
            users.get(user_id)
            or next((users[a] for a in alt_ids if a in users), None)
            or users.get(user_name)
            or self.routing.kinds.get(kind)
            or self.routing.default
        )


load_plugin = registry.load  # for callers from before the registry


def _plugin_names(group: str) -> str:
    return ", ".join(registry.names(group)) or "none"


def _plugin(
    group: str, entry: Any, source: SourceMap, loc: tuple[str | int, ...], base_dir: Path
) -> tuple[PluginConfig, Any]:
    """The validated entry and the plug-in's class."""
    where = source.where(loc)
    if not isinstance(entry, Mapping):
        raise ConfigError([f"{format_loc(loc)}: expected a mapping with a 'type' key ({where})"])
    raw = dict(entry)
    kind = raw.pop("type", None)
    if not isinstance(kind, str):
        raise ConfigError(
            [f"{format_loc((*loc, 'type'))}: required; one of {_plugin_names(group)} ({where})"]
        )
    name = raw.pop("name", None) or kind
    enabled = raw.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(
            [f"{format_loc((*loc, 'enabled'))}: expected true or false ({source.where(loc)})"]
        )
    type_loc = (*loc, "type")
    try:
        cls = registry.load(group, kind)
    except LookupError:
        raise ConfigError(
            [
                f"{format_loc(type_loc)}: unknown {registry.what(group)} {kind!r}; "
                f"installed: {_plugin_names(group)} ({source.where(type_loc)})"
            ]
        ) from None
    except Exception as exc:  # installed but not importable: the install is broken, not the file
        raise BrokenInstall(
            f"{registry.what(group)} {kind!r} (named at {format_loc(type_loc)}, "
            f"{source.where(type_loc)}) is installed but cannot be imported: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}; run `ishowtts doctor` for the fix"
        ) from exc
    model = getattr(cls, "Options", None)
    # base_dir lets options resolve their relative paths against the config file's folder.
    context = {"base_dir": base_dir}
    options = validate(model, raw, source, loc, context) if model is not None else raw
    entry_config = PluginConfig(
        type=kind, name=str(name), enabled=enabled, options=options, raw=raw
    )
    return entry_config, cls


# Off unless the config names one (the shipped config.yaml does: espeak), so a config written
# for F5 alone keeps failing loudly when F5 cannot load.
DEFAULT_FALLBACK = None


def _fallback(raw_engine: dict[str, Any], source: SourceMap) -> str | None:
    """Pop and check ``engine.fallback``: an installed engine's name, or none."""
    value = raw_engine.pop("fallback", DEFAULT_FALLBACK)
    if value is None or value == "none":
        return None
    loc = ("engine", "fallback")
    names = registry.names(registry.ENGINES)
    if not isinstance(value, str) or value not in names:
        raise ConfigError(
            [
                f"{format_loc(loc)}: expected none or an installed engine "
                f"({', '.join(sorted(names))}), got {value!r} ({source.where(loc)})"
            ]
        )
    return value


def parse_config(data: Mapping[str, Any], source: SourceMap, path: Path) -> Config:
    problems: list[str] = []
    data = dict(data)
    connectors: list[PluginConfig] = []
    raw_connectors = data.pop("connectors", None) or []
    if not isinstance(raw_connectors, list):
        problems.append(f"connectors: expected a list ({source.where(('connectors',))})")
        raw_connectors = []
    for i, entry in enumerate(raw_connectors):
        try:
            connectors.append(
                _plugin(registry.CONNECTORS, entry, source, ("connectors", i), path.parent)[0]
            )
        except ConfigError as exc:
            problems += exc.problems
    engine = engine_cls = None
    fallback: str | None = None
    try:
        raw_engine = data.pop("engine", {"type": "f5"})
        if isinstance(raw_engine, Mapping):
            raw_engine = dict(raw_engine)
            fallback = _fallback(raw_engine, source)
        engine, engine_cls = _plugin(registry.ENGINES, raw_engine, source, ("engine",), path.parent)
        if fallback == engine.type:
            fallback = None  # an engine is no fallback for itself
        engine = engine.model_copy(update={"fallback": fallback})
    except ConfigError as exc:
        problems += exc.problems
    if "voices" in data:
        data["voices"] = _voices(data["voices"], engine, engine_cls, source, path.parent, problems)
    names = [c.name for c in connectors]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"connectors: two connectors are named {dup!r}; give each a distinct name")
    config = None
    try:
        config = validate(Config, {**data, "path": path}, source)
    except ConfigError as exc:
        problems += exc.problems
    if config is not None:
        problems += _check_routing(config, source)
    if problems:
        raise ConfigError(problems)
    assert config is not None and engine is not None
    config = config.model_copy(update={"connectors": connectors, "engine": engine})
    config._source = source
    return config


def _voices(
    raw: Any,
    engine: PluginConfig | None,
    engine_cls: Any,
    source: SourceMap,
    base_dir: Path,
    problems: list[str],
) -> Any:
    """Each voice's keys beyond ``VOICE_KEYS`` are the engine's: validated by its
    ``VoiceOptions`` model into the voice's ``options``."""
    if not isinstance(raw, Mapping):
        return raw  # Config's validation says what is wrong
    model = getattr(engine_cls, "VoiceOptions", None)
    out: dict[Any, Any] = {}
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            out[name] = entry
            continue
        common = {k: v for k, v in entry.items() if k in VOICE_KEYS}
        own = {k: v for k, v in entry.items() if k not in VOICE_KEYS}
        loc = ("voices", name)
        if model is not None:
            try:
                common["options"] = validate(model, own, source, loc, {"base_dir": base_dir})
            except ConfigError as exc:
                problems += exc.problems
        elif own and engine is not None:
            key = next(iter(own))
            problems.append(
                f"{format_loc((*loc, key))}: engine {engine.type!r} takes no voice option "
                f"{key!r}; every engine takes {', '.join(sorted(VOICE_KEYS))} "
                f"({source.where((*loc, key))})"
            )
        out[name] = common
    return out


def _check_routing(config: Config, source: SourceMap) -> list[str]:
    out = []
    voices = config.voices
    refs: list[tuple[tuple[str | int, ...], str]] = [
        (("routing", "default"), config.routing.default)
    ]
    refs += [(("routing", "kinds", k.value), v) for k, v in config.routing.kinds.items()]
    refs += [(("routing", "users", k), v) for k, v in config.routing.users.items()]
    vv = config.viewer_voices
    for key in ("allowed", "paid", "members", "pool"):
        refs += [(("viewer_voices", key, i), v) for i, v in enumerate(getattr(vv, key))]
    refs += [(("languages", "voices", k), v) for k, v in config.languages.voices.items()]
    if config.speech_api.default_voice:
        refs.append((("speech_api", "default_voice"), config.speech_api.default_voice))
    for loc, voice in refs:
        if voice not in voices:
            out.append(
                f"{format_loc(loc)}: no voice named {voice!r}; voices: "
                f"{', '.join(voices) or 'none'} ({source.where(loc)})"
            )
    return out


def load_config(path: str | Path) -> Config:
    path = Path(path)
    data, source = read_yaml(path)
    return parse_config(data, source, path.resolve())
