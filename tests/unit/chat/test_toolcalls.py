"""Tool-call parsers: markers cut at every position, bare calls, ids, the registry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest

from deepwell.chat.toolcalls import (
    DEEPSEEK,
    FORMATS,
    HERMES,
    CallArguments,
    CallStart,
    ParsedCall,
    Segment,
    ToolCallFormat,
    call_id,
    tool_format,
)
from deepwell.errors import ConfigurationError

WEATHER = ParsedCall("get_weather", '{"city": "Paris"}')
TIME = ParsedCall("get_time", "{}")
NAMES = frozenset({"get_weather", "get_time"})

HERMES_REPLY = (
    "Let me check.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
)
DS = {
    name: "<\uff5c" + name.replace("_", "\u2581") + "\uff5c>"
    for name in ("tool_calls_begin", "tool_calls_end", "tool_call_begin", "tool_call_end")
}
DS_SEP = "<\uff5ctool\u2581sep\uff5c>"
DEEPSEEK_REPLY = (
    "Let me check."
    f"{DS['tool_calls_begin']}"
    f'{DS["tool_call_begin"]}get_weather{DS_SEP}{{"city": "Paris"}}{DS["tool_call_end"]}'
    f"{DS['tool_call_begin']}get_time{DS_SEP}{{}}{DS['tool_call_end']}"
    f"{DS['tool_calls_end']}"
)


def run(fmt: ToolCallFormat, pieces: Iterable[str], names: frozenset[str] = NAMES) -> list[Segment]:
    """Feed ``pieces`` and flush; adjacent text segments joined."""
    parser = fmt.parser(names)
    out: list[Segment] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    out.extend(parser.flush())
    return _joined(out)


def _joined(segments: list[Segment]) -> list[Segment]:
    joined: list[Segment] = []
    for segment in segments:
        if isinstance(segment, str) and joined and isinstance(joined[-1], str):
            joined[-1] += segment
        elif segment != "":
            joined.append(segment)
    return joined


def splits(text: str) -> Iterable[list[str]]:
    """``text`` cut in two at every position, and one character at a time."""
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    yield list(text)


@pytest.mark.parametrize(("fmt", "reply"), [(HERMES, HERMES_REPLY), (DEEPSEEK, DEEPSEEK_REPLY)])
def test_calls_split_at_every_position(fmt: ToolCallFormat, reply: str) -> None:
    for pieces in splits(reply):
        assert run(fmt, pieces) == ["Let me check.", WEATHER, TIME], pieces


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
def test_text_without_calls_passes_through(fmt: ToolCallFormat) -> None:
    text = "Use <b>bold</b> and a < b, then <tool_ or <\uff5c.\n"
    for pieces in splits(text):
        assert run(fmt, pieces) == [text]


def test_text_is_not_held_back_longer_than_a_marker_prefix() -> None:
    parser = HERMES.parser()
    assert parser.feed("Hello <tool") == ["Hello"]
    assert parser.feed("box> there") == [" <toolbox> there"]


def test_no_markup_reaches_the_text_when_a_call_does_not_decode() -> None:
    reply = "Sure.<tool_call>\nnot json\n</tool_call>"
    for pieces in splits(reply):
        out = run(HERMES, pieces)
        assert out == ["Sure.not json"], pieces
        assert all("<tool_call>" not in s for s in out if isinstance(s, str))


def test_an_unclosed_call_that_decodes_still_counts() -> None:
    reply = '<tool_call>\n{"name": "get_time", "arguments": {}}'
    assert run(HERMES, [reply]) == [TIME]


def test_a_call_cut_short_by_the_end_of_the_reply_is_dropped() -> None:
    for reply in ('<tool_call>\n{"name": "get_ti', '<tool_call>\n{"name": "get_time", "'):
        for pieces in splits(reply):
            assert run(HERMES, pieces) == [], pieces
            assert streamed_segments(HERMES, reply, 3) == []
    cut = f'{DS["tool_call_begin"]}get_weather{DS_SEP}{{"ci'
    assert run(DEEPSEEK, [f"Sure.{cut}"]) == ["Sure."]


def test_an_unclosed_call_that_is_no_call_is_text_without_its_marker() -> None:
    assert run(HERMES, ["<tool_call>\nI cannot call tools."]) == ["I cannot call tools."]
    assert run(DEEPSEEK, [f"{DS['tool_call_begin']}no tools here"]) == ["no tools here"]


def test_arguments_may_come_as_a_json_string_or_be_missing() -> None:
    as_string = '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
    missing = '<tool_call>{"name": "get_time"}</tool_call>'
    assert run(HERMES, [as_string + "</tool_call>"]) == [WEATHER]
    assert run(HERMES, [missing]) == [TIME]


@pytest.mark.parametrize(
    "body", ['{"name": 3}', '{"arguments": {}}', "[1]", '{"name": "f", "arguments": [1]}']
)
def test_bodies_that_are_not_calls(body: str) -> None:
    assert run(HERMES, [f"<tool_call>{body}</tool_call>"]) == [body]


def test_whitespace_between_calls_is_dropped_and_kept_in_plain_answers() -> None:
    call = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    assert run(HERMES, [f"\n\n{call}\n\n{call}\n"]) == [TIME, TIME]
    assert run(HERMES, ["Hello!\n"]) == ["Hello!\n"]
    assert run(HERMES, ["a  ", " b "]) == ["a   b "]


def test_text_after_a_call_is_kept() -> None:
    call = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    assert run(HERMES, [f"{call}\nDone."]) == [TIME, "\nDone."]


# -- bare JSON calls (what small models write without the markers) -------------------

BARE = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


@pytest.mark.parametrize(
    "reply",
    [BARE, f"\n{BARE}\n", f"```json\n{BARE}\n```", f"```\n{BARE}\n```\n", f"{BARE}\n{BARE}"],
)
def test_bare_calls_split_at_every_position(reply: str) -> None:
    expected = [WEATHER] * reply.count('"name"')
    for pieces in splits(reply):
        assert run(HERMES, pieces) == expected, pieces


def test_bare_json_with_braces_in_strings() -> None:
    reply = '{"name": "get_weather", "arguments": {"city": "}{\\"x"}}'
    assert run(HERMES, [reply]) == [ParsedCall("get_weather", '{"city": "}{\\"x"}')]


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "unknown", "arguments": {}}',
        '{"answer": 42}',
        "```python\nprint(1)\n```",
        "`x` is a variable",
        'Here: {"name": "get_time", "arguments": {}}',
    ],
)
def test_other_answers_are_text(reply: str) -> None:
    for pieces in splits(reply):
        assert run(HERMES, pieces) == [reply], pieces


def test_bare_calls_need_tool_names() -> None:
    assert run(HERMES, [BARE], names=frozenset()) == [BARE]


def test_deepseek_has_no_bare_calls() -> None:
    assert run(DEEPSEEK, [BARE]) == [BARE]


def test_a_bare_call_is_held_until_its_object_closes() -> None:
    parser = HERMES.parser(NAMES)
    assert parser.feed('{"name": "get_weather", ') == []
    assert parser.feed('"arguments": {"city": "Paris"}}') == [WEATHER]


def test_an_unfinished_bare_object_is_text_at_the_end() -> None:
    assert run(HERMES, ['{"name": "get_weather", "argu']) == ['{"name": "get_weather", "argu']


# -- ids and registry ----------------------------------------------------------------


def test_call_ids_have_deepseeks_shape() -> None:
    ids = {call_id(3) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"call_03_[A-Za-z0-9]{24}", i) for i in ids)
    assert call_id(12).startswith("call_12_")


def test_registry() -> None:
    assert tool_format("hermes") is HERMES
    assert set(FORMATS) == {"hermes", "deepseek"}
    with pytest.raises(ConfigurationError, match="unknown tool-call format"):
        tool_format("nope")


def test_decoded_arguments_are_compact_json_objects() -> None:
    (call,) = run(HERMES, ['<tool_call>{"name": "f", "arguments": {"a": [1, 2]}}</tool_call>'])
    assert isinstance(call, ParsedCall)
    assert json.loads(call.arguments) == {"a": [1, 2]}


def streamed_segments(fmt: ToolCallFormat, reply: str, step: int) -> list[object]:
    """The segments of a streaming parser fed ``step`` characters at a time, with
    neighbouring texts and argument pieces joined."""
    parser = fmt.parser(frozenset({"get_weather", "get_time"}), stream=True)
    raw: list[object] = []
    for start in range(0, len(reply), step):
        raw += parser.feed(reply[start : start + step])
    raw += parser.flush()
    joined: list[object] = []
    for segment in raw:
        last = joined[-1] if joined else None
        if isinstance(segment, CallArguments) and isinstance(last, CallArguments):
            joined[-1] = CallArguments(last.text + segment.text)
        elif isinstance(segment, str) and isinstance(last, str):
            joined[-1] = last + segment
        else:
            joined.append(segment)
    return joined


def written(fmt: ToolCallFormat, name: str, arguments: str) -> str:
    return f"{fmt.open}{fmt.call_head(name)}{arguments}{fmt.call_after}{fmt.close}"


@pytest.mark.parametrize("fmt", [HERMES, DEEPSEEK])
@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_arguments_stream_as_they_come(fmt: ToolCallFormat, step: int) -> None:
    arguments = '{"city": "Pa}ris \\" {", "days": [1, {"n": 2}]}'
    reply = "Let me check." + written(fmt, "get_weather", arguments)
    if fmt.group_open:
        reply = "Let me check." + fmt.group_open + reply.removeprefix("Let me check.")
        reply += fmt.group_close
    assert streamed_segments(fmt, reply, step) == [
        "Let me check.",
        CallStart("get_weather"),
        CallArguments(arguments),
        ParsedCall("get_weather", arguments),
    ]


def test_argument_pieces_arrive_before_the_call_ends() -> None:
    parser = HERMES.parser(frozenset({"get_time"}), stream=True)
    assert parser.feed('<tool_call>\n{"name": "get_time", "arguments": {"zone": "U') == [
        CallStart("get_time"),
        CallArguments('{"zone": "U'),
    ]
    assert parser.feed('TC"}}\n</tool_call>') == [
        CallArguments('TC"}'),
        ParsedCall("get_time", '{"zone": "UTC"}'),
    ]


def test_a_call_not_written_as_its_head_says_is_decided_whole() -> None:
    reply = '<tool_call>\n{"arguments": {"zone": "UTC"}, "name": "get_time"}\n</tool_call>'
    assert streamed_segments(HERMES, reply, 3) == [ParsedCall("get_time", '{"zone": "UTC"}')]


def test_a_streamed_call_cut_short_stays_as_written() -> None:
    reply = '<tool_call>\n{"name": "get_time", "arguments": {"zo'
    assert streamed_segments(HERMES, reply, 4) == [
        CallStart("get_time"),
        CallArguments('{"zo'),
    ]
