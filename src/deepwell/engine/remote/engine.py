"""``RemoteEngine``: token ids to upstream model servers, text pieces back.

The platform's work stays here, as on the embedded engine: the prompt is rendered with
the model's chat template and tokenized with its vocabulary (read from its local GGUF
file), constraints are checked with llguidance before anything is sent, the upstream's
token ids become text and stop strings are applied by ``PieceAssembler``, and every
generated token is one ``Piece``. The upstream only decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from deepwell.engine.base import (
    Admitted,
    Constraint,
    ConstraintError,
    Done,
    EngineEvent,
    EngineHealth,
    EngineRequest,
    ModelInfo,
)
from deepwell.engine.constraints import Constraints
from deepwell.engine.remote import sse
from deepwell.engine.remote.apis import APIS, Chunk, TokenProb
from deepwell.engine.remote.replicas import Replica, Router
from deepwell.engine.text import PieceAssembler
from deepwell.errors import EngineFailure, InvalidRequest, Overloaded
from deepwell.settings import RemoteEngine as RemoteSettings
from deepwell.vocabulary import TokenLogprob, TopLogprob

log = logging.getLogger(__name__)

# Connection failures before the first byte, retried on another replica.
_CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
)


class Vocabulary(Protocol):
    """The model's tokenizer and metadata, local (``engine.llamacpp.vocab.GgufVocabulary``)."""

    def tokenize(self, text: str, *, special: bool) -> list[int]: ...

    def piece(self, token: int, *, special: bool = False) -> bytes: ...

    def token_text(self, token: int) -> str: ...

    def chat_template(self) -> str: ...

    def is_eog(self, token: int) -> bool: ...

    def is_special(self, token: int) -> bool: ...

    @property
    def bos(self) -> int: ...

    @property
    def eos(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RemoteHealth(EngineHealth):
    """``EngineHealth`` with each replica's figures, by URL."""

    replicas: dict[str, dict[str, int]] = field(default_factory=dict)


class UpstreamHttp:
    """HTTP to a remote backing model's upstreams, on aiohttp's connection pool (made on
    the event loop at the first request), with the model's key, if any, on every call.
    aiohttp, not httpx: httpx's pool polls every idle connection on each request (about
    a millisecond of CPU a request at a few dozen connections), and its request and
    response models cost another tenth of a millisecond that these calls do not need."""

    def __init__(self, settings: RemoteSettings) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Accept": "application/json, text/event-stream"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
        )

    async def send(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        within_s: float | None = None,
    ) -> aiohttp.ClientResponse:
        """The response to one request, its body still to be read (then ``release`` it);
        ``within_s`` bounds the whole request instead of the settings' steps."""
        if self._session is None:
            # No bound on connections: ``max_in_flight`` is.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        timeout = self._timeout if within_s is None else aiohttp.ClientTimeout(total=within_s)
        return await self._session.request(
            method, url, json=body, headers=self._headers, timeout=timeout
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class Upstreams:
    """The replicas of one remote backing model: routing, health checks, and opening a
    stream with retries. Used on the event loop only; the health checks run as a task
    started by the first call on the loop."""

    def __init__(self, settings: RemoteSettings, http: UpstreamHttp, *, block_tokens: int) -> None:
        self.settings = settings
        self.router = Router.of(
            settings.urls,
            block_tokens=block_tokens,
            route_blocks=settings.route_blocks,
            imbalance=settings.imbalance,
            eject_after=settings.eject_after,
        )
        self._http = http
        self._checks: asyncio.Task[None] | None = None

    @property
    def capacity(self) -> int:
        return len(self.router.replicas) * self.settings.max_in_flight

    def start(self) -> None:
        if self._checks is None or self._checks.done():
            self._checks = asyncio.get_running_loop().create_task(self._check_forever())

    @asynccontextmanager
    async def stream(
        self, namespace: str, prompt: tuple[int, ...], path: str, body: dict[str, Any]
    ) -> AsyncIterator[tuple[Replica, aiohttp.ClientResponse]]:
        """An open streaming response from the replica this request routes to. A replica
        that cannot be reached is marked and the next one tried, ``connect_retries``
        times; after that, or with none healthy, a 503."""
        self.start()
        tried: set[str] = set()
        for _ in range(self.settings.connect_retries + 1):
            replica = self.router.pick(namespace, prompt, frozenset(tried))
            if replica is None:
                break
            tried.add(replica.url)
            self.router.started(replica)
            try:
                try:
                    response = await self._http.send("POST", replica.url + path, body)
                except _CONNECT_ERRORS as exc:
                    log.warning("model server %s unreachable: %r", replica.url, exc)
                    self.router.failed(replica)
                    continue
                except aiohttp.ClientError as exc:
                    log.warning("model server %s failed: %r", replica.url, exc)
                    self.router.failed(replica)
                    raise EngineFailure("The model server failed before its reply.") from exc
                try:
                    await self._check_status(replica, response)
                    yield replica, response
                finally:
                    response.release()
                return
            finally:
                self.router.ended(replica)
        raise Overloaded("No model server of this model is available; try again later.")

    async def _check_status(self, replica: Replica, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if status < 400:
            return
        body = await response.read()
        try:
            message = sse.error_message(json.loads(body))
        except ValueError:
            message = sse.error_message(body.decode(errors="replace"))
        if status in (400, 422):
            raise InvalidRequest(f"The model server refused the request: {message}")
        if status in (429, 503):
            raise Overloaded(f"The model server is busy: {message}")
        self.router.failed(replica)
        raise EngineFailure(f"The model server failed ({status}): {message}")

    async def check(self) -> None:
        """One health check of every replica."""
        await asyncio.gather(*(self._check(r) for r in self.router.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            response = await self._http.send(
                "GET",
                replica.url + self.settings.health_path,
                within_s=self.settings.connect_timeout_s,
            )
            async with response:  # read to its end: the connection is kept for the next
                await response.read()
            passed = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            passed = False
        was = replica.healthy
        if passed:
            self.router.passed(replica)
        else:
            self.router.failed(replica)
        if was != replica.healthy:
            log.warning(
                "model server %s %s", replica.url, "is back" if replica.healthy else "ejected"
            )

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            await self.check()

    async def close(self) -> None:
        if self._checks is not None:
            self._checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checks
        await self._http.aclose()

    def health(self) -> RemoteHealth:
        replicas = self.router.replicas
        return RemoteHealth(
            state="ready" if self.router.healthy() else "restarting",
            sequences_busy=sum(r.in_flight for r in replicas),
            sequences_total=self.capacity,
            queue_length=0,
            kv_used=0,
            kv_total=0,
            replicas={r.url: r.figures() for r in replicas},
        )


class RemoteEngine:
    """An ``Engine`` whose model runs on upstream servers that take token ids
    (llama-server, vLLM, SGLang); see docs/scale-out.md."""

    def __init__(
        self,
        name: str,
        vocabulary: Vocabulary,
        constraints: Constraints,
        settings: RemoteSettings,
        *,
        context_length: int,
        block_tokens: int,
    ) -> None:
        if settings.api not in APIS:
            raise ValueError(f"{settings.api!r} is not a token-in API")
        self._api = APIS[settings.api]()
        self._settings = settings
        self._vocabulary = vocabulary
        self._constraints = constraints
        self._upstreams = Upstreams(settings, UpstreamHttp(settings), block_tokens=block_tokens)
        self._info = ModelInfo(
            name=name,
            chat_template=vocabulary.chat_template(),
            bos_token=vocabulary.token_text(vocabulary.bos),
            eos_token=vocabulary.token_text(vocabulary.eos),
            context_length=context_length,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def upstreams(self) -> Upstreams:
        return self._upstreams

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return self._vocabulary.tokenize(text, special=special)

    def special_token(self, text: str) -> bool:
        tokens = self._vocabulary.tokenize(text, special=True)
        return len(tokens) == 1 and self._vocabulary.is_special(tokens[0])

    def check_constraint(self, constraint: Constraint) -> None:
        """Checked with llguidance over the model's vocabulary, as on the embedded engine;
        a Lark grammar also needs upstreams that take one (``lark``)."""
        self._constraints.check(constraint)
        if constraint.kind == "lark" and not self._settings.lark:
            raise ConstraintError(
                f"this model's servers ({self._settings.api}) do not enforce grammars, which "
                "forced or strict tool calls need"
            )

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        body = self._api.body(request, self._settings.model)
        stream = self._upstreams.stream(request.namespace, request.prompt, self._api.path, body)
        async with stream as (replica, response):
            done = False
            try:
                async for event in self._events(request, sse.events(response)):
                    done = done or isinstance(event, Done)
                    yield event
            except aiohttp.ClientError as exc:
                self._upstreams.router.failed(replica)
                log.warning("model server %s failed mid-reply: %r", replica.url, exc)
                raise EngineFailure("The model server failed during the reply.") from exc
            if not done:
                raise EngineFailure("The model server ended the reply before it was done.")

    async def _events(
        self, request: EngineRequest, stream: AsyncIterator[Any]
    ) -> AsyncGenerator[EngineEvent, None]:
        """The engine's events of one upstream stream; ``Done`` last, if the stream ends."""
        reader = self._api.reader()
        pieces = PieceAssembler(request.stop)
        prompt = len(request.prompt)
        generated = 0
        cached: int | None = None
        async for data in stream:
            chunk: Chunk = reader.read(data)
            if cached is None:
                cached = min(chunk.cached or 0, prompt)
                yield Admitted(cached)
            for index, token in enumerate(chunk.tokens):
                if self._vocabulary.is_eog(token):
                    continue
                generated += 1
                prob = chunk.probs[index] if index < len(chunk.probs) else None
                yield pieces.token(self._vocabulary.piece(token), self._logprob(token, prob))
                if pieces.stopped:
                    yield Done("stop", prompt, generated, cached, pieces.matched)
                    return
                if generated >= request.max_tokens:
                    break
            if chunk.finish is not None or generated >= request.max_tokens:
                if (tail := pieces.end()) is not None:
                    yield tail
                reason = chunk.finish if generated < request.max_tokens else "length"
                yield Done(reason or "length", prompt, generated, cached)
                if chunk.finish is not None:
                    # The upstream is done too: read the rest of its body (its end, or
                    # ``[DONE]``) so that the connection is kept for the next request.
                    async for _ in stream:
                        pass
                return

    def _logprob(self, token: int, prob: TokenProb | None) -> TokenLogprob | None:
        if prob is None:
            return None
        raw = self._vocabulary.piece(token)
        top = tuple(self._top(t, lp) for t, lp in prob.top)
        return TokenLogprob(raw.decode("utf-8", errors="replace"), prob.logprob, tuple(raw), top)

    def _top(self, token: int, logprob: float) -> TopLogprob:
        raw = self._vocabulary.piece(token)
        return TopLogprob(raw.decode("utf-8", errors="replace"), logprob, tuple(raw))

    async def health(self) -> EngineHealth:
        self._upstreams.start()
        return self._upstreams.health()

    async def close(self) -> None:
        await self._upstreams.close()
        self._vocabulary.close()
