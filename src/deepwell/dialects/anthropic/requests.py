"""Messages API requests → core requests.

- ``model``: a public id as it is; else the longest configured prefix that begins it
  (``claude-opus…`` → pro, other ``claude…`` → flash); else the core's 400.
- ``system`` (a string or text blocks) and ``system`` messages in the middle of
  ``messages`` become system turns where they stand; Claude Code's per-session billing
  line is dropped (configurable), since at token 0 it would defeat the prefix cache.
- Blocks: ``text``; ``tool_use`` → a tool call; ``tool_result`` → a tool turn;
  ``thinking`` on an assistant turn → its reasoning, passed back as the OpenAI dialect's
  ``reasoning_content`` is; ``redacted_thinking`` is dropped; ``image`` and ``document``
  are a 400 (the embedded model reads text only).
- ``max_tokens`` is lowered to what the model and the context allow, not refused.
- ``messages`` may not be empty (a 400, as Anthropic's); a last ``assistant`` turn is a
  finished turn, not the start of the reply.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

from deepwell.core.types import GenerationRequest
from deepwell.dialects.anthropic.wire import (
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    MessageIn,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ThinkingIn,
    ToolChoiceIn,
    ToolIn,
    ToolResultBlock,
    ToolUseBlock,
)
from deepwell.errors import InvalidRequest
from deepwell.settings import AnthropicSettings
from deepwell.vocabulary import Message, Sampling, Tool, ToolCall, ToolChoice

BILLING_HEADER = "x-anthropic-billing-header:"
NO_IMAGES = "This model does not support image"
# Claude Code may name a model with a context-window tag: ``deepseek-v4-pro[1m]``.
WINDOW_TAG = "[1m]"


def to_request(
    body: MessagesRequest | CountTokensRequest,
    settings: AnthropicSettings,
    public_models: Collection[str],
) -> GenerationRequest:
    if not body.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    thinking = body.thinking
    max_tokens = body.max_tokens if isinstance(body, MessagesRequest) else None
    tools = tuple(_tool(t) for t in body.tools or () if _served(t))
    return GenerationRequest(
        model=public_model(body.model, settings, public_models),
        messages=tuple(_messages(body, settings)),
        max_tokens=max_tokens,
        clamp_max_tokens=True,
        sampling=_sampling(body),
        stop=tuple(body.stop_sequences or ()) if isinstance(body, MessagesRequest) else (),
        thinking=_thinking(thinking),
        user_id=body.metadata.user_id if body.metadata is not None else None,
        tools=tools,
        tool_choice=_tool_choice(body.tool_choice) if tools else None,
        parallel_tool_calls=not (body.tool_choice and body.tool_choice.disable_parallel_tool_use),
        reasoning_effort=body.output_config.effort if body.output_config is not None else None,
        thinking_budget=thinking.budget_tokens if thinking is not None else None,
    )


def public_model(name: str, settings: AnthropicSettings, public_models: Collection[str]) -> str:
    """The public model id a Messages request names."""
    name = name.removesuffix(WINDOW_TAG)
    if name in public_models:
        return name
    prefixes = [prefix for prefix in settings.models if name.startswith(prefix)]
    return settings.models[max(prefixes, key=len)] if prefixes else name


def _sampling(body: MessagesRequest | CountTokensRequest) -> Sampling:
    if not isinstance(body, MessagesRequest):
        return Sampling()
    return Sampling(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
    )


def _thinking(thinking: ThinkingIn | None) -> bool | None:
    """On unless disabled (``adaptive`` is on); None leaves it to the model's default."""
    return None if thinking is None else thinking.type != "disabled"


def _served(tool: ToolIn) -> bool:
    """Client tools are; server tools (web search ...) and deferred ones are not."""
    return tool.type in (None, "custom") and not tool.defer_loading


def _tool(tool: ToolIn) -> Tool:
    return Tool(tool.name, tool.description, tool.input_schema)


def _tool_choice(choice: ToolChoiceIn | None) -> ToolChoice | None:
    if choice is None:
        return None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice: a `tool` choice needs `name`", param="tool_choice")
        return ToolChoice("function", choice.name)
    if choice.type == "any":
        return ToolChoice("required")
    return ToolChoice(choice.type)


def _messages(
    body: MessagesRequest | CountTokensRequest, settings: AnthropicSettings
) -> Iterator[Message]:
    system = _system(body.system, drop_billing=settings.drop_billing_header)
    if system:
        yield Message("system", system)
    for index, message in enumerate(body.messages):
        yield from _turn(index, message)


def _system(system: str | list[TextBlock] | None, *, drop_billing: bool) -> str:
    if system is None:
        return ""
    texts = [system] if isinstance(system, str) else [block.text for block in system]
    if drop_billing and texts and texts[0].startswith(BILLING_HEADER):
        _, _, rest = texts[0].partition("\n")
        texts[0] = rest
    return "\n\n".join(text for text in texts if text)


def _turn(index: int, message: MessageIn) -> Iterator[Message]:
    if isinstance(message.content, str):
        yield Message(message.role, message.content)
        return
    if message.role == "assistant":
        yield _assistant(index, message.content)
        return
    texts: list[str] = []
    for at, block in enumerate(message.content):
        where = f"messages[{index}].content[{at}]"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolResultBlock):
            yield Message("tool", _result_text(block, where), tool_call_id=block.tool_use_id)
        elif isinstance(block, ImageBlock | DocumentBlock):
            raise InvalidRequest(
                NO_IMAGES
                if isinstance(block, ImageBlock)
                else "This model does not support documents",
                param=where,
            )
        elif not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            raise InvalidRequest(
                f"{where}: a {block.type} block belongs to an assistant turn", param=where
            )
    if texts:
        yield Message(message.role, "\n\n".join(texts))


def _assistant(index: int, blocks: list[Any]) -> Message:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for at, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input or {})))
        elif not isinstance(block, RedactedThinkingBlock):
            where = f"messages[{index}].content[{at}]"
            raise InvalidRequest(
                f"{where}: a {block.type} block belongs to a user turn", param=where
            )
    return Message(
        "assistant",
        "".join(texts),
        reasoning_content="".join(reasoning) if reasoning else None,
        tool_calls=tuple(calls),
    )


def _result_text(block: ToolResultBlock, where: str) -> str:
    content = block.content
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, ImageBlock):
            raise InvalidRequest(NO_IMAGES, param=where)
        if isinstance(part, TextBlock):
            texts.append(part.text)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n\n".join(texts)
