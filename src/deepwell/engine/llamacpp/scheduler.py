"""The scheduler thread: one ``llama_context``, many sequences, one ``llama_decode`` a step.

Each step builds one batch holding the next token of every decoding sequence and a
bounded chunk of prompt tokens of the sequences still reading their prompt, decodes it
once, and samples every sequence whose logits it produced. All llama.cpp calls on the
context happen on this thread; other threads talk to it only through ``submit`` and
``cancel``, and hear back through each sequence's ``emit`` callback.

If a step raises, the thread ends: every sequence it holds or was sent ends with
``insufficient_system_resource``, later submissions are refused, and ``on_failure`` tells
the owner, who may build a fresh scheduler (``LlamaCppEngine`` does).

KV cells live in *slots*, one per llama.cpp sequence id. A slot keeps its tokens' KV
after its request ends, so a later request of the same namespace whose prompt starts
with those tokens reuses them (the prefix is shared with ``llama_memory_seq_cp`` when it
sits in another slot) instead of reading them again. Idle slots give their cells back,
least recently used first, when a new request needs room.

What to do is decided without llama.cpp: the slot table (``slots``) picks slots and
evictions, the batch plan (``batch``) picks each step's tokens. This module carries
those decisions out on the context.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import llama_cpp
import numpy as np

from deepwell.cache.prefixes import PrefixCache, Restore, save_point
from deepwell.cache.tiers import Entry
from deepwell.engine.base import EngineFinish
from deepwell.engine.constraints import Matcher
from deepwell.engine.llamacpp.batch import BatchPlan, plan_batch
from deepwell.engine.llamacpp.drafts import PromptLookup
from deepwell.engine.llamacpp.logprobs import token_logprob
from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.engine.llamacpp.sampler import free_chain
from deepwell.engine.llamacpp.slots import Slot, SlotTable, common_prefix
from deepwell.errors import ConfigurationError
from deepwell.settings import EngineSettings
from deepwell.vocabulary import TokenLogprob

log = logging.getLogger(__name__)


MAX_DEFERRED_STEPS = 512
"""The most steps a request waits for another's prompt read to share its KV."""

NEAR_TIE = 0.05
"""Two best logits closer than this are a near-tie: a greedy pick between them is made
from a batch of one token (see ``Scheduler._verify``)."""


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
    """The sequence ended; ``error`` says why when its constraint failed."""

    reason: EngineFinish
    error: str | None = None


Output = Begin | Token | End


@dataclass(slots=True, eq=False)
class EngineSequence:
    """One generation, owned by the scheduler thread once submitted.

    ``chain`` is its sampler chain; the scheduler frees it when the sequence ends.
    ``matcher``, when set, masks the logits before each sample.
    ``reused`` is how many prompt tokens were found in the KV cache instead of being
    read again; it is set before the first token is emitted. ``next_token`` is the
    token it sampled last, None until it samples one.
    """

    prompt: tuple[int, ...]
    max_tokens: int
    chain: Any
    emit: Callable[[Output], None]
    namespace: str = ""
    logprobs: int | None = None
    matcher: Matcher | None = field(default=None, repr=False)
    keys: list[bytes] = field(default_factory=list, repr=False)
    restore: Restore | None = field(default=None, repr=False)
    slot: Slot | None = None
    reused: int = 0
    generated: int = 0
    next_token: int | None = None
    # Steps this sequence was held back to reuse a prefix another one is reading.
    deferred: int = 0
    # Its history indexed for drafts, once it is first drafted for.
    lookup: PromptLookup | None = field(default=None, repr=False)
    # Temperature 0: the token picked is the best logit.
    greedy: bool = False
    # Its next token is read without drafts (its pick in a draft's batch was a near-tie).
    solo: bool = False

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
    steps: int = 0
    decode_seconds: float = 0.0
    drafted: int = 0
    accepted: int = 0


Command = tuple[Literal["submit", "cancel"], EngineSequence] | tuple[Literal["stop"], None]


