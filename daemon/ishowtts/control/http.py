"""What the control API and the console share over HTTP: JSON errors, request bodies read
bounded and validated, and the guards every request passes (the bearer token, and the browser
checks that keep another site's page or a DNS-rebound name from driving the daemon)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from .feed import clip

# No body of ours nests deeper than 2; json would recurse (and raise RecursionError) long
# before max_body_bytes stops a deep one.
MAX_JSON_DEPTH = 32

PAGES = {"/": "console.html", "/overlay": "overlay.html"}
# The overlay's audio stream: a WebSocket, which a browser cannot give an Authorization
# header, so the page sends the token as its first message (audio_route.py checks it).
AUDIO_PATH = "/audio"
PUBLIC_PREFIX = "/static/"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- bodies and errors -------------------------------------------------------------------


def error(status: int, message: str, detail: Any = None, **headers: str) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, headers=headers or None)


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
        for e in exc.errors()
    ]


def json_error(cls: type[web.HTTPException], message: str, detail: Any = None) -> web.HTTPException:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return cls(text=json.dumps(body), content_type="application/json")


def nesting(raw: bytes) -> int:
    """How deep the brackets of a JSON text nest (those inside strings too: an over-count
    only refuses a body no client of ours sends)."""
    depth = deepest = 0
    for byte in raw:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


async def read_body(request: web.Request, model: type[Body], timeout: float) -> Body:
    """The request's JSON body as ``model``; an empty body counts as ``{}``."""
    try:  # aiohttp enforces client_max_size in read() (413)
        raw = await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        raise json_error(
            web.HTTPRequestTimeout, "body too slow", f"send the body within {timeout:g} s"
        ) from None
    if not raw.strip():
        data: Any = {}
    else:
        if nesting(raw) > MAX_JSON_DEPTH:
            raise json_error(
                web.HTTPBadRequest, "body is not valid JSON", f"nested deeper than {MAX_JSON_DEPTH}"
            )
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad UTF-8, bad syntax and integers past Python's digit limit.
            raise json_error(web.HTTPBadRequest, "body is not valid JSON", str(exc)) from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise json_error(
            web.HTTPUnprocessableEntity, "invalid body", validation_detail(exc)
        ) from None


# ---- guards -----------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "": cannot be sure, so treat as exposed


def is_public(path: str) -> bool:
    """Paths served without a token: the pages and their scripts hold no data."""
    return path in PAGES or path.startswith(PUBLIC_PREFIX)


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port ("[::1]:8765" → "::1"); malformed ones
    come back as they are (and are no loopback name)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :] if end > 0 else "?"
        return host[1:end] if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def host_refusal(host: str, token_required: bool) -> str | None:
    """Without a token the API is bound to loopback, and a page that rebinds its own name to
    127.0.0.1 would be "same-origin" with it: there the ``Host`` must be a loopback name too,
    which a rebound name never is."""
    if not token_required and not is_loopback(host_name(host)):
        return f"Host {clip(host, 80)!r} is not a loopback name (this API is bound to loopback)"
    return None


def cors_origin(headers: Any, path: str, allowed: frozenset[str]) -> str | None:
    """The ``Origin`` of a browser request to the speech server (``/v1/``) from a page the
    config allows (``speech_api.cors_origins``: Social Stream Ninja's dock calls it from its
    own site), else None."""
    origin = headers.get("Origin")
    if origin is not None and path.startswith("/v1/") and origin.lower() in allowed:
        return str(origin)
    return None


def browser_refusal(
    headers: Any, host: str, token_required: bool, method: str = "GET", path: str = ""
) -> str | None:
    """Why a request must be refused as a browser's (None: it may pass).

    Browsers mark cross-site requests (``Sec-Fetch-Site``, ``Origin``); only the console's own
    origin may drive the API, though a link from elsewhere may open the pages themselves; and
    the ``Host`` must pass ``host_refusal``.
    """
    refused = host_refusal(host, token_required)
    if refused is not None:
        return refused
    site = headers.get("Sec-Fetch-Site")
    if (
        method in ("GET", "HEAD")
        and headers.get("Sec-Fetch-Mode") == "navigate"
        and path in PAGES
        and "Origin" not in headers
    ):
        return None  # following a link to a page: it holds no data, and it asks for the token
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request (Sec-Fetch-Site: {site})"
    origin = headers.get("Origin")
    if origin is not None:
        _, sep, authority = origin.partition("://")
        if not sep or authority.lower() != host.lower():
            return f"Origin {clip(origin, 80)!r} is not this console's"
    return None


def bearer_ok(headers: Any, token: bytes) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries this token (compared in constant time)."""
    scheme, _, credential = headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_ok(credential, token)


def token_ok(credential: str, token: bytes) -> bool:
    """Whether ``credential`` is this token (compared in constant time)."""
    # aiohttp keeps undecodable header bytes as surrogates: give them back as bytes (they then
    # simply do not match) instead of failing to encode them.
    return hmac.compare_digest(credential.strip().encode("utf-8", "surrogateescape"), token)
