"""logs.configure: the text format, and one JSON object a line with structured fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from deepwell.logs import FIELDS, JsonFormatter, configure


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, rid of the handlers ``configure`` gave it, at its level again.
    (pytest's own handlers, which ``configure`` replaced, are pytest's to remove.)"""
    logger = logging.getLogger()
    before, level = logger.handlers[:], logger.level
    yield logger
    for handler in logger.handlers[:]:
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def test_json_lines_parse_and_carry_the_fields(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("info", "json")
    log = logging.getLogger("deepwell.requests")

    log.info("request line", extra={FIELDS: {"status": 200, "cost": Decimal("0.5")}})
    log.info("with %s", "args")
    log.debug("below the level")

    lines = capsys.readouterr().err.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert len(lines) == 2
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "deepwell.requests",
        "request line",
    )
    assert (first["status"], first["cost"]) == (200, "0.5")
    assert first["time"].endswith("+00:00")
    assert second["message"] == "with args"


def test_fields_never_replace_the_line_s_own_keys() -> None:
    record = logging.makeLogRecord(
        {"msg": "hello", "levelname": "INFO", "name": "x", FIELDS: {"message": "forged"}}
    )

    assert json.loads(JsonFormatter().format(record))["message"] == "hello"


def test_a_traceback_stays_on_one_line(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("info", "json")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("deepwell").exception("failed")

    [line] = capsys.readouterr().err.splitlines()
    assert "ValueError: bad" in json.loads(line)["exception"]


def test_text_is_the_readable_format(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("warning", "text")

    logging.getLogger("deepwell.x").warning("careful")
    logging.getLogger("deepwell.x").info("quiet")

    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING deepwell.x: careful")
    assert root.level == logging.WARNING