class Scheduler:
    """Runs sequences on one context. ``start`` once, ``stop`` once.

    ``on_failure`` is called on the scheduler thread when a step raises, before the thread
    ends its sequences; it must not block. ``fail_at_step`` is a test hook: that step (counted
    from 1 at the start) fails as a broken ``llama_decode`` does. ``settings.fail_at_step`` is
    not read here; the engine passes it to its first scheduler only.
    """

    def __init__(
        self,
        model: LlamaModel,
        settings: EngineSettings,
        cache: PrefixCache | None = None,
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        fail_at_step: int | None = None,
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
        # Held to put a command or to refuse commands for good, so none is left unread.
        self._gate = threading.Lock()
        self._closed = False
        self._waiting: deque[EngineSequence] = deque()
        self._running: list[EngineSequence] = []
        self._slots = SlotTable(settings.n_seq_max)
        self._thread = threading.Thread(target=self._run, name="deepwell-engine", daemon=True)
        self._on_failure = on_failure
        self._fail_at_step = fail_at_step
        self._steps = 0
        # Tokens guessed by prompt lookup, and how many of them the samplers took.
        self.drafted = 0
        self.accepted = 0
        self.decode_seconds = 0.0
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

    def submit(self, seq: EngineSequence) -> bool:
        """Queue ``seq``; False, queuing nothing, once the thread has ended (it failed or
        was stopped)."""
        return self._send(("submit", seq))

    def cancel(self, seq: EngineSequence) -> None:
        """End ``seq`` at the start of the next step; a no-op for a sequence that ended."""
        self._send(("cancel", seq))

    def _send(self, command: Command) -> bool:
        with self._gate:
            if self._closed:
                return False
            self._commands.put(command)
            return True

    def stop(self) -> None:
        """Stop the thread, end every sequence, and free the context. Also frees the
        context of a scheduler whose thread failed or never started."""
        if self._thread.is_alive():
            self._send(("stop", None))
            self._thread.join()
        self._free()

    def snapshot(self) -> Snapshot:
        """Approximate figures, read without locking."""
        return Snapshot(
            busy=self._slots.busy_count(),
            waiting=len(self._waiting),
            kv_used=self._slots.cells_in_use(),
            reused_tokens=self.reused_tokens,
            steps=self._steps,
            decode_seconds=self.decode_seconds,
            drafted=self.drafted,
            accepted=self.accepted,
        )

    # -- the scheduler thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._take_commands():
                self._admit()
                if self._running:
                    self._step()
        except Exception as exc:
            log.exception("engine thread failed")
            self.failed = True
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._close()

    def _close(self) -> None:
        """Refuse commands from now on, then end every sequence the thread holds or was
        sent, freeing its sampler chain and slot."""
        with self._gate:
            self._closed = True
        while True:
            try:
                self._apply(self._commands.get_nowait())
            except queue.Empty:
                break
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
                command = self._commands.get(block=block)
            except queue.Empty:
                return True
            block = False
            if not self._apply(command):
                return False

    def _apply(self, command: Command) -> bool:
        """Carry out one command; False for ``stop``."""
        kind, seq = command
        if seq is None:
            return False
        if kind == "submit":
            self._waiting.append(seq)
        else:
            self._drop(seq)
        return True

    def _drop(self, seq: EngineSequence) -> None:
        if seq in self._running:
            self._release(seq)
        elif seq in self._waiting:
            self._waiting.remove(seq)
            free_chain(seq.chain)

    # -- admission and prefix reuse --------------------------------------------------

    def _admit(self) -> None:
        """Start waiting requests in order while a slot and KV room are free; a request
        whose prompt shares more with a prompt being read right now than with any KV
        already there waits for that read (and then shares its KV), the others go on."""
        held: list[EngineSequence] = []
        try:
            self._admit_waiting(held)
        finally:
            self._waiting.extendleft(reversed(held))

    def _admit_waiting(self, held: list[EngineSequence]) -> None:
        while self._waiting:
            seq = self._waiting[0]
            source, common = self._slots.longest_prefix(seq.namespace, seq.prompt)
            restore = seq.restore
            if restore is not None and restore.blocks * self._block <= common:
                restore = None
            have = restore.blocks * self._block if restore is not None else common
            if self._joins_prefill(seq, have):
                held.append(self._waiting.popleft())
                continue
            if restore is not None:
                source, common = None, 0
            target = self._slots.target_slot(source, common)
            if target is None:
                return
            needed = len(seq.prompt) - common + 1
            if restore is not None:  # its whole tail is loaded before it is cut to the prompt
                needed += min(len(restore.tail), self._block)
            room = self._slots.room_for(needed, capacity=self.n_ctx, keep=(source, target))
            for slot in room.evict:
                self._clear(slot)
            if not room.enough and self._running:
                return
            # The KV work comes first, so a sequence is always waiting or running, even
            # if llama.cpp raises in between.
            if restore is not None and self._restore(target, seq, restore):
                reused = len(target.tokens)
            else:
                self._share(target, source, common)
                reused = common
            self._waiting.popleft()
            self._start(seq, target, reused)

    def _joins_prefill(self, seq: EngineSequence, have: int) -> bool:
        """Whether ``seq`` should wait a step: a running sequence of its namespace is
        reading a prompt that shares at least a block more with ``seq``'s than the
        ``have`` tokens it could start from now, and has not read that part yet. Bounded:
        after ``MAX_DEFERRED_STEPS`` it starts anyway."""
        if not seq.keys or seq.deferred >= MAX_DEFERRED_STEPS:
            return False
        for other in self._running:
            if other.namespace != seq.namespace or not other.prefilling or not other.keys:
                continue
            shared = _leading_equal(seq.keys, other.keys) * self._block
            shared = min(shared, len(seq.prompt) - 1)
            if shared >= have + self._block and other.n_past < shared:
                seq.deferred += 1
                return True
        return False

    def _restore(self, target: Slot, seq: EngineSequence, restore: Restore) -> bool:
        """Load a saved prefix state into ``target`` and keep the part of it that begins
        ``seq``'s prompt, leaving at least the prompt's last token to read.

        Nothing about the state is taken on trust: its blocks must be blocks of this
        prompt, leaving a token to read, and its tail shorter than a block; llama.cpp
        must read all of it, and the sequence must then hold exactly the positions the
        entry claims. If any check fails the slot is left empty, the entry is removed
        from the cache (so the warning is logged once, not once a request) and False
        tells the caller to read the whole prompt.
        """
        self._clear(target)
        start = restore.blocks * self._block
        claimed = start + len(restore.tail)
        fits = (
            0 < restore.blocks <= len(seq.keys)
            and start <= len(seq.prompt) - 1
            and len(restore.tail) < self._block
        )
        if not fits or not self._load(target, restore.state, claimed):
            log.warning("prefix cache: a saved state did not load; reading the prompt instead")
            self._clear(target)
            if self._cache is not None and 0 < restore.blocks <= len(seq.keys):
                self._cache.discard(seq.keys[restore.blocks - 1])
            return False
        keep = start + common_prefix(restore.tail, seq.prompt[start:], len(seq.prompt) - 1 - start)
        llama_cpp.llama_memory_seq_rm(self._memory, target.seq_id, keep, -1)
        target.tokens = list(seq.prompt[:keep])
        return True

    def _load(self, target: Slot, state: bytes, tokens: int) -> bool:
        """Put ``state`` into ``target``'s sequence; True only if llama.cpp read all of it
        and the sequence holds positions 0 to ``tokens - 1``, nothing else."""
        size = len(state)
        if size == 0:
            return False
        try:
            buffer = (ctypes.c_uint8 * size).from_buffer_copy(state)
            read = llama_cpp.llama_state_seq_set_data(self._ctx, buffer, size, target.seq_id)
        except Exception:  # a saved state must never take the engine thread down
            log.exception("prefix cache: loading a saved state raised")
            return False
        first = llama_cpp.llama_memory_seq_pos_min(self._memory, target.seq_id)
        last = llama_cpp.llama_memory_seq_pos_max(self._memory, target.seq_id)
        return bool(read == size and first == 0 and last == tokens - 1)

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

    def _start(self, seq: EngineSequence, slot: Slot, reused: int) -> None:
        self._slots.occupy(slot, seq.namespace)
        seq.slot = slot
        seq.reused = reused
        seq.restore = None
        self.reused_tokens += reused
        self._running.append(seq)
        seq.emit(Begin(reused))

    def _clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.tokens = []

    # -- one step --------------------------------------------------------------------

    def _step(self) -> None:
        speculate = (
            self._settings.speculate and len(self._running) <= self._settings.speculate_sequences
        )
        plan = plan_batch(
            self._running,
            n_batch=self._n_batch,
            prefill_chunk=self._settings.prefill_chunk,
            prefill_group=self._settings.prefill_group,
            draft=self._draft if speculate else None,
        )
        self._fill_batch(plan)
        status = self._decode()
        if status != 0:
            self._on_decode_failure(status, [member.seq for member in plan.members])
            return
        for member in plan.members:
            self._advance(member.seq, member.in_batch)
        for member in plan.members:
            if member.batch_index is None:
                continue
            if member.drafts:
                self._verify(member.seq, member.batch_index, member.drafts)
            else:
                self._sample(member.seq, member.batch_index)

    # -- speculation -----------------------------------------------------------------

    def _draft(self, seq: EngineSequence, room: int) -> list[int]:
        """Tokens guessed to follow ``seq``'s next one, from its own history, within the
        batch's ``room``, the context and its ``max_tokens``."""
        assert seq.slot is not None
        assert seq.next_token is not None
        if seq.solo:
            seq.solo = False
            return []
        if seq.lookup is None:
            history = [*seq.slot.tokens, seq.next_token]
            seq.lookup = PromptLookup(history, self._settings.max_draft)
        left = min(room - 1, self.n_ctx - seq.n_past - 2, seq.max_tokens - seq.generated - 1)
        return seq.lookup.draft(left) if left > 0 else []

    def _verify(self, seq: EngineSequence, first: int, drafts: tuple[int, ...]) -> None:
        """Sample ``seq`` at its next token's logits, then at each draft's while the token
        sampled is the draft that was read after it: each token is sampled, with its
        sampler chain and constraint, from the logits of the tokens really before it, so
        the output is what decoding one token at a time gives. The KV of the drafts not
        taken is removed.

        A step of several tokens rounds differently from a step of one (llama.cpp's CPU
        kernels differ), so a greedy pick between two logits closer than ``NEAR_TIE`` is
        not made here: the token before it is read again, alone, at the next step, and
        the pick is made there, as decoding without drafts makes it. That narrows the
        difference, not closes it: the KV a batch wrote rounds differently too, so where
        plain decoding meets a near-tie the two outputs may still part."""
        assert seq.slot is not None
        slot = seq.slot
        taken = 0
        for i in range(len(drafts) + 1):
            if seq.greedy and seq.matcher is None and self._near_tie(first + i):
                seq.next_token = slot.tokens.pop()
                seq.solo = True
                break
            token = self._sample(seq, first + i)
            if i == len(drafts) or token != drafts[i]:
                break
            slot.tokens.append(token)  # read already, as the draft at this position
            taken += 1
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, len(slot.tokens), -1)
        self.drafted += len(drafts)
        self.accepted += taken
        if seq.lookup is not None:
            seq.lookup.feedback(len(drafts), taken)

    def _decode(self) -> int:
        """``llama_decode`` on the step's batch, unless the ``fail_at_step`` hook makes this
        step fail as a broken decode does (status -1, an invalid batch)."""
        self._steps += 1
        if self._steps == self._fail_at_step:
            log.warning("engine.fail_at_step: failing step %d on purpose", self._steps)
            return -1
        began = time.perf_counter()
        status = int(llama_cpp.llama_decode(self._ctx, self._batch))
        self.decode_seconds += time.perf_counter() - began
        return status

    def _fill_batch(self, plan: BatchPlan[EngineSequence]) -> None:
        for i, entry in enumerate(plan.entries):
            self._put(i, entry.token, entry.pos, entry.seq, logits=entry.logits)
        self._batch.n_tokens = len(plan.entries)

    def _advance(self, seq: EngineSequence, in_batch: int) -> None:
        """Record the tokens of ``seq`` that the step just read as held by its slot."""
        assert seq.slot is not None
        if seq.prefilling:
            before = seq.n_past
            seq.slot.tokens.extend(seq.prompt[before : before + in_batch])
            self._save_prompt_progress(seq, before)
        else:
            assert seq.next_token is not None
            seq.slot.tokens.append(seq.next_token)

    def _put(self, i: int, token: int, pos: int, seq: EngineSequence, *, logits: bool) -> None:
        assert seq.slot is not None
        self._put_raw(i, token, pos, seq.slot.seq_id, logits=logits)

    def _put_raw(self, i: int, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = 1 if logits else 0

    def _sample(self, seq: EngineSequence, batch_index: int) -> int | None:
        """Sample ``seq``'s next token: within its constraint, if it has one (logprobs
        still report the model's own distribution, from the logits before the mask).
        The token, or None when the sequence ended."""
        raw = None
        if seq.matcher is not None:
            logits = self._logits(batch_index)
            raw = logits.copy() if seq.logprobs is not None else None
            if (error := seq.matcher.mask(logits)) is not None:
                self._finish(seq, "stop", error)
                return None
        token = int(llama_cpp.llama_sampler_sample(seq.chain, self._ctx, batch_index))
        if self._model.is_eog(token):
            self._finish(seq, "stop")
            return None
        if seq.matcher is not None and (error := seq.matcher.consume(token)) is not None:
            self._finish(seq, "stop", error)
            return None
        seq.generated += 1
        if seq.lookup is not None:
            seq.lookup.extend(token)
        logprob = None
        if seq.logprobs is not None:
            if raw is not None:
                self._logits(batch_index)[:] = raw
            logprob = token_logprob(self._model, self._ctx, batch_index, token, seq.logprobs)
        seq.emit(Token(token, logprob))
        if seq.generated >= seq.max_tokens or seq.n_past + 1 >= self.n_ctx:
            self._finish(seq, "length")
            return None
        seq.next_token = token
        return token

    def _near_tie(self, batch_index: int) -> bool:
        """Whether the two best logits at ``batch_index`` are within ``NEAR_TIE``."""
        logits = self._logits(batch_index)
        best = int(logits.argmax())
        top = logits[best]
        logits[best] = -np.inf
        second = logits.max()
        logits[best] = top
        return bool(top - second < NEAR_TIE)

    def _logits(self, batch_index: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self._model.n_vocab,))

    def _on_decode_failure(self, status: int, members: list[EngineSequence]) -> None:
        """No room in the KV cache (status 1): free an idle slot, or end one sequence."""
        if status != 1:
            raise RuntimeError(f"llama_decode failed with status {status}")
        idle = self._slots.least_recent_idle()
        if idle is not None:
            self._clear(idle)
            return
        prefilling = [s for s in members if s.prefilling]
        victim = prefilling[-1] if prefilling else max(members, key=lambda s: s.n_past)
        log.warning("KV cache full: ending one of %d sequences", len(self._running))
        self._finish(victim, "insufficient_system_resource")

    def _finish(self, seq: EngineSequence, reason: EngineFinish, error: str | None = None) -> None:
        self._release(seq)
        seq.emit(End(reason, error))
        if self._cache is not None and seq.slot is not None:
            tokens = seq.slot.tokens
            self._save(seq.slot, self._cache.keys(seq.namespace, tokens), len(tokens))

    # -- saving prefixes to the cache ------------------------------------------------

    def _save_prompt_progress(self, seq: EngineSequence, before: int) -> None:
        """Save the prompt's prefix at its end and, inside a long prompt, at the points
        ``save_point`` picks (``store_interval`` times 1, 2, 4 ... up to half the prompt),
        so one prompt writes less than twice its own state."""
        if self._cache is None or seq.slot is None:
            return
        point = save_point(before, seq.n_past, len(seq.prompt), self._cache.store_interval)
        if point is not None:
            self._save(seq.slot, seq.keys, point)

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
            if written != size or written == 0:
                log.warning("prefix cache: llama.cpp wrote %d of %d state bytes", written, size)
                return
            state = ctypes.string_at(buffer, written)
            self._cache.store(Entry(keys[blocks - 1], blocks, state, tail))
        except Exception:
            log.exception("prefix cache: saving a prefix failed")
        finally:
            llama_cpp.llama_memory_seq_rm(self._memory, self._scratch, -1, -1)

    def _release(self, seq: EngineSequence) -> None:
        """End a running sequence; its slot keeps the KV for later reuse."""
        assert seq.slot is not None
        free_chain(seq.chain)
        self._slots.release(seq.slot)
        self._running.remove(seq)

    def _free(self) -> None:
        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None


def _leading_equal(a: list[bytes], b: list[bytes]) -> int:
    """How many leading block keys ``a`` and ``b`` share (a key names its whole prefix,
    so the first difference ends the shared part)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
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
