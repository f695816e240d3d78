"""The scheduler thread: one ``llama_context``, many sequences, one ``llama_decode`` a step.

Each step builds one batch holding the next token of every decoding sequence and a
bounded chunk of prompt tokens of the sequences still reading their prompt, decodes it
once, and samples every sequence whose logits it produced. All llama.cpp calls on the
context happen on this thread; other threads talk to it only through ``submit`` and
``cancel``, and hear back through each sequence's ``emit`` callback.

KV cells live in *slots*, one per llama.cpp sequence id. A slot keeps its tokens' KV
after its request ends, so a later request of the same namespace whose prompt starts
with those tokens reuses them (the prefix is shared with ``llama_memory_seq_cp`` when it
sits in another slot) instead of reading them again. Idle slots give their cells back,
least recently used first, when a new request needs room.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import llama_cpp

from deepwell.cache.store import PrefixCache, Restore
from deepwell.cache.tiers import Entry
from deepwell.engine.base import EngineFinish, TokenLogprob
from deepwell.engine.llamacpp.logprobs import token_logprob
from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.engine.llamacpp.sampler import free_chain
from deepwell.errors import ConfigurationError
from deepwell.settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    logprob: TokenLogprob | None = None


@dataclass(frozen=True, slots=True)
class Begin:
    """The sequence was admitted; ``reused`` prompt tokens were found in the KV cache."""

    reused: int


@dataclass(frozen=True, slots=True)
class End:
    reason: EngineFinish


Output = Begin | Token | End


@dataclass(slots=True, eq=False)
class Slot:
    """A llama.cpp sequence id and the tokens whose KV it holds, from position 0."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    namespace: str = ""
    busy: bool = False
    last_used: int = 0


@dataclass(slots=True, eq=False)
class Sequence:
    """One generation, owned by the scheduler thread once submitted.

    ``chain`` is its sampler chain; the scheduler frees it when the sequence ends.
    ``reused`` is how many prompt tokens were found in the KV cache instead of being
    read again; it is set before the first token is emitted.
    """

    prompt: tuple[int, ...]
    max_tokens: int
    chain: Any
    emit: Callable[[Output], None]
    namespace: str = ""
    logprobs: int | None = None
    keys: list[bytes] = field(default_factory=list, repr=False)
    restore: Restore | None = field(default=None, repr=False)
    slot: Slot | None = None
    reused: int = 0
    generated: int = 0
    next_token: int = -1
    batch_index: int = -1
    in_batch: int = 0

    @property
    def n_past(self) -> int:
        return len(self.slot.tokens) if self.slot else 0

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)


@dataclass(frozen=True, slots=True)
class Snapshot:
    busy: int
    waiting: int
    kv_used: int
    reused_tokens: int


Command = tuple[Literal["submit", "cancel"], Sequence] | tuple[Literal["stop"], None]


