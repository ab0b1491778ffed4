"""The console's reading mode switch and pronunciation dictionary editor, in headless chromium
against a running daemon (tone engine, the real player on the PulseAudio null sink), and their
routes over real HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ishowtts.events import ChatEvent, Kind, User
from tests import browser
from tests.console_daemon import running
from tests.servers.util import until

pytestmark = pytest.mark.audio
needs_browser = pytest.mark.skipif(
    not browser.available() and not os.getenv("CI"),
    reason=f"{browser.CHROMIUM} is not installed (apt-get install chromium)",
)


async def console(b: Any, r: Any) -> Any:
    """The console page, signed in and showing."""
    page = await b.new_page()
    await page.goto(r.base + "/")
    await page.wait_for_function("() => document.getElementById('main').hidden === false")
    return page


def spoken_text(r: Any, event_id: str) -> str | None:
    fate = r.fate(event_id)
    return fate[1].get("text") if fate and fate[0] == "spoken" else None


@needs_browser
async def test_the_mode_switch(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await console(b, r)
        assert await page.input_value("#reading-mode") == "all"
        await page.select_option("#reading-mode", "paid_only")
        await until(lambda: r.daemon.pipeline.reading.mode.value == "paid_only", 10, "mode set")
        plain = r.chat("viewer", "plain chat now")
        assert r.fate(plain.id) == ("dropped", {"rule": "mode_paid_only"})
        paid = r.chat("payer", "a super chat", kind=Kind.SUPER_CHAT, amount=30)
        await until(lambda: spoken_text(r, paid.id) is not None, 20, "the paid line spoken")
        # A moderator switches it back from chat: the console follows.
        mod = ChatEvent(
            "bilibili", "1", Kind.DANMAKU, User("9", "房管", is_moderator=True), "!tts all"
        )
        r.daemon.handle(mod)
        await page.wait_for_function(
            "() => document.getElementById('reading-mode').value === 'all'"
        )
        await page.uncheck("#reading-on")
        await until(lambda: not r.daemon.pipeline.reading.enabled, 10, "reading off")
        off = r.chat("viewer", "not read at all")
        assert r.fate(off.id) == ("dropped", {"rule": "tts_off"})
        _, status = await r.call("GET", "/status")
        assert status["reading"]["mode"] == "all" and status["reading"]["enabled"] is False


@needs_browser
async def test_a_voice_list_is_answered_in_the_console(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await console(b, r)
        r.chat("viewer", "!voice list")
        r.chat("viewer", "!skip")
        row = page.locator("#decisions li", has_text="!voice list")
        await row.locator(".rule", has_text="command: voices: default, bright").wait_for()
        refused = page.locator("#decisions li", has_text="!skip")
        await refused.locator(".rule", has_text="refused: not a moderator").wait_for()


@needs_browser
async def test_the_dictionary_editor_and_its_test_button(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await console(b, r)
        await page.wait_for_selector("#dict li")
        assert "starter" in (await page.text_content("#dict-more") or "")
        await page.fill("#dict-term", "主播")
        await page.fill("#dict-say", "老大")
        await page.click("#dict-form button")
        await page.wait_for_selector("#dict li:has-text('主播 → 老大')")
        saved = json.loads((tmp_path / "dictionary.json").read_text())
        assert saved == [{"term": "主播", "say": "老大"}]
        # A regular expression RE2 cannot run is refused, with the reason, and nothing written.
        await page.fill("#dict-term", "(a)\\1")
        await page.fill("#dict-say", "x")
        await page.check("#dict-regex")
        await page.click("#dict-form button")
        await page.wait_for_selector("#dict-error:not([hidden])")
        assert "RE2" in (await page.text_content("#dict-error") or "")
        assert json.loads((tmp_path / "dictionary.json").read_text()) == saved
        # Test it: the line as the dictionary makes it, and spoken the usual way.
        await page.fill("#dict-test", "主播yyds")
        await page.click("#dict-test-form button")
        await page.wait_for_function(
            "() => document.getElementById('dict-said').textContent === '老大永远的神'"
        )
        await until(
            lambda: any(f["text"] == "老大永远的神" for _, s, f in r.closed if s == "spoken"),
            20,
            "the test line spoken",
        )
        # Remove it with its ✕.
        await page.click("#dict li:has-text('主播 → 老大') button")
        await page.wait_for_selector("#dict li:has-text('主播 → 老大')", state="detached")
        assert json.loads((tmp_path / "dictionary.json").read_text()) == []


async def test_dictionary_routes_bound_and_check_what_they_take(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r:
        status, body = await r.call("POST", "/dictionary/entry", {"term": "x" * 201, "say": "y"})
        assert status == 422
        status, body = await r.call(
            "POST", "/dictionary/entry", {"term": "(a+)+$", "regex": True, "say": "啊"}
        )
        assert (status, body) == (200, {"term": "(a+)+$", "entries": 1})
        status, body = await r.call("POST", "/dictionary/remove", {"term": "nope"})
        assert status == 404
        status, body = await r.call("POST", "/dictionary/test", {"text": "aaaa", "speak": False})
        assert (status, body) == (200, {"said": "啊", "id": None})
        status, body = await r.call("POST", "/dictionary/test", {"text": "hi", "voice": "nobody"})
        assert status == 422
        # A hand edit that breaks the file: shown, and the last good dictionary stays.
        (tmp_path / "dictionary.json").write_text("[{")
        r.daemon.pipeline.pronunciation.poll(force=True)
        _, state = await r.call("GET", "/console/state")
        assert "not JSON" in state["dictionary_error"]
        _, body = await r.call("POST", "/dictionary/test", {"text": "aaaa", "speak": False})
        assert body["said"] == "啊"
