"""Markers in streamed text: found wherever a stream cuts them, dropped by MarkerFilter."""

from __future__ import annotations

import itertools

import pytest

from deepwell.chat.markers import MarkerFilter, first_marker, partial_marker
from deepwell.engine.text import partial_match

MARKERS = ("<think>", "</think>")


def test_first_marker_is_the_earliest_start() -> None:
    assert first_marker("a</think>b<think>", MARKERS) == (1, "</think>")
    assert first_marker("plain text", MARKERS) is None
    assert first_marker("abcd", ("bc", "abcd")) == (0, "abcd")


def test_partial_marker_is_the_engine_hold_back_rule() -> None:
    assert partial_marker is partial_match
    assert partial_marker("text</thi", MARKERS) == len("</thi")


@pytest.mark.parametrize("text", ["a<think>b</think>c", "<think></think>", "x<th<think>y</"])
def test_filter_output_does_not_depend_on_the_cuts(text: str) -> None:
    whole = MarkerFilter(MARKERS)
    expected = whole.feed(text) + whole.flush()
    for cut_a, cut_b in itertools.combinations_with_replacement(range(len(text) + 1), 2):
        f = MarkerFilter(MARKERS)
        pieces = [text[:cut_a], text[cut_a:cut_b], text[cut_b:]]
        assert "".join(f.feed(piece) for piece in pieces) + f.flush() == expected


def test_filter_holds_back_only_a_possible_marker() -> None:
    f = MarkerFilter(MARKERS)
    assert f.feed("answer <") == "answer "
    assert f.feed("b>") == "<b>"
    assert f.feed("</think") == ""
    assert f.flush() == "</think"


def test_filter_ignores_empty_markers() -> None:
    f = MarkerFilter(("", "</think>"))
    assert f.feed("a</think>b") + f.flush() == "ab"
