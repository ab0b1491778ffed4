"""Config loading: the shipped default is valid, and broken files get one clear message each,
naming the key path and the line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ishowtts.config import ConfigError, load_config
from ishowtts.events import Kind

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
engine:
  type: tone
connectors:
  - type: replay
    path: demo
voices:
  default: {}
filters:
  max_chars: 42
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_config_is_valid() -> None:
    """What it does when run is tested end to end in test_e2e_f5."""
    config = load_config(ROOT / "config.yaml")
    assert config.engine.type == "f5"
    assert config.engine.fallback == "espeak"  # the daemon always has a voice
    assert config.queue.pending_file == "auto"
    assert [c.type for c in config.connectors] == ["replay"]
    assert config.connectors[0].options.path == "demo"
    assert "default" in config.voices


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{type: f5, fallback: espeak}", "espeak"),
        ("{type: f5, fallback: none}", None),
        ("{type: f5}", None),
        ("{type: espeak, fallback: espeak}", None),
    ],
)
def test_engine_fallback(tmp_path: Path, section: str, expected: str | None) -> None:
    """None unless named (the shipped config names espeak); an engine is no fallback for itself;
    the key never reaches the engine's own options (F5 would reject it as unknown)."""
    config = load_config(write(tmp_path, f"engine: {section}\n"))
    assert config.engine.fallback == expected


def test_good_config_values_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.filters.max_chars == 42
    # Failover: the values the code had as constants until they became settings.
    assert (config.failover.fail_limit, config.failover.retry_first_s) == (3, 60.0)
    assert config.failover.retry_max_s == 900.0
    assert config.queue.priority_of(Kind.SUPER_CHAT) > config.queue.priority_of(Kind.DANMAKU)
    assert config.queue.ttl_of(Kind.DANMAKU) < config.queue.ttl_of(Kind.SUPER_CHAT)
    assert config.connectors[0].name == "replay"
    assert config.resolve("voices/a.wav") == tmp_path.resolve() / "voices/a.wav"


def test_voice_keys_beyond_the_common_ones_belong_to_the_engine(tmp_path: Path) -> None:
    from ishowtts.app.daemon import voices_from
    from ishowtts.engines import Voice
    from ishowtts.engines.f5.voices import F5VoiceOptions, pick_default, voice_options

    config = load_config(
        write(
            tmp_path,
            """\
            engine: {type: f5, language: zh}
            voices:
              fast: {speed: 1.2, steps: 7, language: en}
              plain: {}
            routing: {default: plain}
            """,
        )
    )
    fast, plain = config.voices["fast"], config.voices["plain"]
    assert (fast.speed, fast.options) == (1.2, F5VoiceOptions(steps=7, language="en"))
    assert plain.options == F5VoiceOptions()
    voices = voices_from(config)
    assert voice_options(voices["fast"]).steps == 7
    # A voice that names no language gets the engine's (it used to get "auto": the name's).
    engine_language = config.engine.options.language
    zh = pick_default(Voice("x", options={"language": "zh"}), "auto")
    assert pick_default(voices["plain"], engine_language) == zh


