"""FIM prompts: marker token ids from the model's vocabulary, prefix-suffix-middle order."""

from __future__ import annotations

import logging

import pytest

from deepwell.chat.fim import FimFormat, fim_format
from deepwell.engine.fake import FakeEngine
from deepwell.settings import BackingModel, FimTokens

QWEN = {"<|fim_prefix|>": 151659, "<|fim_suffix|>": 151661, "<|fim_middle|>": 151660}


class VocabEngine(FakeEngine):
    """Knows some special tokens; everything else is one token per character."""

    def __init__(self, specials: dict[str, int]) -> None:
        super().__init__()
        self.specials = specials

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if special and text in self.specials:
            return [self.specials[text]]
        return super().tokenize(text, special=special)


def test_render_puts_the_gap_last() -> None:
    fim = FimFormat(prefix=1, suffix=2, middle=3)
    assert fim.render([10, 11], [20]) == (1, 10, 11, 2, 20, 3)
    assert fim.render([], []) == (1, 2, 3)


def test_default_backing_model_declares_qwen_tokens() -> None:
    tokens = BackingModel().fim
    assert tokens == FimTokens(
        prefix="<|fim_prefix|>", suffix="<|fim_suffix|>", middle="<|fim_middle|>"
    )


def test_format_from_the_vocabulary() -> None:
    found = fim_format("qwen", FimTokens(), VocabEngine(QWEN))
    assert found == FimFormat(prefix=151659, suffix=151661, middle=151660)


def test_no_tokens_means_no_fim() -> None:
    assert fim_format("plain", None, VocabEngine(QWEN)) is None


def test_tokens_missing_from_the_vocabulary_turn_fim_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deepwell.chat.fim"):
        assert fim_format("gemma", FimTokens(), FakeEngine()) is None
    assert "gemma" in caplog.text
    assert "FIM completion is off" in caplog.text


def test_markers_that_are_one_token_each_but_the_same_token_are_refused() -> None:
    engine = VocabEngine({"<a>": 5, "<b>": 5, "<c>": 6})
    assert fim_format("odd", FimTokens(prefix="<a>", suffix="<b>", middle="<c>"), engine) is None


def test_configured_tokens_are_used() -> None:
    engine = VocabEngine({"<pre>": 7, "<suf>": 8, "<mid>": 9})
    tokens = FimTokens(prefix="<pre>", suffix="<suf>", middle="<mid>")
    assert fim_format("coder", tokens, engine) == FimFormat(7, 8, 9)
