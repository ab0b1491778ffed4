"""Text normalisation: make a chat line sayable before filters and dedupe look at it.

Order matters: width first (so full-width URL and sticker brackets are seen), then control and
format characters (keeping the joiners emoji sequences need), links, stickers, emoji, repeated
runs, whitespace.
"""

from __future__ import annotations

import re
import unicodedata

import emoji

from ..config import NormalizeConfig

# Zero-width joiner, variation selectors and tag characters hold emoji sequences together
# (👨‍👩‍👧, ❤️, subdivision flags); they go only after emoji handling.
_EMOJI_GLUE = frozenset({"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}) | frozenset(
    chr(c) for c in range(0xE0020, 0xE0080)
)
_GLUE_RE = re.compile("[\u200d\ufe0e\ufe0f\U000e0020-\U000e007f]")
_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff]")
# Eight or more parts joined by ZWJs: longer than any emoji sequence (a family has four), and
# the emoji tokenizer's time grows with the square of such a chain (40,000 characters of
# "😂\u200d" took 10 s). Linear: a part is 1-3 characters and cannot hold a ZWJ itself.
_ZWJ_CHAIN = re.compile("(?:[^\u200d]{1,3}\u200d){8,}")

# URL characters are ASCII only, so a link glued to Chinese text ends where the text begins.
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#@!$&'*+,;=%]"
_TLDS = frozenset(
    {"com", "cn", "net", "org", "tv", "io", "me", "cc", "gg", "ly", "co", "xyz", "top"}
)
# Both linear on any input. Scheme links first, then whole runs of dot-separated labels: a run
# may only start where no label character precedes it, so a failed try is never retried from
# inside the same run (the old single pattern, anchored at every word boundary, backtracked over
# the rest of the line from each: quadratic, 18 s for one 40,000-character danmaku). Whether a
# run holds a domain is decided in Python (``_domain``), not by backtracking.
_SCHEME_LINK_RE = re.compile(rf"(?:https?://|www\.){_URL_CHARS}+", re.IGNORECASE)
_LABELS_RE = re.compile(
    rf"(?<![A-Za-z0-9-])(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?P<path>/{_URL_CHARS}*)?"
)
# Bilibili sticker codes: [doge], [笑哭], [热词系列_知识增加]. No spaces, short.
_STICKER_RE = re.compile(r"\[([^\[\]\s]{1,16})\]")
_SPACE_RE = re.compile(r"\s+")
# Characters an emoji can start with (plus the keycap mark, since keycaps start with ASCII
# digits): text without any skips the emoji tokenizer, the costliest step on plain chat.
_EMOJI_HINT = re.compile(
    "["
    + "".join(sorted({re.escape(k[0]) for k in emoji.EMOJI_DATA if not k[0].isascii()}))
    + "\u20e3]"
)
# Languages written without spaces between words: emoji names join the text directly.
_UNSPACED = frozenset({"zh", "ja"})


