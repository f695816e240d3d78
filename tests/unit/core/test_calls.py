"""ReplyCalls: indexes and ids, streamed arguments, and repeated calls."""

from __future__ import annotations

from deepwell.chat.toolcalls import CallArguments, CallStart, ParsedCall
from deepwell.core.calls import ReplyCalls
from deepwell.core.events import ToolCallDelta


def streamed(calls: ReplyCalls, name: str, *pieces: str) -> list[ToolCallDelta]:
    out = calls.add(CallStart(name))
    for piece in pieces:
        out += calls.add(CallArguments(piece))
    return out + calls.add(ParsedCall(name, "".join(pieces)))


def test_a_streamed_call_sends_its_id_and_name_once_then_arguments() -> None:
    calls = ReplyCalls()
    out = streamed(calls, "f", '{"a": ', "1}")
    first, second = out
    assert (first.index, first.name, first.arguments) == (0, "f", '{"a": ')
    assert first.id is not None
    assert first.id.startswith("call_00_")
    assert second == ToolCallDelta(0, None, None, "1}")
    assert calls.count == 1


def test_whole_and_streamed_calls_share_one_index_sequence() -> None:
    calls = ReplyCalls()
    whole = calls.add(ParsedCall("g", "{}"))
    out = streamed(calls, "f", "{}")
    assert [d.index for d in whole + out] == [0, 1]
    assert calls.count == 2


def test_a_repeated_call_is_held_back_and_ends_the_reply() -> None:
    calls = ReplyCalls()
    streamed(calls, "f", '{"a": 1}')
    assert calls.add(CallStart("f")) == []
    # Its arguments so far could be the earlier call's: nothing is sent.
    assert calls.add(CallArguments('{"a": ')) == []
    assert calls.add(CallArguments("1}")) == []
    assert calls.add(ParsedCall("f", '{"a": 1}')) == []
    assert calls.repeated
    assert calls.count == 1


def test_a_call_that_turns_out_different_is_sent_whole_so_far() -> None:
    calls = ReplyCalls()
    streamed(calls, "f", '{"a": 1}')
    calls.add(CallStart("f"))
    assert calls.add(CallArguments('{"a": ')) == []
    (delta,) = calls.add(CallArguments("2"))
    assert (delta.index, delta.name, delta.arguments) == (1, "f", '{"a": 2')
    assert calls.add(CallArguments("}")) == [ToolCallDelta(1, None, None, "}")]
    assert calls.add(ParsedCall("f", '{"a": 2}')) == []
    assert not calls.repeated
    assert calls.count == 2


def test_the_same_arguments_to_another_function_are_no_repeat() -> None:
    calls = ReplyCalls()
    streamed(calls, "f", "{}")
    out = streamed(calls, "g", "{}")
    assert [d.name for d in out] == ["g"]
    assert not calls.repeated


def test_a_whole_call_made_again_is_a_repeat() -> None:
    calls = ReplyCalls()
    calls.add(ParsedCall("f", "{}"))
    assert calls.add(ParsedCall("f", "{}")) == []
    assert calls.repeated
