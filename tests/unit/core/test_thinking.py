"""Thinking-mode rules: on or off, refused tool_choice, passback, effort and budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from deepwell.core.thinking import (
    PASSBACK_MESSAGE,
    TOOL_CHOICE_MESSAGE,
    budget,
    check_rules,
    thinking_on,
)
from deepwell.core.types import GenerationRequest
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ResolvedModel
from deepwell.settings import Prices, PublicModel, Reasoning, Thinking
from deepwell.vocabulary import Message, Tool, ToolCall, ToolChoice

SPEC = PublicModel(
    prices=Prices(cache_hit_input=Decimal(0), cache_miss_input=Decimal(0), output=Decimal(0))
)
CALL = ToolCall("call_00_x", "f", "{}")


def request(**fields: Any) -> GenerationRequest:
    fields.setdefault("messages", (Message("user", "hi"),))
    return GenerationRequest(model="m", **fields)


@pytest.mark.parametrize(
    ("default", "fixed", "asked", "expected"),
    [
        (True, False, None, True),
        (True, False, False, False),
        (False, False, True, True),
        (False, True, True, False),  # a legacy alias fixes it
        (True, True, False, True),
    ],
)
def test_thinking_on(default: bool, fixed: bool, asked: bool | None, expected: bool) -> None:
    model = ResolvedModel("m", SPEC, default, thinking_fixed=fixed)
    assert thinking_on(request(thinking=asked), model) is expected


@pytest.mark.parametrize(
    ("fixed", "asked", "expected"),
    [
        (False, None, False),  # pydantic-ai's thinking=False
        (False, True, True),  # ``thinking`` says otherwise
        (True, None, True),  # a legacy reasoner alias
    ],
)
def test_effort_none_turns_thinking_off(fixed: bool, asked: bool | None, expected: bool) -> None:
    model = ResolvedModel("m", SPEC, True, thinking_fixed=fixed)
    assert thinking_on(request(thinking=asked, reasoning_effort="none"), model) is expected


def test_effort_none_with_thinking_on_is_the_default_effort() -> None:
    assert budget(request(reasoning_effort="none"), Reasoning(), Thinking()) == 64


@pytest.mark.parametrize("choice", [ToolChoice("required"), ToolChoice("function", "f")])
def test_forced_tool_choice_is_refused(choice: ToolChoice) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_rules(request(tools=(Tool("f"),), tool_choice=choice), Thinking())
    assert caught.value.message == TOOL_CHOICE_MESSAGE
    assert caught.value.status == 400


@pytest.mark.parametrize("choice", [None, ToolChoice("auto"), ToolChoice("none")])
def test_auto_and_none_are_fine(choice: ToolChoice | None) -> None:
    check_rules(request(tools=(Tool("f"),), tool_choice=choice), Thinking())


def history(reasoning: str | None) -> tuple[Message, ...]:
    return (
        Message("user", "hi"),
        Message("assistant", "", reasoning_content=reasoning, tool_calls=(CALL,)),
        Message("tool", "42", tool_call_id="call_00_x"),
    )


def test_reasoning_of_tool_call_turns_must_come_back_with_tools() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_rules(request(messages=history(None), tools=(Tool("f"),)), Thinking())
    assert caught.value.message == PASSBACK_MESSAGE
    check_rules(request(messages=history(""), tools=(Tool("f"),)), Thinking())
    # Without tools the rule does not apply.
    check_rules(request(messages=history(None)), Thinking())


def test_passback_strictness_is_configurable() -> None:
    with_tools = {"tools": (Tool("f"),)}
    check_rules(request(messages=history(None), **with_tools), Thinking(passback="off"))
    with pytest.raises(InvalidRequest):
        check_rules(request(messages=history(""), **with_tools), Thinking(passback="nonempty"))
    check_rules(request(messages=history("why"), **with_tools), Thinking(passback="nonempty"))


@pytest.mark.parametrize(
    ("effort", "expected"),
    [
        (None, 64),
        ("minimal", 64),
        ("low", 64),
        ("medium", 64),
        ("high", 64),
        ("xhigh", 64),
        ("max", 256),
        ("ultra", 256),
    ],
)
def test_efforts_map_to_budgets(effort: str | None, expected: int) -> None:
    assert budget(request(reasoning_effort=effort), Reasoning(), Thinking()) == expected


def test_the_effort_table_and_budgets_are_configurable() -> None:
    rules = Thinking(efforts={"low": "low", "max": "max"}, default_effort="low")
    spec = Reasoning(budgets={"low": 8, "max": 99})
    assert budget(request(), spec, rules) == 8
    assert budget(request(reasoning_effort="max"), spec, rules) == 99


def test_unknown_effort_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="Invalid reasoning_effort value `extreme`") as caught:
        budget(request(reasoning_effort="extreme"), Reasoning(), Thinking())
    assert caught.value.param == "reasoning_effort"


def test_an_effort_without_a_budget_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="no thinking budget"):
        budget(request(reasoning_effort="max"), Reasoning(budgets={"high": 1}), Thinking())


def test_a_clients_budget_wins_and_a_model_without_reasoning_has_none() -> None:
    assert budget(request(thinking_budget=5), Reasoning(), Thinking()) == 5
    assert budget(request(), Reasoning(style="none"), Thinking()) == 0
