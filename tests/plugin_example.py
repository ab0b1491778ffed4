"""An example connector plug-in, written as a package outside this repository would write it:
it imports ``ishowtts.connectors`` and nothing else of ishowtts (tests/test_plugin_api.py
checks that, then runs it through the whole daemon).

``type: announcements`` reads a fixed list of lines, one every ``every_s`` seconds (a stream's
scheduled announcements), and finishes."""

from __future__ import annotations

import asyncio

from pydantic import Field

from ishowtts.connectors import (
    BaseConnector,
    ChatEvent,
    ConnectorContext,
    ConnectorState,
    Kind,
    Section,
    User,
)


class AnnouncementOptions(Section):
    lines: list[str] = Field(min_length=1, max_length=100)
    every_s: float = Field(0.05, gt=0, le=3600)


class AnnouncementConnector(BaseConnector):
    platform = "announcements"
    Options = AnnouncementOptions

    def __init__(self, name: str, options: AnnouncementOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)

    async def run(self) -> None:
        self.set_state(ConnectorState.CONNECTED)
        for n, line in enumerate(self.options.lines):
            user = User(id="announcer", name="announcer")
            await self.emit(ChatEvent(self.platform, "local", Kind.SYSTEM, user, text=line,
                                      raw_id=f"announcement:{n}"))  # fmt: skip
            await asyncio.sleep(self.options.every_s)
        self.set_state(ConnectorState.FINISHED)
