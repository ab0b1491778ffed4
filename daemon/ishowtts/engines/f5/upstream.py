"""Access to the upstream ``f5_tts`` package: model classes, packaged configs, vocab, clips.

``import f5_tts.model`` runs a package ``__init__`` that imports the trainer (wandb, accelerate,
datasets): seconds of start-up and heavy dependencies for nothing at inference. We register the
package module ourselves (same directory, so every submodule is the real upstream file) and load
the rest lazily, only if something asks for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# Upstream's modules (the f5-tts CFM and DiT, Vocos) come untyped and are walked by attribute
# name; torch types such a walk ``Tensor | Module``, which checks nothing: they are Any here.
UpstreamModule = Any

_LAZY = {
    "MMDiT": "f5_tts.model.backbones.mmdit",
    "UNetT": "f5_tts.model.backbones.unett",
    "Trainer": "f5_tts.model.trainer",
}


def package_dir() -> Path:
    spec = importlib.util.find_spec("f5_tts")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the f5-tts package is not installed (pip install f5-tts)")
    return Path(next(iter(spec.submodule_search_locations)))


def _lazy_getattr(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'f5_tts.model' has no attribute {name!r}")


class _ImportedOnUse(types.ModuleType):
    """Stands in ``sys.modules`` for a module until its first attribute is asked for, then
    imports it and forwards to it (whoever imported the placeholder keeps working). For a
    plain module (not a package), names in ``calls`` are functions from the start, which import
    the module when first called: ``from module import name`` takes the attribute at once."""

    # Re-entrant: the real import can reach another placeholder (or this one) in this thread.
    _lock = threading.RLock()
    # Asked of every module by code walking sys.modules (inspect.getmodule reads each one's
    # __file__: pydantic does it when it builds a model), so no use of this one.
    _NOT_A_USE = frozenset({"__file__", "__cached__"})

    def __init__(self, name: str, calls: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        self._package = not calls  # a package's __path__ is a use: a submodule is imported
        for attr in calls:
            setattr(self, attr, self._forwarder(attr))

    def _forwarder(self, attr: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._real(), attr)(*args, **kwargs)

        call.__name__ = call.__qualname__ = attr
        return call

    def _real(self) -> types.ModuleType:
        with self._lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            return importlib.import_module(self.__name__)

    def __getattr__(self, attr: str) -> Any:
        if attr in self._NOT_A_USE or (attr == "__path__" and not self._package):
            raise AttributeError(attr)
        return getattr(self._real(), attr)


def _register_light_model_package() -> None:
    if "f5_tts.model" in sys.modules:
        return
    # x_transformers (for F5's rotary embedding) imports einx at its top, and einx's torch
    # backend torch._dynamo, torch._inductor and sympy: ~1.5 s of the way to the first F5
    # line, for relative-position code F5 never runs. The compile imports them later.
    if "einx" not in sys.modules:
        sys.modules["einx"] = _ImportedOnUse("einx")
    # Upstream's modules.py takes librosa's mel filters at its top (numba, llvmlite, scipy:
    # ~0.8 s here, more on slow hosts) for the BigVGAN mel, which a Vocos model never computes.
    if "librosa.filters" not in sys.modules:
        sys.modules["librosa.filters"] = _ImportedOnUse("librosa.filters", calls=("mel",))
    importlib.import_module("f5_tts")
    mod = types.ModuleType("f5_tts.model")
    mod.__path__ = [str(package_dir() / "model")]
    mod.__package__ = "f5_tts.model"
    mod.__getattr__ = _lazy_getattr  # type: ignore[method-assign]
    sys.modules["f5_tts.model"] = mod
    try:
        from f5_tts.model.backbones.dit import DiT
        from f5_tts.model.cfm import CFM
    except BaseException:
        del sys.modules["f5_tts.model"]
        raise
    mod.DiT = DiT  # type: ignore[attr-defined]
    mod.CFM = CFM  # type: ignore[attr-defined]


def classes() -> tuple[type, type, type]:
    """(DiT, CFM, MelSpec) from upstream."""
    _register_light_model_package()
    from f5_tts.model.backbones.dit import DiT
    from f5_tts.model.cfm import CFM
    from f5_tts.model.modules import MelSpec

    return DiT, CFM, MelSpec


def model_config(name_or_path: str) -> dict[str, Any]:
    """The ``model`` section of a packaged config (``F5TTS_v1_Base``) or of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = package_dir() / "configs" / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (package_dir() / "configs").glob("*.yaml"))
        raise FileNotFoundError(
            f"model config {name_or_path!r} not found; shipped: {', '.join(shipped)}"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "arch" not in model:
        raise ValueError(f"{path}: no model.arch section")
    if model.get("backbone", "DiT") != "DiT":
        raise ValueError(f"{path}: backbone {model.get('backbone')!r} is not supported (DiT only)")
    return model


@cache
def shipped_configs() -> tuple[str, ...]:
    """The DiT configs packaged with f5-tts (``F5TTS_Base``, ``F5TTS_v1_Base``, ...)."""
    names = []
    for path in sorted((package_dir() / "configs").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        model = data.get("model") if isinstance(data, dict) else None
        if isinstance(model, dict) and model.get("backbone", "DiT") == "DiT":
            names.append(path.stem)
    return tuple(names)


def is_shipped(name: str) -> bool:
    return name in shipped_configs()


def vocab_path(override: str | None = None) -> Path:
    path = Path(override) if override else package_dir() / "infer" / "examples" / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} not found")
    return path


@cache
def load_vocab(path: str) -> dict[str, int]:
    """``{token: index}``, one token a line; index 0 is the space (also used for unknowns)."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    if vocab.get(" ") != 0:
        raise ValueError(f"{path}: the first token must be a space")
    return vocab


def shipped_clips() -> dict[str, tuple[Path, str]]:
    """The reference clips f5-tts ships, by language: (wav, transcript)."""
    base = package_dir() / "infer" / "examples" / "basic"
    # Transcripts as upstream's basic.toml and gradio app give them.
    return {
        "en": (base / "basic_ref_en.wav", "Some call me nature, others call me mother nature."),
        "zh": (base / "basic_ref_zh.wav", "对，这就是我，万人敬仰的太乙真人。"),
    }


def to_pinyin_tokens(texts: list[str]) -> list[list[str]]:
    """Upstream's tokeniser front: Chinese characters → tone-numbered pinyin, the rest kept."""
    from f5_tts.model.utils import convert_char_to_pinyin

    _register_light_model_package()
    return convert_char_to_pinyin(texts)
