"""The request as the core sees it: a frozen dataclass, free of any wire format, in the
shared vocabulary (``deepwell.vocabulary``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepwell.vocabulary import Message, Sampling, Tool, ToolChoice


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One chat generation, as converted from any dialect."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    # True: a ``max_tokens`` past the model's output limit or the context's room is
    # lowered to fit (the Anthropic dialect, whose clients send 32000 or more), not a 400.
    clamp_max_tokens: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    thinking: bool | None = None
    user_id: str | None = None
    # Sent to the ``/beta`` base: chat prefix completion is allowed there.
    beta: bool = False
    tools: tuple[Tool, ...] = ()
    # None: ``auto`` when there are tools, else ``none``.
    tool_choice: ToolChoice | None = None
    json_output: bool = False
    # response_format json_schema: the JSON Schema the answer must be valid against.
    response_schema: Mapping[str, Any] | None = None
    # False: at most one tool call in the reply.
    parallel_tool_calls: bool = True
    reasoning_effort: str | None = None
    # A thinking budget in tokens asked for by the client; None: the effort's budget.
    thinking_budget: int | None = None
    # None: no logprobs; else how many top alternatives come with each token (0-20).
    logprobs: int | None = None
