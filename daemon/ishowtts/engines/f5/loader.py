"""Build the F5 model and the Vocos vocoder from local files or the Hugging Face hub.

Sources are either a local path or ``hf://owner/repo/path/in/repo``. Hub files go through
huggingface_hub's cache, so a machine that was online once keeps working offline.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
import yaml

from ..base import WeightsUnavailable, WeightsUnusable
from . import checkpoint, upstream
from .upstream import UpstreamModule

HUB_PREFIX = "hf://"
PROBE_TIMEOUT_S = 3.0  # how long an uncached start waits to learn that the hub is unreachable
DEFAULT_CHECKPOINT = "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
# The published F5 checkpoints, by the config each was trained with (v0 and v1 have the same
# shapes but not the same model: each config needs its own file).
PUBLISHED = {
    "F5TTS_v1_Base": DEFAULT_CHECKPOINT,
    "F5TTS_Base": "hf://SWivid/F5-TTS/F5TTS_Base/model_1200000.safetensors",
}
DEFAULT_VOCODER = "hf://charactr/vocos-mel-24khz"
# DMOSpeech 2 (yl4579/DMOSpeech2, MIT): the distilled student (with its teacher) and the
# GRPO-tuned duration predictor.
STUDENT_MODEL = "DMOSpeech2"
STUDENT_ARCH_CONFIG = "F5TTS_Base"  # the student is a v0 F5 Base DiT
DEFAULT_STUDENT_CHECKPOINT = "hf://yl4579/DMOSpeech2/model_85000.pt"
DEFAULT_DURATION_PREDICTOR = "hf://yl4579/DMOSpeech2/model_1500.pt"
STUDENT_PREFIX = "feedforward_model."
TEACHER_PREFIX = "guidance_model.real_unet."
MEL = {
    "n_fft": 1024,
    "hop_length": 256,
    "win_length": 1024,
    "n_mel_channels": 100,
    "target_sample_rate": 24000,
    "mel_spec_type": "vocos",
}

# The published charactr/vocos-mel-24khz architecture, for --random-weights benchmarks.
VOCOS_MEL_24KHZ = {
    "feature_extractor": {
        "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
        "init_args": {
            "sample_rate": 24000,
            "n_fft": 1024,
            "hop_length": 256,
            "n_mels": 100,
            "padding": "center",
        },
    },
    "backbone": {
        "class_path": "vocos.models.VocosBackbone",
        "init_args": {"input_channels": 100, "dim": 512, "intermediate_dim": 1536, "num_layers": 8},
    },
    "head": {
        "class_path": "vocos.heads.ISTFTHead",
        "init_args": {"dim": 512, "n_fft": 1024, "hop_length": 256, "padding": "center"},
    },
}


class ModelFileMissing(WeightsUnavailable, FileNotFoundError):
    """A model or vocoder file is neither local nor downloadable; the message says what to do."""


def offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return env or bool(constants.HF_HUB_OFFLINE)


def resolve(
    source: str, filename: str | None, what: str, option: str, cache_dir: str | None
) -> Path:
    """A local file for ``source`` (a path, or ``hf://repo/file``; ``filename`` picks a file
    inside a hub repo or a local directory)."""
    if not source.startswith(HUB_PREFIX):
        path = Path(source).expanduser()
        if filename is not None:
            path = path / filename
        if path.is_file():
            return path
        raise ModelFileMissing(
            f"{what}: {path} does not exist; set the engine option `{option}` to a local file "
            f"or to {HUB_PREFIX}<owner>/<repo>/<file> on a machine with internet"
        )
    hub = _hub_parts(source, filename)
    if hub is None:
        raise ValueError(f"{what}: {source!r} must be {HUB_PREFIX}<owner>/<repo>/<file>")
    return _hub_file(*hub, what, option, cache_dir)


def _hub_parts(source: str, filename: str | None) -> tuple[str, str] | None:
    """(repo, file) of ``hf://owner/repo/file`` (or of ``hf://owner/repo`` and ``filename``);
    None when the address names no file."""
    parts = source[len(HUB_PREFIX) :].strip("/").split("/")
    if filename is not None:
        return "/".join(parts), filename
    if len(parts) < 3:
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def _cached_hub_file(repo: str, file: str, cache_dir: str | None) -> Path | None:
    """The hub cache's copy of ``file``, without the network; None if it has none."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(repo_id=repo, filename=file, cache_dir=cache_dir, local_files_only=True)
        )
    except Exception:  # not cached (or a broken cache entry)
        return None


