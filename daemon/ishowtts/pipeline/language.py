"""Which language a chat line is in, and who should speak it.

Lingua (``lingua-language-detector``) decides among ``languages.candidates``: it is accurate
on a few words, where n-gram detectors trained on documents guess, and its models ship in the
wheel (no download). A line with no letters (digits, emoji, punctuation) or a guess below
``min_confidence`` is not re-routed. Measured on real short chat lines: docs/viewers.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from ..config.chat import LanguagesConfig

MAX_CHARS = 300  # a line's head is enough to tell its language, and bounds the cost


@dataclass(frozen=True, slots=True)
class Route:
    language: str  # detected ("" unknown)
    voice: str | None = None  # a configured voice for it
    by_fallback: bool = False  # no voice speaks it: the fallback engine reads it in it


class Languages:
    def __init__(self, cfg: LanguagesConfig) -> None:
        self.cfg = cfg
        self.detector: LanguageDetector | None = None
        if cfg.detect:
            wanted = {
                Language.from_iso_code_639_1(IsoCode639_1.from_str(c)) for c in cfg.candidates
            }
            if len(wanted) == 1:
                wanted.add(Language.ENGLISH if Language.CHINESE in wanted else Language.CHINESE)
            # Models loaded now, not on the first line of each language (10 ms each).
            builder = LanguageDetectorBuilder.from_languages(*wanted)
            self.detector = builder.with_preloaded_language_models().build()

    def detect(self, text: str) -> str:
        """The line's language (ISO 639-1), or "" when it has no letters or no clear guess."""
        if self.detector is None or not any(c.isalpha() for c in text[:MAX_CHARS]):
            return ""
        values = self.detector.compute_language_confidence_values(text[:MAX_CHARS])
        if not values or values[0].value < self.cfg.min_confidence:
            return ""
        return values[0].language.iso_code_639_1.name.lower()

    def route(self, text: str, fallback: bool) -> Route:
        """Who reads ``text``: its language's voice, the fallback engine (``fallback``: there
        is one), or the usual routing (a language the voices speak, or unknown)."""
        lang = self.detect(text)
        if not lang or lang in self.cfg.spoken:
            return Route(lang)
        voice = self.cfg.voices.get(lang)
        if voice is not None:
            return Route(lang, voice)
        return Route(lang, by_fallback=fallback)
