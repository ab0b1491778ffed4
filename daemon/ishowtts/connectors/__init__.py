"""Connectors: where chat comes in, and the public face of connector plug-ins.

A connector written outside this repository imports from this module only (the import
contract in ``pyproject.toml`` keeps the repository's own plug-ins to that): ``base`` is the
protocol every connector meets; ``session`` the skeleton network connectors share (reconnects,
backoff, dedupe, malformed frames); the events they hand on, the options base class and the
small tools they share are re-exported here.
"""

from ..backoff import Backoff
from ..confload import Section
from ..events import ChatEvent, ConnectorItem, Kind, Retraction, User
from ..recent import Recent
from . import money
from .answers import AnswerError, read_json
from .base import GROUP, BaseConnector, Connector, ConnectorContext, ConnectorState
from .counters import BoundedCounter
from .session import (
    AuthFailed,
    Finished,
    GiveUp,
    Outcome,
    ReconnectNow,
    SessionConnector,
    SessionEnded,
    SessionOptions,
    Status,
    short,
)
from .websocket import receive, receive_frame, websocket_url

__all__ = [
    "GROUP",
    "AnswerError",
    "AuthFailed",
    "Backoff",
    "BaseConnector",
    "BoundedCounter",
    "ChatEvent",
    "Connector",
    "ConnectorContext",
    "ConnectorItem",
    "ConnectorState",
    "Finished",
    "GiveUp",
    "Kind",
    "Outcome",
    "Recent",
    "ReconnectNow",
    "Retraction",
    "Section",
    "SessionConnector",
    "SessionEnded",
    "SessionOptions",
    "Status",
    "User",
    "money",
    "read_json",
    "receive",
    "receive_frame",
    "short",
    "websocket_url",
]
