"""``http``: messages posted to the control API's ``POST /say`` enter the pipeline here, like
any chat, so they are filtered, queued and accounted for the same way."""

from __future__ import annotations

import asyncio

from ishowtts.connectors import (
    BaseConnector,
    ChatEvent,
    ConnectorContext,
    ConnectorState,
    Kind,
    Section,
    User,
)


class HttpSayOptions(Section):
    user: str = "operator"  # the name messages are attributed to unless the request names one
    kind: Kind = Kind.SYSTEM


class HttpSayConnector(BaseConnector):
    platform = "http"
    Options = HttpSayOptions

    def __init__(self, name: str, options: HttpSayOptions, context: ConnectorContext) -> None:
        super().__init__(name, options, context)

    async def run(self) -> None:
        self.set_state(ConnectorState.CONNECTED)
        await asyncio.Event().wait()  # nothing to poll: say() emits

    async def say(
        self, text: str, user: str = "", kind: Kind | None = None, voice: str = ""
    ) -> ChatEvent:
        o: HttpSayOptions = self.options
        name = user or o.user
        event = ChatEvent(
            platform=self.platform,
            room="local",
            kind=kind or o.kind,
            user=User(id=f"http:{name}", name=name),
            text=text,
            voice=voice,
        )
        await self.emit(event)
        return event
