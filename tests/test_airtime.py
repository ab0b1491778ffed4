"""Airtime: acknowledgements combined across viewers, the budget, the speaking rate under a
backlog, brief lines and freshest chat when busy, and the gate turn-taking holds; all from
tables of real-looking events through the real pipeline, queue and ledger."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.config import Config, ConfigError, load_config
from ishowtts.events import ChatEvent, Kind, User, Utterance
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.queue.airtime import Airtime
from ishowtts.queue.ledger import Ledger, Terminal
from ishowtts.queue.scheduler import Scheduler


def ev(kind: Kind, uid: str, name: str, t: float = 0.0, **kw: Any) -> ChatEvent:
    return ChatEvent("bili", "1", kind, User(uid, name), received_mono=t, **kw)


def gift(uid: str, name: str, gift_name: str = "小心心", t: float = 0.0, **kw: Any) -> ChatEvent:
    kw.setdefault("amount", 0.1)
    return ev(Kind.GIFT, uid, name, t, gift_name=gift_name, **kw)


class Room:
    """The daemon's data path without the engine: pipeline → scheduler → airtime → ledger."""

    def __init__(self, **config: Any) -> None:
        self.cfg = Config(**config)
        self.ledger = Ledger()
        self.scheduler = Scheduler(
            self.cfg.queue, lambda u, state, f: self.ledger.close(u.id, state, **f)
        )
        self.pipeline = Pipeline(self.cfg, self.ledger, self.scheduler)
        self.airtime = Airtime(
            self.cfg.airtime, self.cfg.queue, self.scheduler, self.ledger, self.pipeline
        )

    def put(self, *events: ChatEvent) -> None:
        for e in events:
            self.pipeline.ingest(e, now=e.received_mono)

    def say(self, now: float, seconds: float = 0.0) -> Utterance | None:
        """Take the next line at ``now``, play it for ``seconds`` and close it spoken."""
        utt = self.airtime.take(now)
        if utt is not None:
            self.airtime.started(utt, now)
            self.airtime.finished(utt, now + seconds, played=True)
            self.ledger.close(utt.id, Terminal.SPOKEN, text=utt.text)
        return utt


# -- acknowledging together -------------------------------------------------------------------


def test_gifts_waiting_together_are_one_line_that_closes_each_of_them() -> None:
    room = Room()
    gifts = [
        gift("1", "观众A", t=0.0),
        gift("2", "观众B", "辣条", t=0.3),
        gift("3", "观众C", t=0.5, gift_count=3, amount=0.3),
        gift("4", "观众D", "打call", t=0.9, amount=0.5),
        gift("5", "观众E", t=1.2),
        gift("6", "观众F", t=1.4),
    ]
    chat = ev(Kind.DANMAKU, "9", "路人", 1.0, text="主播晚上好")
    sc = ev(Kind.SUPER_CHAT, "8", "老板", 1.1, text="加油", amount=30)
    room.put(*gifts, chat, sc)
    assert room.say(2.0).event.id == sc.id  # super chats first, and alone
    with capture_logs() as logs:
        line = room.say(2.0)
    assert line is not None and line.event.id == gifts[0].id
    assert line.text == "感谢观众A、观众B、观众C等6位送的小心心、辣条、打call"
    closed = {e["id"]: e for e in logs if e["event"] == "spoken"}
    assert set(closed) == {g.id for g in gifts}  # each gift: one terminal line...
    for g in gifts[1:]:  # ...naming the line that said it
        assert closed[g.id]["merged_into"] == line.id and "text" not in closed[g.id]
    assert room.say(2.0).event.id == chat.id and not room.ledger.open


def test_one_gift_waiting_alone_is_thanked_as_before() -> None:
    room = Room()
    room.put(gift("1", "观众A", gift_count=2, amount=0.2))
    assert room.say(0.0).text == "谢谢观众A送的小心心x2"


@pytest.mark.parametrize(
    ("kind", "want"),
    [
        (Kind.FOLLOW, "欢迎v0、v1、v2等4位关注"),
        (Kind.ENTER, "欢迎v0、v1、v2等4位"),
        (Kind.LIKE, "谢谢v0、v1、v2等4位点赞"),
        (Kind.SHARE, "谢谢v0、v1、v2等4位分享直播间"),
    ],
)
def test_welcomes_are_combined_too(kind: Kind, want: str) -> None:
    room = Room()
    room.put(*(ev(kind, str(i), f"v{i}", t=i * 0.1) for i in range(4)))
    assert room.say(1.0).text == want and not room.scheduler


