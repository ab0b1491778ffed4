"""F5 checkpoints made elsewhere: read any realistic one, or say in one line why it cannot work.

The format is sniffed from the bytes, not the suffix: safetensors, a torch zip (``torch.save``
since 1.6) or a legacy torch pickle. Layouts: upstream trainer checkpoints (``model_state_dict``
+ ``ema_model_state_dict``, whose keys carry ``ema_model.`` and EMA's ``initted``/``step``),
EMA-only pruned files, flat state dicts with or without ``ema_model.``, DDP (``module.``) and
``torch.compile`` (``_orig_mod.``) prefixes, any float dtype; old files' ``mel_spec.*`` buffers
are dropped. ``open_state(..., meta=True)`` reads only the index (the safetensors header, a torch
zip memory-mapped), so ``check-config`` can judge a 1.3 GB file in well under a second.

Every refusal is a ``WeightsUnusable`` naming the engine key to change (``checkpoint``,
``model`` or ``vocab``) and how.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
import torch

from ..base import WeightsUnusable
from . import upstream

log = structlog.get_logger("ishowtts.engine.f5")

STUDENT_MARKERS = ("feedforward_model.", "guidance_model.")  # a DMOSpeech2 UniModel
TEXT_EMBED = "transformer.text_embed.text_embed.weight"
_DROP = ("initted", "step")  # ema_pytorch's bookkeeping
_PREFIXES = ("module.", "_orig_mod.", "ema_model.")  # DDP, torch.compile, ema_pytorch
_SAFETENSORS_DTYPES = {  # the header's names
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _again(path: Path, option: str = "checkpoint") -> str:
    return f"download or copy {path.name} again, or set engine.{option} to another file"


def sniff(path: Path, option: str = "checkpoint") -> str:
    """``safetensors``, ``zip`` or ``pickle``, from the first bytes; anything else is refused
    with what the file looks like instead."""
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".pt"))
        hint = f" (it holds {', '.join(found[:3])})" if found else ""
        raise WeightsUnusable(
            option, f"{path} is a folder{hint}; set engine.{option} to the checkpoint file itself"
        )
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:  # e.g. the service's user may not read a file in someone's home
        raise WeightsUnusable(
            option,
            f"{path} cannot be opened ({exc.strerror or exc}); make "
            f"it readable by the user the daemon runs as",
        ) from None
    if not head:
        raise WeightsUnusable(
            option,
            f"{path} is empty (0 bytes): an interrupted download or copy; {_again(path, option)}",
        )
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) > 8 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol 2+: torch.save's legacy format
        return "pickle"
    if head.startswith(b"version https://git-lfs"):
        what = "a Git LFS pointer, not the weights (run `git lfs pull` in its repo)"
    elif head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        what = "an HTML page (a failed download?)"
    else:
        what = f"neither safetensors nor a torch file (it starts with {head[:8]!r})"
    raise WeightsUnusable(option, f"{path} is not a checkpoint: {what}; {_again(path, option)}")


def _meta(shape: list[int], dtype: str) -> torch.Tensor:
    return torch.empty(shape, dtype=_SAFETENSORS_DTYPES.get(dtype, torch.uint8), device="meta")


def open_raw(path: Path, meta: bool = False, option: str = "checkpoint") -> Any:
    """The file's top-level object. ``meta``: safetensors as meta tensors (header only); torch
    files memory-mapped where they can be, so only what is used is ever read."""
    kind = sniff(path, option)
    try:
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt", device="cpu") as f:
                if meta:
                    return {
                        k: _meta(f.get_slice(k).get_shape(), f.get_slice(k).get_dtype())
                        for k in f.keys()  # noqa: SIM118 (safe_open is not a Mapping)
                    }
                return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise _corrupt(path, kind, exc, option) from None
        # A pickled nn.Module or trainer object: unpickling would run code from the file.
        raise WeightsUnusable(
            option,
            f"{path} holds Python objects besides tensors (a pickled model?), which are not "
            f"loaded for safety; save its state_dict() instead "
            f"(torch.save(model.state_dict(), path)) or use the published file",
        ) from None
    except Exception as exc:  # truncated, corrupt, a zip of something else
        raise _corrupt(path, kind, exc, option) from None


def _corrupt(path: Path, kind: str, exc: BaseException, option: str) -> WeightsUnusable:
    what = {"safetensors": "safetensors", "zip": "torch zip", "pickle": "torch"}[kind]
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return WeightsUnusable(
        option,
        f"{path} looks like a {what} file but cannot be read ({why}): it is truncated or "
        f"corrupt; {_again(path, option)}",
    )


def _normalise(raw: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor) or key in _DROP:
            continue
        key = str(key)
        while key.startswith(_PREFIXES):
            key = next(key[len(p) :] for p in _PREFIXES if key.startswith(p))
        if key.startswith("mel_spec."):  # old files carried the mel filterbank and window
            continue
        out[key if key.startswith("transformer.") else "transformer." + key] = value
    return out


def select(raw: Any, path: Path, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The CFM state dict (``transformer.*`` keys) in ``raw``: the EMA weights unless
    ``use_ema`` is false and the file has others (then the trained ones)."""
    if not isinstance(raw, Mapping):
        raise WeightsUnusable(
            "checkpoint", f"{path} holds a {type(raw).__name__}, not a state dict; {_again(path)}"
        )
    nested = {k: raw.get(k) for k in ("ema_model_state_dict", "model_state_dict")}
    ema, plain = (v if isinstance(v, Mapping) else None for v in nested.values())
    if ema is None and plain is None:  # a flat file: EMA keys are prefixed
        if any(str(k).startswith("ema_model.") for k in raw):
            ema = raw
        else:
            plain = raw
    for part in (plain, ema):
        if part is not None and any(str(k).startswith(STUDENT_MARKERS) for k in part):
            raise WeightsUnusable(
                "model",
                f"{path} is a DMOSpeech2 student checkpoint; set engine.model: DMOSpeech2",
            )
    if use_ema:
        chosen, which = (ema, "EMA") if ema is not None else (plain, "trained (no EMA in the file)")
    else:
        chosen, which = (plain, "trained") if plain is not None else (ema, "EMA")
        if plain is None:  # upstream would fail here; the EMA weights are what it ships
            log.warning(
                "f5_use_ema_ignored",
                path=str(path),
                reason="use_ema is false but the file holds only EMA weights: using them",
            )
    assert chosen is not None
    state = _normalise(chosen)
    if not state:
        raise WeightsUnusable(
            "checkpoint",
            f"{path} holds no model weights (top-level keys: "
            f"{', '.join(map(str, list(raw)[:5]))}); {_again(path)}",
        )
    log.debug("f5_checkpoint_weights", path=str(path), weights=which, tensors=len(state))
    return state


