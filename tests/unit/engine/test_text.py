"""Utf8Stream, StopMatcher, PieceAssembler and the hold-back rule: text must not depend on
how it was split into pieces."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import pytest

from deepwell.engine.base import Piece
from deepwell.engine.text import PieceAssembler, StopMatcher, Utf8Stream, partial_match
from deepwell.vocabulary import TokenLogprob


def splits(text: str, cuts: int) -> Iterator[list[str]]:
    """Every way to cut ``text`` into ``cuts + 1`` pieces (empty pieces included)."""
    for points in itertools.combinations_with_replacement(range(len(text) + 1), cuts):
        bounds = [0, *points, len(text)]
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def run(stops: Sequence[str], pieces: Sequence[str]) -> tuple[str, bool]:
    matcher = StopMatcher(tuple(stops))
    out = "".join(matcher.feed(piece) for piece in pieces) + matcher.flush()
    return out, matcher.stopped


def before_first_stop(text: str, stops: Sequence[str]) -> str:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[: min(found)] if found else text


CASES = [
    # (text, stops)
    ("Hello world. Goodbye", ["."]),
    ("Hello world. Goodbye", ["world"]),
    ("Hello world. Goodbye", ["Goodbye"]),
    ("Hello world. Goodbye", ["Hello"]),
    ("Hello world. Goodbye", ["xyz"]),
    ("Hello world. Goodbye", ["worlds"]),
    ("Hello world. Goodbye", ["bye!", "Good"]),
    ("aaab", ["aab"]),
    ("abababc", ["ababc"]),
    ("xxabcdy", ["abc", "bcd"]),
    ("xxbcdabc", ["abc", "bcd"]),
    ("one\n\nUser: two", ["\n\nUser:", "\n\nAssistant:"]),
    ("a<|im_end|>b<|im_end|>", ["<|im_end|>", "<|endoftext|>"]),
    ("ends with a stop ##", ["##"]),
    ("ends with a partial #", ["##"]),
    ("é😀 ünïcödé 😀 text", ["😀 t"]),
]


@pytest.mark.parametrize(("text", "stops"), CASES)
@pytest.mark.parametrize("cuts", [0, 1, 2])
def test_stop_found_at_every_split(text: str, stops: list[str], cuts: int) -> None:
    expected = before_first_stop(text, stops)
    should_stop = expected != text or any(s in text for s in stops)
    for pieces in splits(text, cuts):
        assert run(stops, pieces) == (expected, should_stop), pieces


@pytest.mark.parametrize(("text", "stops"), CASES)
def test_stop_found_character_by_character(text: str, stops: list[str]) -> None:
    expected = before_first_stop(text, stops)
    assert run(stops, list(text))[0] == expected


@pytest.mark.parametrize(("text", "stops"), CASES)
def test_emitted_text_is_never_taken_back(text: str, stops: list[str]) -> None:
    """Each emitted piece is a prefix extension of what was emitted so far."""
    expected = before_first_stop(text, stops)
    matcher = StopMatcher(tuple(stops))
    emitted = ""
    for char in text:
        emitted += matcher.feed(char)
        assert expected.startswith(emitted)
    emitted += matcher.flush()
    assert emitted == expected


def test_nothing_after_the_stop() -> None:
    matcher = StopMatcher(("STOP",))
    assert matcher.feed("abc ST") == "abc "
    assert matcher.stopped is False
    assert matcher.feed("OP and more") == ""
    assert matcher.stopped is True
    assert matcher.feed("even more") == ""
    assert matcher.feed("STOP") == ""
    assert matcher.flush() == ""


def test_text_after_the_stop_in_the_same_piece_is_dropped() -> None:
    matcher = StopMatcher(("|",))
    assert matcher.feed("left|right") == "left"
    assert matcher.stopped is True
    assert matcher.flush() == ""


def test_partial_stop_is_held_back_then_released() -> None:
    matcher = StopMatcher(("</s>",))
    assert matcher.feed("a</") == "a"
    assert matcher.feed("b") == "</b"
    assert matcher.stopped is False


def test_flush_returns_held_partial_stop() -> None:
    matcher = StopMatcher(("END",))
    assert matcher.feed("the EN") == "the "
    assert matcher.flush() == "EN"
    assert matcher.stopped is False
    assert matcher.flush() == ""


def test_held_text_is_only_as_long_as_needed() -> None:
    matcher = StopMatcher(("abc", "xyz"))
    assert matcher.feed("1ab") == "1"
    assert matcher.feed("x") == "ab"
    assert matcher.feed("y") == ""
    assert matcher.feed("!") == "xy!"


@pytest.mark.parametrize("stops", [(), ("",), ("", "")])
def test_no_stops_passes_everything_through(stops: tuple[str, ...]) -> None:
    matcher = StopMatcher(stops)
    assert matcher.feed("abc") == "abc"
    assert matcher.feed("") == ""
    assert matcher.feed("def") == "def"
    assert matcher.flush() == ""
    assert matcher.stopped is False


def test_empty_stop_is_ignored_next_to_real_ones() -> None:
    assert run(["", "c"], ["ab", "cd"]) == ("ab", True)


def test_stop_at_the_very_start() -> None:
    assert run(["ab"], ["a", "b", "c"]) == ("", True)


def test_empty_pieces() -> None:
    matcher = StopMatcher(("xy",))
    assert matcher.feed("") == ""
    assert matcher.feed("x") == ""
    assert matcher.feed("") == ""
    assert matcher.feed("y") == ""
    assert matcher.stopped is True


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("xabcd", ["abcd", "bc"]),
        ("one\n\nUser: two", ["\n\nUser:", "\nUser"]),
    ],
)
def test_nested_overlapping_stops_do_not_depend_on_the_split(text: str, stops: list[str]) -> None:
    # Fed character by character the inner stop completes first ("xa", "one\n"); fed
    # whole, the outer stop is found first because it starts earlier ("x", "one").
    outputs = {run(stops, pieces)[0] for pieces in splits(text, 1)}
    assert len(outputs) == 1, outputs


# -- Utf8Stream -------------------------------------------------------------------------

TEXT = "aé€😀z ünï 𝄞 中文"
DATA = TEXT.encode()


def decode(pieces: Sequence[bytes]) -> str:
    stream = Utf8Stream()
    return "".join(stream.feed(piece) for piece in pieces) + stream.flush()


def test_utf8_text_has_every_width() -> None:
    assert {len(c.encode()) for c in TEXT} == {1, 2, 3, 4}


@pytest.mark.parametrize("cut", range(len(DATA) + 1))
def test_utf8_split_at_every_byte(cut: int) -> None:
    assert decode([DATA[:cut], DATA[cut:]]) == TEXT


def test_utf8_split_at_every_pair_of_bytes() -> None:
    for a, b in itertools.combinations(range(len(DATA) + 1), 2):
        assert decode([DATA[:a], DATA[a:b], DATA[b:]]) == TEXT, (a, b)


def test_utf8_byte_by_byte_holds_incomplete_characters() -> None:
    stream = Utf8Stream()
    out = []
    for i in range(len(DATA)):
        piece = stream.feed(DATA[i : i + 1])
        assert "\ufffd" not in piece
        out.append(piece)
    assert "".join(out) == TEXT
    assert stream.flush() == ""


def test_utf8_incomplete_character_yields_nothing_yet() -> None:
    stream = Utf8Stream()
    emoji = "😀".encode()
    assert stream.feed(emoji[:1]) == ""
    assert stream.feed(emoji[1:3]) == ""
    assert stream.feed(emoji[3:] + b"!") == "😀!"


def test_utf8_truncated_character_is_replaced_on_flush() -> None:
    stream = Utf8Stream()
    assert stream.feed(b"ok" + "€".encode()[:2]) == "ok"
    assert stream.flush() == "\ufffd"


def test_utf8_invalid_bytes_are_replaced() -> None:
    assert decode([b"a\xffb"]) == "a\ufffdb"


# -- PieceAssembler ---------------------------------------------------------------------


def logprob(data: bytes) -> TokenLogprob:
    return TokenLogprob(data.decode(errors="replace"), -0.5, tuple(data))


def assemble(stops: Sequence[str], tokens: Sequence[bytes]) -> tuple[list[Piece], bool]:
    """Every piece of a generation of ``tokens``, as an engine would yield them."""
    pieces = PieceAssembler(tuple(stops))
    out = []
    for data in tokens:
        out.append(pieces.token(data, logprob(data)))
        if pieces.stopped:
            return out, True
    tail = pieces.end()
    return out + ([tail] if tail is not None else []), False


def test_assembler_gives_a_piece_per_token_and_holds_logprobs_until_text() -> None:
    emoji = "😀".encode()
    pieces = PieceAssembler(())
    assert pieces.token(b"a", logprob(b"a")) == Piece("a", (logprob(b"a"),), tokens=1)
    assert pieces.token(emoji[:2], logprob(emoji[:2])) == Piece("", tokens=1)
    assert pieces.token(emoji[2:], logprob(emoji[2:])) == Piece(
        "😀", (logprob(emoji[:2]), logprob(emoji[2:])), tokens=1
    )
    assert pieces.token(b"!") == Piece("!", tokens=1)
    assert pieces.end() is None
    assert pieces.stopped is False


def test_assembler_ends_with_the_held_tail_and_its_logprobs() -> None:
    items, stopped = assemble(["END"], [b"ok ", b"E", b"N"])
    assert not stopped
    assert items == [
        Piece("ok ", (logprob(b"ok "),), tokens=1),
        Piece("", tokens=1),
        Piece("", tokens=1),
        Piece("EN", (logprob(b"E"), logprob(b"N"))),
    ]


def test_assembler_end_replaces_a_truncated_character() -> None:
    items, _ = assemble([], ["€".encode()[:2]])
    assert items[-1] == Piece("\ufffd", (logprob("€".encode()[:2]),))


def test_assembler_stops_at_a_stop_string() -> None:
    items, stopped = assemble(["|"], [b"left", b"|", b"right"])
    assert stopped
    assert items == [Piece("left", (logprob(b"left"),), tokens=1), Piece("", tokens=1)]


@pytest.mark.parametrize(("text", "stops"), CASES)
def test_assembler_byte_by_byte(text: str, stops: list[str]) -> None:
    data = text.encode()
    tokens = [data[i : i + 1] for i in range(len(data))]
    items, stopped = assemble(stops, tokens)
    assert "".join(piece.text for piece in items) == before_first_stop(text, stops)
    assert stopped == any(s in text for s in stops)
    counted = [piece.tokens for piece in items]
    if stopped:
        assert counted == [1] * len(items)
    else:
        assert counted in ([1] * len(tokens), [1] * len(tokens) + [0])
        assert [lp for piece in items for lp in piece.logprobs] == [logprob(t) for t in tokens]


# --- the hold-back rule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("buffer", "strings", "held"),
    [
        ("", ("END",), 0),
        ("abc", (), 0),
        ("abcE", ("END",), 1),
        ("abcEN", ("END",), 2),
        ("abcEND", ("END",), 0),  # a whole string is found, not held
        ("abcEX", ("END",), 0),
        ("EN", ("END", "ENDING"), 2),
        ("xENDIN", ("END", "ENDING"), 5),  # the longest candidate wins
        ("a<", ("</think>", "<tool_call>"), 1),
        ("E", ("E",), 0),  # a one-character string is never pending
    ],
)
def test_partial_match_holds_what_may_begin_a_string(
    buffer: str, strings: tuple[str, ...], held: int
) -> None:
    assert partial_match(buffer, strings) == held


def test_partial_match_is_the_longest_pending_suffix() -> None:
    strings = ("abcab", "bca", "c")
    for text in ("".join(p) for n in range(7) for p in itertools.product("abc", repeat=n)):
        pending = [
            n
            for n in range(1, len(text) + 1)
            if any(s.startswith(text[-n:]) and len(s) > n for s in strings)
        ]
        assert partial_match(text, strings) == max(pending, default=0), text
