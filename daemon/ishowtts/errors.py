"""What a failure asks of whoever runs the process, and the exit status that tells them.

Every failure that ends a command is one of these kinds, and ``exit_code`` is the one mapping
from a failure to the process's status, used by ``ishowtts`` (shell/cli.py) and the service
(shell/service.py) alike. The systemd units read the same table: 2 and 3 are in
``RestartPreventExitStatus`` (restarting cannot fix them), 75 in ``RestartForceExitStatus``.

    kind            status  what the supervisor should do
    Temporary       1       restart later: the hub, a port or a device may be back by then
    ConfigInvalid   2       nothing: the config (or its files) must be changed
    UsageError      2       nothing: the command line is wrong (as argparse)
    BrokenInstall   3       nothing: the install must be repaired (``ishowtts doctor``)
    DeviceFault     75      restart at once: a fresh process gets the device back
    anything else   1       restart later (a bug: its traceback is logged)
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_USAGE = 2
EXIT_BROKEN_INSTALL = 3
EXIT_RESTART = 75  # EX_TEMPFAIL


class Failure(Exception):
    """A failure phrased for the operator: ``lines()`` says what and how to fix it, without a
    traceback; ``label`` begins each line on a terminal."""

    exit_code: ClassVar[int] = EXIT_FAILED
    label: ClassVar[str] = "error"

    def lines(self) -> list[str]:
        return str(self).splitlines() or [type(self).__name__]


class Temporary(Failure):
    """May work on a later start: a download that failed, a port in use, a device not there."""


class ConfigInvalid(Failure):
    """The configuration, or a file it names, is wrong: no restart can fix it."""

    exit_code = EXIT_CONFIG
    label = "config error"


class UsageError(Failure):
    """The command line asks for something that cannot be done."""

    exit_code = EXIT_USAGE


class BrokenInstall(Failure):
    """A part the config needs is installed but does not import (a library missing or of the
    wrong version): not the config's fault, and restarting does not help."""

    exit_code = EXIT_BROKEN_INSTALL
    label = "broken install"


class DeviceFault(Failure):
    """The device failed in a way this process cannot recover from: start a fresh one."""

    exit_code = EXIT_RESTART
    label = "device fault"


def exit_code(exc: BaseException) -> int:
    """The process's exit status for ``exc``."""
    return exc.exit_code if isinstance(exc, Failure) else EXIT_FAILED