BROKEN = [
    (
        "filters:\n  max_chars: abc\n",
        'filters.max_chars: expected an integer, got "abc" (config.yaml:2)',
    ),
    (
        "engine:\n  type: tone\nfilters:\n  max_chars: 4.5\n",
        "filters.max_chars: expected an integer, got 4.5 (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\nplayer:\n  volume: loud\n",
        'player.volume: expected a number, got "loud" (config.yaml:3)',
    ),
    (
        "engine: {type: tone}\nplayer:\n  volume: 5\n",
        "player.volume: input should be less than or equal to 2, got 5 (config.yaml:3)",
    ),
    ("engine: {type: tone}\nfilter:\n  max_chars: 3\n", "filter: unknown key (config.yaml:2)"),
    ("engine: {type: tone}\nqueue:\n  ttl_s:\n    chat: 5\n", "queue.ttl_s.chat: expected one of"),
    ("engine: {type: tone}\nnormalize:\n  emoji: maybe\n", "normalize.emoji: expected one of"),
    (
        "engine: {type: tone}\nfilters:\n  block_regex: ['(unclosed']\n",
        "filters.block_regex: bad regular expression '(unclosed'",
    ),
    (
        "engine: {type: tone}\nfilters:\n  min_chars: 9\n  max_chars: 3\n",
        "filters: min_chars (9) exceeds max_chars (3)",
    ),
    (
        "engine: {type: tone}\nrouting:\n  default: nobody\n",
        "routing.default: no voice named 'nobody'; voices: default (config.yaml:3)",
    ),
    (
        "engine: {type: tone}\nrouting:\n  kinds:\n    super_chat: ghost\n",
        "routing.kinds.super_chat: no voice named 'ghost'",
    ),
    (
        "engine: {type: tone}\nspeech:\n  templates:\n    gift: '{user} {nonsense}'\n",
        "unknown field(s) ['nonsense']",
    ),
    ("engine:\n  type: nosuch\n", "engine.type: unknown engine 'nosuch'; installed:"),
    (
        "engine:\n  type: tone\n  fallback: nosuch\n",
        "engine.fallback: expected none or an installed engine (espeak, f5, tone), "
        "got 'nosuch' (config.yaml:3)",
    ),
    (
        "engine: {type: tone}\nconnectors:\n  - type: myspace\n",
        "connectors[0].type: unknown connector 'myspace'",
    ),
    ("engine: {type: tone}\nconnectors:\n  - path: demo\n", "connectors[0].type: required"),
    (
        "engine: {type: tone}\nconnectors:\n  - type: replay\n    speed: fast\n",
        'connectors[0].speed: expected a number, got "fast" (config.yaml:4)',
    ),
    (
        "engine: {type: tone}\nconnectors:\n  - type: replay\n    sped: 2\n",
        "connectors[0].sped: unknown key (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\nconnectors:\n  - type: replay\n  - type: replay\n",
        "two connectors are named 'replay'",
    ),
    (
        "engine:\n  type: tone\n  sample_rate: lots\n",
        'engine.sample_rate: expected an integer, got "lots" (config.yaml:3)',
    ),
    ("engine: {type: tone}\nconnectors: {type: replay}\n", "connectors: expected a list"),
    (
        "engine: {type: tone}\nvoices:\n  default:\n    speed: 0\n",
        "voices.default.speed: input should be greater than 0.2, got 0 (config.yaml:4)",
    ),
    (
        "engine: {type: f5}\nvoices:\n  a:\n    stpes: 8\n",
        "voices.a.stpes: unknown key (config.yaml:4)",
    ),
    (
        "engine: {type: f5}\nvoices:\n  a:\n    speed: 1.1\n    steps: 100\n",
        "voices.a.steps: input should be less than or equal to 64, got 100 (config.yaml:5)",
    ),
    (
        "engine: {type: tone}\nvoices:\n  a:\n    steps: 8\n",
        "voices.a.steps: engine 'tone' takes no voice option 'steps'; every engine takes "
        "ref_audio, ref_text, speed (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\napi:\n  port: 99999\n",
        "api.port: input should be less than or equal to 65535, got 99999 (config.yaml:3)",
    ),
    (
        "engine: {type: tone}\nfailover:\n  fail_limit: 0\n",
        "failover.fail_limit: input should be greater than or equal to 1, got 0 (config.yaml:3)",
    ),
    (
        "engine: {type: tone}\nfailover:\n  retry_first_s: 0.01\n",
        "failover.retry_first_s: input should be greater than or equal to 1, got 0.01 "
        "(config.yaml:3)",
    ),
    (
        "engine: {type: tone}\nfailover:\n  retry_first_s: 600\n  retry_max_s: 60\n",
        "failover: retry_max_s (60) is shorter than retry_first_s (600) (config.yaml:2)",
    ),
    (
        "engine: {type: tone}\nfailover:\n  retry_max_s: 1e9\n",
        "failover.retry_max_s: input should be less than or equal to 86400",
    ),
    ("engine: {type: tone}\nlog: [info]\n", "log: expected a mapping"),
    ("- just\n- a list\n", "(top level): expected a mapping"),
    ("filters:\n  max_chars: 3\n bad_indent: 1\n", "YAML syntax error:"),
    ("engine: {type: tone\n", "YAML syntax error:"),
    (
        "engine: {type: tone}\nqueue:\n  ttl_s:\n    danmaku: -1\n",
        "queue.ttl_s.danmaku: input should be greater than 0, got -1 (config.yaml:4)",
    ),
    (
        'engine: {type: tone}\nspeech:\n  templates:\n    danmaku: "{text}"\n    gift: "{nope}"\n',
        "speech.templates.gift: unknown field(s) ['nope']",
    ),
    (
        'engine: {type: tone}\nspeech:\n  templates:\n    gift: "{user"\n',
        "speech.templates.gift: bad template: expected '}' before end of string (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\nfilters:\n  max_chars: 10\nfilters:\n  min_chars: 2\n",
        "filters: repeated key (first at line 2; only one counts) (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\nvoices:\n  a: {}\n  a: {speed: 2}\n",
        "voices.a: repeated key (first at line 3; only one counts) (config.yaml:4)",
    ),
    (
        "engine: {type: tone}\nlanguages:\n  voices:\n    japanese: default\n",
        "languages.voices: 'japanese' is not an ISO 639-1 language code (config.yaml:3)",
    ),
    # A NUL in a state file's path passed the check and made the start die of ValueError.
    (
        'engine: {type: tone}\nviewer_voices:\n  file: "voices\\0.json"\n',
        "viewer_voices.file: holds a NUL character (\\0), which no setting takes (config.yaml:3)",
    ),
    (
        'engine: {type: tone}\ndictionary:\n  file: "a\\0b"\n',
        "dictionary.file: holds a NUL character (\\0), which no setting takes (config.yaml:3)",
    ),
    (
        'engine: {type: tone}\nfilters:\n  block_keywords: [ok, "x\\0"]\n',
        "filters.block_keywords[1]: holds a NUL character",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN, ids=[e for _, e in BROKEN])
def test_broken_config_names_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = "engine: {type: tone}\nfilters:\n  max_chars: abc\nplayer:\n  volume: loud\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert len(info.value.problems) == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_cli_check_config_exits_2_with_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "engine: {type: tone}\nfilters:\n  max_chars: abc\n")
    result = subprocess.run(
        [sys.executable, "-m", "ishowtts", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert 'filters.max_chars: expected an integer, got "abc" (config.yaml:3)' in result.stderr


def test_cli_check_config_ok(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ishowtts", "check-config", "-c", str(write(tmp_path, GOOD))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


# ---- hostile or careless files (issue 9): each a ConfigError naming the problem -------------


def _laughs(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "engine: {type: tone}\n" + "\n".join(lines) + "\n"


HOSTILE = [
    (_laughs(6), "expands to more than 100000 values (YAML aliases?) (config.yaml:7)"),
    ("engine: {type: tone}\nvoices: &v\n  default: *v\n", "refers to the value that contains it"),
    ("engine: {type: tone}\nx: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
    ("engine: {type: tone}\nx: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    ("", "(top level): the file is empty (config.yaml); nothing is configured"),
    ("# all commented out\n# engine: {type: tone}\n", "the file is empty"),
    ("engine: {type: tone}\nx: 2026-02-30\n", "YAML value error: day is out of range"),
    ("engine: {type: tone}\nqueue: {max_items: " + "9" * 5000 + "}\n", "YAML value error"),
    ("player: {blocksize: 10000000}\n", "player.blocksize: input should be less than or equal"),
    ("api: {max_body_bytes: 10000000000}\n", "api.max_body_bytes: input should be less than"),
    ("normalize: {max_repeat: 5000000000}\n", "normalize.max_repeat: input should be less than"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE, ids=[e[:40] for _, e in HOSTILE])
def test_hostile_files_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """9^9 strings if expanded; refused from the node graph in time linear in the file."""
    import tracemalloc

    path = write(tmp_path, _laughs(9))
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="expands to more than"):
            load_config(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20


def test_aliases_within_bounds_still_work(tmp_path: Path) -> None:
    text = """\
    engine: {type: tone}
    voices:
      a: &calm {speed: 0.9, ref_text: hi}
      b: *calm
    routing: {default: a}
    """
    config = load_config(write(tmp_path, text))
    assert config.voices["a"] == config.voices["b"]


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"engine: {type: tone}\nfilters:\n  block_keywords: [\xff\xfe]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "not UTF-8 text: byte 0xff (config.yaml:3); save the file as UTF-8"
    ]


def test_a_bare_number_token_is_not_echoed(tmp_path: Path) -> None:
    secret = "982347523498572398475"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"engine: {{type: tone}}\napi:\n  token: {secret}\n"))
    text = "\n".join(info.value.problems)
    assert secret not in text and secret[:6] not in text
    assert "api.token: expected a string (the value is a secret and not shown; quote it)" in text
    assert "(config.yaml:3)" in text


F5_TINY = """\
engine:
  type: f5
  checkpoint: {checkpoint}
  vocoder: {vocoder}
  device: cpu
"""


def test_relative_engine_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system unit runs in /var/lib/ishowtts with its config in /etc/ishowtts."""
    etc = tmp_path / "etc"
    (etc / "models" / "vocos").mkdir(parents=True)
    (etc / "models" / "tiny.safetensors").write_bytes(b"")
    elsewhere = tmp_path / "var"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(
        write(etc, F5_TINY.format(checkpoint="models/tiny.safetensors", vocoder="models/vocos"))
    )
    assert config.engine.options.checkpoint == str(etc.resolve() / "models/tiny.safetensors")
    assert config.engine.options.vocoder == str(etc.resolve() / "models/vocos")
    hub = load_config(write(etc, F5_TINY.format(checkpoint="hf://a/b/c.pt", vocoder="hf://a/v")))
    assert hub.engine.options.checkpoint == "hf://a/b/c.pt"


def test_a_missing_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "vocos").mkdir()
    path = write(tmp_path, F5_TINY.format(checkpoint="gone.safetensors", vocoder="vocos"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"engine.checkpoint: {tmp_path.resolve() / 'gone.safetensors'} does not exist "
        "(config.yaml:3)"
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ishowtts", "run", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"config error: {info.value.problems[0]}"]
