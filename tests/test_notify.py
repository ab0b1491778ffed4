"""sd_notify messages as systemd would receive them: read from a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ishowtts.shell.notify import Notifier, feed_watchdog, socket_address, watchdog_interval


def parse(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def test_ready_status_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(path)
    assert n.enabled
    assert n.status("loading engine f5")
    assert parse(sock.recv(4096)) == {"STATUS": "loading engine f5"}
    assert n.ready("ready: 2 voices")
    assert parse(sock.recv(4096)) == {"READY": "1", "STATUS": "ready: 2 voices"}
    assert n.watchdog()
    assert parse(sock.recv(4096)) == {"WATCHDOG": "1"}
    assert n.reloading()
    msg = parse(sock.recv(4096))
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    assert n.stopping("draining")
    assert parse(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "draining"}
    n.close()


def test_a_newline_in_a_value_cannot_forge_another_key(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    Notifier(path).status("line one\nREADY=1")
    assert parse(sock.recv(4096)) == {"STATUS": "line one READY=1"}


def test_abstract_namespace_socket() -> None:
    name = f"ishowtts-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        assert socket_address("@" + name) == b"\0" + name.encode()
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert parse(sock.recv(4096)) == {"READY": "1"}
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.stopping()


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).ready()


def test_watchdog_interval_is_half_the_timeout_and_checks_the_pid() -> None:
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


async def test_watchdog_is_fed_from_the_loop_and_withheld_when_unhealthy(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    healthy = True
    task = asyncio.create_task(feed_watchdog(Notifier(path), 0.01, lambda: healthy))
    try:
        for _ in range(3):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            assert parse(data) == {"WATCHDOG": "1"}
        healthy = False
        await asyncio.sleep(0.05)  # pings already in flight may still arrive: drain them
        while True:
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
    finally:
        task.cancel()


async def test_ready_is_retried_until_a_full_socket_queue_takes_it(tmp_path: Path) -> None:
    """systemd read its socket late (seen: 4 s) and the queue was full: READY=1 sent once was
    lost for good and the unit never became active. The service delivers it instead."""
    from ishowtts.app.daemon import Daemon
    from ishowtts.config import load_config
    from ishowtts.shell.service import _announce

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    notifier = Notifier(str(path))
    sent = 0
    while notifier.status(f"warming bucket {sent}"):
        sent += 1
        assert sent < 100_000, "the socket never filled"
    assert notifier.last_errno is not None

    (tmp_path / "config.yaml").write_text("engine: {type: tone}\nconnectors: []\n")
    daemon = Daemon(load_config(tmp_path / "config.yaml"))
    announce = asyncio.create_task(_announce(daemon, notifier))
    daemon.ready.set()
    await asyncio.sleep(0.05)  # READY tried against the full queue (and failed) meanwhile
    got: list[dict[str, str]] = []

    async def drain_until_ready() -> None:
        while not any("READY" in m for m in got):
            try:
                got.append(parse(sock.recv(4096)))
            except BlockingIOError:
                await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(drain_until_ready(), 10)
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(announce, 10)
        sock.close()
        notifier.close()
    assert sum("STATUS" in m and "READY" not in m for m in got) == sent
    assert got[-1]["READY"] == "1"


def test_deliver_gives_up_on_a_socket_that_is_gone(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "gone.sock"))
    assert asyncio.run(n.deliver(READY=1)) is False
