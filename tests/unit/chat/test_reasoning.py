"""Thinking in prompt terms: history rules, the instruction, the think opening; markers."""

from __future__ import annotations

from deepwell.chat.markers import MarkerFilter
from deepwell.chat.reasoning import history, template_variables, think_opening
from deepwell.settings import Reasoning
from deepwell.vocabulary import Message, ToolCall

PROMPTED = Reasoning(instruction="Think first.")
NATIVE = Reasoning(style="native", switch="thinking")
CALL = ToolCall("call_00_x", "f", "{}")

TURNS = (
    Message("system", "Be brief."),
    Message("user", "hi"),
    Message("assistant", "Hello!", reasoning_content="greet back"),
    Message("user", "weather?"),
    Message("assistant", "Checking.", reasoning_content="need the tool", tool_calls=(CALL,)),
    Message("tool", "sunny", tool_call_id="call_00_x"),
)


def test_prompted_history_keeps_only_tool_call_reasoning_inside_think_markers() -> None:
    out = history(TURNS, PROMPTED, thinking=True)
    assert out[0] == Message("system", "Be brief.\n\nThink first.")
    assert out[2] == Message("assistant", "Hello!")
    assert out[4].content == "<think>\nneed the tool</think>\n\nChecking."
    assert out[4].reasoning_content is None
    assert out[4].tool_calls == (CALL,)
    assert out[5] == TURNS[5]


def test_the_instruction_becomes_the_system_prompt_when_there_is_none() -> None:
    out = history(TURNS[1:2], PROMPTED, thinking=True)
    assert out == [Message("system", "Think first."), Message("user", "hi")]


def test_without_thinking_no_reasoning_and_no_instruction() -> None:
    out = history(TURNS, PROMPTED, thinking=False)
    assert out[0] == TURNS[0]
    assert all(m.reasoning_content is None for m in out)
    assert out[4].content == "Checking."


def test_native_history_passes_tool_call_reasoning_to_the_template() -> None:
    out = history(TURNS, NATIVE, thinking=True)
    assert out[0] == TURNS[0]
    assert out[2].reasoning_content is None
    assert out[4].reasoning_content == "need the tool"
    assert out[4].content == "Checking."


def test_a_prefix_message_is_left_alone() -> None:
    prefix = Message("assistant", "```", reasoning_content="so far", prefix=True)
    assert history([Message("user", "hi"), prefix], PROMPTED, thinking=True)[-1] == prefix


def test_template_variables_and_opening() -> None:
    assert template_variables(NATIVE, thinking=True) == {"thinking": True}
    assert template_variables(NATIVE, thinking=False) == {"thinking": False}
    assert template_variables(PROMPTED, thinking=True) == {}
    assert think_opening("<|assistant|>", PROMPTED) == "<think>\n"
    assert think_opening("<|assistant|><think>\n", NATIVE) == ""
    assert think_opening("<|assistant|>", NATIVE) == "<think>\n"


def test_marker_filter_drops_markers_cut_anywhere() -> None:
    text = "a<think>b</think>c</thin"
    for i in range(len(text) + 1):
        f = MarkerFilter(("<think>", "</think>"))
        assert f.feed(text[:i]) + f.feed(text[i:]) + f.flush() == "abc</thin"
    f = MarkerFilter(("</think>",))
    assert f.feed("x</") == "x"
    assert f.feed("b>") == "</b>"
