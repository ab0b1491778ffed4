"""Checkpoints and vocoders through the real loader: upstream formats, clear errors offline."""

from __future__ import annotations

import socket

import pytest
import torch

from ishowtts.engines import WeightsUnusable
from ishowtts.engines.f5 import loader, upstream
from tests.f5_tiny import TINY_ARCH, save_checkpoint, save_vocoder, tiny_cfm


@pytest.fixture(scope="module")
def reference():
    return tiny_cfm(3)


@pytest.mark.parametrize("fmt", ["ema-safetensors", "ema-pt", "plain-pt"])
def test_checkpoint_formats_round_trip(tmp_path, reference, fmt):
    suffix = ".safetensors" if fmt.endswith("safetensors") else ".pt"
    path = save_checkpoint(reference, tmp_path / f"ckpt{suffix}", fmt)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm("F5TTS_v1_Base", TINY_ARCH, vocab)
    loader.load_weights(cfm, path)
    want = reference.state_dict()
    for key, value in cfm.state_dict().items():
        assert torch.equal(value, want[key]), key


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path, reference):
    path = save_checkpoint(reference, tmp_path / "c.safetensors")
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm("F5TTS_v1_Base", {**TINY_ARCH, "depth": 3}, vocab)
    with pytest.raises(WeightsUnusable, match=r"does not fit engine\.model F5TTS_v1_Base: missing"):
        loader.load_weights(cfm, path)


def test_checkpoint_of_another_width_names_the_shapes(tmp_path, reference):
    path = save_checkpoint(reference, tmp_path / "c.safetensors")
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm("F5TTS_v1_Base", {**TINY_ARCH, "ff_mult": 4}, vocab)
    with pytest.raises(
        WeightsUnusable,
        match=r"does not fit .*shapes .*ff\.0\.0\.weight \(128, 64\) \(model \(256, 64\)\)",
    ):
        loader.load_weights(cfm, path)


def test_checkpoint_of_another_vocab_says_to_set_vocab(tmp_path, reference):
    path = save_checkpoint(reference, tmp_path / "c.safetensors")
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    smaller = dict(list(vocab.items())[:-5])
    cfm = loader.build_cfm("F5TTS_v1_Base", TINY_ARCH, smaller)
    with pytest.raises(
        WeightsUnusable,
        match=r"trained with 2545 text tokens.*has 2540; set engine.vocab to the vocab.txt",
    ):
        loader.load_weights(cfm, path)


def test_ddp_prefixed_checkpoint_loads(tmp_path, reference):
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"model_state_dict": state}, tmp_path / "ddp.pt")
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm("F5TTS_v1_Base", TINY_ARCH, vocab)
    loader.load_weights(cfm, tmp_path / "ddp.pt")
    assert torch.equal(cfm.transformer.proj_out.weight, reference.transformer.proj_out.weight)


def test_missing_local_file_names_it_and_the_option(tmp_path):
    with pytest.raises(loader.ModelFileMissing) as err:
        loader.resolve(
            str(tmp_path / "nope.safetensors"), None, "F5 checkpoint", "checkpoint", None
        )
    assert "nope.safetensors" in str(err.value) and "`checkpoint`" in str(err.value)


def test_offline_hub_names_the_file_and_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(loader.ModelFileMissing) as err:
        loader.resolve(
            loader.DEFAULT_CHECKPOINT, None, "F5 checkpoint", "checkpoint", str(tmp_path / "cache")
        )
    msg = str(err.value)
    assert "model_1250000.safetensors" in msg and "SWivid/F5-TTS" in msg
    assert "HF_HUB_OFFLINE" in msg and "`checkpoint`" in msg and "local path" in msg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_is_found_by_a_probe_not_by_download_retries(tmp_path, monkeypatch):
    """Not cached and the hub does not answer: the loader says so after one short probe and
    never starts a download (whose retries with backoff used to take 30 s offline)."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    port = _closed_port()
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    calls = []
    real = huggingface_hub.hf_hub_download

    def recording(*args, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording)
    with pytest.raises(loader.ModelFileMissing) as err:
        loader.resolve(
            loader.DEFAULT_CHECKPOINT, None, "F5 checkpoint", "checkpoint", str(tmp_path / "cache")
        )
    assert calls == [True]  # the cache was looked at; no download was attempted
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "unreachable" in msg
    assert "huggingface-cli download SWivid/F5-TTS F5TTS_v1_Base/model_1250000.safetensors" in msg


def test_cached_hub_file_needs_no_network(tmp_path, monkeypatch):
    """A file in the hub cache is used as it is, even with the hub unreachable."""
    from huggingface_hub import hf_hub_download

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    cache = tmp_path / "cache"
    snapshot = cache / "models--o--r" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "w.safetensors").write_bytes(b"weights")
    (cache / "models--o--r" / "refs").mkdir()
    (cache / "models--o--r" / "refs" / "main").write_text("0" * 40)
    assert hf_hub_download("o/r", "w.safetensors", cache_dir=str(cache), local_files_only=True)
    path = loader.resolve("hf://o/r/w.safetensors", None, "F5 checkpoint", "checkpoint", str(cache))
    assert path.read_bytes() == b"weights"


def test_probe_tells_an_open_port_from_a_closed_one():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert loader.probe(f"http://127.0.0.1:{listener.getsockname()[1]}") is None
    reason = loader.probe(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    assert reason is not None and "unreachable" in reason


def test_vocoder_from_a_local_directory(tmp_path):
    directory = save_vocoder(tmp_path / "vocos")
    vocoder = loader.load_vocoder(str(directory), None)
    wav = vocoder.decode(torch.randn(1, 100, 10))
    assert wav.shape[0] == 1 and wav.shape[1] >= 9 * 256


def test_vocoder_directory_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(loader.ModelFileMissing, match=r"pytorch_model\.bin"):
        loader.load_vocoder(str(tmp_path), None)


def test_unknown_model_config_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="F5TTS_v1_Base"):
        upstream.model_config("F5TTS_v9")
