"""llama.cpp's logs reach ``logging``, one line each, truncated, warnings and up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deepwell.engine.llamacpp.model import LOG_LINE_LIMIT, LlamaModel, llama_log
from deepwell.errors import ConfigurationError


def test_a_failed_load_logs_its_reasons_as_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / ("x" * 400 + ".gguf")
    with (
        caplog.at_level(logging.WARNING, logger=llama_log.name),
        pytest.raises(ConfigurationError),
    ):
        LlamaModel(missing)
    lines = [r for r in caplog.records if r.name == llama_log.name]
    assert lines
    assert all(r.levelno >= logging.WARNING for r in lines)
    assert all("\n" not in r.getMessage() for r in lines)
    assert all(len(r.getMessage()) <= LOG_LINE_LIMIT + 3 for r in lines)
    assert any(r.getMessage().endswith("...") for r in lines)
