"""A vocabulary of characters and recorded upstream streams, for the remote engine's tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from deepwell.engine.constraints import Constraints, byte_tokenizer
from deepwell.engine.remote.chat import ChatEngine
from deepwell.engine.remote.engine import RemoteEngine
from deepwell.settings import RemoteEngine as RemoteSettings

EOS = 0


class CharVocabulary:
    """Token ``n`` is ``chr(n)``; token 0 ends a generation."""

    bos = 1
    eos = EOS

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return [ord(c) for c in text]

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return b"" if token == EOS else chr(token).encode()

    def token_text(self, token: int) -> str:
        return chr(token)

    def chat_template(self) -> str:
        return "{% for m in messages %}{{ m.content }}{% endfor %}"

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def is_special(self, token: int) -> bool:
        return False

    def close(self) -> None:
        return None


def sse(*events: dict[str, Any], done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    return "".join(lines + (["data: [DONE]\n\n"] if done else [])).encode()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def refused(request: web.Request) -> web.StreamResponse:
    raise AssertionError("this test's upstream is not to be called")


class Upstream:
    """A model server on loopback (a real aiohttp server) that answers every request with
    ``handler``, set by each test; the engines made here are closed with it."""

    def __init__(self) -> None:
        self.handler: Handler = refused
        self._server = TestServer(web.Application(), host="127.0.0.1")
        self._server.app.router.add_route("*", "/{path:.*}", self._dispatch)
        self._engines: list[RemoteEngine | ChatEngine] = []

    @property
    def url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        return await self.handler(request)

    async def start(self) -> None:
        await self._server.start_server()

    async def close(self) -> None:
        for engine in self._engines:
            await engine.close()
        await self._server.close()

    def engine(
        self,
        api: str,
        handler: Handler = refused,
        urls: Iterable[str] | None = None,
        **options: Any,
    ) -> RemoteEngine:
        """A ``RemoteEngine`` of ``api`` on this upstream (or on ``urls``)."""
        self.handler = handler
        addresses = list(urls or [self.url])
        settings = RemoteSettings(kind="remote", api=api, urls=addresses, model="m", **options)  # type: ignore[arg-type]
        engine = RemoteEngine(
            "remote",
            CharVocabulary(),
            Constraints(byte_tokenizer()),
            settings,
            context_length=4096,
            block_tokens=4,
        )
        self._engines.append(engine)
        return engine

    def chat_engine(self, handler: Handler = refused) -> ChatEngine:
        """A pass-through ``ChatEngine`` on this upstream."""
        self.handler = handler
        settings = RemoteSettings(kind="remote", api="chat", urls=[self.url], model="up")
        engine = ChatEngine("chat", settings, context_length=4096)
        self._engines.append(engine)
        return engine


def closed_url() -> str:
    """The URL of a loopback port that nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def answer(body: bytes = b"", status: int = 200) -> Handler:
    """A handler that answers every request with ``body``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status)

    return handle
