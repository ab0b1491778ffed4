"""Where the synth worker's audio goes: to the room's player, or back to the caller that asked
for it over HTTP (the OpenAI-style speech endpoint, ``control/speech.py``).

The worker knows neither: it hands every chunk to one ``Responses`` sink, which sends the
chunks of an utterance opened as a response to that response's stream (and to the player too
only if the response asked to be heard in the room), and everything else to the player. So a
request waits in the queue with the chat and is made by the warm engine like any line, but it
is never heard in the room unless asked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from ..events import AudioChunk, ChatEvent
from ..queue.ledger import Terminal
from .worker import Sink

# The ledger's platform of every response's utterance: its chunks never reach the room's
# player unless its stream asked for that, even after the caller has gone.
PLATFORM = "api"


class ResponseFailed(Exception):
    """The response's utterance ended without its audio (expired, evicted, removed, failed)."""


class ResponseStream:
    """One caller's audio as the engine makes it: chunks in order, then the end or a failure.
    Its memory is bounded by the request's input length (the engine's audio for that text)."""

    def __init__(self, utterance_id: str, play: bool) -> None:
        self.id = utterance_id
        self.play = play  # also heard in the room
        self.sample_rate = 0  # known with the first chunk
        self.samples = 0  # made so far
        self._chunks: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        self.failure: str | None = None
        self.ended = False  # the last chunk or a failure came

    def put(self, chunk: AudioChunk) -> None:
        if self.ended:
            return
        self.sample_rate = chunk.sample_rate
        if len(chunk.samples):
            self.samples += len(chunk.samples)
            self._chunks.put_nowait(chunk.samples)
        if chunk.last:
            self.ended = True
            self._chunks.put_nowait(None)

    def fail(self, why: str) -> None:
        if not self.ended:
            self.ended, self.failure = True, why
            self._chunks.put_nowait(None)

    async def next(self) -> np.ndarray | None:
        """The next chunk, None at the end; raises ResponseFailed if it ended without audio."""
        chunk = await self._chunks.get()
        if chunk is None:
            self._chunks.put_nowait(None)  # later calls see the end too
            if self.failure is not None:
                raise ResponseFailed(self.failure)
        return chunk


class Responses:
    """The worker's sink: the player, with the responses' chunks routed to their callers.
    Add ``on_ledger`` to the ledger's listeners: a response whose utterance is closed before
    its audio was made (expired, evicted, cleared) learns why at once."""

    def __init__(self, player: Sink | None = None) -> None:
        self.player = player  # set at start-up, once the player is built
        self.streams: dict[str, ResponseStream] = {}  # by utterance id, until they end

    def open(self, utterance_id: str, play: bool = False) -> ResponseStream:
        stream = self.streams[utterance_id] = ResponseStream(utterance_id, play)
        return stream

    def close(self, utterance_id: str) -> None:
        """The caller is done with it (answered, or gone): later chunks are dropped."""
        stream = self.streams.pop(utterance_id, None)
        if stream is not None:
            stream.fail("closed")

    # -- the worker's Sink ---------------------------------------------------------------------

    def enqueue(self, chunk: AudioChunk) -> None:
        assert self.player is not None
        stream = self.streams.get(chunk.utterance.id)
        if stream is None:
            if chunk.utterance.event.platform != PLATFORM:
                self.player.enqueue(chunk)  # a chat line; a gone caller's audio is dropped
            return
        if stream.play:
            self.player.enqueue(chunk)
        stream.put(chunk)

    def cancel(self, utterance_id: str) -> None:
        """The worker gave up on an utterance (its engine failed on it)."""
        stream = self.streams.get(utterance_id)
        if stream is not None:
            stream.fail("the engine failed on it")
        if self.player is not None:
            self.player.cancel(utterance_id)

    async def wait_below(self, seconds: float) -> None:
        assert self.player is not None
        await self.player.wait_below(seconds)

    # -- the ledger's listener -----------------------------------------------------------------

    def on_ledger(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        stream = self.streams.get(event.id)
        if stream is not None and state is not None and state is not Terminal.SPOKEN:
            rule = fields.get("rule")
            stream.fail(f"{state.value} ({rule})" if rule else state.value)
