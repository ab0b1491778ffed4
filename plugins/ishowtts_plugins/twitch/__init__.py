"""Twitch chat: the ``twitch`` connector (``type: twitch`` in ``connectors:``)."""

from .client import TwitchConnector, TwitchOptions

__all__ = ["TwitchConnector", "TwitchOptions"]