def open_state(path: Path, use_ema: bool = True, meta: bool = False) -> dict[str, torch.Tensor]:
    return select(open_raw(path, meta), path, use_ema)


def named_model(path: Path | str) -> str | None:
    """The shipped config a path names, nearest the file first: the hub keeps
    ``F5TTS_Base/model_1200000.safetensors``, upstream's trainer saves under
    ``ckpts/F5TTS_v1_Base_vocos_pinyin_<dataset>/``. v0 and v1 files have the same tensor
    shapes, so the path is the only evidence there is."""
    shipped = sorted(upstream.shipped_configs(), key=len, reverse=True)
    for part in reversed(Path(str(path)).with_suffix("").parts):
        low = part.lower()
        for name in shipped:
            if low == name.lower() or low.startswith(name.lower() + "_"):
                return name
    return None


def _fits(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> bool:
    """Same keys and shapes, the text embedding's rows (the vocab) aside."""
    if set(state) != set(own):
        return False
    return all(
        v.shape == own[k].shape or (k == TEXT_EMBED and v.shape[1:] == own[k].shape[1:])
        for k, v in state.items()
    )


def fit(
    state: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    path: Path,
    model: str,
    vocab: str,
    alternatives: Callable[[], Mapping[str, Mapping[str, torch.Tensor]]] = dict,
    check_name: bool = True,
) -> None:
    """Raise ``WeightsUnusable`` unless ``state`` loads into a model whose state dict is
    ``own`` (meta tensors will do). ``alternatives``: the shipped configs' state dicts, asked
    for only when ``state`` does not fit, to name the one that does. ``check_name``: refuse
    a file whose path names another shipped config (v0 and v1 share every shape)."""
    if not set(state) & set(own):
        vocoder = all(
            k.removeprefix("transformer.").startswith(("backbone.", "head.", "feature_extractor."))
            for k in state
        )
        if vocoder:
            raise WeightsUnusable(
                "checkpoint",
                f"{path} is a Vocos vocoder, not an F5 model; it "
                f"belongs in engine.vocoder (a folder with its config.yaml)",
            )
        keys = ", ".join(k.removeprefix("transformer.") for k in list(state)[:3])
        raise WeightsUnusable(
            "checkpoint",
            f"{path} holds no F5 DiT weights (its tensors are named "
            f"like {keys}); set engine.checkpoint to an F5-TTS checkpoint",
        )
    if any(k.startswith("transformer.layers.") for k in state) and not any(
        k.startswith("transformer.transformer_blocks.") for k in state
    ):
        raise WeightsUnusable(
            "checkpoint",
            f"{path} is an E2-TTS checkpoint (UNetT backbone); ishowtts runs F5-TTS (DiT) "
            f"models only: set engine.checkpoint to an F5-TTS file",
        )
    if not _fits(state, own):
        wrong = [
            f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})"
            for k, v in state.items()
            if k in own and v.shape != own[k].shape and k != TEXT_EMBED
        ]
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        found = [name for name, other in alternatives().items() if _fits(state, other)]
        named = named_model(path)
        if named in found:  # v0 and v1 configs fit alike: the path tells them apart
            found = [named]
        fix = (
            f"set engine.model: {' or '.join(found)}"
            if found
            else "set engine.model (and engine.arch) to the config it was trained with"
        )
        how = [
            f"{what} {', '.join(keys[:2])}" + (f" (+{len(keys) - 2})" if len(keys) > 2 else "")
            for what, keys in (("shapes", wrong), ("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise WeightsUnusable(
            "model", f"{path} does not fit engine.model {model}: {'; '.join(how)}; {fix}"
        )
    bad = [k for k, v in state.items() if own[k].is_floating_point() and not v.is_floating_point()]
    if bad:
        raise WeightsUnusable(
            "checkpoint",
            f"{path}: {bad[0]} is {state[bad[0]].dtype} (a quantised "
            f"export?); only float weights load (fp32, fp16, bf16)",
        )
    have, want = state[TEXT_EMBED].shape[0], own[TEXT_EMBED].shape[0]
    if have != want:  # row 0 is the filler token: a vocab of n lines makes n + 1 rows
        note = " (an extended vocab, as finetuning on new characters makes)" if have > want else ""
        raise WeightsUnusable(
            "vocab",
            f"{path} was trained with {have - 1} text tokens{note}, engine.vocab ({vocab}) has "
            f"{want - 1}; set engine.vocab to the vocab.txt that came with the checkpoint",
        )
    named = named_model(path)
    if check_name and named and upstream.is_shipped(model) and named != model:
        raise WeightsUnusable(
            "model",
            f"{path} is an {named} checkpoint (its path says so) but engine.model is {model}: "
            f"the two have the same shapes but not the same attention and text padding, and "
            f"the wrong one speaks garbled audio; set engine.model: {named}",
        )


def check_finite(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """NaN/inf weights (a diverged run, an fp16 export that overflowed) speak noise."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsUnusable(
            "checkpoint",
            f"{path}: {len(bad)} tensor(s) hold NaN or inf, e.g. "
            f"{bad[0]} (a diverged training run or an overflowing fp16 export); "
            f"use an earlier checkpoint",
        )
