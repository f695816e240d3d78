"""Request bodies of Continue, Tabby, Roo Code and aider, as they send them (shorter
generations aside), posted to a real server; each asserts what that client reads back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.conftest import MODEL
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

# DeepSeek's special tokens are written with full-width bars.
FIM_BEGIN, FIM_HOLE, FIM_END, EOS = (
    "<｜fim▁begin｜>",  # noqa: RUF001
    "<｜fim▁hole｜>",  # noqa: RUF001
    "<｜fim▁end｜>",  # noqa: RUF001
    "<｜end▁of▁sentence｜>",  # noqa: RUF001
)
PREFIX = "def is_even(n: int) -> bool:\n"
SUFFIX = "\n\n\nassert is_even(4)\n"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file of the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


def post_stream(
    server: Server, path: str, body: dict[str, Any], *, accept: str = "text/event-stream"
) -> list[Any]:
    """The ``data:`` payloads of a streamed reply, ``[DONE]`` as a string."""
    headers = {"Authorization": f"Bearer {server.key}", "Accept": accept}
    with httpx.stream(
        "POST", server.base_url + path, json=body, headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(_payloads(response.iter_lines()))


def _payloads(lines: Iterator[str]) -> Iterator[Any]:
    for line in lines:
        if not line.startswith("data:"):
            assert line == "" or line.startswith(":"), line
            continue
        data = line.removeprefix("data:").strip()
        yield data if data == "[DONE]" else json.loads(data)


def deepseek_stream(payloads: list[Any]) -> list[dict[str, Any]]:
    """The chunks, checked for the shape every client here relies on: one choice in
    each (never an empty ``choices``), ``finish_reason`` only on the last, which also
    carries the usage, then ``[DONE]``."""
    assert payloads[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = payloads[:-1]
    assert chunks
    assert all(len(chunk["choices"]) == 1 for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert [c["choices"][0]["finish_reason"] is not None for c in chunks] == [False] * (
        len(chunks) - 1
    ) + [True]
    assert [c.get("usage") is not None for c in chunks][-1]
    assert not any(c.get("usage") for c in chunks[:-1])
    return chunks


# -- Continue ------------------------------------------------------------------------


def test_continue_fim(server: Server) -> None:
    """Continue's autocomplete: 8 stops (DeepSeek's special tokens among them),
    ``Accept: application/json`` with ``stream: true`` (it reads SSE all the same) and
    ``chunk.choices[0].text`` on every chunk. It sends ``max_tokens: 4096``."""
    body = {
        "model": MODEL,
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "max_tokens": 16,
        "temperature": 0.01,
        "stop": [FIM_BEGIN, FIM_HOLE, FIM_END, "//", EOS, "/src/", "#- coding: utf-8", "```"],
        "stream": True,
    }
    chunks = deepseek_stream(
        post_stream(server, "/beta/completions", body, accept="application/json")
    )
    assert all(isinstance(c["choices"][0]["text"], str) for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks)


def test_continue_chat_with_empty_reasoning_content(server: Server) -> None:
    """Continue puts ``reasoning_content: ""`` on every assistant message, thinking or
    not, sends no ``stream_options``, and reads ``delta.content``, then
    ``delta.tool_calls``, then ``delta.reasoning_content`` of ``choices[0]``."""
    messages = [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!", "reasoning_content": ""},
        {"role": "user", "content": "Say bye."},
    ]
    for thinking in ("enabled", "disabled"):
        body = {
            "model": MODEL,
            "messages": messages,
            "max_tokens": 16,
            "stream": True,
            "thinking": {"type": thinking},
            "tools": TOOLS,
        }
        chunks = deepseek_stream(post_stream(server, "/chat/completions", body))
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert not any(d.get("content") and d.get("tool_calls") for d in deltas)
        assert "".join(d.get("content") or "" for d in deltas) or any(
            d.get("tool_calls") for d in deltas
        )


# -- Tabby ---------------------------------------------------------------------------


def test_tabby_fim(server: Server) -> None:
    """Tabby's ``deepseek/completion``: ``suffix`` may be null, ``presence_penalty`` is
    always sent; every chunk must hold ``choices[].text`` as a string, and it stops at
    the first chunk with a ``finish_reason``."""
    for suffix in (SUFFIX, None):
        body = {
            "model": MODEL,
            "prompt": PREFIX,
            "suffix": suffix,
            "max_tokens": 12,
            "temperature": 0.1,
            "stream": True,
            "presence_penalty": 0.0,
        }
        chunks = deepseek_stream(post_stream(server, "/beta/completions", body))
        assert all(isinstance(c["choices"][0]["text"], str) for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


# -- Roo Code ------------------------------------------------------------------------


def test_roo_code_chat(server: Server) -> None:
    """Roo Code sends its system prompt as the first user message, tools with
    ``parallel_tool_calls``, ``stream_options.include_usage`` and temperature 0.3, and
    reads ``usage.prompt_tokens_details.cached_tokens``."""
    system = "You are Roo, a coding assistant. Answer in one short sentence."
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"{system}\n\nWhat is a Python list?"}],
        "max_tokens": 24,
        "temperature": 0.3,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "thinking": {"type": "disabled"},
    }
    chunks = deepseek_stream(post_stream(server, "/chat/completions", body))
    assert all("usage" in c for c in chunks)
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_cache_hit_tokens"]


# -- aider ---------------------------------------------------------------------------


def test_aider_continues_a_length_finish_with_prefix(server: Server) -> None:
    """aider (through LiteLLM, on the ``/beta`` base) sends temperature 0 and ends with a
    system message; after a ``length`` finish it sends the same messages plus the text
    so far as an assistant message with ``prefix: true``, and joins the two."""
    messages = [
        {"role": "user", "content": "Write a Python function that adds two numbers."},
        {"role": "system", "content": "Reply with code only."},
    ]
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": messages,
        "temperature": 0,
        "stream": True,
        "max_tokens": 8,
        "thinking": {"type": "disabled"},
    }
    first = deepseek_stream(post_stream(server, "/beta/chat/completions", body))
    assert first[-1]["choices"][0]["finish_reason"] == "length"
    partial = "".join(c["choices"][0]["delta"].get("content") or "" for c in first)
    assert partial
    body["messages"] = [*messages, {"role": "assistant", "content": partial, "prefix": True}]
    more = deepseek_stream(post_stream(server, "/beta/chat/completions", body))
    rest = "".join(c["choices"][0]["delta"].get("content") or "" for c in more)
    assert rest
