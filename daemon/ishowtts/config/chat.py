"""The config sections for what viewers and moderators do from chat (issue 21): chat commands,
reading modes and bots, the viewers' own voices. config.py holds only their fields."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator, model_validator

from ..confload import Section
from ..events import Kind

# Words and names are short on every platform; the bounds keep a hostile config cheap too.
MAX_WORD = 32
MAX_NAMES = 10_000


class ReadingMode(str, Enum):
    ALL = "all"  # every line the filters let through
    COMMANDS_ONLY = "commands_only"  # chat only as "!tts <text>"; paid events as usual
    PAID_ONLY = "paid_only"  # super chats, gifts, guards
    MEMBERS_ONLY = "members_only"  # paid events, and chat from members (guards, subs, VIPs)

    def __str__(self) -> str:
        return self.value


def _words(words: list[str]) -> list[str]:
    for word in words:
        if not word or len(word) > MAX_WORD or any(c.isspace() for c in word):
            raise ValueError(f"a command word is 1-{MAX_WORD} characters without spaces: {word!r}")
    return words


class CommandWords(Section):
    """Each command's words, without the prefix (``[]`` turns that command off)."""

    tts: list[str] = ["tts"]  # "!tts <text>" is read; a moderator's "!tts off|on|<mode>"
    voice: list[str] = ["voice", "声音"]  # a viewer's own voice: list, <name>, reset
    skip: list[str] = ["skip"]  # moderators: what is being read stops
    mute: list[str] = ["mute"]  # moderators: "!mute <user>"
    unmute: list[str] = ["unmute"]
    pause: list[str] = ["pause"]
    resume: list[str] = ["resume"]

    @field_validator("*")
    @classmethod
    def _check(cls, words: list[str]) -> list[str]:
        return _words(words)

    @model_validator(mode="after")
    def _distinct(self) -> CommandWords:
        seen: dict[str, str] = {}
        for command, words in self.model_dump().items():
            for word in words:
                other = seen.setdefault(word.casefold(), command)
                if other != command:
                    raise ValueError(f"the word {word!r} names both {other} and {command}")
        return self


class CommandsConfig(Section):
    # A danmaku starting with one of these is a command: ours are obeyed, other bots' commands
    # (!uptime, !discord) are not read unless read_other is true.
    prefixes: list[str] = ["!", "！"]
    read_other: bool = False
    words: CommandWords = CommandWords()
    # User ids (not names: anyone can take a name) obeyed as moderators beside the platforms'
    # own flags (Bilibili room admins, Twitch moderators and the broadcaster): Bilibili does not
    # flag the streamer.
    moderators: list[str] = Field([], max_length=MAX_NAMES)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, prefixes: list[str]) -> list[str]:
        for p in prefixes:
            if not 1 <= len(p) <= 4 or any(c.isspace() or c.isalnum() for c in p):
                raise ValueError(f"a prefix is 1-4 characters, no letters, digits or spaces: {p!r}")
        return prefixes


# Chat bots whose lines are never read (matched by name or id, case-insensitive). Twitch's
# common moderation and alert bots, and Bilibili's official live assistant accounts.
DEFAULT_BOTS = [
    "Nightbot", "StreamElements", "Moobot", "Fossabot", "Streamlabs", "Wizebot", "Botisimo",
    "PhantomBot", "DeepBot", "Coebot", "Sery_Bot", "SoundAlerts", "StreamlootsBot",
    "Kofistreambot", "Own3d", "Blerp", "Pretzelrocks", "哔哩哔哩直播", "直播小助手",
]  # fmt: skip
DEFAULT_NAMES = {Kind.DANMAKU: False}  # other kinds say the name (their templates hold it)


