"""The batch plan: which tokens of which running sequences one decoding step reads.

Every step reads the next token of each decoding sequence, and then a bounded chunk of
the prompt of each sequence still reading its prompt, in the order they run. The plan
says what goes where and which entries want logits; the scheduler copies it into the
``llama_batch`` and decodes it. No llama.cpp call is made here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Running(Protocol):
    """What the plan needs to know of a running sequence."""

    @property
    def prompt(self) -> tuple[int, ...]: ...

    @property
    def n_past(self) -> int:
        """How many of its tokens are in the KV cache already."""
        ...

    @property
    def prefilling(self) -> bool:
        """Whether it is still reading its prompt."""
        ...

    @property
    def next_token(self) -> int | None:
        """The token it sampled last, which a decoding sequence reads next."""
        ...


S = TypeVar("S", bound=Running)


@dataclass(frozen=True, slots=True)
class Entry(Generic[S]):
    """One token of the batch: ``token`` at ``pos`` of ``seq``'s sequence."""

    token: int
    pos: int
    seq: S
    logits: bool


@dataclass(frozen=True, slots=True)
class Member(Generic[S]):
    """A sequence taking part in the step.

    ``in_batch`` is how many of its tokens the batch holds for sure; ``batch_index`` is
    where in the batch its logits are, or None when this step does not produce them (a
    prompt chunk that does not end the prompt). ``drafts`` are guessed tokens read right
    after a decoding sequence's next token, each with its logits (at ``batch_index + 1``
    and on); the scheduler keeps those its sampler agrees with.
    """

    seq: S
    batch_index: int | None
    in_batch: int
    drafts: tuple[int, ...] = ()


@dataclass(slots=True)
class BatchPlan(Generic[S]):
    """The entries of one batch, in order, and the sequences they belong to."""

    entries: list[Entry[S]] = field(default_factory=list)
    members: list[Member[S]] = field(default_factory=list)

    def add_decode(self, seq: S, drafts: Sequence[int] = ()) -> None:
        """The next token of a decoding sequence, whose logits are wanted, and the
        ``drafts`` guessed to follow it, whose logits are wanted too."""
        token = seq.next_token
        assert token is not None, "a decoding sequence has a sampled token to read"
        self.members.append(Member(seq, len(self.entries), 1, tuple(drafts)))
        self.entries.append(Entry(token, seq.n_past, seq, logits=True))
        for i, guess in enumerate(drafts, start=1):
            self.entries.append(Entry(guess, seq.n_past + i, seq, logits=True))

    def add_prefill(self, seq: S, take: int) -> None:
        """The next ``take`` prompt tokens of a prefilling sequence; the logits of the last
        one are wanted only when it ends the prompt."""
        start = seq.n_past
        completes = start + take == len(seq.prompt)
        for i in range(take):
            last = completes and i == take - 1
            self.entries.append(Entry(seq.prompt[start + i], start + i, seq, logits=last))
        index = len(self.entries) - 1 if completes else None
        self.members.append(Member(seq, index, take))


def plan_batch(
    running: Sequence[S],
    *,
    n_batch: int,
    prefill_chunk: int,
    prefill_group: int = 0,
    draft: Callable[[S, int], Sequence[int]] | None = None,
) -> BatchPlan[S]:
    """The batch of one step over the ``running`` sequences.

    The batch holds at most ``n_batch`` tokens. While some sequence is decoding, the
    prompt chunks together hold at most ``prefill_chunk`` tokens, so that reading a long
    prompt delays the others' next tokens only that much. With ``prefill_group``, the
    prompt of a further sequence is read only while the step holds fewer prompt tokens
    than that: prompts that arrive together are read a few at a time, in running order,
    so that the first finish sooner (on a CPU a step of many prompts costs about what
    reading them one after another does, and ends for all of them at once). With
    ``draft``, a decoding sequence also reads the tokens ``draft(seq, room)`` guesses,
    while nothing is prefilling and the batch has room for every sequence's guesses.
    """
    plan: BatchPlan[S] = BatchPlan()
    decoding = [s for s in running if not s.prefilling]
    guessing = draft is not None and len(decoding) == len(running)
    room = (n_batch - len(decoding)) // max(1, len(decoding))
    for seq in decoding:
        plan.add_decode(seq, draft(seq, room) if guessing and draft is not None else ())
    budget = n_batch - len(plan.entries)
    if decoding:
        budget = min(budget, prefill_chunk)
    alone = len(running) == 1
    read = 0
    for seq in running:
        if budget <= 0 or (prefill_group and read >= prefill_group):
            break
        if not seq.prefilling:
            continue
        take = min(budget, _prefill_take(len(seq.prompt) - seq.n_past, alone=alone))
        plan.add_prefill(seq, take)
        budget -= take
        read += take
    return plan


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
