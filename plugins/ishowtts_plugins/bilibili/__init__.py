"""Bilibili live chat: the ``bilibili`` connector (``type: bilibili`` in ``connectors:``)."""

from .client import BilibiliConnector, BilibiliOptions

__all__ = ["BilibiliConnector", "BilibiliOptions"]
