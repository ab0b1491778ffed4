"""Fixtures shared by all tests. Audio tests (``@pytest.mark.audio``) take ``pulse``: a
PulseAudio server of this test session's own with the ``obs_tts`` null sink (whatever other
server runs on the machine is never used), stopped at the end of the session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.audio_utils import PulseServer, ensure_pulseaudio


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    if shutil.which("pulseaudio") is None and not os.getenv("CI"):
        pytest.skip("PulseAudio is not installed (apt-get install pulseaudio pulseaudio-utils)")
    server = ensure_pulseaudio()  # installed but not working: an error, not a skip
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test (and every daemon it starts) saves paid messages in a folder of its own: one
    test's SIGTERM must not queue its super chats in the next test's daemon."""
    # XDG_STATE_HOME, not STATE_DIRECTORY: tests that place the mute list (which follows
    # STATE_DIRECTORY) next to their config must keep doing so.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
