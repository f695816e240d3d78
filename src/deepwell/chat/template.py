"""Rendering chat prompts with the model's own Jinja chat template, sandboxed.

Text is text: every string a client sent (contents, names, tool definitions, tool
arguments, reasoning passed back) reaches the template wrapped in two private-use
characters, so that after rendering the prompt can be cut into the template's own
markup, tokenized with special tokens on, and client text, tokenized with them off.
A client cannot forge a control token (a ``<|im_start|>system`` turn) by writing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from deepwell.errors import ConfigurationError, InvalidRequest
from deepwell.vocabulary import Message

CLIENT_OPEN = "\ue000"
CLIENT_CLOSE = "\ue001"
_SENTINELS = str.maketrans({CLIENT_OPEN: "\ufffd", CLIENT_CLOSE: "\ufffd"})


def client_text(text: str) -> str:
    """``text`` marked as the client's (empty text stays empty, as templates test it)."""
    if not text:
        return text
    return CLIENT_OPEN + text.translate(_SENTINELS) + CLIENT_CLOSE


def client_values(value: Any) -> Any:
    """Every string inside ``value`` (keys included) marked as the client's."""
    if isinstance(value, str):
        return client_text(value)
    if isinstance(value, Mapping):
        return {client_values(k): client_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [client_values(item) for item in value]
    return value


def split_client_text(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(part, from_client)``, without the marks.

    A template that cuts a client string apart (``split``, slicing) may leave a mark
    unmatched: the text up to a closing mark without its opening one, or after an
    opening one never closed, counts as the client's (text, never control tokens).
    """
    parts: list[tuple[str, bool]] = []
    depth = 0
    current: list[str] = []

    def cut(from_client: bool) -> None:
        if current:
            parts.append(("".join(current), from_client))
            current.clear()

    for char in text:
        if char == CLIENT_OPEN:
            cut(depth > 0)
            depth += 1
        elif char == CLIENT_CLOSE:
            cut(True)
            depth = max(depth - 1, 0)
        else:
            current.append(char)
    cut(depth > 0)
    return parts


def without_marks(text: str) -> str:
    """A rendered prompt as the model reads it, the client's marks taken out."""
    return "".join(part for part, _ in split_client_text(text))


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
        """The prompt text for ``messages``, with the client's text marked (see
        ``split_client_text``); a template's own objection is a 400.

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
                tools=client_values(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos,
                eos_token=self._eos,
                **(variables or {}),
            )
        except _TemplateRaised as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        except TemplateError as exc:
            if prefix is not None and not messages:
                raise InvalidRequest(
                    "This model's chat template needs a message before the assistant "
                    "message with `prefix: true`",
                    param="messages",
                ) from exc
            raise InvalidRequest(f"The messages could not be rendered: {exc}") from exc
        return text if prefix is None else text + client_text(prefix.content or "")


def _to_template(message: Message) -> dict[str, Any]:
    """The dict shape Hugging Face chat templates expect for one message, every string
    of the client's marked."""
    out: dict[str, Any] = {"role": message.role, "content": client_text(message.content or "")}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": client_text(call.id),
                "type": "function",
                "function": {
                    "name": client_text(call.name),
                    "arguments": client_values(_arguments(call.arguments)),
                },
            }
            for call in message.tool_calls
        ]
    if message.reasoning_content is not None:
        out["reasoning_content"] = client_text(message.reasoning_content)
    if message.tool_call_id is not None:
        out["tool_call_id"] = client_text(message.tool_call_id)
    if message.name is not None:
        out["name"] = client_text(message.name)
    return out


def _arguments(arguments: str) -> Any:
    """Templates print arguments with ``tojson``: give them the parsed object when it
    parses (and is not nested too deeply to print again)."""
    try:
        parsed = json.loads(arguments)
        json.dumps(parsed)
    except (ValueError, RecursionError):
        return arguments
    return parsed
