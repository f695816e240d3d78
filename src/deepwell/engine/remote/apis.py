"""The token-in APIs of upstream servers: what a generation is sent as, and what each
streamed event says.

Every API is asked for the generated token ids, so deepwell turns them into text with the
model's own vocabulary (``engine.text.PieceAssembler``: UTF-8 across tokens, stop strings)
and counts them exactly; stop strings are applied here, not upstream, so the one that
ended a reply is known. A ``Chunk`` is one event, as the engine needs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from deepwell.engine.base import Constraint, EngineFinish, EngineRequest

# What an API says when a generation ends, as the engine's finish reasons.
_FINISH: Mapping[str, EngineFinish] = {
    "stop": "stop",
    "eos": "stop",
    "word": "stop",
    "abort": "insufficient_system_resource",
    "length": "length",
    "limit": "length",
}


@dataclass(frozen=True, slots=True)
class TokenProb:
    """A generated token's log-probability and its likeliest alternatives (id, logprob)."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed event: new token ids (their probabilities when asked for), and what
    is known so far of the prompt's cached tokens, of the total generated, and of the end."""

    tokens: tuple[int, ...] = ()
    probs: tuple[TokenProb, ...] = ()
    cached: int | None = None
    completion_tokens: int | None = None
    finish: EngineFinish | None = None


class Api(Protocol):
    """One upstream API: its generation path, the body of a request, and its events."""

    path: str

    def body(self, request: EngineRequest, model: str | None) -> dict[str, Any]: ...

    def reader(self) -> ChunkReader: ...


class ChunkReader(Protocol):
    """Reads one stream's events (some APIs send totals, so it keeps state)."""

    def read(self, data: Mapping[str, Any]) -> Chunk: ...


def cache_salt(namespace: str) -> str:
    """vLLM's ``cache_salt``: a request's prefix blocks are shared only with requests of
    the same salt, so one account's cached prefixes never serve another's."""
    return hashlib.sha256(f"deepwell\x00{namespace}".encode()).hexdigest()[:32]


def finish(reason: object) -> EngineFinish | None:
    return _FINISH.get(str(reason), "stop") if reason else None


class LlamaServer:
    """llama.cpp's ``llama-server``: ``POST /completion`` with a token-id prompt.

    ``cache_prompt`` lets a slot reuse the KV of a prompt's prefix; ``timings_per_token``
    makes every event carry ``timings.cache_n``, the prompt tokens it did not read again.
    Its own samplers (top-k 40, min-p 0.05) are turned off: sampling is top-p and
    temperature, as on the embedded engine. A Lark grammar goes as ``%llguidance``,
    which only a llama-server built with llguidance takes.
    """

    path = "/completion"

    def body(self, request: EngineRequest, model: str | None) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "prompt": list(request.prompt),
            "n_predict": request.max_tokens,
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
            "timings_per_token": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": 0,
            "min_p": 0.0,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if request.logprobs is not None:
            body["n_probs"] = max(request.logprobs, 1)
        if request.constraint is not None:
            body |= _llama_constraint(request.constraint)
        return body

    def reader(self) -> ChunkReader:
        return _LlamaReader()


def _llama_constraint(constraint: Constraint) -> dict[str, Any]:
    if constraint.kind == "json_schema":
        return {"json_schema": json.loads(constraint.source)}
    return {"grammar": "%llguidance {}\n" + constraint.source}


class _LlamaReader:
    def read(self, data: Mapping[str, Any]) -> Chunk:
        tokens = tuple(int(t) for t in data.get("tokens") or ())
        probs = tuple(
            TokenProb(
                float(p.get("logprob", 0.0)),
                tuple((int(t["id"]), float(t["logprob"])) for t in p.get("top_logprobs") or ()),
            )
            for p in data.get("completion_probabilities") or ()
        )
        timings = data.get("timings") or {}
        cached = timings.get("cache_n")
        done = bool(data.get("stop"))
        return Chunk(
            tokens=tokens,
            probs=probs,
            cached=int(cached) if cached is not None else None,
            completion_tokens=_int(data.get("tokens_predicted")) if done else None,
            finish=finish(data.get("stop_type") or "stop") if done else None,
        )


class Vllm:
    """vLLM's ``POST /v1/completions`` with a token-id prompt.

    ``return_token_ids`` gives each event's token ids, ``cache_salt`` keeps accounts'
    prefix caches apart, continuous usage reports ``prompt_tokens_details.cached_tokens``
    (vLLM started with ``--enable-prompt-tokens-details``) from the first event on.
    Constraints go as ``structured_outputs`` (``json``, or ``grammar`` for Lark, which
    takes vLLM's ``guidance`` backend).
    """

    path = "/v1/completions"

    def body(self, request: EngineRequest, model: str | None) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "prompt": list(request.prompt),
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "return_token_ids": True,
            "skip_special_tokens": False,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": -1,
            "cache_salt": cache_salt(request.namespace),
        }
        if model is not None:
            body["model"] = model
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if request.logprobs is not None:
            body["logprobs"] = max(request.logprobs, 1)
            body["return_tokens_as_token_ids"] = True
        if request.constraint is not None:
            key = "json" if request.constraint.kind == "json_schema" else "grammar"
            value = request.constraint.source
            body["structured_outputs"] = {key: json.loads(value) if key == "json" else value}
        return body

    def reader(self) -> ChunkReader:
        return _VllmReader()


