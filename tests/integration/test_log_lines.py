"""Log lines cannot be forged, and access lines name the path the client asked for (issue 19 #9)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from api.platform.logging import DevFormatter, JSONFormatter, access_log

FORGED = "/x\r\nINFO    api.access: [00000000] GET /admin/ 200\x1b[2J\u2028"


@pytest.fixture(name="access_lines")
def fx_access_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Access lines on, and only those of the test's own requests captured."""
    access_log.flush()
    capsys.readouterr()
    was_json, was_enabled = access_log.json_lines, access_log.enabled
    access_log.enabled = True
    yield
    access_log.json_lines, access_log.enabled = was_json, was_enabled


def written(capsys: pytest.CaptureFixture[str], *, json_lines: bool) -> list[str]:
    access_log.json_lines = json_lines
    access_log.flush()
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("json_lines", [False, True], ids=["development", "json"])
async def test_a_path_with_encoded_newlines_writes_exactly_one_access_line(
    client: httpx.AsyncClient,
    access_lines: None,
    capsys: pytest.CaptureFixture[str],
    json_lines: bool,
) -> None:
    await client.get("/x%0d%0aINFO%20%20%20%20api.access:%20%5B00000000%5D%20GET%20/admin/%20200")
    lines = written(capsys, json_lines=json_lines)
    assert len(lines) == 1, lines
    if json_lines:
        entry = json.loads(lines[0])
        assert entry["path"].startswith("/x\\x0d\\x0aINFO")
        assert "\r" not in entry["message"]
        assert "\n" not in entry["message"]
    else:
        assert "/x\\x0d\\x0aINFO    api.access:" in lines[0]
        assert lines[0].endswith(" 404")


@pytest.mark.parametrize("json_lines", [False, True], ids=["development", "json"])
async def test_admin_requests_are_logged_with_their_admin_prefix(
    client: httpx.AsyncClient,
    access_lines: None,
    capsys: pytest.CaptureFixture[str],
    json_lines: bool,
) -> None:
    await client.get("/admin/api/tables/")
    lines = written(capsys, json_lines=json_lines)
    assert len(lines) == 1, lines
    path = json.loads(lines[0])["path"] if json_lines else lines[0].split()[4]
    assert path == "/admin/api/tables/"


@pytest.mark.parametrize(
    ("formatter", "read"),
    [
        (DevFormatter(), lambda line: line),
        (JSONFormatter(), lambda line: json.loads(line)["message"]),
    ],
    ids=["development", "json"],
)
def test_control_characters_in_any_log_message_are_escaped(
    formatter: logging.Formatter, read: Callable[[str], str]
) -> None:
    record = logging.LogRecord("api.test", logging.WARNING, __file__, 1, "bad %s", (FORGED,), None)
    line = formatter.format(record)
    for control in ("\n", "\r", "\x1b", "\u2028"):
        assert control not in line
    message = read(line)
    assert "/x\\x0d\\x0aINFO" in message
    assert "\\x1b[2J" in message
    assert "\\u2028" in message
