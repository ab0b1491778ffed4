"""Libraries' own log records and Python warnings come out as our JSON lines, not as raw
``WARNING:huggingface_hub...`` text between them."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import logging, warnings
import structlog
from ishowtts import logs
logs.configure("info", "json")
logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
logging.getLogger("aiohttp.access").info("below the threshold: not shown")
warnings.warn("a library's warning", UserWarning)
structlog.get_logger().info("ours", id="e1")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("aiohttp.server").exception("Error handling request")
"""


def test_foreign_records_and_warnings_are_json_lines() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line is JSON
    by_event = {r["event"].strip(): r for r in lines}
    hub = by_event["Retrying in 1s [Retry 1/5]."]
    assert hub["logger"] == "huggingface_hub.utils._http" and hub["level"] == "warning"
    assert any(
        r.get("logger") == "py.warnings" and "a library's warning" in r["event"] for r in lines
    )
    assert by_event["ours"]["id"] == "e1"
    err = by_event["Error handling request"]
    assert err["level"] == "error" and "ZeroDivisionError" in err["exception"]
    assert not any("below the threshold" in r["event"] for r in lines)
