"""The ``espeak`` engine: eSpeak NG, bundled by ``espeakng-loader`` (library and voice data), bound
with ctypes. No download, no GPU, ~100× real time on one core: the daemon's fallback voice.

libespeak-ng is process-global state (one voice, one callback), so every call into it holds one
module-level lock. Text is read in runs of one script: Han characters with the Mandarin voice,
Latin letters with the English one, the rest (digits, punctuation) with the voice's language.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import soxr
from pydantic import Field

from ..confload import Section
from .base import LANGUAGE_VOICE, EngineBroken, EngineError, Progress, Voice

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS hands every buffer to the callback and returns
# from espeak_Synth only when the text is done.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1  # espeakCHARS_UTF8; no espeakSSML: chat text is never markup
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH = 1, 2, 3  # espeak_PARAMETER
# int callback(short *wav, int numsamples, espeak_EVENT *events); non-zero aborts.
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# Espeak voice per language; a Voice's language option or a text run's script picks one.
VOICES = {"zh": "cmn", "en": "en-us"}
# A LANGUAGE_VOICE ("lang:<code>") reads the whole line in that eSpeak NG language.
_ESPEAK_NAMES = {"zh": "cmn", "en": "en-us"}  # other codes are eSpeak NG's own voice names

_HAN = r"\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"(?P<zh>[{_HAN}]+)|(?P<en>[A-Za-z\u00c0-\u024f]+(?:['’-][A-Za-z]+)*)")


class _Library:
    """The loaded libespeak-ng, initialised once per process."""

    lock = threading.Lock()
    _lib: Any = None
    sample_rate = 0

    @classmethod
    def get(cls) -> Any:
        with cls.lock:
            if cls._lib is None:
                try:
                    import espeakng_loader
                except ImportError as exc:
                    raise EngineBroken(f"espeakng-loader is not installed: {exc}") from None
                try:
                    lib = ctypes.CDLL(espeakng_loader.get_library_path())
                    data = espeakng_loader.get_data_path()
                except (OSError, RuntimeError) as exc:
                    raise EngineBroken(f"cannot load libespeak-ng: {exc}") from None
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_Initialize.argtypes = [
                    ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
                ]  # fmt: skip
                lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
                lib.espeak_SetSynthCallback.restype = None
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_SetVoiceByName.restype = ctypes.c_int
                lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
                lib.espeak_SetParameter.restype = ctypes.c_int
                lib.espeak_Synth.argtypes = [
                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                    ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
                ]  # fmt: skip
                lib.espeak_Synth.restype = ctypes.c_int
                rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
                if rate <= 0:
                    raise EngineBroken(f"espeak_Initialize failed ({rate}) with data at {data}")
                cls.sample_rate, cls._lib = rate, lib
            return cls._lib


class EspeakVoiceOptions(Section):
    """A voice's eSpeak keys: the language digits and punctuation are read in (auto: the
    engine's ``language``). Han and Latin text pick their own voice whatever it says."""

    language: Literal["auto", "en", "zh"] | None = None


class EspeakOptions(Section):
    # The daemon's output rate: eSpeak's own (22050 Hz) is resampled to it, so a failover
    # from F5 (24 kHz) needs no new output stream.
    sample_rate: int = Field(24000, ge=8000, le=192000)
    words_per_minute: int = Field(175, ge=80, le=450)
    pitch: int = Field(50, ge=0, le=99)
    volume: int = Field(100, ge=0, le=200)
    language: Literal["auto", "en", "zh"] = "zh"  # for digits and punctuation, by default
    max_chars: int = Field(2000, ge=1)  # a bound on one utterance


def runs(text: str, default: str) -> list[tuple[str, str]]:
    """``text`` cut into (language, piece): Han → zh, Latin words → en; whatever lies between
    (digits, punctuation, spaces) joins the run before it, or the next one at the start."""
    out: list[list[str]] = []
    pos = 0
    for m in _RUN.finditer(text):
        lang = m.lastgroup or default
        between = text[pos : m.start()]
        if out and out[-1][0] == lang:
            out[-1][1] += between + m.group()
        elif out:
            out[-1][1] += between
            out.append([lang, m.group()])
        else:
            out.append([lang, between + m.group()])
        pos = m.end()
    rest = text[pos:]
    if out:
        out[-1][1] += rest
    elif rest.strip():
        out.append([default, rest])
    return [(lang, piece) for lang, piece in out if piece.strip()]


