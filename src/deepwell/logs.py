"""Root logging for the server: readable text lines, or one JSON object a line.

A log call may carry structured fields as ``extra={FIELDS: {...}}`` (the request log
does); in JSON they become keys of the line's object, in text the message already says
them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = "fields"
"""The ``extra`` key whose mapping the JSON format writes as keys of the line."""


def configure(level: str, fmt: Literal["text", "json"]) -> None:
    """Send every log record at ``level`` and up to stderr, in ``fmt``, replacing the
    root logger's handlers."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}``, one line per record; a
    traceback goes in ``exception``. Values JSON cannot hold are written as strings."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            line.update({str(k): v for k, v in fields.items() if str(k) not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
