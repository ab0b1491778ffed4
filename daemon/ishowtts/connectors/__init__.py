"""Connectors: where chat comes in. ``base`` is the protocol every connector meets; ``session``
the skeleton network connectors share (reconnects, backoff, dedupe, malformed frames)."""

from ..backoff import Backoff
from .base import GROUP, BaseConnector, Connector, ConnectorContext, ConnectorState
from .counters import BoundedCounter
from .session import (
    AuthFailed,
    GiveUp,
    Outcome,
    ReconnectNow,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    Status,
)

__all__ = [
    "GROUP",
    "AuthFailed",
    "Backoff",
    "BaseConnector",
    "BoundedCounter",
    "Connector",
    "ConnectorContext",
    "ConnectorState",
    "GiveUp",
    "Outcome",
    "ReconnectNow",
    "SessionConnector",
    "SessionEnded",
    "SessionOptions",
    "Status",
]
