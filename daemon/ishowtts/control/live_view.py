"""What the daemon shows as it happens: each decision and playback moment goes to the console's
feed, the charts' timeline and the metrics (and the "speaking" log line).

Only reads and publishes: closing ledger entries and driving the parts stay with their owners.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import structlog

from ..events import ChatEvent, Utterance
from ..queue.ledger import Terminal
from ..synth.worker import SynthStats
from .feed import EventFeed, clip
from .metrics import Metrics
from .timeline import Timeline

log = structlog.get_logger("ishowtts")


def caption(utt: Utterance) -> dict[str, Any]:
    """What a page shows of the line being heard (the console's "now", the overlay)."""
    e = utt.event
    return {
        "id": utt.id,
        "kind": e.kind.value,
        "user": utt.speaker or e.user.name,  # as it is heard
        "uid": e.user.id,
        "platform": e.platform,
        "text": clip(utt.text),
        "voice": utt.voice,
        "paid": e.is_paid,
        "amount": round(e.amount, 2),
    }


class LiveView:
    def __init__(self, feed: EventFeed, timeline: Timeline, metrics: Metrics) -> None:
        self.feed = feed
        self.timeline = timeline
        self.metrics = metrics
        self.ttfa: deque[float] = deque(maxlen=1024)  # seconds, arrival → first sample out

    def on_ledger(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        """A ledger listener: every received event and every terminal line."""
        who = {"platform": event.platform, "user": event.user.name, "uid": event.user.id}
        if state is None:
            self.feed.publish(
                "received",
                id=event.id,
                kind=event.kind.value,
                text=clip(event.text),
                amount=round(event.amount, 2),
                gift=clip(event.gift_name, 64),
                **who,
            )
            return
        self.timeline.outcome(state.value)
        # A chat command's outcome and answer ("!voice list") are shown where its rule is; a
        # line said by another (a combined or storm line) names it.
        shown = ("rule", "error", "outcome", "answer", "merged_into")
        extra = {k: clip(str(v), 200) for k, v in fields.items() if k in shown}
        self.feed.publish(
            "terminal",
            id=event.id,
            state=state.value,
            kind=event.kind.value,
            text=clip(event.text),
            **who,
            **extra,
        )

    def on_stats(self, stats: SynthStats) -> None:
        """The synth worker finished an utterance."""
        self.metrics.observe_synth(stats)
        if stats.audio_s > 0:
            self.timeline.rtf(stats.rtf)

    def started(self, utt: Utterance, at: float) -> None:
        """The first sample of ``utt`` left at ``at`` (the loop's clock)."""
        ttfa = at - utt.event.received_mono
        self.ttfa.append(ttfa)
        self.metrics.observe_ttfa(ttfa)
        self.timeline.ttfa(ttfa)
        log.info(
            "speaking", id=utt.id, voice=utt.voice, speed=utt.speed, ttfa_ms=round(ttfa * 1000, 1)
        )
        self.feed.publish("speaking", **caption(utt))

    def done(self, utt: Utterance, played: bool) -> None:
        self.feed.publish("done", id=utt.id, played=played)
