"""cancel_and_wait: the task ends, its own error is raised, the caller's cancellation is kept."""

from __future__ import annotations

import asyncio

import pytest

from ishowtts.tasks import cancel_and_wait


async def test_the_task_is_cancelled_and_awaited() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_an_error_the_task_ends_with_is_raised() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_propagates() -> None:
    stopping, release = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopping.set()
            await release.wait()

    reached: list[str] = []

    async def owner() -> None:
        inner = asyncio.create_task(slow_to_stop())
        await asyncio.sleep(0)
        await cancel_and_wait(inner)
        reached.append("after")  # only if the owner's cancellation was lost

    task = asyncio.create_task(owner())
    await stopping.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert reached == []


async def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    """As a task does when ``asyncio.wait_for`` (Python < 3.12) returns a result that came with
    the cancellation: it swallows the first one and carries on."""
    swallowed: list[int] = []

    async def loses_one() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(1)

    task = asyncio.create_task(loses_one())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, again_s=0.05), 5)
    assert task.cancelled() and swallowed == [1]
