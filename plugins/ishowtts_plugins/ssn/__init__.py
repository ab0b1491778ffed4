"""Everything else through Social Stream Ninja: the ``ssn`` connector (``type: ssn``) reads the
chat SSN relays from 120+ sites (TikTok, Kick, Facebook...)."""

from .client import SsnConnector, SsnOptions

__all__ = ["SsnConnector", "SsnOptions"]
