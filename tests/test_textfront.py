"""The F5 text front end as a table of cases."""

from __future__ import annotations

import pytest

from ishowtts.engines.f5.textfront import Rate, chunk, normalize, speech_units

CASES = [
    # (chat text, emoji mode, spoken text)
    ("666", "drop", "six six six"),
    ("主播666啊", "drop", "主播六六六啊"),
    ("6666666", "drop", "six six six"),
    ("2333333", "drop", "ha ha ha"),
    ("笑死233", "drop", "笑死哈哈哈"),
    ("lol 233", "drop", "lol ha ha ha"),
    ("1234", "drop", "one thousand two hundred and thirty-four"),
    ("价格是2000元", "drop", "价格是两千元"),
    ("I have 21 cats", "drop", "I have twenty-one cats"),
    ("温度3.5度", "drop", "温度三点五度"),
    ("涨了50%", "drop", "涨了百分之五十"),
    ("up 12.5% today", "drop", "up twelve point five percent today"),
    ("2024-05-01 见", "drop", "二零二四年五月一日 见"),
    ("see you 2024-05-01", "drop", "see you May first, twenty twenty-four"),
    ("2024年5月1日开播", "drop", "二零二四年五月一日开播"),
    ("下午3:30开会", "drop", "下午三点三十分开会"),
    ("meet at 10:05", "drop", "meet at ten oh five"),
    ("at 9:00", "drop", "at nine o'clock"),
    ("电话13800138000", "drop", "电话一三八零零一三八零零零"),
    ("code 007", "drop", "code zero zero seven"),
    ("第1名", "drop", "第一名"),
    ("ＡＢＣ１２３", "drop", "ABC one hundred and twenty-three"),
    ("好😂👍", "drop", "好"),
    ("好😂", "name", "好 笑哭了"),
    ("nice 😂", "name", "nice face with tears of joy"),
    ("(＾▽＾)好耶", "drop", "好耶"),
    ("(╯°□°）╯︵ ┻━┻", "drop", ""),
    ("哈哈哈哈哈哈哈哈", "drop", "哈哈哈哈"),
    ("什么！！！？？？", "drop", "什么!"),
    ("!!!", "drop", ""),
    ("  many   spaces  ", "drop", "many spaces"),
    ("SC 30元", "drop", "SC 三十元"),  # a Chinese unit touching the number decides
    ("打赏¥30", "drop", "打赏三十元"),
    ("$5 donation", "drop", "five dollars donation"),
    ("谢谢小明送的辣条x3", "drop", "谢谢小明送的辣条乘三"),
    ("thanks for the rose x3", "drop", "thanks for the rose times three"),
    ("box3 and 0x3f", "drop", "box three and zero x three f"),
]


@pytest.mark.parametrize(("text", "mode", "spoken"), CASES)
def test_normalize(text, mode, spoken):
    assert normalize(text, mode) == spoken


def test_speech_units_count_syllables_and_pauses():
    assert speech_units("你好") == 2
    assert speech_units("hello") == 2
    assert speech_units("你好。") == 3
    assert speech_units("") == 0


def test_rate_from_reference_and_floor():
    rate = Rate.from_reference("你好世界", 200, min_frames=60)
    assert rate.frames_per_unit == 50
    assert rate.frames("一二三四五六") == 300
    assert rate.frames("一二三四五六", speed=2.0) == 150
    assert rate.frames("好") == 60  # floor
    with pytest.raises(ValueError, match="no speakable words"):
        Rate.from_reference("!!!", 100, 10)


def test_chunks_split_at_sentences_first_chunk_short():
    rate = Rate.from_reference("一二三四五", 50, min_frames=1)  # 10 frames a character
    text = "第一句。第二句话，比较长一点。Third one here! 第四句？"
    got = chunk(text, rate.frames, first_max=40, max_frames=120)
    assert got[0] == "第一句。"
    assert "".join(got).replace(" ", "") == text.replace(" ", "")
    assert all(rate.frames(c) <= 120 for c in got)


def test_a_long_first_sentence_is_cut_at_a_comma():
    rate = Rate.from_reference("一二三四五", 50, min_frames=1)
    got = chunk("这是第一部分，这是第二部分，这是第三部分。", rate.frames, 70, 200)
    assert got[0] == "这是第一部分，"
    assert got[1:] == ["这是第二部分，这是第三部分。"]


def test_latin_pieces_keep_their_spaces():
    rate = Rate.from_reference("one two three four five", 50, min_frames=1)
    got = chunk("Hi there. How are you? Fine.", rate.frames, 30, 60)
    assert got[0] == "Hi there."
    assert " ".join(got) == "Hi there. How are you? Fine."


def test_empty_text_has_no_chunks():
    assert chunk("", lambda s: 1, 10, 10) == []
