"""The process shell: the command line, the service around the daemon (sd_notify, the
watchdog), the install doctor."""
