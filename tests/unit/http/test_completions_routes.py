"""``POST /beta/completions`` (FIM) over HTTP, on a fake engine that knows FIM tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_fakes import KEY, FakeKeys, FakeWallet

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings

BETA = ["/beta", "/v1/beta"]
MIDDLE = "    return x"
SPECIALS = {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}


class FimEngine(FakeEngine):
    """The fake engine, with FIM markers as single special tokens."""

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        if special and text in SPECIALS:
            return [SPECIALS[text]]
        return super().tokenize(text, special=special)


@pytest.fixture
def engine() -> FakeEngine:
    return FimEngine(MIDDLE, context_length=512)


def fim(**fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "deepseek-v4-flash")
    fields.setdefault("prompt", "def f(x):\n")
    fields.setdefault("suffix", "\n")
    return fields


def assert_error(response: httpx.Response, status: int, message: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]
    return error


def sse_payloads(response: httpx.Response) -> list[Any]:
    blocks = response.text.split("\n\n")
    assert blocks[-1] == ""
    payloads: list[Any] = []
    for block in blocks[:-1]:
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


# -- success -------------------------------------------------------------------------


@pytest.mark.parametrize("base", BETA)
async def test_fim(client: httpx.AsyncClient, base: str) -> None:
    response = await client.post(f"{base}/completions", json=fim())
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["object"] == "text_completion"
    assert result["model"] == "deepseek-v4-flash"
    assert result["system_fingerprint"].startswith("fp_")
    assert result["choices"] == [
        {"index": 0, "text": MIDDLE, "logprobs": None, "finish_reason": "stop"}
    ]
    prompt_tokens = 3 + len("def f(x):\n") + len("\n")
    usage = result["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == len(MIDDLE)
    assert usage["total_tokens"] == prompt_tokens + len(MIDDLE)
    assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == prompt_tokens
    assert usage["prompt_tokens_details"] == {"cached_tokens": usage["prompt_cache_hit_tokens"]}


async def test_echo(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/completions", json=fim(echo=True))
    assert response.json()["choices"][0]["text"] == "def f(x):\n" + MIDDLE


async def test_max_tokens_and_stop(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/completions", json=fim(max_tokens=4))
    assert response.json()["choices"][0] == {
        "index": 0,
        "text": MIDDLE[:4],
        "logprobs": None,
        "finish_reason": "length",
    }
    response = await client.post("/beta/completions", json=fim(stop="return"))
    assert response.json()["choices"][0]["text"] == "    "


@pytest.mark.parametrize(
    "fields", [{"suffix": None}, {"prompt": ""}, {"prompt": "", "suffix": ""}, {"n": 1}]
)
async def test_edge_inputs_are_served(client: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    response = await client.post("/beta/completions", json=fim(**fields))
    assert response.status_code == 200, response.text


async def test_logprobs_without_engine_logprobs_are_empty_lists(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/beta/completions", json=fim(logprobs=3))
    assert response.json()["choices"][0]["logprobs"] == {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }


async def test_generation_is_finished_after_the_response(
    client: httpx.AsyncClient, engine: FakeEngine
) -> None:
    await client.post("/beta/completions", json=fim())
    await client.post("/beta/completions", json=fim(stream=True))
    assert engine.active == 0


# -- streaming -----------------------------------------------------------------------


@pytest.mark.parametrize("base", BETA)
async def test_stream(client: httpx.AsyncClient, base: str) -> None:
    response = await client.post(f"{base}/completions", json=fim(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    *chunks, done = sse_payloads(response)
    assert done == "[DONE]"
    assert all(c["object"] == "text_completion" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["text"] for c in chunks) == MIDDLE
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == len(MIDDLE)


async def test_stream_with_include_usage_and_echo(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/beta/completions",
        json=fim(stream=True, echo=True, stream_options={"include_usage": True}),
    )
    *chunks, _ = sse_payloads(response)
    assert chunks[0]["choices"][0]["text"] == "def f(x):\n"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == len(MIDDLE)


async def test_stream_errors_before_the_stream_are_plain_responses(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/beta/completions", json=fim(stream=True, max_tokens=4097))
    assert_error(response, 400, "the valid range of max_tokens is [1, 4096]")


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["", "/v1"])
async def test_outside_beta_is_a_400_that_points_to_beta(
    client: httpx.AsyncClient, base: str
) -> None:
    response = await client.post(f"{base}/completions", json=fim())
    error = assert_error(response, 400, "use the base URL ending in /beta")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/completions", "/beta/completions"])
async def test_missing_key_is_a_401(
    anonymous: httpx.AsyncClient, keys: FakeKeys, path: str
) -> None:
    response = await anonymous.post(path, json=fim())
    assert_error(response, 401, "Authentication Fails")


async def test_max_tokens_over_4096_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/completions", json=fim(max_tokens=5000))
    error = assert_error(
        response, 400, "Invalid max_tokens value, the valid range of max_tokens is [1, 4096]"
    )
    assert error["param"] == "max_tokens"


async def test_unknown_model(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/completions", json=fim(model="gpt-4"))
    assert_error(response, 400, "Model Not Exist")


async def test_thinking_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/beta/completions", json=fim(thinking={"type": "enabled"}))
    assert_error(response, 400, "only available in non-thinking mode")


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"null"])
async def test_unparseable_bodies(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post("/beta/completions", content=raw)
    assert response.status_code in {400, 422}, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": 1}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"suffix": ["a"]}, "suffix"),
        ({"logprobs": "all"}, "logprobs"),
        ({"temperature": "warm"}, "temperature"),
        ({"echo": "sometimes"}, "echo"),
        ({"stream_options": {"include_usage": "x"}}, "stream_options.include_usage"),
    ],
)
async def test_wrong_types_are_422s(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await client.post("/beta/completions", json=fim(**fields))
    error = assert_error(response, 422, "Failed to deserialize the JSON body")
    assert error["param"] == param


@pytest.mark.parametrize(
    ("fields", "param"), [({"logprobs": 21}, "logprobs"), ({"temperature": -1}, "temperature")]
)
async def test_out_of_range_values_are_400s(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await client.post("/beta/completions", json=fim(**fields))
    error = assert_error(response, 400, f"Invalid {param} value")
    assert error["param"] == param


async def test_a_model_without_fim_is_a_400(tmp_path: Path, clean_env: None) -> None:
    app = create_app(
        Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: FakeEngine()}, keys=FakeKeys()
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://deepwell.test",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as client,
    ):
        response = await client.post("/beta/completions", json=fim())
    error = assert_error(response, 400, "does not support FIM completion")
    assert error["param"] == "model"


@pytest.mark.parametrize("stream", [False, True])
async def test_no_money_is_a_402(
    client: httpx.AsyncClient, wallet: FakeWallet, stream: bool
) -> None:
    wallet.refuse = True
    response = await client.post("/beta/completions", json=fim(stream=stream))
    error = assert_error(response, 402, "Insufficient Balance")
    assert error == {
        "message": "Insufficient Balance",
        "type": "unknown_error",
        "param": None,
        "code": "invalid_request_error",
    }
    assert wallet.charges == []


async def test_a_completion_is_settled_once(client: httpx.AsyncClient, wallet: FakeWallet) -> None:
    body = (await client.post("/beta/completions", json=fim())).json()
    (charge,) = wallet.charges
    assert charge.request_id == body["id"]
    assert charge.output_tokens == body["usage"]["completion_tokens"] == len(MIDDLE)
