"""YouTube Live chat through the official Data API: the ``youtube`` connector."""

from .client import YoutubeConnector, YoutubeOptions

__all__ = ["YoutubeConnector", "YoutubeOptions"]
