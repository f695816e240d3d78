"""The embedded engine: llama.cpp in-process, continuous batching on one thread.

The engine thread is supervised. When a step fails, the thread ends the sequences it holds
with ``insufficient_system_resource`` and a worker thread builds a fresh ``Scheduler`` (a new
context on the same model and prefix cache) while new requests wait for it; if that fails
too, the engine stays failed and says so through ``on_fatal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
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
    EngineState,
    ModelInfo,
)
from deepwell.engine.constraints import Constraints, Matcher
from deepwell.engine.llamacpp.constraints import is_special, vocabulary_tokenizer
from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.engine.llamacpp.sampler import build_chain, free_chain
from deepwell.engine.llamacpp.scheduler import Begin, End, EngineSequence, Output, Scheduler
from deepwell.engine.text import PieceAssembler
from deepwell.errors import EngineFailure, InvalidRequest, Overloaded
from deepwell.settings import EngineSettings

log = logging.getLogger(__name__)

# How long a request waits for the engine thread to be rebuilt before it is refused (503).
REBUILD_WAIT_S = 60.0


class LlamaCppEngine:
    """An ``Engine`` over a local GGUF file.

    ``on_fatal`` is called, on a worker thread, with the error when the engine thread failed
    and could not be rebuilt; the engine then stays ``failed``. Without it the error is only
    logged (it is logged as critical either way).

    ``_lock`` guards the state, the restart count, the current scheduler and the futures of
    requests waiting for a rebuild; it is never held across llama.cpp work or a wait.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        settings: EngineSettings,
        *,
        context_length: int,
        cache: PrefixCache | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._model = LlamaModel(path)
        self._settings = settings
        self._cache = cache
        self._on_fatal = on_fatal
        self._lock = threading.Lock()
        self._state: EngineState = "ready"
        self._restarts = 0
        self._closed = False
        self._rebuilder: threading.Thread | None = None
        self._waiters: list[asyncio.Future[None]] = []
        # The test hook fails the first scheduler only: once per process.
        self._scheduler = self._new_scheduler(fail_at_step=settings.fail_at_step)
        self._constraints = Constraints(vocabulary_tokenizer(self._model.vocab))
        self._n_seq = settings.n_seq_max
        self._info = ModelInfo(
            name=name,
            chat_template=self._model.chat_template(),
            bos_token=self._model.token_text(self._model.bos),
            eos_token=self._model.token_text(self._model.eos),
            context_length=min(context_length, self._scheduler.n_ctx),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return self._model.tokenize(text, special=special)

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
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
            greedy=request.sampling.temperature <= 0,
        )
        scheduler = await self._submit(seq)
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
                    yield Done("stop", len(request.prompt), generated, seq.reused, pieces.matched)
                    return
        finally:
            # Whether it ended, stopped on a stop string or was abandoned by its
            # consumer, the sequence is freed; cancelling a finished one is a no-op.
            scheduler.cancel(seq)

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
            if usable > 0:
                self._cache.note_miss()
            return keys, None
        return keys, await asyncio.to_thread(self._cache.lookup, keys, usable)

    async def health(self) -> EngineHealth:
        with self._lock:
            state, restarts, scheduler = self._state, self._restarts, self._scheduler
        now = scheduler.snapshot()
        return EngineHealth(
            state=state,
            sequences_busy=now.busy,
            sequences_total=self._n_seq,
            queue_length=now.waiting,
            kv_used=now.kv_used,
            kv_total=scheduler.n_ctx,
            prefix_reused_tokens=now.reused_tokens,
            cache=self._cache.stats() if self._cache is not None else {},
            restarts=restarts,
            decode_steps=now.steps,
            decode_seconds=now.decode_seconds,
            draft_tokens=now.drafted,
            draft_accepted=now.accepted,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._shut_down)
        if self._cache is not None:
            await asyncio.to_thread(self._cache.close)
        self._model.close()

    # -- supervision -------------------------------------------------------------------

    async def _submit(self, seq: EngineSequence) -> Scheduler:
        """Hand ``seq`` to the running scheduler, waiting for a rebuild when it has just
        failed; the scheduler that took it. If none takes it, its sampler chain is freed."""
        try:
            while not (scheduler := await self._serving()).submit(seq):
                pass  # it failed since: the engine is restarting, so the next call waits
        except BaseException:
            free_chain(seq.chain)
            raise
        return scheduler

    async def _serving(self) -> Scheduler:
        """The running scheduler; while it is being rebuilt, wait for it, at most
        ``REBUILD_WAIT_S`` (then 503). A failed or closed engine is a 500."""
        try:
            async with asyncio.timeout(REBUILD_WAIT_S):
                while True:
                    with self._lock:
                        if self._closed:
                            raise EngineFailure("The engine has been shut down.")
                        if self._state == "failed":
                            raise EngineFailure("The engine has stopped after an internal error.")
                        if self._state == "ready":
                            return self._scheduler
                        rebuilt = asyncio.get_running_loop().create_future()
                        self._waiters.append(rebuilt)
                    await rebuilt
        except TimeoutError:
            raise Overloaded("The engine is restarting after an internal error.") from None

    def _new_scheduler(self, *, fail_at_step: int | None = None) -> Scheduler:
        """A started scheduler on a new context; its context is freed if it cannot start."""
        scheduler = Scheduler(
            self._model,
            self._settings,
            self._cache,
            on_failure=self._on_failure,
            fail_at_step=fail_at_step,
        )
        try:
            scheduler.start()
        except BaseException:
            scheduler.stop()
            raise
        return scheduler

    def _on_failure(self, error: BaseException) -> None:
        """The engine thread failed (called on it, before it ends its sequences): mark the
        engine restarting and rebuild it on a thread of its own, once."""
        with self._lock:
            if self._closed or self._state != "ready":
                return
            self._state = "restarting"
            self._rebuilder = threading.Thread(
                target=self._rebuild, name="deepwell-engine-rebuild", daemon=True
            )
            self._rebuilder.start()

    def _rebuild(self) -> None:
        """Replace the failed scheduler with a fresh one on the same model and cache; if
        that fails, the engine is failed for good and ``on_fatal`` hears why."""
        try:
            # Waits for the failed thread to end its sequences, then frees its context.
            self._scheduler.stop()
            scheduler = self._new_scheduler()
        except Exception as exc:
            log.critical("the engine thread failed and could not be rebuilt", exc_info=True)
            self._settle("failed")
            if self._on_fatal is not None and not self._closed:
                self._on_fatal(exc)
            return
        self._settle("ready", scheduler)
        log.warning("the engine thread failed and was rebuilt (restart %d)", self._restarts)

    def _settle(self, state: EngineState, scheduler: Scheduler | None = None) -> None:
        """End a rebuild in ``state`` (with the new ``scheduler``) and wake its waiters."""
        with self._lock:
            self._state = state
            if scheduler is not None:
                self._scheduler = scheduler
                self._restarts += 1
            waiters, self._waiters = self._waiters, []
        for future in waiters:
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_resolve, future)

    def _shut_down(self) -> None:
        """Stop the engine thread for good, once a rebuild under way has ended."""
        with self._lock:
            self._closed = True
            rebuilder = self._rebuilder
        if rebuilder is not None:
            rebuilder.join()
        self._scheduler.stop()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter that timed out cancelled it
        future.set_result(None)


def _poster(
    loop: asyncio.AbstractEventLoop, outputs: asyncio.Queue[Output]
) -> Callable[[Output], None]:
    def post(out: Output) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(outputs.put_nowait, out)

    return post