class ReadingConfig(Section):
    mode: ReadingMode = ReadingMode.ALL  # switchable live: console, API, "!tts <mode>"
    # Bilibili: a fan medal of at least this level makes a member (0: medals do not count;
    # guards, Twitch subscribers and VIPs and moderators always do).
    member_medal_level: int = Field(0, ge=0, le=100)
    bots: list[str] = Field(DEFAULT_BOTS, max_length=MAX_NAMES)
    # Whether each kind's line says who sent it (merged over: danmaku no, every other kind
    # yes). A kind set true whose template lacks {user} (danmaku) gets name_prefix; a kind
    # set false says speech.anonymous for {user}.
    names: dict[Kind, bool] = {}
    name_prefix: str = Field("{user}说：", max_length=64)
    # How a user's name is said: user id or name → the spoken name (a nickname, a fix).
    nicknames: dict[str, str] = Field({}, max_length=MAX_NAMES)

    def says_name(self, kind: Kind) -> bool:
        return self.names.get(kind, DEFAULT_NAMES.get(kind, True))

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if "{user}" not in prefix or prefix.count("{") != 1 or prefix.count("}") != 1:
            raise ValueError("name_prefix holds {user} and no other field")
        return prefix

    @field_validator("nicknames")
    @classmethod
    def _nicknames(cls, names: dict[str, str]) -> dict[str, str]:
        for who, said in names.items():
            if not who or not said.strip() or len(who) > 128 or len(said) > 64:
                raise ValueError(f"a nickname is 1-64 characters for a name or id: {who!r}")
        return names


class ViewerVoicesConfig(Section):
    """The voices viewers pick for themselves with "!voice <name>" (commands.words.voice)."""

    allowed: list[str] = []  # the voices viewers may pick; empty: every configured voice
    paid: list[str] = []  # of those, the ones only paying viewers may pick (guards, or who paid)
    members: list[str] = []  # of those, the ones only members may pick (see reading)
    # Viewers who picked none get a stable voice from this pool (a hash of platform and id);
    # empty: routing decides as before.
    pool: list[str] = []
    cooldown_s: float = Field(30.0, ge=0, le=86_400)  # per viewer, between two changes
    list_aloud: bool = False  # "!voice list" is read aloud too (always: console and log)
    # Where the choices are kept: auto, like the mute list (voices-<config>-<hash>.json in
    # $STATE_DIRECTORY under systemd, else next to the config); a path relative to the
    # config; null: in memory only.
    file: str | None = "auto"
    max_users: int = Field(100_000, ge=1, le=1_000_000)  # the oldest choice goes past it


class DictionaryConfig(Section):
    """The pronunciation dictionary (docs/viewers.md): the streamer's own file, edited by hand
    or from the console and reloaded when it changes, over the starter dictionary."""

    # auto: $STATE_DIRECTORY/dictionary.json under systemd, else next to the config; a path
    # relative to the config; null: no file of your own.
    file: str | None = "auto"
    starter: bool = True  # the bundled Chinese livestream slang (yyds, awsl, 233, 666, ...)


class LanguagesConfig(Section):
    """Mixed-language chat: each line's language is detected (Lingua) and a line in a language
    the voices do not speak goes to a voice that does (docs/viewers.md)."""

    detect: bool = True
    # Languages a line may be found to be (ISO 639-1): fewer is faster and surer. Latin-script
    # languages left out are found to be English.
    candidates: list[str] = Field(["zh", "en", "ja", "ko"], min_length=1, max_length=40)
    spoken: list[str] = ["zh", "en"]  # what the engine's voices speak (F5: Chinese and English)
    # language → a configured voice that speaks it; another language outside `spoken` is read
    # by engine.fallback (eSpeak NG) in that language, or as usual when there is none.
    voices: dict[str, str] = {}
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)  # below it, a line is not re-routed

    @field_validator("voices")
    @classmethod
    def _voice_codes(cls, voices: dict[str, str]) -> dict[str, str]:
        cls._codes(list(voices))  # "japanese:" would never match a line, silently
        return voices

    @field_validator("candidates", "spoken")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        from lingua import IsoCode639_1  # the detector's own list of what it knows

        for code in codes:
            try:
                IsoCode639_1.from_str(code)
            except ValueError:
                raise ValueError(f"{code!r} is not an ISO 639-1 language code") from None
        return codes
