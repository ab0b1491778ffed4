"""Text front end for F5: chat text → speakable text → chunks with frame budgets.

F5 reads characters (pinyin for Chinese), so digits, symbols and emoji must become words first.
Numbers are read in the language around them (Chinese by cn2an, English by num2words); chat
memes that are numbers (666, 2333) are read as the meme; emoji are dropped or named.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cn2an
import emoji
from num2words import num2words

EmojiMode = Literal["drop", "name"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def _context_is_zh(text: str, start: int, end: int) -> bool:
    """Is the number at ``text[start:end]`` inside Chinese? A Chinese character touching it
    decides (``SC 30元``: the unit is Chinese), else the nearest letter on either side (left
    first); a text without letters near the number goes by whether it has CJK."""
    if any(_CJK.match(c) for c in text[start - 1 : start] + text[end : end + 1]):
        return True
    for i in range(start - 1, -1, -1):
        c = text[i]
        if _CJK.match(c):
            return True
        if _LATIN.match(c):
            return False
    for c in text[end:]:
        if _CJK.match(c):
            return True
        if _LATIN.match(c):
            return False
    return has_cjk(text)


# ---- number readers --------------------------------------------------------------------


def zh_number(digits: str) -> str:
    """An integer or decimal in Chinese, with 两 where speech uses it (两千, 两万)."""
    out = cn2an.an2cn(digits, "low")
    return re.sub(r"^二(?=[千万亿])", "两", out)


def zh_digits(digits: str) -> str:
    return "".join("零一二三四五六七八九"[int(d)] for d in digits)


def en_number(digits: str) -> str:
    value: int | float = float(digits) if "." in digits else int(digits)
    return num2words(value, lang="en").replace(",", "")


def en_digits(digits: str) -> str:
    return " ".join(num2words(int(d), lang="en") for d in digits)


def _read_number(digits: str, zh: bool) -> str:
    whole = digits.split(".")[0]
    # Phone numbers, ids, codes: digit by digit (long, or a leading zero).
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 8:
        return zh_digits(digits.replace(".", "")) if zh else en_digits(digits.replace(".", ""))
    return zh_number(digits) if zh else en_number(digits)


# ---- rules, applied in order -------------------------------------------------------------

Rule = tuple[re.Pattern[str], Callable[[re.Match[str], bool], str]]


def _date(m: re.Match[str], zh: bool) -> str:
    y, mo, d = m.group("y"), int(m.group("m")), int(m.group("d"))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    if zh:
        return f"{zh_digits(y)}年{zh_number(str(mo))}月{zh_number(str(d))}日"
    return f"{_MONTHS[mo - 1]} {num2words(d, lang='en', to='ordinal')}, " + num2words(
        int(y), lang="en", to="year"
    )


def _zh_year(m: re.Match[str], zh: bool) -> str:
    return zh_digits(m.group(1)) + "年"


def _time(m: re.Match[str], zh: bool) -> str:
    h, mi = int(m.group(1)), int(m.group(2))
    if h > 24 or mi > 59:
        return m.group(0)
    if zh:
        return f"{zh_number(str(h))}点" + (f"{zh_number(str(mi))}分" if mi else "")
    if mi == 0:
        return f"{num2words(h, lang='en')} o'clock"
    minutes = num2words(mi, lang="en") if mi >= 10 else f"oh {num2words(mi, lang='en')}"
    return f"{num2words(h, lang='en')} {minutes}"


def _percent(m: re.Match[str], zh: bool) -> str:
    n = m.group(1)
    return f"百分之{zh_number(n)}" if zh else f"{en_number(n)} percent"


def _laugh(m: re.Match[str], zh: bool) -> str:
    return "哈哈哈" if zh else "ha ha ha"


def _six(m: re.Match[str], zh: bool) -> str:
    return "六六六" if zh else "six six six"


_CURRENCY = {"¥": ("元", "yuan"), "$": ("美元", "dollars"), "€": ("欧元", "euros")}
_MONEY = "".join(_CURRENCY)  # symbols kept until the rules have read the amounts after them


def _money(m: re.Match[str], zh: bool) -> str:
    zh_unit, en_unit = _CURRENCY[m.group(1)]
    amount = m.group(2)
    return f"{zh_number(amount)}{zh_unit}" if zh else f"{en_number(amount)} {en_unit}"


def _times(m: re.Match[str], zh: bool) -> str:
    """Gift counts and combos: ``辣条x3`` → 辣条乘三, ``rose x3`` → rose times three."""
    n = m.group(1)
    return f"乘{zh_number(n)}" if zh else f"times {en_number(n)}"


def _number(m: re.Match[str], zh: bool) -> str:
    return _read_number(m.group(0), zh)


_NOT_DIGIT_BEFORE = r"(?<![\d.])"
_NOT_DIGIT_AFTER = r"(?![\d])"
RULES: list[Rule] = [
    (re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)"), _date),
    (re.compile(r"(?<!\d)(\d{4})\s*年"), _zh_year),
    (re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)"), _time),
    (re.compile(r"(\d+(?:\.\d+)?)\s*[%％]"), _percent),
    (re.compile(r"([¥$€])\s*(\d+(?:\.\d+)?)"), _money),
    (re.compile(r"(?<![A-Za-z0-9])[xX×*]\s?(\d{1,6})(?![\d.])"), _times),
    # Chat memes: 233 (and 2333...) is laughter, 666 (and more sixes) is "awesome".
    (re.compile(_NOT_DIGIT_BEFORE + r"2333*" + _NOT_DIGIT_AFTER), _laugh),
    (re.compile(_NOT_DIGIT_BEFORE + r"666+" + _NOT_DIGIT_AFTER), _six),
    (re.compile(r"\d+(?:\.\d+)?"), _number),
]

# Pairs of brackets whose content has no letters or digits: kaomoji such as (＾▽＾) or (╯°□°)╯.
_KAOMOJI = re.compile(r"[(（\[【<][^()（）\[\]【】<>A-Za-z0-9\u3400-\u9fff]{1,12}[)）\]】>]")
_REPEAT = re.compile(r"(.)\1{4,}")
_PUNCT_RUN = re.compile(r"([!?！？。，,.~～…])[!?！？。，,.~～…]+")


def _apply(fn: Callable[[re.Match[str], bool], str], m: re.Match[str]) -> str:
    zh = _context_is_zh(m.string, *m.span())
    out = fn(m, zh)
    return out if zh else f" {out} "  # English words must not run into letters around them


def _emoji_name(chars: str, data: dict, zh: bool) -> str:
    name = emoji.demojize(chars, language="zh" if zh else "en", delimiters=("", ""))
    name = name.replace("_", " ").strip()
    return f" {name} " if name and name != chars else " "


def _keep_char(c: str) -> bool:
    """Letters, digits, marks, punctuation and spaces stay; symbols (kaomoji parts, arrows,
    box drawing) go."""
    cat = unicodedata.category(c)
    return not (cat.startswith("S") or cat in ("Co", "Cn", "Cc", "Cf")) or c in "\n" + _MONEY


def normalize(text: str, emoji_mode: EmojiMode = "drop") -> str:
    """Speakable text: width-folded, emoji/kaomoji handled, numbers read out, runs shortened."""
    text = unicodedata.normalize("NFKC", text)
    zh_text = has_cjk(text)
    if emoji_mode == "name":
        text = emoji.replace_emoji(text, replace=lambda c, d: _emoji_name(c, d, zh_text))
    else:
        text = emoji.replace_emoji(text, replace=" ")
    text = _KAOMOJI.sub(" ", text)
    text = "".join(c if _keep_char(c) else " " for c in text)
    for pattern, fn in RULES:
        text = pattern.sub(functools.partial(_apply, fn), text)
    text = re.sub(f"[{_MONEY}]", " ", text)
    text = _REPEAT.sub(lambda m: m.group(1) * 4, text)
    text = _PUNCT_RUN.sub(r"\1", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" (?=[,.!?;:])", "", text).strip()
    # A text that was only symbols says nothing; punctuation alone is not speech either.
    if not any(c.isalnum() for c in text):
        return ""
    return text


# ---- duration --------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_VOWELS = re.compile(r"[aeiouy]+")
_PAUSE_LONG = re.compile(r"[。！？!?；;…]|\.(?=\s|$)")
_PAUSE_SHORT = re.compile(r"[，,、：:]")


def _syllables(word: str) -> int:
    w = word.lower()
    n = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and n > 1:
        n -= 1
    return max(1, n)


def speech_units(text: str) -> float:
    """A rough count of syllables (one a Chinese character, vowel groups for English words)
    plus pauses, which is what speaking time is proportional to."""
    units = float(len(_CJK.findall(text)))
    units += sum(_syllables(w) for w in _WORD.findall(text))
    units += sum(1 for c in text if c.isdigit())  # digits left after normalising (rare)
    units += 1.0 * len(_PAUSE_LONG.findall(text)) + 0.5 * len(_PAUSE_SHORT.findall(text))
    return units


@dataclass(frozen=True)
class Rate:
    """Speaking rate of a voice, measured on its reference clip."""

    frames_per_unit: float
    min_frames: int  # floor for one chunk's new audio (very short messages)

    @classmethod
    def from_reference(cls, ref_text: str, ref_frames: int, min_frames: int) -> Rate:
        units = speech_units(ref_text)
        if not any(c.isalnum() for c in ref_text):
            raise ValueError("the reference transcript has no speakable words")
        return cls(ref_frames / units, min_frames)

    def frames(self, text: str, speed: float = 1.0) -> int:
        return max(self.min_frames, math.ceil(speech_units(text) * self.frames_per_unit / speed))


# ---- chunking --------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;…\n])|(?<=[.])(?=\s)")
_CLAUSE_END = re.compile(r"(?<=[，,、：:])")


def _split_to_fit(piece: str, fits: Callable[[str], bool]) -> list[str]:
    """Split a piece at clause marks, then at spaces/characters, until every part fits."""
    if fits(piece):
        return [piece]
    for splitter in (_CLAUSE_END, re.compile(r"(?<=\s)")):
        parts = [p for p in splitter.split(piece) if p.strip()]
        if len(parts) > 1:
            return _pack(parts, fits)
    mid = len(piece) // 2
    if mid == 0:
        return [piece]
    return _split_to_fit(piece[:mid], fits) + _split_to_fit(piece[mid:], fits)


def _join(a: str, b: str) -> str:
    """Concatenate two pieces, with a space only where Latin text meets Latin text."""
    a, b = a.rstrip(), b.lstrip()
    if a and b and ord(a[-1]) < 0x2E80 and ord(b[0]) < 0x2E80:
        return f"{a} {b}"
    return a + b


def _pack(parts: list[str], fits: Callable[[str], bool]) -> list[str]:
    out: list[str] = []
    cur = ""
    for p in parts:
        if cur and fits(_join(cur, p)):
            cur = _join(cur, p)
            continue
        if cur:
            out.append(cur)
        cur = ""
        for sub in _split_to_fit(p, fits):
            if cur and fits(_join(cur, sub)):
                cur = _join(cur, sub)
            else:
                if cur:
                    out.append(cur)
                cur = sub
    if cur:
        out.append(cur)
    return out


def chunk(text: str, frames: Callable[[str], int], first_max: int, max_frames: int) -> list[str]:
    """Split ``text`` at sentence marks into chunks whose estimated frames fit ``max_frames``;
    the first chunk is kept within ``first_max`` so its audio comes quickly."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if not sentences:
        return []
    first_parts = _split_to_fit(sentences[0], lambda s: frames(s) <= first_max)
    first, rest_of_first = first_parts[0], first_parts[1:]
    rest = _pack([*rest_of_first, *sentences[1:]], lambda s: frames(s) <= max_frames)
    return [first.strip()] + [r.strip() for r in rest if r.strip()]
