"""Rendering chat prompts with the model's own Jinja chat template, sandboxed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from deepwell.errors import ConfigurationError, InvalidRequest
from deepwell.vocabulary import Message


class _TemplateRaised(Exception):
    """``raise_exception`` was called by the template: the messages are not acceptable."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A compiled chat template. Rendering never runs untrusted code outside the sandbox."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        if not source:
            raise ConfigurationError("the model has no chat template")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise ConfigurationError(f"the model's chat template does not compile: {exc}") from exc
        self._bos = bos_token
        self._eos = eos_token

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        """The prompt text for ``messages``; a template's own objection is a 400.

        A last assistant message with ``prefix`` is the start of the reply: the prompt
        ends inside that turn (after the generation prompt), with its content.
        ``variables`` are extra template variables (a thinking switch).
        """
        prefix = messages[-1] if messages and messages[-1].prefix else None
        if prefix is not None:
            messages, add_generation_prompt = messages[:-1], True
        try:
            text = self._template.render(
                messages=[_to_template(m) for m in messages],
                tools=tools or None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos,
                eos_token=self._eos,
                **(variables or {}),
            )
        except _TemplateRaised as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        except TemplateError as exc:
            raise InvalidRequest(f"The messages could not be rendered: {exc}") from exc
        return text if prefix is None else text + (prefix.content or "")


def _to_template(message: Message) -> dict[str, Any]:
    """The dict shape Hugging Face chat templates expect for one message."""
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.reasoning_content is not None:
        out["reasoning_content"] = message.reasoning_content
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _arguments(arguments: str) -> Any:
    """Templates print arguments with ``tojson``: give them the parsed object when it parses."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