def test_guards_and_super_chats_stay_individual_unless_configured() -> None:
    room = Room(airtime={"busy_backlog_s": 60})  # not busy: the full forms
    room.put(*(ev(Kind.GUARD, str(i), f"舰长{i}", gift_name="舰长", amount=138) for i in range(2)))
    room.put(*(ev(Kind.SUPER_CHAT, str(i), f"老板{i}", text="你好", amount=30) for i in range(2)))
    said = [room.say(0.0).text for _ in range(4)]
    assert said == [
        "老板0的醒目留言：你好",
        "老板1的醒目留言：你好",
        "感谢舰长0开通舰长",
        "感谢舰长1开通舰长",
    ]
    room = Room(airtime={"combine": {"kinds": ["gift", "guard"]}})
    room.put(*(ev(Kind.GUARD, str(i), f"舰长{i}", gift_name="舰长", amount=138) for i in range(2)))
    assert room.say(0.0).text == "感谢舰长0、舰长1开通舰长"


def test_combined_templates_names_and_totals_are_configurable() -> None:
    room = Room(
        airtime={
            "combine": {
                "max_names": 2,
                "separator": ", ",
                "more": " and {others} others",
                "templates": {"gift": "Thanks {names}{more} for {count} gifts worth {amount}"},
            }
        }
    )
    room.put(*(gift(str(i), f"user{i}", t=i, gift_count=2, amount=0.25) for i in range(6)))
    assert room.say(10.0).text == "Thanks user0, user1 and 4 others for 12 gifts worth 1.5"


@pytest.mark.parametrize(
    ("name", "amount"),
    [
        ("长" * 10_000, 1e300),
        ("\x00\x07\x1b[31m\u202e\u200b", math.inf),
        ("\x00\x07\x08\u202e", 0.1),
        ("👨‍👩‍👧" * 500, math.nan),
        ("", 1.0),
    ],
)
def test_hostile_names_and_amounts_cannot_bloat_or_break_a_combined_line(
    name: str, amount: float
) -> None:
    room = Room(airtime={"combine": {"templates": {"gift": "{names}{more}:{count}:{amount}"}}})
    room.put(gift("1", name, amount=amount, gift_count=10**9))
    room.put(*(gift(str(i), name + str(i), t=0.1, amount=amount) for i in range(2, 30)))
    line = room.say(1.0)
    assert line is not None and not room.ledger.open
    names, count, total = line.text.rsplit(":", 2)
    assert len(names) <= 3 * 12 + 2 + len("等29位")  # three names of 12 characters at most
    assert names.endswith("等29位")
    assert not any(ch in names for ch in "\x00\x07\x1b\u202e\u200b")
    assert count == "99999" and total in ("0", "1000000000", "29", "2.9")


def test_while_chat_waits_a_kind_is_thanked_at_most_once_a_gap_so_that_thanks_gather() -> None:
    room = Room(airtime={"combine": {"min_gap_s": 12}})
    room.put(gift("1", "观众A"))
    assert room.say(0.0).text == "谢谢观众A送的小心心"  # the first at once
    room.put(gift("2", "观众B", t=1.0), ev(Kind.DANMAKU, "9", "c", 1.5, text="晚上好"))
    room.put(gift("3", "观众C", t=2.0), ev(Kind.DANMAKU, "8", "d", 2.0, text="来了来了"))
    assert room.say(2.0).text == "晚上好"  # chat is heard between...
    room.put(gift("4", "观众D", t=3.0))
    assert room.say(3.0).text == "来了来了"  # ...while the thanks gather...
    assert room.say(3.5).text == "感谢观众B、观众C、观众D送的小心心"  # ...until nothing else waits
    room.put(gift("5", "观众E", t=4.0), ev(Kind.DANMAKU, "7", "e", 4.0, text="晚安"))
    assert room.say(4.0).text == "晚安"
    assert room.say(4.5).text == "谢谢观众E送的小心心"  # alone: not kept waiting for the gap


# -- the budget ------------------------------------------------------------------------------


def test_a_spent_budget_holds_plain_chat_but_not_paid_thanks() -> None:
    room = Room(airtime={"max_share": 0.5, "window_s": 20})
    room.put(ev(Kind.DANMAKU, "1", "a", 0.0, text="第一句"))
    assert room.say(0.0, seconds=10.0) is not None  # 10 s of the 20 s window: spent
    room.put(ev(Kind.DANMAKU, "2", "b", 10.0, text="第二句"), gift("3", "c", t=10.0))
    assert not room.airtime.may_start(None, 10.0)
    line = room.say(10.0, seconds=2.0)
    assert line is not None and line.event.kind is Kind.GIFT  # paid thanks still go
    assert room.say(12.0) is None  # chat waits while the budget is spent...
    assert room.airtime.status(12.0)["spent"]
    assert room.say(22.5).text == "第二句"  # ...and goes once the window has rolled on


