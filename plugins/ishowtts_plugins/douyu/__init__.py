"""Douyu (斗鱼) chat: the ``douyu`` connector (``type: douyu`` in ``connectors:``)."""

from .client import DouyuConnector, DouyuOptions

__all__ = ["DouyuConnector", "DouyuOptions"]
