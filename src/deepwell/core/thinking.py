"""DeepSeek's thinking-mode rules: when it is on, what it refuses, what it costs.

- On unless the request (or a legacy alias) turns it off; ``reasoning_effort: "none"``
  turns it off too, unless ``thinking`` says otherwise. A model that cannot reason
  answers with an empty reasoning.
- ``tool_choice`` ``required`` or a named function is refused.
- Assistant turns with tool calls must carry their ``reasoning_content`` back when
  the request has tools (strictness configurable).
- ``reasoning_effort`` is normalised by a configurable table and picks a budget of
  reasoning tokens from the backing model's table; a client's own budget wins.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepwell.core.types import GenerationRequest
from deepwell.errors import InvalidRequest
from deepwell.models.registry import ResolvedModel
from deepwell.settings import Reasoning, Thinking
from deepwell.vocabulary import Message

# The effort that means no thinking (pydantic-ai's ``thinking=False``, OpenAI's Responses).
NO_THINKING = "none"
PASSBACK_MESSAGE = "The `reasoning_content` in the thinking mode must be passed back to the API."
TOOL_CHOICE_MESSAGE = "Thinking mode does not support this tool_choice"


class ReasoningNotPassedBack(InvalidRequest):
    """400: an assistant turn with tool calls came back without its reasoning (each
    dialect names the field it should have carried it in)."""

    def __init__(self) -> None:
        super().__init__(PASSBACK_MESSAGE)


def thinking_on(request: GenerationRequest, model: ResolvedModel) -> bool:
    """Whether the reply thinks: a legacy alias fixes it, else the request's ``thinking``,
    else its ``reasoning_effort`` (``none`` is off), else the model."""
    if model.thinking_fixed:
        return model.thinking
    if request.thinking is not None:
        return request.thinking
    if request.reasoning_effort == NO_THINKING:
        return False
    return model.thinking


def check_rules(request: GenerationRequest, rules: Thinking) -> None:
    """The requests thinking mode refuses (call only when thinking is on)."""
    choice = request.tool_choice
    if choice is not None and choice.mode in ("required", "function"):
        raise InvalidRequest(TOOL_CHOICE_MESSAGE, param="tool_choice")
    if request.tools and rules.passback != "off":
        _check_passback(request.messages, nonempty=rules.passback == "nonempty")


def _check_passback(messages: Sequence[Message], *, nonempty: bool) -> None:
    for message in messages:
        if message.role != "assistant" or not message.tool_calls:
            continue
        reasoning = message.reasoning_content
        if reasoning is None or (nonempty and not reasoning):
            raise ReasoningNotPassedBack()


def budget(request: GenerationRequest, spec: Reasoning, rules: Thinking) -> int:
    """The reasoning budget in tokens, before it is fitted to ``max_tokens``."""
    effort = _effort(request.reasoning_effort, rules)
    if request.thinking_budget is not None:
        return request.thinking_budget
    if spec.style == "none":
        return 0
    if effort not in spec.budgets:
        known = ", ".join(sorted(spec.budgets)) or "none"
        raise InvalidRequest(
            f"reasoning_effort `{effort}` has no thinking budget for this model "
            f"(configured: {known})",
            param="reasoning_effort",
        )
    return spec.budgets[effort]


def _effort(requested: str | None, rules: Thinking) -> str:
    """The budget name of the requested effort. ``none`` with thinking still on (turned
    on by ``thinking`` or a legacy alias) is the default effort, as DeepSeek ignores it."""
    name = rules.default_effort
    if requested is not None and requested != NO_THINKING:
        name = requested
    if name not in rules.efforts:
        accepted = ", ".join(rules.efforts)
        raise InvalidRequest(
            f"Invalid reasoning_effort value `{name}`, expected one of: {accepted}",
            param="reasoning_effort",
        )
    return rules.efforts[name]
