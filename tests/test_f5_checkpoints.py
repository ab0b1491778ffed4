"""Checkpoints made elsewhere, written by upstream f5-tts's own code (tests/f5_upstream_files.py):
every realistic layout loads with the right weights, and every file that cannot work is refused
from its index alone (what check-config does) with a WeightsUnusable naming the engine key."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from structlog.testing import capture_logs

from ishowtts.engines import WeightsUnusable
from ishowtts.engines.f5 import checkpoint, loader, upstream
from tests.f5_tiny import TINY_ARCH, save_vocoder, tiny_cfm
from tests.f5_upstream_files import expand_vocab, prune, trainer_checkpoint

V1, V0 = "F5TTS_v1_Base", "F5TTS_Base"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trainer checkpoint after three steps, pruned and exported as the finetune app does."""
    root = tmp_path_factory.mktemp("upstream")
    trainer = trainer_checkpoint(tiny_cfm(5), root / "ckpts" / "F5TTS_v1_Base_vocos_pinyin_x")
    full = root / "ckpts" / "F5TTS_v1_Base_vocos_pinyin_x" / "model_3.pt"
    ema = {k: v.detach().clone() for k, v in trainer.ema_model.ema_model.state_dict().items()}
    online = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return {
        "root": root,
        "full": full,
        "ema": ema,
        "online": online,
        "pruned_pt": prune(full, root / "pruned.pt"),
        "ema_st": prune(full, root / "ema.safetensors", save_ema=True, safetensors=True),
        "plain_st": prune(full, root / "plain.safetensors", save_ema=False, safetensors=True),
    }


def _vocab() -> dict[str, int]:
    return upstream.load_vocab(str(upstream.vocab_path()))


def load(path: Path, use_ema: bool = True, model: str = V1, vocab: str | None = None):
    """check-config's verdict, then the real load; both must agree."""
    loader.check_checkpoint(path, model, TINY_ARCH, vocab, use_ema)
    cfm = loader.build_cfm(model, TINY_ARCH, upstream.load_vocab(str(upstream.vocab_path(vocab))))
    loader.load_weights(cfm, path, use_ema, model=model, arch=TINY_ARCH, vocab=vocab)
    return cfm


def refused(path: Path, model: str = V1, vocab: str | None = None) -> WeightsUnusable:
    """Refused alike by check-config (index only) and by the load."""
    with pytest.raises(WeightsUnusable) as checked:
        loader.check_checkpoint(path, model, TINY_ARCH, vocab)
    cfm = loader.build_cfm(model, TINY_ARCH, upstream.load_vocab(str(upstream.vocab_path(vocab))))
    with pytest.raises(WeightsUnusable) as loading:
        loader.load_weights(cfm, path, model=model, arch=TINY_ARCH, vocab=vocab)
    assert (checked.value.option, str(checked.value)) == (loading.value.option, str(loading.value))
    return checked.value


def same(cfm, want: dict[str, torch.Tensor]) -> None:
    got = cfm.state_dict()
    keys = [k for k in want if not k.startswith("mel_spec.")]
    assert keys and all(torch.equal(got[k], want[k].float()) for k in keys)


# ---- formats ----------------------------------------------------------------------------------


def test_trainer_checkpoint_gives_the_ema_or_the_trained_weights(trained):
    raw = torch.load(trained["full"], weights_only=True)
    assert {"model_state_dict", "ema_model_state_dict", "optimizer_state_dict"} <= set(raw)
    assert {"initted", "step"} <= set(raw["ema_model_state_dict"])
    key = "transformer.proj_out.weight"
    assert not torch.equal(trained["ema"][key], trained["online"][key])  # a real choice
    same(load(trained["full"]), trained["ema"])
    same(load(trained["full"], use_ema=False), trained["online"])


def test_files_load_as_upstreams_own_loader_loads_them(trained):
    """Upstream's infer load_checkpoint on the same files gives the same weights."""
    from f5_tts.infer.utils_infer import load_checkpoint

    for path in (trained["full"], trained["pruned_pt"], trained["ema_st"]):
        ref = loader.build_cfm(V1, TINY_ARCH, _vocab())
        load_checkpoint(ref, str(path), "cpu", dtype=torch.float32, use_ema=True)
        same(load(path), ref.state_dict())