def test_chat_waiting_for_the_budget_expires_rather_than_being_read_late() -> None:
    room = Room(airtime={"max_share": 0.5, "window_s": 60})
    room.put(ev(Kind.DANMAKU, "1", "a", 0.0, text="第一句"))
    room.say(0.0, seconds=30.0)  # half of the minute: spent until it rolls out of the window
    room.put(ev(Kind.DANMAKU, "2", "b", 30.0, text="要不要先吃饭"))
    assert room.say(40.0) is None and room.say(59.0) is None
    with capture_logs() as logs:
        assert room.say(61.0) is None  # the budget is free again, but the line is stale now
    assert [(e["event"], e["rule"]) for e in logs] == [("expired", "ttl")]


# -- under a backlog ---------------------------------------------------------------------------


def test_the_speaking_rate_rises_with_the_backlog_up_to_the_maximum() -> None:
    room = Room(airtime={"max_speed": 1.35, "speed_from_s": 4, "speed_full_s": 20})
    table = [(0.0, 1.0), (4.0, 1.0), (12.0, 1.175), (20.0, 1.35), (300.0, 1.35)]
    assert [room.airtime.speed_for(b) for b, _ in table] == [s for _, s in table]
    room.put(ev(Kind.DANMAKU, "1", "a", 0.0, text="你好"))
    assert room.say(0.0).speed == 1.0  # a line alone is read at the voice's own rate
    texts = [f"第{i}个问题是这个boss到底怎么打才能过" for i in range(10)]  # 18 characters each
    room.put(*(ev(Kind.DANMAKU, str(i), "v", 1.0, text=t) for i, t in enumerate(texts)))
    assert room.say(1.0).speed == 1.35  # 9 × 18 characters ≈ 36 s waiting


def test_busy_reads_the_freshest_chat_briefly_and_drops_stale_chat() -> None:
    room = Room(airtime={"busy_backlog_s": 5, "chat_max_age_s": 8})
    old = [ev(Kind.DANMAKU, str(i), "v", 0.0, text=f"很早以前的第{i}句话") for i in range(3)]
    new = [ev(Kind.DANMAKU, str(i), "v", 9.0, text=f"刚刚发的第{i}句话") for i in range(10, 14)]
    sc = ev(Kind.SUPER_CHAT, "9", "老板", 9.5, text="主播加油", amount=50)
    room.put(*old, *new, sc)
    with capture_logs() as logs:
        first = room.say(10.0)
    assert first.text == "老板：主播加油"  # the short form
    assert {e["id"] for e in logs if e.get("rule") == "superseded"} == {e.id for e in old}
    assert room.say(10.0).event.id == new[-1].id  # the freshest chat first


def test_old_chat_alone_is_still_read_but_not_when_newer_chat_waits() -> None:
    room = Room()
    room.put(ev(Kind.DANMAKU, "1", "a", 0.0, text="还在吗"))
    assert room.say(20.0).text == "还在吗"  # 20 s old, but nothing newer: read
    room.put(ev(Kind.DANMAKU, "1", "a", 21.0, text="第一句"))
    room.put(ev(Kind.DANMAKU, "2", "b", 30.0, text="第二句"))
    with capture_logs() as logs:
        assert room.say(31.0).text == "第二句"
    assert [(e["event"], e.get("rule")) for e in logs] == [
        ("expired", "superseded"),
        ("spoken", None),
    ]


# -- the gate ----------------------------------------------------------------------------------


def test_a_hold_keeps_every_line_from_starting_until_released() -> None:
    async def main() -> None:
        room = Room()
        room.airtime.hold("listen")
        room.put(ev(Kind.SUPER_CHAT, "1", "老板", time.monotonic(), text="你好", amount=30))
        waiting = asyncio.create_task(room.airtime.get())
        await asyncio.sleep(0.05)
        assert not waiting.done() and not room.airtime.may_start()
        room.airtime.hold("operator")
        room.airtime.release("listen")
        await asyncio.sleep(0.05)
        assert not waiting.done()  # another hold is still on
        room.airtime.release("operator")
        assert (await asyncio.wait_for(waiting, 1.0)).text == "老板的醒目留言：你好"

    asyncio.run(main())