class _VllmReader:
    def read(self, data: Mapping[str, Any]) -> Chunk:
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        choices = data.get("choices") or ()
        choice: Mapping[str, Any] = choices[0] if choices else {}
        tokens = tuple(int(t) for t in choice.get("token_ids") or ())
        logprobs = choice.get("logprobs") or {}
        if not tokens and logprobs.get("tokens"):
            tokens = tuple(_token_id(t) for t in logprobs["tokens"])
        probs = tuple(
            TokenProb(float(lp or 0.0), tuple((_token_id(t), float(v)) for t, v in top.items()))
            for lp, top in zip(
                logprobs.get("token_logprobs") or (),
                logprobs.get("top_logprobs") or (),
                strict=False,
            )
        )
        return Chunk(
            tokens=tokens,
            probs=probs,
            cached=int(cached) if cached is not None else None,
            completion_tokens=_int(usage.get("completion_tokens")),
            finish=finish(choice.get("finish_reason")),
        )


def _token_id(token: str) -> int:
    """``token_id:123`` (vLLM's ``return_tokens_as_token_ids``) as 123."""
    return int(token.rpartition(":")[2])


class Sglang:
    """SGLang's native ``POST /generate`` with ``input_ids``.

    Events carry ``meta_info`` (``cached_tokens``, ``completion_tokens``,
    ``finish_reason``) and the output ids so far: the reader takes the new ones.
    Constraints go as ``sampling_params.json_schema``, or ``ebnf`` for Lark (which takes
    SGLang's ``llguidance`` grammar backend).
    """

    path = "/generate"

    def body(self, request: EngineRequest, model: str | None) -> dict[str, Any]:
        sampling = request.sampling
        params: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": -1,
            "skip_special_tokens": False,
        }
        if sampling.seed is not None:
            params["sampling_seed"] = sampling.seed
        if request.constraint is not None:
            key = "json_schema" if request.constraint.kind == "json_schema" else "ebnf"
            params[key] = request.constraint.source
        body: dict[str, Any] = {
            "input_ids": list(request.prompt),
            "sampling_params": params,
            "stream": True,
        }
        if request.logprobs is not None:
            body |= {
                "return_logprob": True,
                "top_logprobs_num": request.logprobs,
                "logprob_start_len": -1,
            }
        return body

    def reader(self) -> ChunkReader:
        return _SglangReader()


class _SglangReader:
    """SGLang sends the output so far in each event (or, with ``--incremental-streaming-
    output``, the new part only); the count in ``meta_info`` tells which."""

    def __init__(self) -> None:
        self._seen = 0
        self._probs_seen = 0

    def read(self, data: Mapping[str, Any]) -> Chunk:
        meta = data.get("meta_info") or {}
        total = _int(meta.get("completion_tokens"))
        ids = [int(t) for t in data.get("output_ids") or ()]
        cumulative = total is not None and len(ids) == total and len(ids) >= self._seen
        new = ids[self._seen :] if cumulative else ids
        self._seen = len(ids) if cumulative else self._seen + len(ids)
        probs = _sglang_probs(meta)
        if cumulative:
            probs = probs[self._probs_seen :]
            self._probs_seen += len(probs)
        reason = meta.get("finish_reason")
        kind = reason.get("type") if isinstance(reason, Mapping) else reason
        return Chunk(
            tokens=tuple(new),
            probs=tuple(probs),
            cached=_int(meta.get("cached_tokens")),
            completion_tokens=total,
            finish=finish(kind),
        )


def _sglang_probs(meta: Mapping[str, Any]) -> list[TokenProb]:
    """``output_token_logprobs`` are ``[logprob, id, text]``; the top ones, a list of them
    per token."""
    tops: Sequence[Any] = meta.get("output_top_logprobs") or ()
    probs = []
    for index, entry in enumerate(meta.get("output_token_logprobs") or ()):
        top = tops[index] if index < len(tops) and tops[index] else ()
        probs.append(TokenProb(float(entry[0]), tuple((int(t[1]), float(t[0])) for t in top)))
    return probs


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


APIS: Mapping[str, type[LlamaServer] | type[Vllm] | type[Sglang]] = {
    "llama-server": LlamaServer,
    "vllm": Vllm,
    "sglang": Sglang,
}
