"""The OpenAI-compatible speech server (POST /v1/audio/speech and its listings) end to end: a
real daemon (tone engine, the real player on the PulseAudio null sink), a real HTTP client
reading the streamed answer, the room's speaker recorded from the sink's monitor."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
import yaml

from ishowtts.engines.tone import tone_frequency
from ishowtts.queue.ledger import Terminal
from tests.audio_utils import Recorder, dominant_frequency, rms
from tests.f5_tiny import tiny_files
from tests.servers.control import Running, serve
from tests.servers.util import until

pytestmark = pytest.mark.audio

TOKEN = "a-long-enough-test-token-0123456789"
TEXT = "Hello from another tool"  # 23 characters: 1.38 s of tone in 0.5 s chunks

CONFIG = """\
engine: {{type: tone, delay_s: {delay}}}
voices: {{default: {{}}, narrator: {{}}}}
connectors: []
player: {{device: pulse, lookahead_s: 1.0}}
api: {{host: "{host}", port: 0, token_env: ISHOWTTS_TEST_TOKEN}}
speech_api: {speech}
"""


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    speech: str = "{}",
    *,
    delay: float = 0.0,
    host: str = "127.0.0.1",
    token: str | None = None,
) -> AsyncIterator[Running]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(delay=delay, host=host, speech=speech))
    env = {"ISHOWTTS_TEST_TOKEN": token} if token else {}
    async with serve(path, env) as r:
        yield r


async def speak(r: Running, body: dict[str, Any], **headers: str) -> tuple[int, bytes, Any]:
    async with r.session.post(
        r.base + "/v1/audio/speech", data=json.dumps(body).encode(), headers=headers
    ) as resp:
        return resp.status, await resp.read(), resp


def decoded(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate


def terminal_lines(r: Running) -> dict[str, int]:
    """Terminal ledger lines of the speech requests, by state."""
    out: dict[str, int] = {}
    for (kind, state), n in r.daemon.ledger.terminal_counts.items():
        if kind == "system":
            out[state] = out.get(state, 0) + n
    return out


async def test_wav_streams_as_it_is_made_and_is_not_heard_in_the_room(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path, delay=0.2) as r:
        with Recorder() as recorder:
            async with r.session.post(
                r.base + "/v1/audio/speech",
                json={
                    "model": "tts-1",
                    "input": TEXT,
                    "voice": "narrator",
                    "response_format": "wav",
                },
            ) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "audio/wav"
                assert resp.headers["Transfer-Encoding"] == "chunked"
                first = await resp.content.readany()
                # The first audio is here while the rest is still being made: streamed.
                assert r.daemon.ledger.open and first[:4] == b"RIFF"
                data = first + await resp.read()
            await asyncio.sleep(0.3)  # what the player would have played by now
            heard = recorder.stop()
    audio, rate = decoded(data)
    assert rate == 24000
    assert len(audio) == round(len(TEXT) * 0.06 * 24000)
    assert abs(dominant_frequency(audio, rate) - tone_frequency(TEXT)) < 5
    assert rms(heard) < 0.005  # the room heard nothing
    assert terminal_lines(r) == {"spoken": 1} and not r.daemon.ledger.open


async def test_pcm_and_mp3(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, data, resp = await speak(r, {"input": TEXT, "response_format": "pcm"})
        assert status == 200 and resp.headers["Content-Type"] == "audio/pcm"
        assert resp.headers["X-Sample-Rate"] == "24000"
        pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767
        assert len(pcm) == round(len(TEXT) * 0.06 * 24000)
        assert abs(dominant_frequency(pcm, 24000) - tone_frequency(TEXT)) < 5
        assert abs(np.abs(pcm).max() - 0.3) < 0.01  # the tone's amplitude, neither clipped nor lost

        status, data, resp = await speak(r, {"input": TEXT})  # OpenAI's default: mp3
        assert status == 200 and resp.headers["Content-Type"] == "audio/mpeg"
        audio, rate = decoded(data)
        assert rate == 24000 and abs(len(audio) / rate - len(TEXT) * 0.06) < 0.1
        assert abs(dominant_frequency(audio, rate) - tone_frequency(TEXT)) < 5
        assert terminal_lines(r) == {"spoken": 2}


async def test_speed_reaches_the_engine(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        for speed in (2.0, 0.5):
            body = {"input": TEXT, "response_format": "pcm", "speed": speed}
            status, data, _ = await speak(r, body)
            assert status == 200
            assert len(data) // 2 == round(len(TEXT) * 0.06 / speed * 24000)


async def test_heard_in_the_room_only_when_asked(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, "{play_in_room: true}") as r:
        with Recorder() as recorder:
            status, _, _ = await speak(r, {"input": TEXT, "response_format": "wav"})
            assert status == 200
            player = r.daemon.player
            assert player is not None
            await until(lambda: player.now_playing is None and player.queued_seconds == 0)
            heard = recorder.stop()
    loud = heard[np.abs(heard) > 0.05]
    assert len(loud) > 0.5 * 24000
    assert abs(dominant_frequency(heard, 24000) - tone_frequency(TEXT)) < 5
    assert terminal_lines(r) == {"spoken": 1}  # one line, though both the room and caller got it


async def test_listings(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, body, _ = await r.call("GET", "/v1/audio/voices")
        assert status == 200
        assert body == {
            "voices": [{"id": "default", "name": "default"}, {"id": "narrator", "name": "narrator"}]
        }
        status, body, _ = await r.call("GET", "/v1/models")
        assert status == 200 and body["object"] == "list"
        assert "tts-1" in {m["id"] for m in body["data"]}
        status, body, _ = await r.call("GET", "/v1/audio/models")
        assert status == 200 and {"id": "tts-1", "name": "tts-1"} in body["models"]


async def test_bad_bodies_are_refused_with_openai_errors(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, "{max_input_chars: 50}") as r:
        cases: list[tuple[Any, str | None]] = [
            ({"input": "x" * 51}, "input"),
            ({"input": "   "}, "input"),
            ({"input": TEXT, "response_format": "opus"}, "response_format"),
            ({"input": TEXT, "speed": 9}, None),
            ({"input": TEXT, "voice": "alloy"}, "voice"),  # not ours, and no default_voice
            ({"input": TEXT, "stream_format": "sse"}, "stream_format"),
            ({"voice": "default"}, None),  # no input
            ([TEXT], None),  # not an object
        ]
        for body, param in cases:
            status, answer, _ = await r.call("POST", "/v1/audio/speech", body)
            assert status in (400, 422), body
            assert answer["error"]["message"] and answer["error"]["type"] == "invalid_request_error"
            if param is not None:
                assert answer["error"]["param"] == param, body
        status, answer, _ = await r.call("POST", "/v1/audio/speech", raw=b"{not json")
        assert status == 400 and "not valid JSON" in answer["error"]["message"]
        status, answer, _ = await r.call("POST", "/v1/audio/speech", raw=b"{" * 20000)
        assert status == 413  # past api.max_body_bytes, refused before it is read
        # Fields of newer OpenAI models are not refused.
        status, _, _ = await speak(
            r, {"input": "ok", "instructions": "cheerful", "response_format": "wav"}
        )
        assert status == 200
        assert r.daemon.ledger.summary()["received"] == 1  # nothing refused was queued


async def test_unknown_voices_get_the_default_voice_when_one_is_set(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path, "{default_voice: narrator}") as r:
        status, _, _ = await speak(r, {"input": TEXT, "voice": "alloy", "response_format": "pcm"})
        assert status == 200
        assert r.daemon.worker.stats[-1].id  # made by the engine
    bad = tmp_path / "bad"
    bad.mkdir()
    path = bad / "config.yaml"
    path.write_text(CONFIG.format(delay=0, host="127.0.0.1", speech="{default_voice: nobody}"))
    from ishowtts.config import ConfigError, load_config

    with pytest.raises(
        ConfigError, match=r"speech_api.default_voice: no voice named 'nobody'.*config.yaml:6"
    ):
        load_config(path)
    path.write_text(
        CONFIG.format(delay=0, host="127.0.0.1", speech='{cors_origins: ["https://x/p"]}')
    )
    with pytest.raises(
        ConfigError, match=r"speech_api.cors_origins.*without a path.*config.yaml:6"
    ):
        load_config(path)


async def test_token_rules(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, host="0.0.0.0", token=TOKEN) as r:
        status, _, _ = await speak(r, {"input": TEXT})
        assert status == 401
        status, _, _ = await speak(r, {"input": TEXT}, Authorization="Bearer wrong")
        assert status == 401
        status, _, _ = await r.call("GET", "/v1/audio/voices")
        assert status == 401
        assert r.daemon.ledger.summary()["received"] == 0
        status, data, _ = await speak(
            r, {"input": TEXT, "response_format": "wav"}, Authorization=f"Bearer {TOKEN}"
        )
        assert status == 200 and data[:4] == b"RIFF"


async def test_browser_pages_only_from_allowed_origins(tmp_path: Path, pulse: Any) -> None:
    allowed = "https://socialstream.ninja"
    async with running(tmp_path, f'{{cors_origins: ["{allowed}"]}}') as r:
        preflight = {
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        }
        async with r.session.options(r.base + "/v1/audio/speech", headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == allowed
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
        cross = {"Origin": allowed, "Sec-Fetch-Site": "cross-site"}
        status, _, resp = await speak(r, {"input": TEXT, "response_format": "wav"}, **cross)
        assert status == 200 and resp.headers["Access-Control-Allow-Origin"] == allowed
        # Another site's page, and an allowed page on the other routes, are still refused.
        evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        status, _, resp = await speak(r, {"input": TEXT}, **evil)
        assert status == 403 and "Access-Control-Allow-Origin" not in resp.headers
        status, _, _ = await r.call("POST", "/say", {"text": "hi"}, **cross)
        assert status == 403
        assert r.daemon.ledger.summary()["received"] == 1


async def test_requests_at_once_are_bounded(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, "{max_requests: 1}", delay=0.3) as r:
        slow = asyncio.create_task(speak(r, {"input": TEXT, "response_format": "pcm"}))
        await until(lambda: bool(r.daemon.responses.streams))
        status, body, resp = await speak(r, {"input": TEXT})
        assert status == 429 and resp.headers["Retry-After"]
        assert "max_requests" in json.loads(body)["error"]["message"]
        assert (await slow)[0] == 200
        assert terminal_lines(r) == {"spoken": 1}


async def test_a_request_waiting_too_long_expires(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, "{ttl_s: 0.05}", delay=0.3) as r:
        first = asyncio.create_task(speak(r, {"input": TEXT, "response_format": "pcm"}))
        await until(lambda: r.daemon.worker.current is not None)
        status, body, _ = await speak(r, {"input": "second", "response_format": "pcm"})
        assert status == 503 and "expired" in json.loads(body)["error"]["message"]
        assert (await first)[0] == 200
        assert terminal_lines(r) == {"spoken": 1, "expired": 1} and not r.daemon.ledger.open


async def test_a_caller_that_leaves_while_queued_is_taken_out(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, delay=0.3) as r:
        first = asyncio.create_task(speak(r, {"input": TEXT, "response_format": "pcm"}))
        await until(lambda: r.daemon.worker.current is not None)
        async with aiohttp.ClientSession() as other:
            leaving = asyncio.create_task(
                other.post(r.base + "/v1/audio/speech", json={"input": "never mind"})
            )
            await until(lambda: len(r.daemon.scheduler) == 1)
            leaving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leaving
        await until(lambda: r.daemon.ledger.rules["removed:client_gone"] == 1)
        assert len(r.daemon.scheduler) == 0
        assert (await first)[0] == 200
        assert terminal_lines(r) == {"spoken": 1, "removed": 1}
        assert r.daemon.worker.stats[-1].chars == len(TEXT)  # "never mind" was never made


async def test_a_caller_that_leaves_mid_stream_is_not_heard_in_the_room(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path, delay=0.3) as r:
        with Recorder() as recorder:
            async with aiohttp.ClientSession() as other:
                resp = await other.post(r.base + "/v1/audio/speech", json={"input": TEXT * 2})
                assert resp.status == 200 and await resp.content.readany()
                resp.close()  # gone after the first chunk
            await until(lambda: r.daemon.ledger.rules["removed:client_gone"] == 1)
            await until(lambda: r.daemon.worker.current is None, 10)  # the rest was made...
            heard = recorder.stop()
    assert rms(heard) < 0.005  # ...and dropped, not played in the room
    assert terminal_lines(r) == {"removed": 1}


async def test_the_terminal_line_of_a_failed_request(tmp_path: Path, pulse: Any) -> None:
    """The engine fails on the request: 503, one failed line, and the worker goes on."""
    async with running(tmp_path) as r:
        r.daemon.worker.voices.pop("narrator", None)
        engine = r.daemon.worker.engine
        assert engine is not None
        engine.voices.pop("narrator")  # type: ignore[attr-defined]
        status, body, _ = await speak(r, {"input": TEXT, "voice": "narrator"})
        assert status == 503 and "not made" in json.loads(body)["error"]["message"]
        status, _, _ = await speak(r, {"input": TEXT, "response_format": "wav"})
        assert status == 200
        assert terminal_lines(r) == {Terminal.FAILED.value: 1, Terminal.SPOKEN.value: 1}


async def test_tiny_f5_answers_what_it_would_say(tmp_path: Path, pulse: Any) -> None:
    """The real engine (a tiny random F5 through the real loader, on the CPU): the answer is the
    very audio ``ishowtts say --out`` makes for that line with the same seed."""
    engine = {"type": "f5", **tiny_files(tmp_path / "model"), "seed": 7, "steps": 7}
    config = {
        "engine": engine,
        "voices": {"default": {"language": "en"}},
        "connectors": [],
        "player": {"device": "pulse", "lookahead_s": 0.5},
        "api": {"host": "127.0.0.1", "port": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    said = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ishowtts", "say", "hello chat", "--out", "say.wav"),
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(said.communicate(), 300)
    assert said.returncode == 0, err.decode()[-3000:]
    expected, _ = sf.read(tmp_path / "say.wav", dtype="float32")
    async with serve(path) as r:
        status, data, _ = await speak(r, {"input": "hello chat", "response_format": "wav"})
    assert status == 200
    audio, rate = decoded(data)
    assert rate == 24000 and len(audio) == len(expected) > 0.3 * rate
    assert np.abs(audio - expected).max() < 2 / 32767  # the same samples, but for 16-bit rounding
