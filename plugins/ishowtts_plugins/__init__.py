"""Built-in plug-ins of ishowtts (connectors), imported as ``ishowtts_plugins``."""