class EspeakEngine:
    name = "espeak"
    Options = EspeakOptions
    VoiceOptions = EspeakVoiceOptions

    def __init__(self, options: EspeakOptions | Mapping[str, Any] | None = None) -> None:
        if not isinstance(options, EspeakOptions):
            options = EspeakOptions.model_validate(dict(options or {}))
        self.options = options
        self.sample_rate = options.sample_rate
        self.voices: dict[str, Voice] = {}
        self._lib: Any = None

    def load(self, voices: Mapping[str, Voice], progress: Progress) -> None:
        self._lib = _Library.get()
        with _Library.lock:
            for name in VOICES.values():  # both voices exist in the bundled data
                if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
                    raise EngineBroken(f"eSpeak NG has no voice {name!r} in its data")
        self.set_voices(voices)
        progress(
            f"espeak: eSpeak NG ready ({_Library.sample_rate} Hz → {self.sample_rate} Hz), "
            f"{len(self.voices)} voice(s)"
        )

    def set_voices(self, voices: Mapping[str, Voice]) -> None:
        self.voices = dict(voices)

    def warmup(self, progress: Progress) -> None:
        for _ in self.synthesize("热身 warm up", next(iter(self.voices), "")):
            pass
        progress("espeak warm")

    def _language(self, voice: str) -> str:
        """The voice's language: its own option (ours, or another engine's, e.g. F5's, when
        this engine is the fallback), else the engine's."""
        v = self.voices.get(voice)
        options = v.options if v is not None else None
        if isinstance(options, Mapping):
            lang = options.get("language")
        else:
            lang = getattr(options, "language", None)
        return str(lang) if lang in VOICES else self.options.language

    def _speak(self, lang: str, text: str, speed: float) -> np.ndarray:
        """One run of text in one eSpeak voice, at eSpeak's own rate."""
        return self._speak_as(VOICES[lang], text, speed)

    def _speak_as(self, name: str, text: str, speed: float = 1.0) -> np.ndarray:
        """Text in the eSpeak NG voice ``name``, at eSpeak's own rate."""
        pieces: list[np.ndarray] = []

        def collect(wav: Any, n: int, _events: Any) -> int:
            if n > 0 and wav:
                pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        callback = _CALLBACK(collect)  # kept alive until espeak_Synth returns
        data = text.encode("utf-8", "replace") + b"\0"
        o = self.options
        wpm = max(80, min(450, round(o.words_per_minute * speed)))
        with _Library.lock:
            lib = self._lib
            lib.espeak_SetSynthCallback(callback)
            if not name.replace("-", "").isalnum() or lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise EngineError(f"eSpeak NG has no voice {name!r}")
            lib.espeak_SetParameter(_RATE, wpm, 0)
            lib.espeak_SetParameter(_PITCH, o.pitch, 0)
            lib.espeak_SetParameter(_VOLUME, o.volume, 0)
            err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EngineError(f"espeak_Synth failed ({err})")
        if not pieces:
            return np.zeros(0, np.float32)
        return np.concatenate(pieces).astype(np.float32) / 32768.0

    def _resample(self, audio: np.ndarray) -> np.ndarray:
        src, dst = _Library.sample_rate, self.sample_rate
        if src == dst or not len(audio):
            return audio
        # soxr, not scipy.signal: that import alone took 1.5 s of the fallback's start on the
        # H200 host, on the way to the first line (and to F5's build, which follows it).
        return soxr.resample(audio, src, dst, quality="HQ").astype(np.float32, copy=False)

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        if self._lib is None:
            raise EngineError("load() first")
        if voice.startswith(LANGUAGE_VOICE):
            code = voice.removeprefix(LANGUAGE_VOICE)
            audio = self._speak_as(_ESPEAK_NAMES.get(code, code), text[: self.options.max_chars])
            if len(audio):
                yield np.clip(self._resample(audio), -1.0, 1.0)
            return
        if self.voices and voice not in self.voices:
            raise EngineError(f"unknown voice {voice!r}; voices: {', '.join(self.voices)}")
        speed *= self.voices[voice].speed if voice in self.voices else 1.0  # eSpeak's own rate
        for lang, piece in runs(text[: self.options.max_chars], self._language(voice)):
            audio = self._resample(self._speak(lang, piece, speed))
            if len(audio):
                yield np.clip(audio, -1.0, 1.0)

    def describe(self) -> Mapping[str, Any]:
        return {
            "engine": "espeak",
            "device": "cpu",
            "sample_rate": self.sample_rate,
            "voices": sorted(self.voices),
        }

    def close(self) -> None:
        # The library stays loaded and initialised: it is process-global and cheap to keep.
        self._lib = None