class Scheduler:
    """Runs sequences on one context. ``start`` once, ``stop`` once."""

    def __init__(
        self, model: LlamaModel, settings: EngineSettings, cache: PrefixCache | None = None
    ) -> None:
        self._model = model
        self._settings = settings
        self._cache = cache
        # One llama.cpp sequence more than the slots: scratch space for saving prefixes.
        self._scratch = settings.n_seq_max
        self._block = cache.block_tokens if cache is not None else 0
        self._ctx = _new_context(model, settings)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self._n_batch = settings.n_batch
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._slots = [Slot(i) for i in range(settings.n_seq_max)]
        self._clock = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name="deepwell-engine", daemon=True)
        self.reused_tokens = 0
        self.failed = False

    # -- other threads ---------------------------------------------------------------

    def start(self) -> None:
        self._warm_up()
        self._thread.start()

    def _warm_up(self) -> None:
        """Decode once before serving, so the first request does not pay for first-use
        allocations inside llama.cpp."""
        tokens = [self._model.bos if self._model.bos >= 0 else 0] * min(32, self._n_batch)
        for i, token in enumerate(tokens):
            self._put_raw(i, token, i, self._scratch, logits=i == len(tokens) - 1)
        self._batch.n_tokens = len(tokens)
        llama_cpp.llama_decode(self._ctx, self._batch)
        llama_cpp.llama_memory_seq_rm(self._memory, self._scratch, -1, -1)

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

    def snapshot(self) -> Snapshot:
        """Approximate figures, read without locking."""
        return Snapshot(
            busy=sum(slot.busy for slot in self._slots),
            waiting=len(self._waiting),
            kv_used=self._cells_in_use(),
            reused_tokens=self.reused_tokens,
        )

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
            while self._waiting:
                self._drop(self._waiting[0])

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
            free_chain(seq.chain)

    # -- admission and prefix reuse --------------------------------------------------

    def _admit(self) -> None:
        """Start waiting requests in order while a slot and KV room are free."""
        while self._waiting:
            seq = self._waiting[0]
            source, common = self._longest_prefix(seq)
            restore = seq.restore
            if restore is not None and restore.blocks * self._block <= common:
                restore = None
            if restore is not None:
                source, common = None, 0
            target = self._target_slot(source, common)
            if target is None:
                return
            needed = len(seq.prompt) - common + 1
            if not self._make_room(needed, keep=(source, target)) and self._running:
                return
            self._waiting.popleft()
            if restore is not None and self._restore(target, seq, restore):
                self._start(seq, target, len(target.tokens))
            else:
                self._share(target, source, common)
                self._start(seq, target, common)

    def _longest_prefix(self, seq: Sequence) -> tuple[Slot | None, int]:
        """The slot of the same namespace sharing the longest prompt prefix, and its length.

        At least one prompt token is always left to read, so the step that reads it
        produces the logits of the first new token.
        """
        best: Slot | None = None
        best_len = 0
        limit = len(seq.prompt) - 1
        for slot in self._slots:
            if slot.namespace != seq.namespace or not slot.tokens:
                continue
            n = _common_prefix(slot.tokens, seq.prompt, limit)
            if n > best_len or (n == best_len and best is not None and best.busy and not slot.busy):
                best, best_len = slot, n
        return best, best_len

    def _target_slot(self, source: Slot | None, common: int) -> Slot | None:
        """An idle slot for the request: the source itself when idle, else an empty one,
        else the least recently used idle one."""
        if source is not None and not source.busy and common > 0:
            return source
        idle = [s for s in self._slots if not s.busy and s is not source]
        if not idle:
            return None
        return min(idle, key=lambda s: (bool(s.tokens), s.last_used))

    def _make_room(self, needed: int, *, keep: tuple[Slot | None, Slot]) -> bool:
        """Evict idle slots, least recently used first, until ``needed`` cells are free."""
        idle = sorted(
            (s for s in self._slots if not s.busy and s.tokens and s not in keep),
            key=lambda s: s.last_used,
        )
        while self._cells_in_use() + needed > self.n_ctx:
            if not idle:
                return False
            self._clear(idle.pop(0))
        return True

    def _restore(self, target: Slot, seq: Sequence, restore: Restore) -> bool:
        """Load a saved prefix state into ``target``; False (and a clean slot) if it fails."""
        self._clear(target)
        size = len(restore.state)
        buffer = (ctypes.c_uint8 * size).from_buffer_copy(restore.state)
        read = llama_cpp.llama_state_seq_set_data(self._ctx, buffer, size, target.seq_id)
        if read != size:
            log.warning("prefix cache: a saved state did not load; reading the prompt instead")
            self._clear(target)
            return False
        start = restore.blocks * self._block
        keep = start + _common_prefix(
            list(restore.tail), seq.prompt[start:], len(seq.prompt) - 1 - start
        )
        llama_cpp.llama_memory_seq_rm(self._memory, target.seq_id, keep, -1)
        target.tokens = list(seq.prompt[:keep])
        return True

    def _share(self, target: Slot, source: Slot | None, common: int) -> None:
        """Make ``target`` hold the first ``common`` tokens of ``source``, and nothing else."""
        if source is target:
            llama_cpp.llama_memory_seq_rm(self._memory, target.seq_id, common, -1)
            del target.tokens[common:]
            return
        self._clear(target)
        if source is not None and common > 0:
            llama_cpp.llama_memory_seq_cp(self._memory, source.seq_id, target.seq_id, 0, common)
            target.tokens = source.tokens[:common]

    def _start(self, seq: Sequence, slot: Slot, reused: int) -> None:
        slot.namespace = seq.namespace
        slot.busy = True
        slot.last_used = next(self._clock)
        seq.slot = slot
        seq.reused = reused
        seq.restore = None
        self.reused_tokens += reused
        self._running.append(seq)
        seq.emit(Begin(reused))

    def _clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.tokens = []

    def _cells_in_use(self) -> int:
        """KV cells held by all slots (shared prefixes counted once per slot: an overestimate)."""
        return sum(len(slot.tokens) for slot in self._slots)

    # -- one step --------------------------------------------------------------------

    def _step(self) -> None:
        members = self._fill_batch()
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            self._on_decode_failure(status, members)
            return
        for seq in members:
            assert seq.slot is not None
            if seq.prefilling:
                before = seq.n_past
                seq.slot.tokens.extend(seq.prompt[before : before + seq.in_batch])
                self._save_prompt_progress(seq, before)
            else:
                seq.slot.tokens.append(seq.next_token)
        for seq in members:
            if seq.batch_index >= 0:
                self._sample(seq)

    def _fill_batch(self) -> list[Sequence]:
        n = 0
        members: list[Sequence] = []
        decoding = [s for s in self._running if not s.prefilling]
        for seq in decoding:
            self._put(n, seq.next_token, seq.n_past, seq, logits=True)
            seq.batch_index, seq.in_batch = n, 1
            members.append(seq)
            n += 1
        budget = self._n_batch - n
        if decoding:
            budget = min(budget, self._settings.prefill_chunk)
        for seq in self._running:
            if budget <= 0 or not seq.prefilling:
                continue
            start = seq.n_past
            alone = len(self._running) == 1
            take = min(budget, _prefill_take(len(seq.prompt) - start, alone=alone))
            completes = start + take == len(seq.prompt)
            for i in range(take):
                last = completes and i == take - 1
                self._put(n, seq.prompt[start + i], start + i, seq, logits=last)
                n += 1
            seq.batch_index = n - 1 if completes else -1
            seq.in_batch = take
            members.append(seq)
            budget -= take
        self._batch.n_tokens = n
        return members

    def _put(self, i: int, token: int, pos: int, seq: Sequence, *, logits: bool) -> None:
        assert seq.slot is not None
        self._put_raw(i, token, pos, seq.slot.seq_id, logits=logits)

    def _put_raw(self, i: int, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
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
        logprob = None
        if seq.logprobs is not None:
            logprob = token_logprob(self._model, self._ctx, seq.batch_index, token, seq.logprobs)
        seq.emit(Token(token, logprob))
        if seq.generated >= seq.max_tokens or seq.n_past + 1 >= self.n_ctx:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _on_decode_failure(self, status: int, members: list[Sequence]) -> None:
        """No room in the KV cache (status 1): free an idle slot, or end one sequence."""
        if status != 1:
            raise RuntimeError(f"llama_decode failed with status {status}")
        idle = [s for s in self._slots if not s.busy and s.tokens]
        if idle:
            self._clear(min(idle, key=lambda s: s.last_used))
            return
        prefilling = [s for s in members if s.prefilling]
        victim = prefilling[-1] if prefilling else max(members, key=lambda s: s.n_past)
        log.warning("KV cache full: ending one of %d sequences", len(self._running))
        self._finish(victim, "insufficient_system_resource")

    def _finish(self, seq: Sequence, reason: EngineFinish) -> None:
        self._release(seq)
        seq.emit(End(reason))
        if self._cache is not None and seq.slot is not None:
            tokens = seq.slot.tokens
            self._save(seq.slot, self._cache.keys(seq.namespace, tokens), len(tokens))

    # -- saving prefixes to the cache ------------------------------------------------

    def _save_prompt_progress(self, seq: Sequence, before: int) -> None:
        """Save the prompt's prefix at the end of the prompt and every ``store_interval``."""
        if self._cache is None or seq.slot is None:
            return
        after = seq.n_past
        interval = self._cache.store_interval
        if after == len(seq.prompt):
            self._save(seq.slot, seq.keys, after)
        elif after // interval > before // interval:
            self._save(seq.slot, seq.keys, after // interval * interval)

    def _save(self, slot: Slot, keys: list[bytes], n_tokens: int) -> None:
        """Save the state of ``slot``'s first ``n_tokens`` tokens, keyed by their last whole
        block (unless that key is saved already).

        The prefix is shared into the scratch sequence so that exactly those tokens are
        saved; the tokens past the last whole block go with it as the entry's tail. A
        failure costs only the entry.
        """
        assert self._cache is not None
        blocks = min(n_tokens // self._block, len(keys))
        if blocks == 0 or self._cache.contains(keys[blocks - 1]):
            return
        tail = tuple(slot.tokens[blocks * self._block : n_tokens])
        try:
            llama_cpp.llama_memory_seq_cp(self._memory, slot.seq_id, self._scratch, 0, n_tokens)
            size = llama_cpp.llama_state_seq_get_size(self._ctx, self._scratch)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(self._ctx, buffer, size, self._scratch)
            state = ctypes.string_at(buffer, written)
            self._cache.store(Entry(keys[blocks - 1], blocks, state, tail))
        except Exception:
            log.exception("prefix cache: saving a prefix failed")
        finally:
            llama_cpp.llama_memory_seq_rm(self._memory, self._scratch, -1, -1)

    def _release(self, seq: Sequence) -> None:
        """End a running sequence; its slot keeps the KV for later reuse."""
        assert seq.slot is not None
        free_chain(seq.chain)
        seq.slot.busy = False
        seq.slot.last_used = next(self._clock)
        self._running.remove(seq)

    def _free(self) -> None:
        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None


def _prefill_take(remaining: int, *, alone: bool) -> int:
    """How many of a prompt's ``remaining`` tokens one step may read.

    When its sequence is the only one running, the last prompt token is read in a step of
    its own, whether the rest of the prompt was read just before or found in the cache: the
    logits of the first new token then come from the same computation either way, so a
    repeated request at temperature 0 gets the same answer as the first. Alongside other
    sequences the batches differ from run to run anyway, and that extra step would only
    delay the first token.
    """
    return remaining - 1 if alone and remaining > 1 else remaining


def _common_prefix(a: list[int], b: tuple[int, ...], limit: int) -> int:
    """How many leading tokens ``a`` and ``b`` share, at most ``limit``."""
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _new_context(model: LlamaModel, settings: EngineSettings) -> Any:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = settings.n_ctx
    params.n_batch = settings.n_batch
    params.n_ubatch = min(settings.n_ubatch, settings.n_batch)
    params.n_seq_max = settings.n_seq_max + 1
    params.kv_unified = True
    params.no_perf = True
    cores = os.cpu_count() or 1
    params.n_threads = settings.n_threads or cores
    params.n_threads_batch = settings.n_threads_batch or cores
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    if not ctx:
        raise ConfigurationError("llama.cpp could not create a context with these engine settings")
    return ctx
