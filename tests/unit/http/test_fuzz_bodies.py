"""Whatever JSON a client sends, the answer is never a 500, and errors use the envelope."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import httpx
import pytest

EXAMPLES = 500

VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2, 3.5, -2.5, 1e30, 2**63, "", "x",
    "sk-", "deepseek-v4-flash", "auto", "required", "none", "enabled", "json_object",
    [], [1], ["a", "b"], [None], {}, {"type": "enabled"}, {"type": "function"},
    {"name": "f"}, [{"role": "user"}], [{"role": "user", "content": None}],
    [{"role": "tool", "content": "x"}], "\u0000", "\ud7ff" * 3, "x" * 5000,
]  # fmt: skip

CHAT = {
    "model": "deepseek-v4-flash",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ],
    "max_tokens": 4,
    "thinking": {"type": "disabled"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
}
CHAT_FIELDS = [
    "model", "messages", "max_tokens", "thinking", "reasoning_effort", "response_format",
    "stop", "stream", "stream_options", "temperature", "top_p", "frequency_penalty",
    "presence_penalty", "seed", "logprobs", "top_logprobs", "user_id", "tools", "tool_choice",
    "max_completion_tokens",
]  # fmt: skip
FIM = {"model": "deepseek-v4-flash", "prompt": "def f(", "suffix": "\n", "max_tokens": 4}
FIM_FIELDS = [
    "model", "prompt", "suffix", "max_tokens", "echo", "logprobs", "stop", "stream",
    "stream_options", "temperature", "top_p", "seed", "thinking",
]  # fmt: skip


def _mutate(rng: random.Random, base: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    body = copy.deepcopy(base)
    for _ in range(rng.choice((1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.15:
            body.pop(rng.choice(fields), None)
        elif roll < 0.35 and isinstance(body.get("messages"), list) and body["messages"]:
            message = rng.choice(body["messages"])
            if isinstance(message, dict):
                key = rng.choice(["role", "content", "prefix", "tool_calls", "tool_call_id"])
                message[key] = rng.choice(VALUES)
        elif roll < 0.45 and isinstance(body.get("tools"), list) and body["tools"]:
            tool = body["tools"][0]
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
                key = rng.choice(["name", "parameters", "strict", "description"])
                tool["function"][key] = rng.choice(VALUES)
        else:
            body[rng.choice(fields)] = rng.choice(VALUES)
    return body


async def _check(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    response = await client.post(path, content=json.dumps(body))
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str)
        assert error["message"]


@pytest.mark.parametrize("seed", range(5))
async def test_chat_never_answers_500(client: httpx.AsyncClient, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(EXAMPLES // 5):
        path = rng.choice(["/chat/completions", "/beta/chat/completions"])
        await _check(client, path, _mutate(rng, CHAT, CHAT_FIELDS))


@pytest.mark.parametrize("seed", range(5))
async def test_fim_never_answers_500(client: httpx.AsyncClient, seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(EXAMPLES // 5):
        await _check(client, "/beta/completions", _mutate(rng, FIM, FIM_FIELDS))
