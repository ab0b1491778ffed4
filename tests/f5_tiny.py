"""Tiny random F5 checkpoints and Vocos vocoders on disk, for tests that need the real model
code without the real weights. Built through the upstream classes, saved in the upstream
checkpoint formats and loaded back through our loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from ishowtts.engines.f5 import loader, upstream

TINY_ARCH: dict[str, Any] = {
    "dim": 64,
    "depth": 2,
    "heads": 2,
    "dim_head": 32,
    "ff_mult": 2,
    "text_dim": 32,
    "conv_layers": 2,
}

TINY_VOCOS: dict[str, Any] = {
    "feature_extractor": {
        "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
        "init_args": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "n_mels": 100},
    },
    "backbone": {
        "class_path": "vocos.models.VocosBackbone",
        "init_args": {"input_channels": 100, "dim": 32, "intermediate_dim": 64, "num_layers": 1},
    },
    "head": {
        "class_path": "vocos.heads.ISTFTHead",
        "init_args": {"dim": 32, "n_fft": 1024, "hop_length": 256, "padding": "center"},
    },
}


def tiny_cfm(seed: int = 0, model: str = "F5TTS_v1_Base", **arch: Any) -> torch.nn.Module:
    """A tiny F5 model of a shipped config (v1 by default; ``F5TTS_Base`` is v0), packaged
    vocab, every layer random (zero-init layers included); ``arch`` overrides ``TINY_ARCH``."""
    torch.manual_seed(seed)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm(model, {**TINY_ARCH, **arch}, vocab)
    loader.randomise(cfm, seed=seed, std=0.2)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # GRN starts as identity upstream; make it matter in tests
        for blk in cfm.transformer.text_embed.text_blocks:
            blk.grn.gamma.copy_(torch.randn(blk.grn.gamma.shape, generator=g) * 0.5)
            blk.grn.beta.copy_(torch.randn(blk.grn.beta.shape, generator=g) * 0.1)
    return cfm.eval()


def save_checkpoint(cfm: torch.nn.Module, path: Path, fmt: str = "ema-safetensors") -> Path:
    """Write ``cfm`` as upstream does: ``ema-safetensors`` (the released files: EMA keys,
    flat), ``ema-pt`` (a training checkpoint) or ``plain-pt`` (``model_state_dict``)."""
    state = {k: v for k, v in cfm.state_dict().items() if not k.startswith("mel_spec.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "ema-safetensors":
        from safetensors.torch import save_file

        flat = {f"ema_model.{k}": v.contiguous() for k, v in state.items()}
        flat["initted"], flat["step"] = torch.tensor(True), torch.tensor(1)
        save_file(flat, str(path))
    elif fmt == "ema-pt":
        ema = {f"ema_model.{k}": v for k, v in state.items()}
        torch.save({"ema_model_state_dict": ema, "step": 1}, str(path))
    elif fmt == "plain-pt":
        torch.save({"model_state_dict": state}, str(path))
    else:
        raise ValueError(fmt)
    return path


def save_vocoder(directory: Path, seed: int = 0) -> Path:
    """A tiny random Vocos as a directory with ``config.yaml`` + ``pytorch_model.bin``."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(TINY_VOCOS), encoding="utf-8")
    voc = loader.load_vocoder("", None, random_config=TINY_VOCOS)
    torch.save(voc.state_dict(), directory / "pytorch_model.bin")
    return directory


def tiny_files(root: Path, seed: int = 0, fmt: str = "ema-safetensors",
               model: str = "F5TTS_v1_Base") -> dict[str, Any]:  # fmt: skip
    """Checkpoint + vocoder under ``root``; returns F5Engine options that use them (CPU)."""
    suffix = ".safetensors" if fmt.endswith("safetensors") else ".pt"
    ckpt = save_checkpoint(tiny_cfm(seed, model), root / f"tiny{suffix}", fmt)
    voc = save_vocoder(root / "vocos", seed)
    return {
        "model": model,
        "checkpoint": str(ckpt),
        "vocoder": str(voc),
        "arch": dict(TINY_ARCH),
        "device": "cpu",
        "compile": False,
        "cuda_graphs": False,
    }


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error of ``a`` against ``b`` (Frobenius norms)."""
    return ((a - b).norm() / b.norm()).item()


def sample_request(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference mel ``[frames, 100]`` (1 s of noise through upstream's mel) and the tokens of
    a short bilingual line in the packaged vocab."""
    g = torch.Generator().manual_seed(seed)
    _, _, MelSpec = upstream.classes()
    ref = MelSpec(**loader.MEL)(torch.randn(1, 24000, generator=g) * 0.1)[0].T
    chars = upstream.to_pinyin_tokens(["Hello there, 你好世界。"])[0]
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    return ref, torch.tensor([vocab.get(c, 0) for c in chars])
