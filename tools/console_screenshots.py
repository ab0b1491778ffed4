#!/usr/bin/env python3
"""Screenshots of the web console and the OBS overlay for the README (docs/console.png,
docs/overlay.png): a daemon with the tone engine replays the bundled demo chat into the
PulseAudio null sink while Debian's chromium (through Playwright) looks at both pages.

    .venv/bin/python tools/console_screenshots.py [--out docs]

Needs PulseAudio (a private server is started if none runs) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ishowtts.app.daemon import Daemon  # noqa: E402
from ishowtts.config import load_config  # noqa: E402
from ishowtts.control.api import ControlApi, resolve_token  # noqa: E402
from tests.audio_utils import ensure_pulseaudio  # noqa: E402
from tests.browser import launch  # noqa: E402

CONFIG = """\
engine: {type: tone, seconds_per_char: 0.09}
connectors:
  - {type: replay, path: demo}
filters: {block_keywords: [加我微信]}
speech:
  templates: {super_chat: "{user}的醒目留言：{text}"}
player: {device: pulse, lookahead_s: 1.0}
api: {port: 0}
"""


async def main(out: Path) -> None:
    pulse = ensure_pulseaudio()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(CONFIG, encoding="utf-8")
        config = load_config(path)
        daemon = Daemon(config, shutdown_grace_s=1.0)
        api = ControlApi(daemon, config.api, resolve_token(config.api, {}))
        await api.start()
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)
            base = f"http://127.0.0.1:{api.port}"
            daemon.mutes.add("replay", "1009", "spammer")  # one muted user in the list
            async with launch() as browser:
                overlay = await browser.new_page(viewport={"width": 960, "height": 240})
                await overlay.goto(base + "/overlay?size=30&lines=2")
                page = await browser.new_page(
                    viewport={"width": 1280, "height": 900}, color_scheme="dark"
                )
                await page.goto(base + "/")
                # Both pages at the moment the demo's super chat is heard.
                await overlay.wait_for_selector(".caption.paid:not(.gone)", timeout=60_000)
                await asyncio.sleep(0.8)  # the fade-in, and a chart point or two
                # Transparent, as OBS composes it over the stream.
                await overlay.screenshot(path=str(out / "overlay.png"), omit_background=True)
                await page.screenshot(path=str(out / "console.png"), full_page=True)
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 30)
            await api.stop()
            pulse.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.out))
