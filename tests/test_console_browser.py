"""The console and the overlay in headless chromium (Debian's, through Playwright) against a
running daemon on the PulseAudio null sink: what an operator and OBS see and do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ishowtts.events import Kind
from tests import browser
from tests.console_daemon import TOKEN, mute_file, running
from tests.servers.util import until

pytestmark = [pytest.mark.audio, browser.needed]

XSS = "<img src=x onerror=alert(1)>"
CHAT = [
    {"t": 0.0, "kind": "danmaku", "user": {"id": "1", "name": "alice"}, "text": "hello there"},
    {"t": 0.05, "kind": "danmaku", "user": {"id": "2", "name": "bob"}, "text": "buy followers now"},
    {"t": 0.1, "kind": "danmaku", "user": {"id": "3", "name": "carol"}, "text": "hello there"},
    {"t": 0.15, "kind": "danmaku", "user": {"id": "4", "name": XSS}, "text": XSS},
    {"t": 0.2, "kind": "danmaku", "user": {"id": "5", "name": "dave"}, "text": "oops", "id": "m5"},
    {"t": 0.25, "kind": "recall", "id": "m5"},
    # Two gifts waiting together: one line thanks both; the second shows the line that said it.
    {"t": 0.3, "kind": "gift", "user": {"id": "6", "name": "erin"}, "gift": "辣条", "amount": 1},
    {"t": 0.35, "kind": "gift", "user": {"id": "7", "name": "fay"}, "gift": "辣条", "amount": 1},
]
EXPECTED = {  # user → (fate, rule shown)
    "alice": ("spoken", ""),
    "bob": ("dropped", "blocked_keyword"),
    "carol": ("dropped", "duplicate"),
    XSS: ("spoken", ""),
    "dave": ("removed", "recalled"),
    "erin": ("spoken", ""),
    "fay": ("spoken", "said with "),  # + erin's id
}


def replay(folder: Path) -> str:
    (folder / "chat.jsonl").write_text("\n".join(json.dumps(e) for e in CHAT) + "\n")
    return "[{type: replay, path: chat.jsonl}]"


async def decisions(page: Any) -> dict[str, tuple[str, str, bool]]:
    """user → (fate, rule, visible) for every line in the decisions list."""
    rows = await page.eval_on_selector_all(
        "#decisions li",
        """rows => rows.map(r => [r.querySelector('.user').textContent, r.dataset.fate,
                                 r.querySelector('.rule').textContent, !r.hidden])""",
    )
    return {user: (fate, rule, visible) for user, fate, rule, visible in rows}


async def test_a_replayed_chat_shows_each_fate_and_strangers_text_stays_text(
    tmp_path: Path, pulse: Any
) -> None:
    dialogs: list[str] = []
    async with running(tmp_path, replay(tmp_path)) as r, browser.launch() as b:
        page = await b.new_page()
        page.on("dialog", lambda d: dialogs.append(d.message))
        response = await page.goto(r.base + "/")
        assert response is not None
        assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]
        await until(
            lambda: r.daemon.ledger.summary().get("spoken", 0) == 4, 30, "three lines spoken"
        )
        await page.wait_for_function(
            "document.querySelectorAll('#decisions li:not([data-fate=pending])').length === 7"
        )
        seen = await decisions(page)
        erin = await page.locator("#decisions li", has_text="erin").get_attribute("data-id")
        assert seen["fay"][1] == "said with " + erin
        seen["fay"] = ("spoken", "said with ", True)
        assert {u: (f, rule) for u, (f, rule, _) in seen.items()} == EXPECTED
        # Stranger text is shown as text: the tag is visible literally and never became HTML.
        xss_row = page.locator("#decisions li", has_text=XSS)
        assert await xss_row.locator(".text").text_content() == XSS
        assert await page.locator("#decisions img, #queue img, #now img").count() == 0
        assert dialogs == []
        # Filters: by fate, then by user.
        await page.select_option("#fate-filter", "dropped")
        shown = {u for u, (_, _, visible) in (await decisions(page)).items() if visible}
        assert shown == {"bob", "carol"}
        await page.select_option("#fate-filter", "")
        await page.fill("#user-filter", "ALI")
        shown = {u for u, (_, _, visible) in (await decisions(page)).items() if visible}
        assert shown == {"alice"}
        # Health: the replay connector and the engine are listed.
        await page.wait_for_selector("#connectors li.state-finished")
        assert "tone" in (await page.locator("#engine").text_content() or "")


async def test_skip_reload_error_and_the_say_box(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await b.new_page()
        await page.goto(r.base + "/")
        long = "this line is long enough to still be playing when the operator skips it " * 2
        await page.fill("#say-text", long)
        await page.select_option("#say-voice", "bright")
        await page.click("#say-form button[type=submit]")
        await page.wait_for_function(
            "t => document.querySelector('#now .text')?.textContent === t", arg=long.strip()
        )
        playing = r.daemon.player.now_playing if r.daemon.player else None
        assert playing is not None and playing.voice == "bright"
        await page.click("#skip")
        await until(lambda: r.fate(playing.id) is not None, 10, "the skip's ledger line")
        assert r.fate(playing.id) == ("removed", {"rule": "skip"})
        row = page.locator(f"#decisions li[data-id='{playing.id}']")
        await row.locator(".rule", has_text="skip").wait_for()
        assert await row.get_attribute("data-fate") == "removed"
        # A rejected config shows the loader's error text; the running config stays.
        path = tmp_path / "config.yaml"
        path.write_text(path.read_text() + "queue: {max_items: 0}\n")
        await page.click("#reload")
        message = page.locator("#message.bad")
        await message.wait_for()
        text = await message.text_content() or ""
        assert "config rejected" in text and "queue.max_items" in text and "config.yaml:" in text
        # Pause and volume reach the player.
        await page.click("#pause")
        await until(lambda: r.daemon.player is not None and r.daemon.player.state == "paused")
        await page.locator("#volume").fill("40")
        await page.locator("#volume").dispatch_event("change")
        await until(lambda: r.daemon.player is not None and r.daemon.player.volume == 0.4)


async def test_mute_from_a_line_stops_the_user_and_survives_a_restart(
    tmp_path: Path, pulse: Any
) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await b.new_page()
        await page.goto(r.base + "/")
        first = r.chat("troll", "first words", uid="666")
        row = page.locator(f"#decisions li[data-id='{first.id}']")
        await row.wait_for()
        await row.locator("button.mute").click()
        await page.locator("#mutes li", has_text="troll").wait_for()
        await until(lambda: len(r.daemon.mutes) == 1, 5, "the mute")
        after = r.chat("troll", "second words", uid="666")
        assert r.fate(after.id) == ("dropped", {"rule": "muted_user"})
        renamed = r.chat("troll2", "a new name, the same account", uid="666")
        assert r.fate(renamed.id) == ("dropped", {"rule": "muted_user"})
        assert r.fate(r.chat("friend", "not muted", uid="7").id) != (
            "dropped",
            {"rule": "muted_user"},
        )
    assert "666" in mute_file(tmp_path).read_text(encoding="utf-8")
    async with running(tmp_path) as r, browser.launch() as b:  # a restart: the file is read
        again = r.chat("troll", "after the restart", uid="666")
        assert r.fate(again.id) == ("dropped", {"rule": "muted_user"})
        page = await b.new_page()
        await page.goto(r.base + "/")
        item = page.locator("#mutes li", has_text="troll")
        await item.locator("button").click()
        await page.locator("#mutes li", has_text="troll").wait_for(state="detached")
        back = r.chat("troll", "unmuted now", uid="666")
        assert r.fate(back.id) != ("dropped", {"rule": "muted_user"})
    assert json.loads(mute_file(tmp_path).read_text(encoding="utf-8"))["users"] == []


async def test_the_overlay_shows_the_line_while_it_is_heard(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path) as r, browser.launch() as b:
        page = await b.new_page()
        await page.goto(
            r.base + "/overlay?size=41&color=rgb(1,2,3)&lines=2&linger=0.2&bg=nonsense;x"
        )
        await page.wait_for_function("document.querySelector('#caption') !== null")
        seen: list[tuple[str, str | None]] = []  # (caption text, what the player was playing)

        async def sample() -> None:
            text = await page.locator("#caption:not(.gone) .line").all_text_contents()
            playing = r.daemon.player.now_playing if r.daemon.player else None
            seen.append((text[0] if text else "", playing.id if playing else None))

        event = r.chat(XSS, "super chat " + XSS, kind=Kind.SUPER_CHAT, amount=30)
        caption = page.locator("#caption:not(.gone)")
        await caption.wait_for()
        await sample()
        text, playing = seen[-1]
        assert text == f"{XSS}: super chat {XSS}" and playing == event.id  # heard right now
        assert await page.locator("#caption img").count() == 0
        assert "paid" in (await page.get_attribute("#caption", "class") or "")
        assert await page.locator("#caption .who").text_content() == f"{XSS} · 30"
        style = await page.eval_on_selector(
            "#caption .line",
            "e => [getComputedStyle(e).fontSize, getComputedStyle(e).color, getComputedStyle(e.parentNode).backgroundColor]",
        )
        assert style[0] == "41px" and style[1] == "rgb(1, 2, 3)"
        assert style[2] == "rgba(0, 0, 0, 0.55)"  # a bad colour keeps the default
        await until(lambda: r.fate(event.id) is not None, 20, "spoken")
        await page.locator("#caption.gone").wait_for()  # faded out after the line ended
        assert r.fate(event.id) == (
            "spoken",
            {"text": f"{XSS}: super chat {XSS}", "voice": "default"},
        )


async def test_a_wrong_token_gets_the_login_prompt_never_data(tmp_path: Path, pulse: Any) -> None:
    async with running(tmp_path, token=TOKEN) as r, browser.launch() as b:
        r.chat("secret_user", "private words")
        page = await b.new_page()
        statuses: dict[str, set[int]] = {}
        page.on(
            "response",
            lambda resp: statuses.setdefault(resp.url.split("?")[0].rsplit("/", 1)[-1], set()).add(
                resp.status
            ),
        )
        await page.goto(r.base + "/#token=not-the-token")
        await page.locator("#login:not([hidden]) .login-wrong:not([hidden])").wait_for()
        assert await page.locator("#main").is_hidden()
        assert "secret_user" not in await page.content()
        assert statuses.get("state") == {401}
        assert "token" not in page.url  # taken out of the address bar
        overlay = await b.new_page()
        await overlay.goto(r.base + "/overlay#token=also-wrong")
        await overlay.locator("#login:not([hidden])").wait_for()
        # The right token, typed into the prompt, opens the console.
        await page.fill("#login input", TOKEN)
        await page.click("#login button")
        await page.locator("#decisions li", has_text="secret_user").wait_for()
        assert await page.locator("#login").is_hidden()
