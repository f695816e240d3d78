"""The scheduler thread: one ``llama_context``, many sequences, one ``llama_decode`` a step.

Each step builds one batch holding the next token of every decoding sequence and a
bounded chunk of prompt tokens of the sequences still reading their prompt, decodes it
once, and samples every sequence whose logits it produced. All llama.cpp calls on the
context happen on this thread; other threads talk to it only through ``submit`` and
``cancel``, and hear back through each sequence's ``emit`` callback.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import llama_cpp

from deepwell.core.types import Sampling
from deepwell.engine.base import EngineFinish
from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.engine.llamacpp.sampler import build_chain, free_chain
from deepwell.errors import ConfigurationError
from deepwell.settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Token:
    id: int


@dataclass(frozen=True, slots=True)
class End:
    reason: EngineFinish


Output = Token | End


@dataclass(slots=True, eq=False)
class Sequence:
    """One generation, owned by the scheduler thread once submitted."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling
    emit: Callable[[Output], None]
    seq_id: int = -1
    n_past: int = 0
    generated: int = 0
    next_token: int = -1
    batch_index: int = -1
    in_batch: int = 0
    chain: Any = field(default=None, repr=False)

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)


Command = tuple[Literal["submit", "cancel"], Sequence] | tuple[Literal["stop"], None]


class Scheduler:
    """Runs sequences on one context. ``start`` once, ``stop`` once."""

    def __init__(self, model: LlamaModel, settings: EngineSettings) -> None:
        self._model = model
        self._settings = settings
        self._ctx = _new_context(model, settings)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._n_batch = settings.n_batch
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._free_ids = list(range(settings.n_seq_max - 1, -1, -1))
        self._thread = threading.Thread(target=self._run, name="deepwell-engine", daemon=True)
        self.failed = False

    # -- other threads ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, seq: Sequence) -> None:
        self._commands.put(("submit", seq))

    def cancel(self, seq: Sequence) -> None:
        self._commands.put(("cancel", seq))

    def stop(self) -> None:
        """Stop the thread, end every sequence, and free the context."""
        if self._thread.is_alive():
            self._commands.put(("stop", None))
            self._thread.join()
        self._free()

    def snapshot(self) -> tuple[int, int, int]:
        """(busy sequences, waiting requests, KV cells in use); approximate, lock-free."""
        running = list(self._running)
        return len(running), len(self._waiting), sum(s.n_past for s in running)

    # -- the scheduler thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._take_commands():
                self._admit()
                if self._running:
                    self._step()
        except Exception:
            log.exception("engine thread failed")
            self.failed = True
        finally:
            for seq in [*self._running, *self._waiting]:
                seq.emit(End("insufficient_system_resource"))
            for seq in list(self._running):
                self._release(seq)
            self._waiting.clear()

    def _take_commands(self) -> bool:
        """Apply pending commands; wait for one when idle. False means stop."""
        block = not self._running and not self._waiting
        while True:
            try:
                kind, seq = self._commands.get(block=block)
            except queue.Empty:
                return True
            block = False
            if kind == "stop":
                return False
            assert seq is not None
            if kind == "submit":
                self._waiting.append(seq)
            else:
                self._drop(seq)

    def _drop(self, seq: Sequence) -> None:
        if seq in self._running:
            self._release(seq)
        elif seq in self._waiting:
            self._waiting.remove(seq)

    def _admit(self) -> None:
        while self._waiting and self._free_ids:
            seq = self._waiting.popleft()
            seq.seq_id = self._free_ids.pop()
            seq.chain = build_chain(seq.sampling)
            self._running.append(seq)

    def _step(self) -> None:
        members = self._fill_batch()
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            self._on_decode_failure(status, members)
            return
        for seq in members:
            seq.n_past += seq.in_batch
        for seq in members:
            if seq.batch_index >= 0:
                self._sample(seq)

    def _fill_batch(self) -> list[Sequence]:
        n = 0
        members: list[Sequence] = []
        decoding = [s for s in self._running if not s.prefilling]
        for seq in decoding:
            self._put(n, seq.next_token, seq.n_past, seq.seq_id, logits=True)
            seq.batch_index, seq.in_batch = n, 1
            members.append(seq)
            n += 1
        budget = self._n_batch - n
        if decoding:
            budget = min(budget, self._settings.prefill_chunk)
        for seq in self._running:
            if budget <= 0 or not seq.prefilling:
                continue
            take = min(budget, len(seq.prompt) - seq.n_past)
            completes = seq.n_past + take == len(seq.prompt)
            for i in range(take):
                pos = seq.n_past + i
                self._put(n, seq.prompt[pos], pos, seq.seq_id, logits=completes and i == take - 1)
                n += 1
            seq.batch_index = n - 1 if completes else -1
            seq.in_batch = take
            members.append(seq)
            budget -= take
        self._batch.n_tokens = n
        return members

    def _put(self, i: int, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = 1 if logits else 0

    def _sample(self, seq: Sequence) -> None:
        token = int(llama_cpp.llama_sampler_sample(seq.chain, self._ctx, seq.batch_index))
        if self._model.is_eog(token):
            self._finish(seq, "stop")
            return
        seq.generated += 1
        seq.emit(Token(token))
        if seq.generated >= seq.max_tokens or seq.n_past + 1 >= self.n_ctx:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _on_decode_failure(self, status: int, members: list[Sequence]) -> None:
        """No room in the KV cache (status 1): end one sequence so the others go on."""
        if status != 1:
            raise RuntimeError(f"llama_decode failed with status {status}")
        prefilling = [s for s in members if s.prefilling]
        victim = prefilling[-1] if prefilling else max(members, key=lambda s: s.n_past)
        log.warning("KV cache full: ending sequence %d", victim.seq_id)
        self._finish(victim, "insufficient_system_resource")

    def _finish(self, seq: Sequence, reason: EngineFinish) -> None:
        seq.emit(End(reason))
        self._release(seq)

    def _release(self, seq: Sequence) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
        free_chain(seq.chain)
        seq.chain = None
        self._running.remove(seq)
        self._free_ids.append(seq.seq_id)

    def _free(self) -> None:
        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None


def _new_context(model: LlamaModel, settings: EngineSettings) -> Any:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = settings.n_ctx
    params.n_batch = settings.n_batch
    params.n_ubatch = min(settings.n_ubatch, settings.n_batch)
    params.n_seq_max = settings.n_seq_max
    params.kv_unified = True
    params.no_perf = True
    cores = os.cpu_count() or 1
    params.n_threads = settings.n_threads or cores
    params.n_threads_batch = settings.n_threads_batch or cores
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    if not ctx:
        raise ConfigurationError("llama.cpp could not create a context with these engine settings")
    return ctx
