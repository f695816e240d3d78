"""The embedded engine: llama.cpp in-process, continuous batching on one thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from deepwell.cache.prefixes import PrefixCache, Restore
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
from deepwell.engine.constraints import Constraints, Matcher
from deepwell.engine.llamacpp.constraints import is_special, vocabulary_tokenizer
from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.engine.llamacpp.sampler import build_chain
from deepwell.engine.llamacpp.scheduler import Begin, End, EngineSequence, Output, Scheduler
from deepwell.engine.text import PieceAssembler
from deepwell.errors import EngineFailure, InvalidRequest
from deepwell.settings import EngineSettings


class LlamaCppEngine:
    """An ``Engine`` over a local GGUF file."""

    def __init__(
        self,
        name: str,
        path: Path,
        settings: EngineSettings,
        *,
        context_length: int,
        cache: PrefixCache | None = None,
    ) -> None:
        self._model = LlamaModel(path)
        self._cache = cache
        self._scheduler = Scheduler(self._model, settings, cache)
        self._constraints = Constraints(vocabulary_tokenizer(self._model.vocab))
        self._n_seq = settings.n_seq_max
        self._info = ModelInfo(
            name=name,
            chat_template=self._model.chat_template(),
            bos_token=self._model.token_text(self._model.bos),
            eos_token=self._model.token_text(self._model.eos),
            context_length=min(context_length, self._scheduler.n_ctx),
        )
        self._scheduler.start()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return self._model.tokenize(text, special=special)

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        if self._scheduler.failed:
            raise EngineFailure("The engine has stopped after an internal error.")
        matcher = await self._matcher(request)
        keys, restore = await self._cached_prefix(request)
        chain = build_chain(request.sampling)
        outputs: asyncio.Queue[Output] = asyncio.Queue()
        seq = EngineSequence(
            prompt=request.prompt,
            max_tokens=request.max_tokens,
            chain=chain,
            emit=_poster(asyncio.get_running_loop(), outputs),
            namespace=request.namespace,
            logprobs=request.logprobs,
            matcher=matcher,
            keys=keys,
            restore=restore,
        )
        self._scheduler.submit(seq)
        pieces = PieceAssembler(request.stop)
        generated = 0
        try:
            while True:
                out = await outputs.get()
                if isinstance(out, Begin):
                    yield Admitted(out.reused)
                    continue
                if isinstance(out, End):
                    if out.error is not None:
                        raise InvalidRequest(
                            f"The output could not follow its constraint: {out.error}"
                        )
                    if (tail := pieces.end()) is not None:
                        yield tail
                    yield Done(out.reason, len(request.prompt), generated, seq.reused)
                    return
                generated += 1
                yield pieces.token(self._model.piece(out.id), out.logprob)
                if pieces.stopped:
                    yield Done("stop", len(request.prompt), generated, seq.reused)
                    return
        finally:
            # Whether it ended, stopped on a stop string or was abandoned by its
            # consumer, the sequence is freed; cancelling a finished one is a no-op.
            self._scheduler.cancel(seq)

    def check_constraint(self, constraint: Constraint) -> None:
        self._constraints.check(constraint)

    def special_token(self, text: str) -> bool:
        tokens = self._model.tokenize(text, special=True)
        return len(tokens) == 1 and is_special(self._model.vocab, tokens[0])

    async def _matcher(self, request: EngineRequest) -> Matcher | None:
        """The request's constraint compiled (on a worker thread: large grammars take
        milliseconds); a constraint that cannot be enforced is a 400."""
        if request.constraint is None:
            return None
        try:
            return await asyncio.to_thread(self._constraints.matcher, request.constraint)
        except ConstraintError as exc:
            raise InvalidRequest(f"Invalid response format or tools: {exc}") from exc

    async def _cached_prefix(self, request: EngineRequest) -> tuple[list[bytes], Restore | None]:
        """The prompt's block keys, and the longest saved prefix state of it, if any."""
        if self._cache is None:
            return [], None
        keys = self._cache.keys(request.namespace, request.prompt)
        usable = (len(request.prompt) - 1) // self._cache.block_tokens
        if not any(self._cache.contains(key) for key in keys[:usable]):
            return keys, None
        return keys, await asyncio.to_thread(self._cache.lookup, keys, usable)

    async def health(self) -> EngineHealth:
        now = self._scheduler.snapshot()
        return EngineHealth(
            state="failed" if self._scheduler.failed else "ready",
            sequences_busy=now.busy,
            sequences_total=self._n_seq,
            queue_length=now.waiting,
            kv_used=now.kv_used,
            kv_total=self._scheduler.n_ctx,
            prefix_reused_tokens=now.reused_tokens,
            cache=self._cache.stats() if self._cache is not None else {},
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._scheduler.stop)
        if self._cache is not None:
            await asyncio.to_thread(self._cache.close)
        self._model.close()


def _poster(
    loop: asyncio.AbstractEventLoop, outputs: asyncio.Queue[Output]
) -> Callable[[Output], None]:
    def post(out: Output) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(outputs.put_nowait, out)

    return post
