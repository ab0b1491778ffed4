"""Bilibili live chat: the ``bilibili`` connector (the web client's path) and the
``bilibili-open`` connector (the official open platform, started with the streamer's 身份码)."""

from .client import BilibiliConnector, BilibiliOptions
from .open_client import BilibiliOpenConnector, BilibiliOpenOptions

__all__ = ["BilibiliConnector", "BilibiliOpenConnector", "BilibiliOpenOptions", "BilibiliOptions"]