def _hub_file(repo: str, file: str, what: str, option: str, cache_dir: str | None) -> Path:
    """The cached copy if there is one (no network at all); else a download, but only after
    a short probe says the hub answers: offline, huggingface_hub's own retries with backoff
    would spend half a minute before failing."""
    from huggingface_hub import constants, hf_hub_download

    def missing(how: str) -> ModelFileMissing:
        return ModelFileMissing(
            f"{what}: cannot get {file!r} from the hub repo {repo!r}: {how}. Either download it "
            f"once on a machine with internet (huggingface-cli download {repo} {file}) and copy "
            f"the hub cache, or set the engine option `{option}` to a local path"
        )

    local = _cached_hub_file(repo, file, cache_dir)
    if local is not None:
        return local
    if offline():  # not cached (or a broken cache entry): the network, unless offline
        raise missing("HF_HUB_OFFLINE is set and the file is not in the hub cache")
    unreachable = probe(constants.ENDPOINT)
    if unreachable is not None:
        raise missing(f"it is not in the hub cache and {unreachable}")
    try:
        return Path(hf_hub_download(repo_id=repo, filename=file, cache_dir=cache_dir))
    except Exception as exc:  # network or auth errors: all end here
        raise missing(
            f"download failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        ) from None


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to ``url``'s host (or the HTTPS proxy, when one is set) opens
    within ``timeout`` seconds, else why not. Name resolution is inside the limit too: it runs
    in a daemon thread that is abandoned, not waited for, when it hangs."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlsplit(proxy or url)
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=connect, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    where = f"{host}:{port}" + (" (the HTTPS proxy)" if proxy else "")
    if not outcome:
        return f"the hub ({where}) did not answer within {timeout:g} s"
    return None if outcome[0] is None else f"the hub ({where}) is unreachable ({outcome[0]})"


def read_state_dict(path: Path, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The CFM state dict (``transformer.*`` keys) of an F5 checkpoint in any layout
    ``checkpoint`` reads; a ``WeightsUnusable`` says why not."""
    return checkpoint.open_state(path, use_ema)


def is_student(model: str) -> bool:
    return model.lower() == STUDENT_MODEL.lower()


def default_checkpoint(model: str) -> str:
    """The published checkpoint of ``model``; a config without one needs engine.checkpoint."""
    if is_student(model):
        return DEFAULT_STUDENT_CHECKPOINT
    if model in PUBLISHED:
        return PUBLISHED[model]
    raise WeightsUnusable(
        "checkpoint",
        f"engine.model {model} has no published checkpoint to default to; set "
        f"engine.checkpoint to its file (published: "
        f"{', '.join(f'{k} {v}' for k, v in PUBLISHED.items())})",
    )


def read_student(
    path: Path, part: str = "student", meta: bool = False
) -> tuple[dict[str, torch.Tensor], float]:
    """The weights of one DiT of a DMOSpeech2 checkpoint (``model_state_dict`` of its UniModel
    plus ``scale``), as ``transformer.*`` keys, and the mel ``scale``. ``part``: ``student``
    (``feedforward_model.*``) or ``teacher`` (``guidance_model.real_unet.*``, the F5 model the
    student was distilled from, used by the teacher-guided start). A student file also holds
    its teacher and a critic (three DiTs, ~4 GB in fp32): it is memory-mapped, so only the
    tensors taken are read."""
    prefix = STUDENT_PREFIX if part == "student" else TEACHER_PREFIX
    raw = checkpoint.open_raw(path, meta)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model_state_dict"), Mapping):
        raise WeightsUnusable(
            "model" if isinstance(raw, Mapping) else "checkpoint",
            f"{path} is not a DMOSpeech2 checkpoint (no model_state_dict); an F5 checkpoint "
            f"needs engine.model: F5TTS_v1_Base (or F5TTS_Base), not {STUDENT_MODEL}",
        )
    scale = raw.get("scale", 1.0)
    scale = float(scale.item() if isinstance(scale, torch.Tensor) else scale)
    if not (scale > 0 and scale < float("inf")):
        raise WeightsUnusable("checkpoint", f"{path}: mel scale {scale} is not a positive number")
    out = {
        "transformer." + k[len(prefix) :]: v
        for k, v in raw["model_state_dict"].items()
        if k.startswith(prefix) and isinstance(v, torch.Tensor)
    }
    if not out and part == "teacher":
        raise WeightsUnusable(
            "teacher_steps",
            f"{path}: no teacher weights ({TEACHER_PREFIX}*) in this file, which the engine "
            f"option `teacher_steps` needs; set `teacher_steps: 0` or use a checkpoint that "
            f"keeps its teacher (the published {DEFAULT_STUDENT_CHECKPOINT} does)",
        )
    if not out:
        raise WeightsUnusable(
            "model",
            f"{path}: no student weights ({STUDENT_PREFIX}*); an F5 checkpoint needs "
            f"engine.model: F5TTS_v1_Base (or F5TTS_Base), not {STUDENT_MODEL}",
        )
    return out, scale


def has_teacher(path: Path) -> bool:
    """Whether a DMOSpeech2 file keeps its teacher. Only the file's index is read (mmap), so
    this is cheap enough for config validation; files that cannot be read say True here, and
    the checkpoint check reports what is wrong with them."""
    try:
        raw = checkpoint.open_raw(path, meta=True)
    except Exception:
        return True
    state = raw.get("model_state_dict") if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping):
        return True
    return any(str(k).startswith(TEACHER_PREFIX) for k in state)


def build_cfm(
    model: str, arch_overrides: Mapping[str, Any], vocab: Mapping[str, int]
) -> UpstreamModule:
    """An upstream CFM(DiT) with the packaged architecture, on the CPU in fp32, weights as
    initialised (load a state dict or randomise next)."""
    DiT, CFM, MelSpec = upstream.classes()
    cfg = upstream.model_config(STUDENT_ARCH_CONFIG if is_student(model) else model)
    arch = {**cfg["arch"], **arch_overrides}
    mel = {**MEL, **{k: v for k, v in cfg.get("mel_spec", {}).items() if k in MEL}}
    if mel["mel_spec_type"] != "vocos":
        raise ValueError(f"mel_spec_type {mel['mel_spec_type']!r} is not supported (vocos only)")
    dit = DiT(**arch, text_num_embeds=len(vocab), mel_dim=mel["n_mel_channels"])
    return CFM(transformer=dit, mel_spec_module=MelSpec(**mel), vocab_char_map=dict(vocab))


def _meta_state(model: str, arch: Mapping[str, Any], tokens: int) -> dict[str, torch.Tensor]:
    """``model``'s state dict as meta tensors: shapes without memory or initialisation."""
    with torch.device("meta"):
        cfm = build_cfm(model, arch, {" ": 0, **{str(i): i for i in range(1, tokens)}})
    return {k: v for k, v in cfm.state_dict().items() if not k.startswith("mel_spec.")}


def _alternatives(
    arch: Mapping[str, Any], tokens: int
) -> Callable[[], dict[str, dict[str, torch.Tensor]]]:
    return lambda: {name: _meta_state(name, arch, tokens) for name in upstream.shipped_configs()}


def _fit(
    state: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    path: Path,
    model: str,
    arch: Mapping[str, Any],
    vocab: str,
) -> None:
    tokens = own[checkpoint.TEXT_EMBED].shape[0] - 1 if checkpoint.TEXT_EMBED in own else 1
    checkpoint.fit(
        state,
        own,
        path,
        model,
        vocab,
        _alternatives(arch, tokens),
        check_name=not is_student(model),
    )


def load_weights(
    cfm: UpstreamModule,
    path: Path,
    use_ema: bool = True,
    student: bool = False,
    teacher: bool = False,
    model: str = "F5TTS_v1_Base",
    arch: Mapping[str, Any] | None = None,
    vocab: str | None = None,
) -> float:
    """Load an F5 checkpoint (or a DMOSpeech2 student's DiT, or with ``teacher`` its
    teacher's) into ``cfm``, built for ``model``, ``arch`` and ``vocab`` (named in errors);
    returns the mel scale the model works at (1.0 for F5)."""
    scale = 1.0
    if student or teacher:
        state, scale = read_student(path, "teacher" if teacher else "student")
    else:
        state = read_state_dict(path, use_ema)
    own = {k: v for k, v in cfm.state_dict().items() if not k.startswith("mel_spec.")}
    vocab_file = str(upstream.vocab_path(vocab))
    _fit(state, own, path, STUDENT_MODEL if student or teacher else model, arch or {}, vocab_file)
    checkpoint.check_finite(state, path)
    cfm.load_state_dict(state, strict=False)
    return scale


def check_checkpoint(
    path: Path, model: str, arch: Mapping[str, Any], vocab: str | None, use_ema: bool = True
) -> None:
    """What ``load_weights`` would refuse in the file at ``path``, from its index alone (no
    tensor data is read, no model memory allocated): a ``WeightsUnusable`` naming the key."""
    vocab_file = upstream.vocab_path(vocab)
    try:
        tokens = len(upstream.load_vocab(str(vocab_file)))
    except ValueError as exc:
        raise WeightsUnusable("vocab", str(exc)) from None
    if is_student(model):
        state, _ = read_student(path, "student", meta=True)
    else:
        state = checkpoint.open_state(path, use_ema, meta=True)
    own = _meta_state(model, arch, tokens)
    _fit(state, own, path, model, arch, str(vocab_file))


def cached(source: str, cache_dir: str | None) -> Path | None:
    """The local file for ``source`` if there is one without the network (a local path, or
    a hub file in the cache), else None."""
    if not source.startswith(HUB_PREFIX):
        path = Path(source).expanduser()
        return path if path.exists() else None  # a folder too: the check says what to set
    hub = _hub_parts(source, None)
    return None if hub is None else _cached_hub_file(*hub, cache_dir)


def randomise(cfm: UpstreamModule, seed: int = 0, std: float = 0.02) -> None:
    """Give the layers upstream zero-initialises (AdaLN, norm_out, proj_out) random weights, so
    a random model produces a non-trivial output (benchmarks and tests only)."""
    dit = cfm.transformer
    layers = [b.attn_norm.linear for b in dit.transformer_blocks]
    layers += [dit.norm_out.linear, dit.proj_out]
    # Drawn where the weights live: 140 M draws on the CPU took 1.3 s of a GPU start.
    device = layers[0].weight.device
    g = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            for p in (layer.weight, layer.bias):
                p.copy_(torch.randn(p.shape, generator=g, device=device, dtype=p.dtype) * std)


def _vocoder_files(source: str, cache_dir: str | None) -> tuple[Path, Path]:
    """(config.yaml, weights) of a Vocos folder, file or hub repo."""
    local = Path(source).expanduser()
    if not source.startswith(HUB_PREFIX) and local.is_file():
        return local.parent / "config.yaml", local
    config = resolve(source, "config.yaml", "vocoder", "vocoder", cache_dir)
    weights_name = "pytorch_model.bin"
    if not source.startswith(HUB_PREFIX) and (local / "model.safetensors").is_file():
        weights_name = "model.safetensors"
    return config, resolve(source, weights_name, "vocoder", "vocoder", cache_dir)


def check_vocoder(source: str) -> None:
    """A local Vocos folder's weights file read from its index (check-config): an empty,
    truncated or foreign file is a ``WeightsUnusable`` naming engine.vocoder. A missing file
    is the options' check; hub repos are checked when loaded."""
    if source.startswith(HUB_PREFIX):
        return
    try:
        _, weights = _vocoder_files(source, None)
    except WeightsUnavailable:
        return  # said elsewhere, with its fix
    if not isinstance(checkpoint.open_raw(weights, meta=True, option="vocoder"), Mapping):
        raise WeightsUnusable(
            "vocoder", f"{weights} holds no Vocos weights; set engine.vocoder to a Vocos folder"
        )


def load_vocoder(
    source: str,
    cache_dir: str | None,
    random_config: Mapping | None = None,
    device: torch.device | str = "cpu",
) -> UpstreamModule:
    """Vocos from a directory or hub repo holding ``config.yaml`` + ``pytorch_model.bin``
    (or ``model.safetensors``), built on ``device``. ``random_config`` builds random weights
    instead (benchmarks)."""
    from vocos import Vocos

    def build(config: Path) -> UpstreamModule:
        with torch.device(device):  # layers initialised there (faster than the CPU on a GPU)
            return Vocos.from_hparams(str(config))

    if random_config is not None:
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"ishowtts-vocos-{os.getpid()}.yaml"
        tmp.write_text(yaml.safe_dump(dict(random_config)), encoding="utf-8")
        try:
            return build(tmp).eval()
        finally:
            tmp.unlink(missing_ok=True)
    config, weights = _vocoder_files(source, cache_dir)
    vocoder = build(config)
    state = checkpoint.open_raw(weights, option="vocoder")  # corrupt files: one line
    if not isinstance(state, Mapping):
        raise WeightsUnusable(
            "vocoder",
            f"{weights} holds a {type(state).__name__}, not Vocos "
            f"weights; set engine.vocoder to a Vocos folder",
        )
    try:
        vocoder.load_state_dict(state)
    except RuntimeError as exc:
        why = " ".join(str(exc).split())[:300]
        raise WeightsUnusable(
            "vocoder",
            f"{weights} does not fit {config}: {why}; set engine.vocoder to a Vocos folder",
        ) from None
    return vocoder.eval()