def _strip_controls(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            continue  # a lone surrogate: no encoding can carry it to the engine
        if cat == "Cc":
            # Line breaks and tabs separate words; other control characters are noise.
            if ch in "\t\n\r\x0b\x0c\x85":
                out.append(" ")
        elif cat == "Cf" and ch not in _EMOJI_GLUE:
            continue  # zero-width spaces, bidi overrides, BOMs
        else:
            out.append(ch)
    return "".join(out)


def _domain(m: re.Match[str], said: str) -> str:
    """The longest prefix of a label run ending in a known top-level domain is a link: a.com.cn,
    example.com in example.com.hello, bilibili.com in bilibili.com-看; not v1.2.3 or
    foo.community. A path is part of it only when the domain ends the run."""
    labels = m.group("host").split(".")
    for i in range(len(labels) - 1, 0, -1):
        tld = labels[i].split("-", 1)[0]
        if tld.lower() in _TLDS:
            rest = ".".join([labels[i][len(tld) :], *labels[i + 1 :]])
            return said + rest + (m.group("path") or "") if rest else said
    return m.group(0)


def _strip_bare_glue(text: str) -> str:
    """Keeps the joiners and selectors inside emoji sequences (kept emoji need them)."""
    return "".join(
        tok.chars if isinstance(tok.value, emoji.EmojiMatch) else _GLUE_RE.sub("", tok.chars)
        for tok in emoji.analyze(text, non_emoji=True)
    )


class Normalizer:
    def __init__(self, cfg: NormalizeConfig) -> None:
        self.cfg = cfg
        n = cfg.max_repeat
        # A run of one repeated digit that is a whole number (666666, 88888888), never the
        # zeros inside 1000000.
        self._digit_run = re.compile(rf"(?<![\d.,])(\d)\1{{{n},}}(?![\d.,])")
        # Any other unit of 1–8 characters repeated more than max_repeat times: 哈哈哈哈,
        # 笑死笑死笑死笑死, !!!!!!. Lazy, so the shortest unit wins.
        self._unit_run = re.compile(rf"(\D{{1,8}}?)\1{{{n},}}")
        self._lang = cfg.emoji_language
        if cfg.emoji == "name":
            try:
                emoji.config.load_language(self._lang)
            except (ValueError, KeyError, NotImplementedError):
                self._lang = "en"  # an unknown language: English names beat none
        self._names: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        cfg = self.cfg
        if not text:
            return ""
        # Bounded before any pattern or table runs: cost is then bounded whatever arrives.
        text = text[: cfg.max_input_chars]
        if cfg.fullwidth:
            text = unicodedata.normalize("NFKC", text)
        text = _strip_controls(text)
        if "." in text or "/" in text:
            said = " " if cfg.links == "drop" else f" {cfg.link_word} "
            text = _SCHEME_LINK_RE.sub(said, text)
            text = _LABELS_RE.sub(lambda m: _domain(m, said), text)
        if cfg.stickers != "keep" and "[" in text:
            text = _STICKER_RE.sub(self._sticker, text)
        if not text.isascii():
            if "\u200d" in text:
                text = _ZWJ_CHAIN.sub(lambda m: m.group(0).replace("\u200d", ""), text)
            if cfg.emoji == "keep":
                if _GLUE_RE.search(text):
                    text = _strip_bare_glue(text)
            else:
                if _EMOJI_HINT.search(text):
                    text = emoji.replace_emoji(text, replace=self._emoji)
                # Glue left now held no emoji together (a bare joiner): as invisible as the rest.
                text = _GLUE_RE.sub("", text)
        text = self._digit_run.sub(lambda m: m.group(1) * cfg.max_repeat, text)
        text = self._unit_run.sub(lambda m: m.group(1) * cfg.max_repeat, text)
        return _SPACE_RE.sub(" ", text).strip()

    def _sticker(self, m: re.Match[str]) -> str:
        if self.cfg.stickers == "drop":
            return " "
        # Series stickers carry a prefix: [热词系列_知识增加] is said as 知识增加.
        return m.group(1).rsplit("_", 1)[-1]

    def _emoji(self, chars: str, data: dict[str, str]) -> str:
        if self.cfg.emoji == "drop":
            return " "
        name = self._names.get(chars)
        if name is None:
            name = self._emoji_name(chars, data)
            if len(self._names) < 4096:  # the emoji set is finite; the cap guards odd input
                self._names[chars] = name
        return name

    def _emoji_name(self, chars: str, data: dict[str, str]) -> str:
        # Skin tones are not worth saying: name the base emoji when it has an entry.
        base = _SKIN_TONES.sub("", chars)
        entry = emoji.EMOJI_DATA.get(base) or data
        raw = entry.get(self._lang) or entry.get("en") or ""
        if not isinstance(raw, str) or not raw:
            return " "
        name = raw.strip(":")
        if self._lang in _UNSPACED:
            return name.replace("_", "")
        return f" {name.replace('_', ' ')} "
