"""Reading a platform's HTTP answer as JSON without trusting its size."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

MAX_ANSWER = 1 << 20  # bytes; real answers (room info, gift lists) are a few hundred KiB at most


class AnswerError(ValueError):
    """The answer was too large or not JSON."""


async def read_json(resp: aiohttp.ClientResponse, limit: int = MAX_ANSWER) -> Any:
    """The answer's JSON, read up to ``limit`` bytes (a bigger one is an error, not a hang)."""
    raw = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > limit:
            raise AnswerError(f"answer larger than {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise AnswerError("answer is not JSON") from None
