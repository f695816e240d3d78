"""A vocabulary of characters and recorded upstream streams, for the remote engine's tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from deepwell.engine.constraints import Constraints, byte_tokenizer
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


Handler = Callable[[httpx.Request], httpx.Response]


def engine(
    api: str, handler: Handler, urls: Iterable[str] = ("http://a",), **options: Any
) -> RemoteEngine:
    settings = RemoteSettings(kind="remote", api=api, urls=list(urls), model="m", **options)  # type: ignore[arg-type]
    return RemoteEngine(
        "remote",
        CharVocabulary(),
        Constraints(byte_tokenizer()),
        settings,
        context_length=4096,
        block_tokens=4,
        transport=httpx.MockTransport(handler),
    )
