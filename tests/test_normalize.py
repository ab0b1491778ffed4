"""The normaliser: table-driven, one line per behaviour."""

from __future__ import annotations

import pytest

from ishowtts.config import NormalizeConfig
from ishowtts.normalize import Normalizer

DEFAULT = [
    # runs
    ("哈哈哈哈哈哈", "哈哈哈"),
    ("哈哈哈", "哈哈哈"),
    ("666666", "666"),
    ("666", "666"),
    ("88888888", "888"),
    ("笑死笑死笑死笑死", "笑死笑死笑死"),
    ("awsl awsl awsl awsl awsl", "awsl awsl awsl awsl"),
    ("！！！！！！", "!!!"),
    ("?????", "???"),
    ("啊啊啊啊啊啊啊好好好好好", "啊啊啊好好好"),
    # numbers keep their digits
    ("1000000元", "1000000元"),
    ("第10000个", "第10000个"),
    ("3.1111111", "3.1111111"),
    # width
    ("１２３ＡＢＣ", "123ABC"),
    ("ｈｅｌｌｏ，ｗｏｒｌｄ！", "hello,world!"),
    ("主播　你好", "主播 你好"),  # ideographic space
    # control and format characters
    ("zero\u200bwidth", "zerowidth"),
    ("bidi\u202eevil\u202c", "bidievil"),
    ("\ufeffbom", "bom"),
    ("line\nbreak\ttab", "line break tab"),
    ("bell\x07", "bell"),
    # links
    ("看这个https://b23.tv/abc好玩", "看这个 链接 好玩"),
    ("go to www.example.com/x?y=1 now", "go to 链接 now"),
    ("b23.tv/BV1xx 看", "链接 看"),
    ("ＨＴＴＰＳ://ｅｘａｍｐｌｅ．ｃｏｍ", "链接"),
    ("1.5倍速", "1.5倍速"),
    ("e.g. yes", "e.g. yes"),
    # stickers (name by default)
    ("[doge]", "doge"),
    ("[笑哭][笑哭]好", "笑哭笑哭好"),
    ("[热词系列_知识增加]", "知识增加"),
    ("[a b] not a sticker", "[a b] not a sticker"),
    # emoji (dropped by default)
    ("好😂笑", "好 笑"),
    ("👍🏻赞", "赞"),
    ("家人们👨‍👩‍👧来了", "家人们 来了"),
    ("❤️❤️❤️", ""),
    # mixed zh/en, whitespace
    ("  主播 is   so  good  ", "主播 is so good"),
    ("I love 中国 😂😂😂", "I love 中国"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), DEFAULT)
def test_default(text: str, expected: str) -> None:
    assert Normalizer(NormalizeConfig())(text) == expected


CONFIGURED = [
    ({"max_repeat": 2}, "哈哈哈哈哈", "哈哈"),
    ({"max_repeat": 1}, "666666", "6"),
    ({"max_repeat": 5}, "哈哈哈哈哈哈哈哈", "哈哈哈哈哈"),
    ({"fullwidth": False}, "１２３", "１２３"),
    ({"links": "drop"}, "看 https://x.com/a 啊", "看 啊"),
    ({"link_word": "link"}, "see https://x.com/a", "see link"),
    ({"stickers": "drop"}, "[doge]好[笑哭]", "好"),
    ({"stickers": "keep"}, "[doge]好", "[doge]好"),
    ({"emoji": "keep"}, "好😂", "好😂"),
    ({"emoji": "keep"}, "😂😂😂😂😂", "😂😂😂"),
    ({"emoji": "name"}, "好😂", "好笑哭了"),
    ({"emoji": "name"}, "👍🏻", "拇指向上"),  # skin tone not said
    ({"emoji": "name", "emoji_language": "en"}, "good😂job", "good face with tears of joy job"),
    ({"emoji": "name", "emoji_language": "xx"}, "😂", "face with tears of joy"),
]


@pytest.mark.parametrize(("options", "text", "expected"), CONFIGURED)
def test_configured(options: dict[str, object], text: str, expected: str) -> None:
    assert Normalizer(NormalizeConfig(**options))(text) == expected


def test_idempotent() -> None:
    n = Normalizer(NormalizeConfig(emoji="name"))
    for text, _ in DEFAULT:
        once = n(text)
        assert n(once) == once
