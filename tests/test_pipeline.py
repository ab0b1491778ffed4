"""The pipeline: each step's outcome reaches the ledger and the queue."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.config import Config
from ishowtts.events import ChatEvent, Kind, Retraction, User
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.queue.ledger import Ledger
from ishowtts.queue.scheduler import Scheduler

ALICE = User("42", "alice")


def ev(kind: Kind = Kind.DANMAKU, text: str = "", user: User = ALICE, **kw: Any) -> ChatEvent:
    kw.setdefault("received_mono", 0.0)
    return ChatEvent(platform="bili", room="1", kind=kind, user=user, text=text, **kw)


def build(**config: Any) -> tuple[Pipeline, Ledger, Scheduler]:
    cfg = Config(**config)
    ledger = Ledger()
    sched = Scheduler(cfg.queue, lambda u, state, f: ledger.close(u.id, state, **f))
    return Pipeline(cfg, ledger, sched), ledger, sched


def test_danmaku_becomes_utterance() -> None:
    p, ledger, s = build()
    u = p.ingest(ev(text="主播好厉害哈哈哈哈哈哈", received_mono=100.0), now=100.0)
    assert u is not None
    assert u.text == "主播好厉害哈哈哈"
    assert (u.voice, u.priority, u.deadline) == ("default", 20, 130.0)
    assert len(s) == 1 and u.id in ledger.open


@pytest.mark.parametrize(
    ("config", "event", "rule"),
    [
        ({}, ev(text="😂😂"), "empty"),
        ({}, ev(text="   "), "empty"),
        ({}, ev(Kind.SUPER_CHAT, text="[doge]", amount=30), None),
        ({"normalize": {"stickers": "drop"}}, ev(Kind.SUPER_CHAT, text="[doge]"), "empty"),
        ({"filters": {"block_keywords": ["广告"]}}, ev(text="看广告"), "blocked_keyword"),
        ({"filters": {"users": {"block": ["alice"]}}}, ev(text="hi"), "blocked_user"),
        ({"filters": {"kinds": ["danmaku"]}}, ev(Kind.ENTER), "kind_disabled"),
        ({}, ev(text="???"), "punctuation_only"),
        ({"gifts": {"min_amount": 1}}, ev(Kind.GIFT, gift_name="辣条", amount=0.1), "gift_value"),
        ({}, ev(Kind.ENTER), None),
        ({}, ev(Kind.FOLLOW), None),
    ],
)
def test_drops(config: dict[str, Any], event: ChatEvent, rule: str | None) -> None:
    p, ledger, _ = build(**config)
    with capture_logs() as logs:
        u = p.ingest(event, now=0.0)
    if rule is None:
        assert u is not None
    else:
        assert u is None and not ledger.open
        assert logs[-1]["event"] == "dropped" and logs[-1]["rule"] == rule
        assert logs[-1]["id"] == event.id


def test_duplicates() -> None:
    p, ledger, s = build(airtime={"storm": {"enabled": False}})
    assert p.ingest(ev(text="666", raw_id="a"), now=0.0) is not None
    assert p.ingest(ev(text="６６６６６６！", user=User("7", "bob")), now=1.0) is None
    assert p.ingest(ev(text="different", raw_id="a"), now=2.0) is None
    assert ledger.rules == {"dropped:duplicate": 1, "dropped:duplicate_id": 1}
    assert len(s) == 1


def test_a_repeat_is_said_by_the_line_waiting_for_its_text() -> None:
    """With storms on (the default) a near-same text from another viewer is not dropped: the
    line still waiting for it says it too, and it closes with that line."""
    p, ledger, s = build(dictionary={"starter": False})
    first = p.ingest(ev(text="666", raw_id="a"), now=0.0)
    repeat = ev(text="６６６６６６！", user=User("7", "bob"))
    assert first is not None and p.ingest(repeat, now=1.0) is None
    assert p.ingest(ev(text="different", raw_id="a"), now=2.0) is None
    assert ledger.rules == {"dropped:duplicate_id": 1}
    assert len(s) == 1 and ledger.covered == {first.id: [repeat.id]}
    assert s.peek(first.id) is not None and s.peek(first.id).text == "666"  # two viewers: no storm


def test_templates_and_routing() -> None:
    p, _, _ = build(
        voices={"default": {}, "boss": {}, "paid": {}},
        routing={"users": {"bob": "boss"}, "kinds": {"super_chat": "paid"}},
        speech={"templates": {"super_chat": "{user}花了{amount}元说：{text}"}},
    )
    sc = p.ingest(ev(Kind.SUPER_CHAT, text="加油！", amount=30.0), now=0.0)
    assert sc is not None and sc.text == "alice花了30元说：加油!" and sc.voice == "paid"
    assert sc.priority == 50
    bob = p.ingest(ev(text="hello", user=User("7", "bob")), now=0.0)
    assert bob is not None and bob.voice == "boss"
    guard = p.ingest(ev(Kind.GUARD, gift_name="舰长", user=User("9", "ｃａｒｏｌ😂")), now=0.0)
    assert guard is not None and guard.text == "感谢carol开通舰长"
    enter = p.ingest(ev(Kind.ENTER, user=User("8", "dave")), now=0.0)
    assert enter is not None and enter.text == "欢迎dave"


def test_gift_merge() -> None:
    p, _, s = build()
    first = p.ingest(ev(Kind.GIFT, gift_name="小心心", amount=0.5, received_mono=0.0), now=0.0)
    assert first is not None and first.text == "谢谢alice送的小心心"
    p.ingest(ev(Kind.DANMAKU, text="插一句"), now=1.0)
    second = ev(Kind.GIFT, gift_name="小心心", gift_count=2, amount=1.0, received_mono=2.0)
    with capture_logs() as logs:
        assert p.ingest(second, now=2.0) is None
    assert logs[-1] == {
        "event": "dropped",
        "id": second.id,
        "kind": "gift",
        "user": "alice",
        "rule": "merged",
        "merged_into": first.id,
        "log_level": "info",
    }
    queued = s.pop(0.0)
    assert queued is not None and queued.id == first.id  # position kept: still first
    assert queued.text == "谢谢alice送的小心心x3"
    assert (queued.event.gift_count, queued.event.amount) == (3, 1.5)


def test_gift_not_merged() -> None:
    p, _, s = build(gifts={"merge_window_s": 5})
    p.ingest(ev(Kind.GIFT, gift_name="小心心", received_mono=0.0), now=0.0)
    # another gift, another user, or outside the window: separate lines
    p.ingest(ev(Kind.GIFT, gift_name="辣条", received_mono=1.0), now=1.0)
    p.ingest(ev(Kind.GIFT, gift_name="小心心", user=User("7", "bob"), received_mono=1.0), now=1.0)
    p.ingest(ev(Kind.GIFT, gift_name="小心心", received_mono=6.0), now=6.0)
    assert len(s) == 4
    # once the first was taken for speaking, a new one starts a new line
    p2, _, s2 = build()
    p2.ingest(ev(Kind.GIFT, gift_name="小心心"), now=0.0)
    assert s2.pop(0.0) is not None
    assert p2.ingest(ev(Kind.GIFT, gift_name="小心心"), now=1.0) is not None


def test_retract() -> None:
    p, ledger, s = build()
    p.ingest(ev(text="recall me", raw_id="r1"), now=0.0)
    p.ingest(ev(text="bob one", user=User("7", "bob")), now=0.0)
    p.ingest(ev(text="bob two", user=User("7", "bob")), now=0.0)
    p.ingest(ev(text="stays"), now=0.0)
    assert p.retract(Retraction(platform="bili", raw_ids=("r1",))) == 1
    assert p.retract(Retraction(platform="bili", user_id="7", reason="banned")) == 2
    assert p.retract(Retraction(platform="bili")) == 0
    assert ledger.rules == {"removed:recalled": 1, "removed:banned": 2}
    assert p.retract(Retraction(platform="bili", everything=True, reason="clear")) == 1
    assert len(s) == 0 and not ledger.open


def test_retraction_with_ids_and_a_user_takes_only_the_ids() -> None:
    """A recall naming message ids and their author (a replayed recall line) takes those
    messages back, not everything the user said: the same rule as for what is playing."""
    p, _, s = build()
    p.ingest(ev(text="recall me", raw_id="r1"), now=0.0)
    p.ingest(ev(text="keep me", raw_id="r2"), now=0.0)
    r = Retraction(platform="bili", raw_ids=("r1",), user_id=ALICE.id)
    assert p.retract(r) == 1
    assert [u.text for u in (s.pop(0.0), s.pop(0.0)) if u] == ["keep me"]


def test_gift_repeats_keep_merging_and_reload_changes_the_window() -> None:
    p, ledger, s = build(gifts={"merge_window_s": 5})
    first = p.ingest(ev(Kind.GIFT, gift_name="小心心", received_mono=0.0), now=0.0)
    for t in (1.0, 2.0, 3.0):
        assert p.ingest(ev(Kind.GIFT, gift_name="小心心", received_mono=t), now=t) is None
    assert ledger.rules["dropped:merged"] == 3
    p.reconfigure(Config(gifts={"merge_window_s": 0}), now=4.0)  # merging off
    assert p.ingest(ev(Kind.GIFT, gift_name="小心心", received_mono=4.0), now=4.0) is not None
    queued = s.pop(0.0)
    assert first is not None and queued is not None and queued.id == first.id
    assert queued.text.endswith("x4")


def test_reconfigure_keeps_queue() -> None:
    p, _, s = build()
    p.ingest(ev(text="queued"), now=0.0)
    p.reconfigure(Config(filters={"block_keywords": ["bad"]}), now=0.0)
    assert len(s) == 1
    assert p.ingest(ev(text="bad words"), now=0.0) is None
    # dedupe memory survives the reload
    assert p.ingest(ev(text="queued"), now=1.0) is None


def test_unexpected_error_fails_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    p, ledger, s = build()

    def boom(text: str) -> str:
        raise RuntimeError("bad day")

    monkeypatch.setattr(p, "normalizer", boom)
    event = ev(text="hi")
    with capture_logs() as logs:
        assert p.ingest(event, now=0.0) is None
    names = [entry["event"] for entry in logs]
    assert names == ["received", "pipeline_error", "failed"]
    assert logs[-1]["error"] == "RuntimeError: bad day"
    assert not ledger.open and len(s) == 0


def test_gift_evicted_then_repeated_starts_a_new_line() -> None:
    p, ledger, _ = build(queue={"max_items": 1})
    gift = p.ingest(ev(Kind.GIFT, gift_name="小心心"), now=0.0)
    assert gift is not None
    # An unpaid line of a higher class evicts the gift (a paid one would not: it has its own room).
    p.ingest(ev(Kind.SYSTEM, text="顶"), now=0.0)
    assert ledger.rules["evicted:queue_full"] == 1
    again = p.ingest(ev(Kind.GIFT, gift_name="小心心"), now=1.0)  # nothing to merge into
    assert again is None and ledger.rules["evicted:queue_full"] == 2  # the lowest class goes
    assert "dropped:merged" not in ledger.rules


def test_a_user_without_a_name_is_read_as_the_neutral_word() -> None:
    # Bilibili without a login masks names; the connector leaves them empty.
    p, _, _ = build()
    gift = p.ingest(ev(Kind.GIFT, gift_name="小花花", user=User("0", "")), now=0.0)
    assert gift is not None and gift.text == "谢谢这位观众送的小花花"
    p, _, _ = build(speech={"anonymous": "朋友"}, voices={"default": {}, "u": {}})
    like = p.ingest(ev(Kind.LIKE, user=User("o1", "", alt_ids=("U1",))), now=0.0)
    assert like is not None and like.text == "谢谢朋友点赞"
    p, _, _ = build(voices={"default": {}, "u": {}}, routing={"users": {"U1": "u"}})
    routed = p.ingest(ev(text="hi", user=User("o1", "x", alt_ids=("U1",))), now=0.0)
    assert routed is not None and routed.voice == "u"


@pytest.mark.parametrize(
    "name",
    [
        "bad\u200bword",
        "ｂａｄｗｏｒｄ",
        "ⓑⓐⓓⓦⓞⓡⓓ",
        "𝐛𝐚𝐝𝐰𝐨𝐫𝐝",
        "bad\u00adword",
        "bad\u200eword",
        "bad\u2060word",
        "BAD word",
        "b\u0336a\u0336d\u0336word",
        "ＢＡＤ\u200bｗｏｒｄ",
    ],
)
@pytest.mark.parametrize("kind", [Kind.ENTER, Kind.GIFT, Kind.FOLLOW])
def test_a_blocked_word_is_never_read_out_of_a_user_name(name: str, kind: Kind) -> None:
    """The filters judge the name as it would be read aloud, not as it arrived: invisible,
    full-width, circled and mathematical letters do not smuggle a blocked word past them."""
    p, _, sched = build(filters={"block_keywords": ["badword"]})
    event = ev(kind, user=User("9", name), gift_name="小心心", amount=1.0)
    with capture_logs() as logs:
        assert p.ingest(event, now=0.0) is None
    assert logs[-1]["event"] == "dropped" and logs[-1]["rule"] == "blocked_keyword"
    assert len(sched) == 0


def test_the_name_shown_is_the_name_heard() -> None:
    """The utterance carries the cleaned name it reads, for the overlay; gift names and text
    are judged in the same folded form."""
    p, _, _ = build(filters={"block_keywords": ["ｓｐａｍ", "火箭炮"]})
    utt = p.ingest(ev(Kind.ENTER, user=User("9", "ａｌ\u200bｉｃｅ")), now=0.0)
    assert utt is not None and utt.speaker == "alice" and "alice" in utt.text
    assert p.ingest(ev(Kind.GIFT, gift_name="超级火箭炮", amount=1.0), now=0.0) is None
    assert p.ingest(ev(text="buy s\u200bpam"), now=0.0) is None
    nameless = p.ingest(ev(Kind.ENTER, user=User("10", "")), now=0.0)
    assert nameless is not None and nameless.speaker == "这位观众"
