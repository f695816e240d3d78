"""The request as the core sees it: frozen dataclasses, free of any wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters; ``None`` means the model's default."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON Schema (None: no
    parameters). ``strict`` asks for arguments constrained to the schema (``/beta``)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``none``, ``auto``, ``required``, or ``function`` with the ``name`` to call."""

    mode: Literal["none", "auto", "required", "function"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One chat generation, as converted from any dialect."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
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