@pytest.mark.parametrize("name", ["pruned_pt", "ema_st", "plain_st"])
@pytest.mark.parametrize("use_ema", [True, False])
def test_pruned_and_exported_files_load(trained, name, use_ema):
    """EMA-only files load under use_ema: false too (upstream's own loader fails on them:
    no model_state_dict); the trained-only export loads under use_ema: true."""
    want = trained["online"] if name == "plain_st" else trained["ema"]
    with capture_logs() as logs:
        same(load(trained[name], use_ema=use_ema), want)
    ignored = [x for x in logs if x["event"] == "f5_use_ema_ignored"]
    assert len(ignored) == (2 if not use_ema and name != "plain_st" else 0)  # check + load


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_exports_load(trained, tmp_path, dtype):
    flat = {k: v.to(dtype) for k, v in load_file(trained["ema_st"]).items()}
    save_file(flat, tmp_path / "half.safetensors")
    cfm = load(tmp_path / "half.safetensors")
    want = {k.removeprefix("ema_model."): v.to(dtype) for k, v in flat.items()}
    same(cfm, {k: v for k, v in want.items() if k not in ("initted", "step")})


def test_old_files_with_mel_buffers_and_other_prefixes_load(trained, tmp_path):
    """mel_spec.* buffers (older upstream), torch.compile's _orig_mod. prefix, the legacy
    (non-zip) torch format, and a misleading suffix: the format is read from the bytes."""
    from f5_tts.model.modules import MelSpec

    mel = {f"mel_spec.{k}": v for k, v in MelSpec(**loader.MEL).state_dict(keep_vars=True).items()}
    mel = {
        "mel_spec.mel_stft.mel_scale.fb": torch.zeros(513, 100),
        "mel_spec.mel_stft.spectrogram.window": torch.hann_window(1024),
        **{k: v.detach() for k, v in mel.items()},
    }
    ema = torch.load(trained["pruned_pt"], weights_only=True)["ema_model_state_dict"]
    ema.update({f"ema_model.{k}": v for k, v in mel.items()})
    torch.save({"ema_model_state_dict": ema}, tmp_path / "old.pt")
    same(load(tmp_path / "old.pt"), trained["ema"])

    compiled = torch.compile(tiny_cfm(5))  # compiles lazily: only its state_dict is taken
    state = compiled.state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)
    torch.save(
        {"model_state_dict": state}, tmp_path / "compiled.pt", _use_new_zipfile_serialization=False
    )
    same(
        load(tmp_path / "compiled.pt"), {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    )

    (tmp_path / "model.bin").write_bytes(trained["ema_st"].read_bytes())  # safetensors, misnamed
    same(load(tmp_path / "model.bin"), trained["ema"])


# ---- mismatches -------------------------------------------------------------------------------


def test_extended_vocab_needs_engine_vocab(trained, tmp_path):
    """Upstream's finetune vocab extension: refused naming engine.vocab, and loads once the
    vocab.txt that came with it is set."""
    assert expand_vocab(trained["ema_st"], tmp_path / "ext.safetensors", 3) == len(_vocab()) + 4
    err = refused(tmp_path / "ext.safetensors")
    assert err.option == "vocab"
    assert f"trained with {len(_vocab()) + 3} text tokens (an extended vocab" in str(err)
    assert "set engine.vocab to the vocab.txt that came with the checkpoint" in str(err)
    lines = upstream.vocab_path().read_text(encoding="utf-8").splitlines()
    new = [c for c in map(chr, range(0x4E00, 0x9FFF)) if c not in _vocab()][:3]
    (tmp_path / "vocab.txt").write_text("\n".join([*lines, *new]) + "\n", "utf-8")
    cfm = load(tmp_path / "ext.safetensors", vocab=str(tmp_path / "vocab.txt"))
    rows = cfm.transformer.text_embed.text_embed.weight
    assert rows.shape[0] == len(_vocab()) + 4


def test_a_v0_file_under_v1_and_back_names_engine_model(trained, tmp_path):
    """v0 and v1 share every shape: the path (the hub's F5TTS_Base/..., the trainer's
    ckpts/F5TTS_v1_Base_...) is what tells them apart."""
    err = refused(trained["full"], model=V0)  # ckpts/F5TTS_v1_Base_vocos_pinyin_x/model_3.pt
    assert err.option == "model" and str(err).endswith("set engine.model: F5TTS_v1_Base")
    hub_v0 = tmp_path / "F5TTS_Base" / "model_1200000.safetensors"
    hub_v0.parent.mkdir()
    hub_v0.write_bytes(trained["ema_st"].read_bytes())
    err = refused(hub_v0, model=V1)
    assert err.option == "model" and str(err).endswith("set engine.model: F5TTS_Base")
    load(hub_v0, model=V0)


def test_each_model_defaults_to_its_own_published_file():
    """model: F5TTS_Base without engine.checkpoint used to load the v1 file."""
    assert loader.default_checkpoint(V0).endswith("/F5TTS_Base/model_1200000.safetensors")
    assert loader.default_checkpoint(V1).endswith("/F5TTS_v1_Base/model_1250000.safetensors")
    with pytest.raises(WeightsUnusable, match="F5TTS_Small has no published checkpoint") as err:
        loader.default_checkpoint("F5TTS_Small")
    assert err.value.option == "checkpoint"


def test_another_size_names_the_config_that_fits(tmp_path):
    """A Small checkpoint under Base (full-size shapes, as meta tensors: no memory)."""
    small = loader._meta_state("F5TTS_Small", {}, len(_vocab()))
    base = loader._meta_state(V1, {}, len(_vocab()))
    path = tmp_path / "F5TTS_Small" / "model.pt"
    with pytest.raises(WeightsUnusable) as err:
        checkpoint.fit(small, base, path, V1, "vocab.txt", loader._alternatives({}, 2545))
    assert err.value.option == "model"
    assert "does not fit engine.model F5TTS_v1_Base: shapes" in str(err.value)
    assert str(err.value).endswith("set engine.model: F5TTS_Small")


def _broken_files(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    files = {
        "empty": (b"", "is empty (0 bytes)"),
        "truncated safetensors": (data[: len(data) // 2], "cannot be read"),
        "git lfs pointer": (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:0\n",
            "a Git LFS pointer",
        ),
        "html page": (b"<!DOCTYPE html><html>503</html>", "an HTML page"),
    }
    out = {}
    for name, (content, why) in files.items():
        path = root / f"{name.replace(' ', '_')}.safetensors"
        path.write_bytes(content)
        out[name] = (path, why)
    torch.save({"ema_model_state_dict": load_file(good)}, root / "whole.pt")
    whole = (root / "whole.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[: len(whole) - 4000])
    out["truncated pt"] = (root / "truncated.pt", "truncated or corrupt")
    torch.save([torch.zeros(3)], root / "list.pt")
    out["a list"] = (root / "list.pt", "holds a list, not a state dict")
    with zipfile.ZipFile(root / "other.pt", "w") as z:
        z.writestr("readme.txt", "not a model")
    out["a zip of something else"] = (root / "other.pt", "looks like a torch zip file but")
    torch.save(torch.nn.Linear(2, 2), root / "module.pt")
    out["a pickled module"] = (root / "module.pt", "holds Python objects besides tensors")
    torch.save({"model_state_dict": {"encoder.weight": torch.zeros(2)}}, root / "foreign.pt")
    out["another network"] = (root / "foreign.pt", "holds no F5 DiT weights")
    from f5_tts.model.backbones.unett import UNetT
    from f5_tts.model.cfm import CFM

    e2 = CFM(transformer=UNetT(dim=64, depth=2, heads=2, ff_mult=2, text_num_embeds=10))
    torch.save({"ema_model_state_dict": e2.state_dict()}, root / "e2.pt")
    out["an E2-TTS model"] = (root / "e2.pt", "is an E2-TTS checkpoint (UNetT backbone)")
    (root / "folder").mkdir()
    (root / "folder" / "model_100.pt").write_bytes(b"")
    out["a folder"] = (
        root / "folder",
        "is a folder (it holds model_100.pt); set engine.checkpoint",
    )
    voc = save_vocoder(root / "vocos") / "pytorch_model.bin"
    out["a vocoder"] = (voc, "is a Vocos vocoder, not an F5 model; it belongs in engine.vocoder")
    return out


def test_files_that_are_not_checkpoints_name_engine_checkpoint(trained, tmp_path):
    for name, (path, why) in _broken_files(tmp_path, trained["ema_st"]).items():
        err = refused(path)
        assert err.option == "checkpoint", (name, str(err))
        assert why in str(err) and str(path) in str(err), (name, str(err))


def test_nan_weights_are_refused_at_load(trained, tmp_path):
    """Only a load reads the values: a diverged run's NaN/inf (check-config passes it)."""
    flat = load_file(trained["ema_st"])
    flat["ema_model.transformer.proj_out.weight"][0, 0] = float("nan")
    save_file(flat, tmp_path / "nan.safetensors")
    loader.check_checkpoint(tmp_path / "nan.safetensors", V1, TINY_ARCH, None)
    cfm = loader.build_cfm(V1, TINY_ARCH, _vocab())
    with pytest.raises(WeightsUnusable, match=r"hold NaN or inf, e\.g\. transformer\.proj_out"):
        loader.load_weights(cfm, tmp_path / "nan.safetensors")


def test_check_files_judges_a_hub_cached_file_and_names_the_key(trained, tmp_path, monkeypatch):
    """check-config's engine check: a file in the hub cache is looked into without the
    network; a model without a published file needs engine.checkpoint."""
    from ishowtts.engines.f5 import F5Engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    snapshot = tmp_path / "models--SWivid--F5-TTS" / "snapshots" / ("0" * 40)
    (snapshot / "F5TTS_v1_Base").mkdir(parents=True)
    (snapshot / "F5TTS_v1_Base" / "model_1250000.safetensors").write_bytes(
        trained["ema_st"].read_bytes()
    )
    (tmp_path / "models--SWivid--F5-TTS" / "refs").mkdir()
    (tmp_path / "models--SWivid--F5-TTS" / "refs" / "main").write_text("0" * 40)

    def check(**options):
        opts = F5Engine.Options(
            arch=TINY_ARCH,
            hub_cache=str(tmp_path),
            vocoder=str(save_vocoder(tmp_path / "vocos")),
            **options,
        )
        return F5Engine.check_files(opts)

    assert check(model=V1) == {}  # the default v1 file, from the cache
    wrong = check(model=V0, checkpoint=loader.DEFAULT_CHECKPOINT)
    assert list(wrong) == ["model"] and wrong["model"].endswith("set engine.model: F5TTS_v1_Base")
    missing = check(model=V0)  # its own default (the v0 file) is not cached
    assert list(missing) == ["checkpoint"] and "F5TTS_Base/model_1200000" in missing["checkpoint"]
    small = check(model="F5TTS_Small")
    assert list(small) == ["checkpoint"] and "no published checkpoint" in small["checkpoint"]


def test_a_broken_vocoder_names_engine_vocoder(tmp_path):
    """A truncated vocoder file is found by check-config; one of another size at load."""
    from ishowtts.engines.f5 import F5Engine

    folder = save_vocoder(tmp_path / "vocos")
    weights = folder / "pytorch_model.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    opts = F5Engine.Options(random_weights=False, checkpoint=None, vocoder=str(folder))
    assert list(F5Engine.check_files(opts)) == ["vocoder"]
    with pytest.raises(
        WeightsUnusable, match=r"truncated or corrupt; .*set engine\.vocoder"
    ) as err:
        loader.load_vocoder(str(folder), None)
    assert err.value.option == "vocoder"
    other = save_vocoder(tmp_path / "other")
    (other / "config.yaml").write_text(
        (other / "config.yaml").read_text().replace("dim: 32", "dim: 48")
    )
    with pytest.raises(WeightsUnusable, match=r"does not fit .*config\.yaml") as err:
        loader.load_vocoder(str(other), None)
    assert err.value.option == "vocoder"
