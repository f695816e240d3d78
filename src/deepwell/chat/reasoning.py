"""Thinking mode in prompt terms: what the template sees, and where the reply begins.

A ``native`` model's template has its own thinking switch and reads earlier
``reasoning_content``; a ``prompted`` model gets an instruction in its system prompt,
and earlier reasoning is written back into the assistant turns inside the think
markers, the way the model produced it. Either way DeepSeek's rule holds: reasoning
of a turn that called no tool is dropped from the prompt, that of a turn that called
tools is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from deepwell.settings import Reasoning
from deepwell.vocabulary import Message


def history(messages: Sequence[Message], spec: Reasoning, *, thinking: bool) -> list[Message]:
    """``messages`` as the chat template should see them."""
    out = [_earlier_turn(m, spec, thinking=thinking) for m in messages]
    if thinking and spec.style == "prompted":
        out = _with_instruction(out, spec.instruction)
    return out


def template_variables(spec: Reasoning, *, thinking: bool) -> dict[str, Any]:
    """The template's own thinking switch, for native models."""
    return {spec.switch: thinking} if spec.style == "native" else {}


def think_opening(prompt: str, spec: Reasoning) -> str:
    """What follows the rendered prompt so that the reply starts inside a think block
    (a native template may have opened it already)."""
    opener = spec.open
    if spec.style == "native" and prompt.rstrip().endswith(opener.strip()):
        return ""
    return opener


def _earlier_turn(message: Message, spec: Reasoning, *, thinking: bool) -> Message:
    if message.role != "assistant" or message.prefix:
        return message
    if not message.tool_calls or not thinking or message.reasoning_content is None:
        return replace(message, reasoning_content=None)
    if spec.style != "prompted":
        return message
    written = f"{spec.open}{message.reasoning_content}{spec.close}{message.content or ''}"
    return replace(message, content=written, reasoning_content=None)


def _with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    if not instruction:
        return messages
    if messages and messages[0].role == "system":
        first = messages[0]
        joined = f"{first.content}\n\n{instruction}" if first.content else instruction
        return [replace(first, content=joined), *messages[1:]]
    return [Message("system", instruction), *messages]
