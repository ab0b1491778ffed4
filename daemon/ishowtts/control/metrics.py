"""Prometheus metrics in text format, from the daemon's own counters, on a private registry.

Counts that the daemon already keeps (the ledger, queue depth, connector states, player
counters) are read at scrape time by a collector, so there is one source of truth; only the
distributions (time to first audio, real-time factor) are observed as they happen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..connectors import ConnectorState
from ..events import Kind
from ..synth.keeper import WorkerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds from a chat event's arrival to its first sample leaving: live chat wants < 1-2 s.
TTFA_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
# Synthesis seconds per audio second: < 1 keeps up with speech.
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
FIRST_CHUNK_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class DaemonLike(Protocol):
    """What the collector reads (``ishowtts.app.daemon.Daemon`` has all of it)."""

    ledger: Any
    scheduler: Any
    connectors: list[Any]
    worker: Any
    player: Any
    ready: Any
    health: Any
    started_at: float


class _DaemonCollector(Collector):
    def __init__(self, daemon: DaemonLike) -> None:
        self.daemon = daemon

    def collect(self) -> Iterable[Metric]:
        d = self.daemon
        yield from self._events(d)
        depth = GaugeMetricFamily(
            "ishowtts_queue_depth", "Utterances waiting to be synthesised, by kind", labels=["kind"]
        )
        by_kind = d.scheduler.depth_by_kind()
        for kind in Kind:
            depth.add_metric([kind.value], by_kind.get(kind.value, 0))
        yield depth
        yield from self._connectors(d)
        yield from self._engine(d)
        yield from self._player(d)
        yield from _gpu_memory()
        up = GaugeMetricFamily("ishowtts_uptime_seconds", "Seconds since the daemon started")
        up.add_metric([], time.monotonic() - d.started_at)
        yield up
        ready = GaugeMetricFamily("ishowtts_ready", "1 once the model is warm and intake runs")
        ready.add_metric([], 1.0 if d.ready.is_set() else 0.0)
        yield ready
        degraded = GaugeMetricFamily(
            "ishowtts_degraded", "1 for each part /healthz reports degraded", labels=["part"]
        )
        for part in d.health.problems():
            degraded.add_metric([part], 1.0)
        yield degraded
        lost = getattr(d, "paid_lost", None)
        if lost is not None:
            n = CounterMetricFamily(
                "ishowtts_paid_lost", "Paid lines lost because the paid queue was full"
            )
            n.add_metric([], lost.count)
            yield n
            amount = CounterMetricFamily(
                "ishowtts_paid_lost_amount", "Money of the paid lines lost (platform currency)"
            )
            amount.add_metric([], lost.amount)
            yield amount

    @staticmethod
    def _events(d: DaemonLike) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "ishowtts_events_received", "Chat events received, by kind", labels=["kind"]
        )
        for kind, n in sorted(d.ledger.received_by_kind.items()):
            received.add_metric([kind], n)
        yield received
        done = CounterMetricFamily(
            "ishowtts_events",
            "Chat events by kind and terminal state (spoken, dropped, expired, ...)",
            labels=["kind", "state"],
        )
        for (kind, state), n in sorted(d.ledger.terminal_counts.items()):
            done.add_metric([kind, state], n)
        yield done
        rules = CounterMetricFamily(
            "ishowtts_event_rules",
            "Why events were dropped or removed (state:rule)",
            labels=["state", "rule"],
        )
        for key, n in sorted(d.ledger.rules.items()):
            state, _, rule = key.partition(":")
            rules.add_metric([state, rule], n)
        yield rules
        open_ = GaugeMetricFamily("ishowtts_events_open", "Events received and not yet finished")
        open_.add_metric([], len(d.ledger.open))
        yield open_

    @staticmethod
    def _connectors(d: DaemonLike) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "ishowtts_connector_state",
            "1 for each connector's current state",
            labels=["connector", "platform", "state"],
        )
        counters = CounterMetricFamily(
            "ishowtts_connector_frames",
            "Connector counters (frames, malformed, reconnects, ...)",
            labels=["connector", "counter"],
        )
        for c in d.connectors:
            for s in ConnectorState:
                state.add_metric([c.name, c.platform, s.value], 1.0 if c.state == s else 0.0)
            for key, n in sorted(c.counters.items()):
                counters.add_metric([c.name, str(key)], n)
        yield state
        yield counters

    @staticmethod
    def _engine(d: DaemonLike) -> Iterator[Metric]:
        states = [str(s) for s in WorkerState]
        g = GaugeMetricFamily(
            "ishowtts_engine_state", "1 for the synth worker's current state", labels=["state"]
        )
        current = str(d.worker.state)
        for s in (*states, *([current] if current not in states else [])):
            g.add_metric([s], 1.0 if s == current else 0.0)
        yield g
        w = d.worker
        speaking = GaugeMetricFamily(
            "ishowtts_engine_speaking",
            "1 for the engine that speaks now: the primary (f5) or the fallback (espeak)",
            labels=["role", "engine"],
        )
        engine = getattr(w.engine, "name", "") if w.engine is not None else ""
        for role in ("primary", "fallback"):
            on = w.speaking == role
            speaking.add_metric([role, engine if on else ""], 1.0 if on else 0.0)
        yield speaking
        failovers = CounterMetricFamily(
            "ishowtts_engine_failovers", "Times the fallback engine took over from the primary"
        )
        failovers.add_metric([], int(w.failovers))
        yield failovers
        lost = GaugeMetricFamily(
            "ishowtts_engine_device_lost", "1 once the device failed for good (a restart follows)"
        )
        lost.add_metric([], 1.0 if w.fatal else 0.0)
        yield lost

    @staticmethod
    def _player(d: DaemonLike) -> Iterator[Metric]:
        p = d.player
        queued = GaugeMetricFamily(
            "ishowtts_player_queued_audio_seconds", "Synthesised audio waiting to be played"
        )
        queued.add_metric([], float(p.queued_seconds) if p is not None else 0.0)
        yield queued
        for attr, help_ in (
            ("underruns", "Utterances that ran dry before their last chunk"),
            ("xruns", "Output underflows reported by the audio backend"),
            ("reopens", "Times the output stream was reopened"),
        ):
            c = CounterMetricFamily(f"ishowtts_player_{attr}", help_)
            c.add_metric([], int(getattr(p, attr, 0)) if p is not None else 0)
            yield c


def _gpu_memory() -> Iterator[Metric]:
    """CUDA memory by device, only if torch is already loaded (never import it for this)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return
        allocated = GaugeMetricFamily(
            "ishowtts_gpu_memory_allocated_bytes", "CUDA memory held by tensors", labels=["device"]
        )
        reserved = GaugeMetricFamily(
            "ishowtts_gpu_memory_reserved_bytes",
            "CUDA memory reserved by the caching allocator",
            labels=["device"],
        )
        peak = GaugeMetricFamily(
            "ishowtts_gpu_memory_peak_bytes", "Peak CUDA memory held by tensors", labels=["device"]
        )
        for i in range(torch.cuda.device_count()):
            label = [str(i)]
            allocated.add_metric(label, torch.cuda.memory_allocated(i))
            reserved.add_metric(label, torch.cuda.memory_reserved(i))
            peak.add_metric(label, torch.cuda.max_memory_allocated(i))
    except Exception:  # a scrape must never fail because a GPU query did
        return
    yield allocated
    yield reserved
    yield peak


class Metrics:
    """The daemon's metrics; ``render()`` is the ``GET /metrics`` body."""

    def __init__(self, daemon: DaemonLike) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ttfa = Histogram(
            "ishowtts_time_to_first_audio_seconds",
            "From a chat event's arrival to its first audio sample leaving",
            buckets=TTFA_BUCKETS,
            registry=self.registry,
        )
        self.rtf = Histogram(
            "ishowtts_synth_rtf",
            "Real-time factor of each utterance (synthesis seconds / audio seconds)",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.first_chunk = Histogram(
            "ishowtts_synth_first_chunk_seconds",
            "From taking an utterance off the queue to its first audio chunk",
            buckets=FIRST_CHUNK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DaemonCollector(daemon))

    def observe_ttfa(self, seconds: float) -> None:
        self.ttfa.observe(max(0.0, seconds))

    def observe_synth(self, stats: Any) -> None:
        """A ``SynthStats`` from the worker."""
        if stats.audio_s > 0:
            self.rtf.observe(stats.rtf)
        self.first_chunk.observe(stats.first_chunk_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics"]
