"""RemoteEngine against recorded request and response shapes of llama-server, vLLM and
SGLang: what is sent, how tokens, cache counts and endings come back, and failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from tests.unit.engine.remote.fakes import Upstream, answer, closed_url, sse

from deepwell.engine.base import (
    Admitted,
    Constraint,
    ConstraintError,
    Done,
    EngineEvent,
    EngineRequest,
    Piece,
)
from deepwell.engine.remote.apis import cache_salt
from deepwell.errors import EngineFailure, InvalidRequest, Overloaded
from deepwell.vocabulary import Sampling

PROMPT = tuple(ord(c) for c in "Hello there")


async def run(remote: Any, request: EngineRequest) -> list[EngineEvent]:
    return [event async for event in remote.generate(request)]


def text(events: list[EngineEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Piece))


def ids(word: str) -> list[int]:
    return [ord(c) for c in word]


async def test_llama_server_sends_token_ids_and_reads_tokens_and_cache(upstream: Upstream) -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        assert request.path == "/completion"
        body = sse(
            {"content": "Hi", "tokens": ids("Hi"), "stop": False, "timings": {"cache_n": 8}},
            {"content": "!", "tokens": ids("!"), "stop": False, "timings": {"cache_n": 8}},
            {"content": "", "tokens": [], "stop": True, "stop_type": "eos", "tokens_predicted": 3},
            done=False,
        )
        return web.Response(body=body)

    remote = upstream.engine("llama-server", handle)
    request = EngineRequest(PROMPT, max_tokens=5, sampling=Sampling(temperature=0, seed=7))
    events = await run(remote, request)
    assert sent[0]["prompt"] == list(PROMPT)
    assert sent[0] | {"n_predict": 5, "stream": True, "cache_prompt": True, "seed": 7} == sent[0]
    assert events[0] == Admitted(8)
    assert [e.tokens for e in events if isinstance(e, Piece)] == [1, 1, 1]
    assert text(events) == "Hi!"
    assert events[-1] == Done("stop", len(PROMPT), 3, 8)


async def test_stop_strings_are_applied_locally_and_named(upstream: Upstream) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        events = [{"tokens": [t], "stop": False} for t in ids("one. two")]
        return web.Response(body=sse(*events, done=False))

    remote = upstream.engine("llama-server", handle)
    events = await run(remote, EngineRequest(PROMPT, max_tokens=20, stop=(". ",)))
    assert text(events) == "one"
    done = events[-1]
    assert isinstance(done, Done)
    assert (done.reason, done.stop_sequence, done.completion_tokens) == ("stop", ". ", 5)


async def test_vllm_completions_with_salt_constraint_and_usage(upstream: Upstream) -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        assert request.path == "/v1/completions"
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 4},
        }
        body = sse(
            {
                "choices": [
                    {"index": 0, "text": "{}", "token_ids": ids("{}"), "finish_reason": None}
                ],
                "usage": usage,
            },
            {
                "choices": [{"index": 0, "text": "", "token_ids": [0], "finish_reason": "stop"}],
                "usage": usage,
            },
            {"choices": [], "usage": usage},
        )
        return web.Response(body=body)

    remote = upstream.engine("vllm", handle)
    schema = Constraint("json_schema", '{"type": "object"}')
    events = await run(remote, EngineRequest(PROMPT, 9, namespace="7/", constraint=schema))
    body = sent[0]
    assert body["prompt"] == list(PROMPT)
    assert body["model"] == "m"
    assert body["cache_salt"] == cache_salt("7/") != cache_salt("8/")
    assert body["structured_outputs"] == {"json": {"type": "object"}}
    assert body["return_token_ids"] is True
    assert events[0] == Admitted(4)
    assert text(events) == "{}"
    assert events[-1] == Done("stop", len(PROMPT), 2, 4)


async def test_vllm_logprobs_come_from_token_id_strings(upstream: Upstream) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        logprobs = {
            "tokens": ["token_id:65"],
            "token_logprobs": [-0.5],
            "top_logprobs": [{"token_id:65": -0.5, "token_id:66": -1.5}],
        }
        body = sse({"choices": [{"text": "A", "logprobs": logprobs, "finish_reason": "length"}]})
        return web.Response(body=body)

    remote = upstream.engine("vllm", handle)
    events = await run(remote, EngineRequest(PROMPT, 1, logprobs=1))
    piece = next(e for e in events if isinstance(e, Piece))
    assert piece.logprobs[0].token == "A"
    assert piece.logprobs[0].logprob == -0.5
    assert [t.token for t in piece.logprobs[0].top] == ["A", "B"]
    assert events[-1] == Done("length", len(PROMPT), 1, 0)


async def test_sglang_generate_with_cumulative_output_ids(upstream: Upstream) -> None:
    sent: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        assert request.path == "/generate"

        def event(out: str, finish: Any) -> dict[str, Any]:
            meta = {
                "prompt_tokens": 11,
                "completion_tokens": len(out),
                "cached_tokens": 6,
                "finish_reason": finish,
            }
            return {"text": out, "output_ids": ids(out), "meta_info": meta}

        body = sse(
            event("ab", None), event("abc", None), event("abcd", {"type": "length", "length": 4})
        )
        return web.Response(body=body)

    remote = upstream.engine("sglang", handle, lark=True)
    grammar = Constraint("lark", 'start: "abcd"')
    events = await run(remote, EngineRequest(PROMPT, 4, constraint=grammar))
    assert sent[0]["input_ids"] == list(PROMPT)
    assert sent[0]["sampling_params"]["ebnf"] == 'start: "abcd"'
    assert sent[0]["sampling_params"]["max_new_tokens"] == 4
    assert text(events) == "abcd"
    assert events[0] == Admitted(6)
    assert events[-1] == Done("length", len(PROMPT), 4, 6)


async def test_a_grammar_needs_upstreams_that_take_one(upstream: Upstream) -> None:
    remote = upstream.engine("llama-server")
    remote.check_constraint(Constraint("json_schema", '{"type": "object"}'))
    with pytest.raises(ConstraintError, match="do not enforce grammars"):
        remote.check_constraint(Constraint("lark", 'start: "x"'))
    with pytest.raises(ConstraintError):
        remote.check_constraint(Constraint("json_schema", "[1, 2"))


async def test_an_unreachable_replica_is_retried_on_another(upstream: Upstream) -> None:
    ok = answer(sse({"tokens": ids("ok"), "stop": True, "stop_type": "eos"}))
    down = closed_url()
    remote = upstream.engine("llama-server", ok, urls=(down, upstream.url), eject_after=1)
    # Which requests hash to the replica that is down first depends on its port, new in
    # every run: with 32 requests, that none of them does is a 2**-32 chance.
    for seed in range(32):
        request = EngineRequest((seed, *PROMPT), 4, namespace=str(seed))
        assert text(await run(remote, request)) == "ok"
    figures = (await remote.health()).replicas  # type: ignore[attr-defined]
    assert figures[down]["healthy"] == 0
    assert figures[upstream.url]["in_flight"] == 0


async def test_no_replica_left_is_a_503(upstream: Upstream) -> None:
    remote = upstream.engine("llama-server", urls=(closed_url(), closed_url()))
    with pytest.raises(Overloaded):
        await run(remote, EngineRequest(PROMPT, 4))


async def test_a_replica_dying_mid_stream_ends_the_stream_with_an_engine_failure(
    upstream: Upstream,
) -> None:
    async def dying(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(sse({"tokens": ids("par"), "stop": False}, done=False))
        assert request.transport is not None
        request.transport.abort()  # the connection reset before the chunked body's end
        return response

    remote = upstream.engine("llama-server", dying)
    seen: list[EngineEvent] = []

    async def read() -> None:
        async for event in remote.generate(EngineRequest(PROMPT, 10)):
            seen.append(event)

    with pytest.raises(EngineFailure, match="failed during the reply"):
        await read()
    assert text(seen) == "par"
    assert (await remote.health()).replicas[upstream.url]["errors"] == 1  # type: ignore[attr-defined]


async def test_a_stream_cut_short_without_an_end_is_an_engine_failure(upstream: Upstream) -> None:
    remote = upstream.engine("llama-server", answer(sse({"tokens": [65]})))
    with pytest.raises(EngineFailure, match="before it was done"):
        await run(remote, EngineRequest(PROMPT, 10))


async def test_upstream_refusals_are_typed(upstream: Upstream) -> None:
    refusal = {"error": {"code": 400, "message": "bad   prompt"}}
    remote = upstream.engine("llama-server", answer(json.dumps(refusal).encode(), 400))
    with pytest.raises(InvalidRequest, match="refused the request: bad prompt"):
        await run(remote, EngineRequest(PROMPT, 10))
    busy = upstream.engine("vllm", answer(b"busy", 503))
    with pytest.raises(Overloaded):
        await run(busy, EngineRequest(PROMPT, 10))


async def test_health_checks_eject_and_readmit(upstream: Upstream) -> None:
    up = True
    connections: set[int] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        connections.add(id(request.transport))
        return web.Response(status=200 if up else 503, text="status " * 100_000)

    remote = upstream.engine("llama-server", handle, eject_after=2)
    upstreams = remote.upstreams
    up = False
    await upstreams.check()
    assert (await remote.health()).state == "ready"
    await upstreams.check()
    assert (await remote.health()).state == "restarting"
    up = True
    await upstreams.check()
    health = await remote.health()
    assert health.state == "ready"
    assert health.replicas[upstream.url]["ejections"] == 1  # type: ignore[attr-defined]
    assert len(connections) == 1  # each body (larger than one read) read to its end: kept
