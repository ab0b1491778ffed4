"""The app: the daemon that wires the data path together, its start-up, reload, shutdown,
saved paid lines and health checks."""
