"""The pronunciation dictionary: real chat lines through the starter, entries of your own, RE2's
linear time on a catastrophic pattern, 100,000 entries, scopes, the file's hot reload and bad
files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ishowtts.config import Config
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.pipeline.dictionary_file import Pronunciation, read_entries, starter
from ishowtts.pipeline.ingest import Pipeline
from ishowtts.pipeline.pronounce import (
    MAX_ENTRIES,
    Dictionary,
    DictionaryError,
    Entry,
    parse_entries,
)
from ishowtts.queue.ledger import Ledger
from ishowtts.queue.scheduler import Scheduler


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("主播yyds", "主播永远的神"),
        ("YYDS!!!", "永远的神!!!"),
        ("awsl太可爱了", "啊我死了太可爱了"),
        ("xswl 这也行", "笑死我了 这也行"),
        ("主播nb", "主播牛批"),
        ("nba今晚打得好", "nba今晚打得好"),  # not inside a longer word
        ("2333", "哈哈哈"),
        ("哈哈2333333", "哈哈哈哈哈"),
        ("12333号", "12333号"),  # a number, not laughter
        ("666", "六六六"),
        ("主播666啊", "主播六六六啊"),
        ("1666年", "1666年"),
        ("555被骗了", "呜呜呜被骗了"),
        ("那我先88了", "那我先拜拜了"),
        ("886", "拜拜了"),
        ("hhhh好好笑", "哈哈哈好好笑"),
        ("emmm这个嘛", "嗯这个嘛"),
        ("u1s1 确实", "有一说一 确实"),
        ("doge", "狗头"),
        ("dogecoin涨了", "dogecoin涨了"),
        ("这波tql", "这波太强了"),
        ("hello world", "hello world"),
    ],
)
def test_starter_on_real_chat_lines(line: str, said: str) -> None:
    assert Dictionary(starter()).apply(line) == said


def test_each_starter_entry_says_something_of_its_own() -> None:
    entries = starter()
    assert len(entries) >= 25 and len({e.term for e in entries}) == len(entries)
    assert all(e.say and e.say != e.term for e in entries)


def test_plain_longest_match_and_regex_groups() -> None:
    d = Dictionary(
        parse_entries(
            [
                {"term": "up", "say": "阿婆"},
                {"term": "up主", "say": "阿婆主"},
                {"term": r"(\d+)w粉", "regex": True, "say": r"\1万粉"},
                {"term": r"(?P<n>\d+)k", "regex": True, "say": r"\g<n>千"},
            ]
        )
    )
    assert d.apply("恭喜up主10w粉，up加油") == "恭喜阿婆主10万粉，阿婆加油"
    assert d.apply("3k") == "3千"


def test_scopes_by_voice_and_language() -> None:
    d = Dictionary(
        parse_entries(
            [
                {"term": "gg", "say": "寄了", "languages": ["zh"]},
                {"term": "gg", "say": "good game", "languages": ["en"]},
                {"term": "老板", "say": "老板大气", "voices": ["streamer"]},
            ]
        )
    )
    assert d.apply("gg", language="zh") == "寄了" and d.apply("gg", language="en") == "good game"
    assert d.apply("gg", language="ja") == "gg"
    assert (
        d.apply("谢谢老板", "streamer") == "谢谢老板大气" and d.apply("谢谢老板", "b") == "谢谢老板"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([{"term": "(a+)+$", "regex": True, "say": "x"}], None),  # catastrophic elsewhere; fine in RE2
        ([{"term": r"(a)\1", "regex": True, "say": "x"}], "entry 1: '(a)\\\\1' is not a regular expression RE2 runs: invalid escape sequence"),
        ([{"term": "(?<=a)b", "regex": True, "say": "x"}], "is not a regular expression RE2 runs"),
        ([{"term": "a", "say": "x"}, {"term": "", "say": "x"}], "entry 2: term must be text"),
        ([{"term": "a", "say": "x" * 500}], "say must be text of at most 200"),
        ([{"term": "a", "say": "b", "colour": "red"}], "unknown key(s) ['colour']"),
        ([{"term": "(x)", "regex": True, "say": r"\2"}], "say refers to a group '2'"),
        ({"yyds": "永远的神"}, "a dictionary is a list of entries"),
        # Loaded, it made every later save from the console fail (UnicodeEncodeError, HTTP 500).
        ([{"term": "a", "say": "b"}, {"term": "a\ud800", "say": "x"}], "entry 2: holds a lone surrogate"),
        ([{"term": "a", "say": "b", "voices": ["\udfff"]}], "entry 1: holds a lone surrogate"),
        ([{"term": "a", "say": "b"}] * (MAX_ENTRIES + 1), "100001 entries; at most 100000"),
        ([{"term": f"t{i}", "say": "x", "regex": True} for i in range(300)], "more than 256"),
    ],
)  # fmt: skip
def test_bad_entries_are_named(raw: Any, problem: str | None) -> None:
    if problem is None:
        parse_entries(raw)
        return
    with pytest.raises(DictionaryError) as info:
        parse_entries(raw)
    assert problem in str(info.value)


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    # (a+)+$ on "aaaa…b" takes exponential time in a backtracking engine (re, regex).
    d = Dictionary(parse_entries([{"term": "(a+)+$", "regex": True, "say": "x"}]))
    line = "a" * 5000 + "b"
    started = time.perf_counter()
    assert d.apply(line) == line
    assert time.perf_counter() - started < 1.0  # backtracking would not finish at all


def test_a_hundred_thousand_entries(tmp_path: Path) -> None:
    rows = [{"term": f"词{i:05d}", "say": f"读{i}"} for i in range(MAX_ENTRIES)]
    path = tmp_path / "dictionary.json"
    path.write_text(json.dumps(rows, ensure_ascii=False))
    p = Pronunciation(path, use_starter=False)
    assert len(p) == MAX_ENTRIES and p.error is None
    assert p.apply("这是词04242和词99999。") == "这是读4242和读99999。"


def test_output_growth_is_bounded() -> None:
    d = Dictionary(parse_entries([{"term": "a", "say": "啊" * 200}]))
    assert len(d.apply("a" * 300)) <= 4 * 300 + 200


def test_the_file_is_hot_reloaded_and_a_bad_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "dictionary.json"
    path.write_text('[{"term": "主播", "say": "老大"}]')
    p = Pronunciation(path, use_starter=True)
    assert p.apply("主播yyds") == "老大永远的神"
    path.write_text('[{"term": "主播", "say": "大哥"}, {"term": "yyds", "say": "歪歪滴艾斯"}]')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    p.poll(now=time.monotonic() + 5)
    assert p.apply("主播yyds") == "大哥歪歪滴艾斯"  # yours win over the starter
    path.write_text(json.dumps([{"term": "(a)\\1", "regex": True, "say": "x"}]))
    with capture_logs() as logs:
        p.poll(now=time.monotonic() + 10, force=True)
    assert logs[0]["event"] == "dictionary_invalid" and "entry 1" in logs[0]["error"]
    assert p.error is not None and p.apply("主播") == "大哥"  # the last good one stays


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'[{"term": "a"', "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b'[{"term": 1, "say": "x"}]', "entry 1: term must be text"),
        (b'{"entries": []}', "a dictionary is a list"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "dictionary.json"
    path.write_bytes(content)
    with pytest.raises(DictionaryError, match=problem):
        read_entries(path)
    p = Pronunciation(path, use_starter=True)
    assert p.error is not None and problem in p.error and p.apply("yyds") == "永远的神"


def test_save_writes_checks_and_applies(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dictionary.json"
    p = Pronunciation(path, use_starter=False)
    assert p.save([{"term": "主播", "say": "老大", "languages": ["zh"]}]) == 1
    assert read_entries(path) == [Entry("主播", "老大", languages=("zh",))]
    with pytest.raises(DictionaryError):
        p.save([{"term": "(a)\\1", "regex": True, "say": "x"}])
    assert read_entries(path)[0].say == "老大"  # a refused edit wrote nothing


def test_a_fifo_is_refused_without_hanging_the_start(tmp_path: Path) -> None:
    """A FIFO at the file's path blocked the daemon's start (and the loop's poll) forever."""
    path = tmp_path / "dictionary.json"
    os.mkfifo(path)
    made: list[Pronunciation] = []
    worker = threading.Thread(target=lambda: made.append(Pronunciation(path, True)), daemon=True)
    worker.start()
    worker.join(10)
    if not made:  # unblock the thread stuck in open() before failing
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("opening the dictionary file blocked on a FIFO")
    (p,) = made
    assert p.error is not None and "not a regular file" in p.error
    assert p.apply("yyds") == "永远的神"  # the starter stays in use


def test_save_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    """The console's save wrote a fixed ``dictionary.json.tmp``, following a link put there."""
    path = tmp_path / "dictionary.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("not the dictionary's")
    (tmp_path / "dictionary.json.tmp").symlink_to(victim)
    p = Pronunciation(path, use_starter=False)
    assert p.save([{"term": "主播", "say": "老大"}]) == 1
    assert victim.read_text() == "not the dictionary's"
    assert read_entries(path) == [Entry("主播", "老大")]


def test_a_refused_file_is_never_overwritten_by_the_console(tmp_path: Path) -> None:
    """With the file on disk refused (one typo among the streamer's entries), the console's
    save wrote what was in use (the starter alone: no entries) over it: all of them lost."""
    path = tmp_path / "dictionary.json"
    typed = [{"term": f"t{i}", "say": "x"} for i in range(50)] + [{"term": "", "say": "x"}]
    path.write_text(json.dumps(typed), encoding="utf-8")
    p = Pronunciation(path, use_starter=True)
    assert p.error is not None and p.entries == []
    with pytest.raises(DictionaryError, match=r"entry 51: term must be text.*fix or remove"):
        p.save([{"term": "主播", "say": "老大"}])
    assert json.loads(path.read_text(encoding="utf-8")) == typed
    path.write_text(json.dumps(typed[:-1]), encoding="utf-8")  # fixed by hand: editable again
    p.poll(force=True)
    assert p.error is None and p.save([*(e.as_dict() for e in p.entries), {"term": "主播"}]) == 51


def test_the_pipeline_applies_it_after_rendering() -> None:
    cfg = Config(reading={"names": {"danmaku": True}}, dedupe={"window_s": 0})
    ledger = Ledger()
    p = Pipeline(cfg, ledger, Scheduler(cfg.queue, lambda u, s, f: None))
    event = ChatEvent("bilibili", "1", Kind.DANMAKU, User("1", "awsl"), text="主播yyds")
    utt = p.ingest(event, now=0.0)
    assert utt is not None and utt.text == "啊我死了说：主播永远的神"
    # The filters and dedupe saw the line as written (normalised), not as said.
    off = Config(dictionary={"starter": False})
    q = Pipeline(off, Ledger(), Scheduler(off.queue, lambda u, s, f: None))
    assert (u := q.ingest(event, now=0.0)) is not None and u.text == "主播yyds"
