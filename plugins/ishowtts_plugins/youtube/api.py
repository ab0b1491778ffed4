"""The YouTube Data API v3 as the connector uses it: JSON answers read bounded, errors by their
``reason``, the key in a header (never in a URL, which error messages quote), and the
``liveChatMessages.streamList`` body (a JSON array of list responses, each sent as it is ready,
the array left open while the chat lasts) split into its responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ishowtts.connectors import AnswerError, read_json

MAX_RESPONSE = 1 << 20  # one list response; 2,000 messages are a few hundred KiB


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status, self.reason = status, reason


async def error_of(resp: aiohttp.ClientResponse) -> ApiError:
    """The API's error answer, ``{"error": {"code", "message", "errors": [{"reason"}]}}``."""
    try:
        body = await read_json(resp, 64 * 1024)
    except AnswerError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    reason = str(first.get("reason", "") or error.get("status", ""))[:64]
    return ApiError(resp.status, reason, str(error.get("message", ""))[:200])


async def get(
    http: aiohttp.ClientSession, url: str, key: str, params: dict[str, str]
) -> dict[str, Any]:
    async with http.get(url, params=params, headers={"X-Goog-Api-Key": key}) as resp:
        if resp.status != 200:
            raise await error_of(resp)
        answer = await read_json(resp, MAX_RESPONSE)
    if not isinstance(answer, dict):
        raise AnswerError("answer is not an object")
    return answer


class ArraySplitter:
    """Splits a streamed JSON array of objects into the objects' texts, scanning each byte
    once (strings and escapes followed, so a brace inside a string does not count)."""

    def __init__(self, limit: int = MAX_RESPONSE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0
        self._depth = 0
        self._string = self._escape = self._opened = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        buf, i = self._buffer, self._scanned
        start = 0
        while i < len(buf):
            c = buf[i]
            if self._string:
                if self._escape:
                    self._escape = False
                elif c == 0x5C:  # backslash
                    self._escape = True
                elif c == 0x22:
                    self._string = False
            elif self._depth == 0:
                if c == 0x5B and not self._opened:  # [
                    self._opened = True
                elif c == 0x7B and self._opened:  # {
                    self._depth, start = 1, i
                elif c not in b" \t\r\n,]":
                    raise AnswerError("the stream is not a JSON array of objects")
            elif c == 0x22:
                self._string = True
            elif c == 0x7B:
                self._depth += 1
            elif c == 0x7D:
                self._depth -= 1
                if self._depth == 0:
                    if i + 1 - start > self.limit:
                        raise AnswerError(f"a response larger than {self.limit} bytes")
                    out.append(bytes(buf[start : i + 1]))
            i += 1
        # Keep only the object being received, if any.
        keep = start if self._depth else len(buf)
        del buf[:keep]
        self._scanned = len(buf)
        if len(buf) > self.limit:
            raise AnswerError(f"a response larger than {self.limit} bytes")
        return out


async def responses(resp: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """Each list response of a streamList body as it arrives; AnswerError past the bound or on
    anything that is not a JSON array of objects."""
    splitter = ArraySplitter()
    async for chunk in resp.content.iter_any():
        for text in splitter.feed(chunk):
            try:
                yield json.loads(text)
            except (ValueError, RecursionError):
                raise AnswerError("a response is not JSON") from None
