"""A scripted engine for unit tests: characters are tokens, the reply is fixed.

It honours the engine contract (``max_tokens``, stop strings, ``Done`` last,
cancellation) without a model, so the layers above can be tested quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from deepwell.engine.base import (
    Admitted,
    Constraint,
    Done,
    EngineEvent,
    EngineFinish,
    EngineHealth,
    EngineRequest,
    ModelInfo,
)
from deepwell.engine.constraints import Constraints, byte_tokenizer
from deepwell.engine.text import PieceAssembler

TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class FakeEngine:
    def __init__(self, reply: str = "Hello from the fake engine.", context_length: int = 512):
        self.reply = reply
        # Prompt tokens each generation reports as found in the KV cache.
        self.cached = 0
        self.active = 0
        self._info = ModelInfo("fake", TEMPLATE, "", "", context_length)
        self._constraints = Constraints(byte_tokenizer())

    @property
    def info(self) -> ModelInfo:
        return self._info

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return [ord(c) for c in text]

    def special_token(self, text: str) -> bool:
        return False

    def check_constraint(self, constraint: Constraint) -> None:
        """Checked for real, over a vocabulary of bytes; the reply itself is fixed and
        follows no constraint."""
        self._constraints.check(constraint)

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.active += 1
        try:
            pieces = PieceAssembler(request.stop)
            tokens = list(self.reply)[: request.max_tokens]
            cached = min(self.cached, len(request.prompt))
            yield Admitted(cached)
            for n, char in enumerate(tokens, start=1):
                await asyncio.sleep(0)
                yield pieces.token(char.encode())
                if pieces.stopped:
                    yield Done("stop", len(request.prompt), n, cached, pieces.matched)
                    return
            if (tail := pieces.end()) is not None:
                yield tail
            reason: EngineFinish = "length" if len(self.reply) > request.max_tokens else "stop"
            yield Done(reason, len(request.prompt), len(tokens), cached)
        finally:
            self.active -= 1

    async def health(self) -> EngineHealth:
        return EngineHealth("ready", self.active, 8, 0, 0, self._info.context_length)

    async def close(self) -> None:
        return None
