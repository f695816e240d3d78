"""A remote backing model over two real ``llama-server`` upstreams on the default GGUF:
every feature through the openai SDK, prefix-affine routing, and a replica killed under load."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from deepwell.models.sources import ensure_model_file
from deepwell.settings import DEFAULT_MODEL, BackingModel
from tests.e2e.conftest import PLAIN, Server, running_server, server_env
from tests.e2e.upstreams import Upstream, llama_server

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
WORDS = [
    "river",
    "stone",
    "light",
    "garden",
    "window",
    "paper",
    "engine",
    "signal",
    "harbor",
    "forest",
    "market",
    "silver",
]


@dataclass
class Farm:
    server: Server
    upstreams: list[Upstream]

    def replicas(self) -> dict[str, dict[str, int]]:
        health = httpx.get(f"{self.server.base_url}/health", timeout=5).json()
        figures: dict[str, dict[str, int]] = health["engines"][DEFAULT_MODEL]["replicas"]
        return figures

    def requests(self) -> dict[str, int]:
        return {url: figures["requests"] for url, figures in self.replicas().items()}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    data_dir = tmp_path_factory.mktemp("remote-data")
    model = ensure_model_file(DEFAULT_MODEL, BackingModel(), data_dir / "models", progress=False)
    with ExitStack() as stack:
        upstreams = [
            stack.enter_context(llama_server(model, data_dir / f"upstream{i}.log"))
            for i in range(2)
        ]
        config = data_dir / "deepwell.toml"
        urls = json.dumps([u.url for u in upstreams])
        config.write_text(
            f'[backing_models."{DEFAULT_MODEL}".engine]\n'
            f'kind = "remote"\napi = "llama-server"\nurls = {urls}\n'
            "max_in_flight = 4\nhealth_interval_s = 1\neject_after = 1\n"
        )
        env = server_env(data_dir, DEEPWELL_CONFIG_FILE=str(config))
        server = stack.enter_context(running_server(data_dir, env))
        yield Farm(server, upstreams)


def text(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(words))


def test_chat_and_streaming(farm: Farm) -> None:
    client = farm.server.client()
    messages: Any = [{"role": "user", "content": "Say hello."}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, temperature=0, extra_body=PLAIN
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 8
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=PLAIN,
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_thinking_tools_and_json(farm: Farm) -> None:
    client = farm.server.client()
    thought = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+3?"}], max_tokens=40
    )
    message: Any = thought.choices[0].message
    assert message.reasoning_content
    assert thought.usage is not None
    details: Any = thought.usage.completion_tokens_details
    assert details.reasoning_tokens > 0
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    called = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the tool."}],
        tools=tools,
        max_tokens=40,
        temperature=0,
        extra_body=PLAIN,
    )
    assert called.choices[0].finish_reason in ("tool_calls", "stop", "length")
    shaped = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a JSON object with a key a."}],
        response_format={"type": "json_object"},
        max_tokens=30,
        temperature=0,
        extra_body=PLAIN,
    )
    if shaped.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(shaped.choices[0].message.content or ""), dict)


def test_fim(farm: Farm) -> None:
    middle = farm.server.client("/beta").completions.create(
        model=MODEL, prompt="def add(a, b):\n", suffix="\n\nprint(add(1, 2))", max_tokens=12
    )
    assert middle.choices[0].text
    assert middle.usage is not None
    assert middle.usage.completion_tokens <= 12


def test_a_conversation_keeps_to_the_replica_with_its_prefix(farm: Farm) -> None:
    client = farm.server.client()
    before = farm.requests()
    history: Any = [{"role": "system", "content": text(1, 160)}]
    hits = []
    for turn in range(3):
        history.append({"role": "user", "content": f"Turn {turn}: name one word."})
        reply = client.chat.completions.create(
            model=MODEL, messages=history, max_tokens=6, temperature=0, extra_body=PLAIN
        )
        assert reply.usage is not None
        usage: Any = reply.usage
        hits.append(usage.prompt_cache_hit_tokens)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    after = farm.requests()
    grew = {url: after[url] - before[url] for url in after}
    assert sorted(grew.values()) == [0, 3], grew
    assert hits[0] == 0
    assert hits[1] > 0
    assert hits[2] > hits[1]


def test_other_conversations_spread_over_the_replicas(farm: Farm) -> None:
    client = farm.server.client()
    before = farm.requests()
    # Where a conversation hashes to depends on the replicas' ports, new in every run: that
    # 16 conversations all hash to one of two replicas is a 2**-15 chance.
    for seed in range(16):
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": text(seed + 10, 80)},
                {"role": "user", "content": "Hi"},
            ],
            max_tokens=1,
            extra_body=PLAIN,
        )
    after = farm.requests()
    assert all(after[url] > before[url] for url in after)


async def _stream(server: Server, user: str) -> str:
    client = server.async_client()
    try:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": text(zlib.crc32(user.encode()) % 97, 70)},
                {"role": "user", "content": "Count from 1 to 60."},
            ],
            max_tokens=120,
            temperature=0,
            stream=True,
            user=user,
            extra_body=PLAIN,
        )
        async for _ in stream:
            pass
        return "done"
    except openai.APIError as exc:
        return f"error: {exc.message}"
    finally:
        await client.close()


def test_killing_an_upstream_ends_only_its_streams(farm: Farm) -> None:
    async def load() -> list[str]:
        tasks = [asyncio.create_task(_stream(farm.server, f"user-{i}")) for i in range(6)]
        await asyncio.sleep(4)
        victim = farm.upstreams[0]
        assert farm.replicas()[victim.url]["in_flight"] > 0
        victim.kill()
        return await asyncio.gather(*tasks)

    outcomes = asyncio.run(load())
    errors = [o for o in outcomes if o.startswith("error")]
    assert errors, outcomes
    assert len(errors) < len(outcomes), outcomes
    assert all("model server" in e for e in errors), errors
    # The rest is served: new requests go to the replica still up.
    client = farm.server.client()
    for seed in range(3):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Hello {seed}"}],
            max_tokens=2,
            extra_body=PLAIN,
        )
        assert reply.choices[0].message.content is not None
    assert farm.replicas()[farm.upstreams[0].url]["healthy"] == 0
