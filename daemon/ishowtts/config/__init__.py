"""The configuration schema and its loader. One YAML file → frozen, validated models.

The plain sections are in ``sections.py``, the features' own sections in modules named after
them (``airtime``, ``chat``, ``listen``, ``speech_api``); every name is importable from here.

Plugins (connectors, engines) validate their own sections: a plugin class may carry an
``Options`` model (a ``Section``); its keys sit beside ``type`` in the YAML.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from .. import registry
from ..confload import (
    ConfigError,
    Section,
    SourceMap,
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
from .sections import (
    DEFAULT_PRIORITY,
    DEFAULT_SHORT_TEMPLATES,
    DEFAULT_TEMPLATES,
    DEFAULT_TTL,
    TEMPLATE_FIELDS,
    VOICE_KEYS,
    ApiConfig,
    DedupeConfig,
    FailoverConfig,
    FiltersConfig,
    GiftsConfig,
    LogConfig,
    NormalizeConfig,
    PlayerConfig,
    PluginConfig,
    QueueConfig,
    RateLimit,
    RoutingConfig,
    SpeechConfig,
    Template,
    UserLists,
    VoiceConfig,
)
from .speech_api import SpeechApiConfig

# The sections live in sections.py and the feature modules; importers use this package.
__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_SHORT_TEMPLATES",
    "DEFAULT_TEMPLATES",
    "DEFAULT_TTL",
    "TEMPLATE_FIELDS",
    "VOICE_KEYS",
    "ApiConfig",
    "BrokenInstall",
    "Config",
    "ConfigError",
    "DedupeConfig",
    "FailoverConfig",
    "FiltersConfig",
    "GiftsConfig",
    "LogConfig",
    "NormalizeConfig",
    "PlayerConfig",
    "PluginConfig",
    "QueueConfig",
    "RateLimit",
    "RoutingConfig",
    "SpeechConfig",
    "Template",
    "UserLists",
    "VoiceConfig",
    "load_config",
    "load_plugin",
]


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
