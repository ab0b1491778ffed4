"""Chat storms: the same text from many viewers becomes one line ("好多人在刷666") that closes
each of them, instead of N silent duplicates; few repeats stay duplicates."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from ishowtts.events import ChatEvent, Kind, User
from ishowtts.queue.ledger import Terminal
from tests.test_airtime import Room as AirtimeRoom

SPELLINGS = ["666", "6666", "６６６６６６", "666!!", "666666", "6666"]


def new_room(**config: Any) -> AirtimeRoom:
    """Texts as written: the starter dictionary (666 → 六六六) left out."""
    return AirtimeRoom(dictionary={"starter": False}, **config)


def chat(uid: str, text: str, t: float, **kw: Any) -> ChatEvent:
    return ChatEvent("bili", "1", Kind.DANMAKU, User(uid, f"v{uid}"), text, received_mono=t, **kw)


def test_a_storm_waiting_becomes_one_line_that_closes_every_sender() -> None:
    room = new_room()
    storm = [chat(str(i), text, 0.2 * i) for i, text in enumerate(SPELLINGS)]
    room.put(chat("99", "主播今天唱得好好听", 0.1), *storm)
    assert len(room.scheduler) == 2  # the first 666 and the other line
    line = room.scheduler.peek(storm[0].id)
    assert line is not None and line.text == "好多人在刷666"
    assert line.deadline == storm[-1].received_mono + 30  # fresh while the storm goes on
    with capture_logs() as logs:
        while room.say(2.0) is not None:
            pass
    spoken = {e["id"]: e for e in logs if e["event"] == "spoken"}
    assert len(spoken) == 7 and set(spoken) >= {e.id for e in storm}
    for e in storm[1:]:
        assert spoken[e.id]["merged_into"] == storm[0].id
    assert not room.ledger.open


def test_two_viewers_are_not_a_storm_and_a_repeat_after_the_reading_is_a_duplicate() -> None:
    room = new_room()
    room.put(chat("1", "awsl", 0.0))
    assert room.say(0.5).text == "awsl"
    with capture_logs() as logs:
        room.put(chat("2", "AWSL", 1.0), chat("3", "awsl", 1.5))
    # Three viewers now: the third repeat starts a storm line, the second was a duplicate.
    assert [(e["event"], e.get("rule")) for e in logs if e["event"] != "received"] == [
        ("dropped", "duplicate")
    ]
    assert [u.text for u in room.scheduler.matching(lambda _u: True)] == ["好多人在刷awsl"]
    room.put(chat("4", "awsl", 2.0), chat("4", "awsl", 2.5))  # more fold into it
    line = room.say(3.0)
    assert line is not None and line.text == "好多人在刷awsl"
    assert not room.ledger.open
    with capture_logs() as logs:  # one storm line a window: later repeats are duplicates
        room.put(chat("5", "awsl", 4.0), chat("6", "awsl", 5.0))
    assert [e.get("rule") for e in logs if e["event"] == "dropped"] == ["duplicate", "duplicate"]
    room.put(chat("7", "awsl", 31.0))  # a new window: read again as a line of its own
    assert room.say(31.0).text == "awsl"


def test_the_storm_template_threshold_and_cover_bound_are_configured() -> None:
    room = new_room(
        airtime={"storm": {"min_senders": 4, "template": "{count} people: {text}", "max_cover": 2}}
    )
    room.put(*(chat(str(i), "哈哈哈哈哈", 0.1 * i) for i in range(3)))
    assert room.scheduler.peek(next(iter(room.ledger.open))).text == "哈哈哈"  # 3 < 4
    with capture_logs() as logs:
        room.put(*(chat(str(i), "哈哈哈", 1 + 0.1 * i) for i in range(3, 6)))
    assert [u.text for u in room.scheduler.matching(lambda _u: True)] == ["6 people: 哈哈哈"]
    # The line answers for two repeats at most; past that a repeat is a plain duplicate.
    assert [e.get("rule") for e in logs if e["event"] == "dropped"] == ["duplicate"] * 3


def test_storms_off_drop_repeats_as_before() -> None:
    room = new_room(airtime={"storm": {"enabled": False}})
    room.put(*(chat(str(i), "草", 0.1 * i) for i in range(6)))
    assert room.ledger.rules == {"dropped:duplicate": 5}


def test_a_storm_line_that_expires_closes_everyone_it_covers_as_expired() -> None:
    room = new_room()
    room.put(*(chat(str(i), "草草草", 0.1 * i) for i in range(4)))
    with capture_logs() as logs:
        room.scheduler.expire(100.0)
    assert [e["event"] for e in logs] == ["expired"] * 4 and not room.ledger.open
    assert room.ledger.terminal_counts[("danmaku", Terminal.EXPIRED.value)] == 4
