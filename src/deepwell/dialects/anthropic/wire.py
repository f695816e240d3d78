"""The Messages API request, as the wire carries it.

Lenient where Anthropic's clients send more than deepwell uses: unknown fields are
ignored, as are ``cache_control``, ``citations``, ``context_management``, ``container``,
``mcp_servers``, ``service_tier``, ``top_k`` and the other ``metadata`` fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextBlock(Wire):
    type: Literal["text"]
    text: str


class ImageBlock(Wire):
    type: Literal["image"]
    source: dict[str, Any] = Field(default_factory=dict)


class DocumentBlock(Wire):
    type: Literal["document"]


class ToolUseBlock(Wire):
    type: Literal["tool_use", "server_tool_use"]
    id: str
    name: str
    input: Any = None


class ToolResultBlock(Wire):
    type: Literal["tool_result", "web_search_tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | dict[str, Any]] | None = None
    is_error: bool = False


class ThinkingBlock(Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Wire):
    type: Literal["redacted_thinking"]
    data: str = ""


Block = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageIn(Wire):
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class ToolIn(Wire):
    """A client tool; ``type`` names a server tool (``web_search_20250305`` ...), which
    deepwell does not run: such tools, and tools with ``defer_loading``, stay out of
    the prompt."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    defer_loading: bool = False


class ToolChoiceIn(Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class ThinkingIn(Wire):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Field(ge=0)] | None = None


class OutputConfig(Wire):
    effort: str | None = None


class Metadata(Wire):
    user_id: str | None = None


class MessagesRequest(Wire):
    model: str
    max_tokens: Annotated[int, Field(ge=1)]
    messages: list[MessageIn]
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingIn | None = None
    output_config: OutputConfig | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: Metadata | None = None


class CountTokensRequest(Wire):
    """``/v1/messages/count_tokens``: a request without ``max_tokens``."""

    model: str
    messages: list[MessageIn]
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingIn | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
