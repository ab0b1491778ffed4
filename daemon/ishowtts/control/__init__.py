"""Control: the HTTP API, the web console and overlay, the live feed, metrics and status."""