def test_get_waits_for_a_line_then_returns_it() -> None:
    async def main() -> None:
        room = Room()
        waiting = asyncio.create_task(room.airtime.get())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        room.put(ev(Kind.DANMAKU, "1", "a", time.monotonic(), text="来了"))
        assert (await asyncio.wait_for(waiting, 1.0)).text == "来了"

    asyncio.run(main())


def test_the_speaking_rate_is_learnt_from_what_was_heard() -> None:
    room = Room()
    for i in range(40):  # 10 characters in 1.5 s at speed 1.2: 0.18 s a character at speed 1
        utt = Utterance(
            ev(Kind.DANMAKU, "1", "a"), "一二三四五六七八九十", "default", 20, 1e9, speed=1.2
        )
        room.airtime.started(utt, i * 2.0)
        room.airtime.finished(utt, i * 2.0 + 1.5, played=True)
    assert room.airtime.seconds_per_char == pytest.approx(0.18, abs=1e-3)


# -- the options -------------------------------------------------------------------------------

BROKEN = [
    ("airtime:\n  max_share: 1.5\n", "airtime.max_share: input should be less than or equal to 1"),
    ("airtime:\n  max_share: 0\n", "airtime.max_share: input should be greater than 0"),
    ("airtime:\n  window_s: 1\n", "airtime.window_s: input should be greater than or equal to 5"),
    ("airtime:\n  max_speed: 3\n", "airtime.max_speed: input should be less than or equal to 2"),
    ("airtime:\n  max_speed: 0.5\n", "airtime.max_speed: input should be greater than or equal"),
    (
        "airtime:\n  speed_from_s: 30\n  speed_full_s: 10\n",
        "airtime: speed_full_s (10) must exceed speed_from_s (30) (config.yaml:2)",
    ),
    ("airtime:\n  exempt: [gifts]\n", "airtime.exempt[0]: expected one of"),
    ("airtime:\n  busy_backlog_s: -1\n", "airtime.busy_backlog_s: input should be greater than 0"),
    (
        "airtime:\n  combine:\n    kinds: [gift, super_chat]\n",
        "airtime.combine.kinds: super_chat cannot be combined: each is its own message "
        "(config.yaml:4)",
    ),
    (
        'airtime:\n  combine:\n    templates:\n      gift: "{user}"\n',
        "airtime.combine.templates.gift: unknown field(s) ['user']",
    ),
    (
        'airtime:\n  combine:\n    templates:\n      danmaku: "{names}"\n',
        "airtime.combine.templates: no combined template for danmaku",
    ),
    ('airtime:\n  combine:\n    more: "{names}"\n', "airtime.combine.more: unknown field(s)"),
    ("airtime:\n  combine:\n    max_names: 0\n", "airtime.combine.max_names: input should be"),
    ("airtime:\n  combine:\n    max_name_chars: 1000\n", "airtime.combine.max_name_chars:"),
    ("airtime:\n  storm:\n    min_senders: 1\n", "airtime.storm.min_senders: input should be"),
    ('airtime:\n  storm:\n    template: "{user}"\n', "airtime.storm.template: unknown field(s)"),
    ("airtime:\n  storm:\n    max_cover: 0\n", "airtime.storm.max_cover: input should be"),
    ("airtime:\n  speed: 2\n", "airtime.speed: unknown key"),
    (
        'speech:\n  short_templates:\n    gift: "{nope}"\n',
        "speech.short_templates.gift: unknown field(s) ['nope']",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN, ids=[e[:50] for _, e in BROKEN])
def test_every_option_is_validated_with_key_and_line(
    tmp_path: Any, text: str, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("engine: {type: tone}\n" + text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert expected in problem and "(config.yaml:" in problem, problem


def test_a_system_line_keeps_the_rate_it_asked_for_and_chat_is_sped_up_from_its_own() -> None:
    room = Room(airtime={"speed_from_s": 0, "speed_full_s": 1, "max_speed": 1.3})
    api = Utterance(ev(Kind.SYSTEM, "s", "api"), "hello", "default", 60, 1e9, speed=0.8)
    fast = Utterance(ev(Kind.DANMAKU, "2", "b"), "快一点", "default", 20, 1e9, speed=1.1)
    for utt in (api, fast):
        room.scheduler.put(utt, 0.0)
    room.put(ev(Kind.DANMAKU, "1", "a", text="这个boss怎么打才能过去啊"))  # 2.6 s waiting
    assert room.say(0.0).speed == 0.8  # the speech API's own speed, though chat waits
    assert room.say(0.0).speed == pytest.approx(1.1 * 1.3)
