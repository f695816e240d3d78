"""plan_batch: which tokens one decoding step reads, without a model."""

from __future__ import annotations

from dataclasses import dataclass

from deepwell.engine.llamacpp.batch import BatchPlan, plan_batch

Row = tuple[int, int, str, bool]


@dataclass(eq=False)
class Run:
    """A running sequence as the plan sees it."""

    name: str
    prompt: tuple[int, ...]
    n_past: int = 0
    next_token: int | None = None

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)


def prefilling(name: str, length: int, *, past: int = 0) -> Run:
    """A sequence with a ``length``-token prompt (tokens 100, 101, ...), ``past`` read."""
    return Run(name, tuple(range(100, 100 + length)), n_past=past)


def decoding(name: str, length: int, token: int) -> Run:
    """A sequence that read its ``length``-token prompt and sampled ``token``."""
    return Run(name, tuple(range(length)), n_past=length, next_token=token)


def rows(plan: BatchPlan[Run]) -> list[Row]:
    return [(e.token, e.pos, e.seq.name, e.logits) for e in plan.entries]


def members(plan: BatchPlan[Run]) -> list[tuple[str, int | None, int]]:
    return [(m.seq.name, m.batch_index, m.in_batch) for m in plan.members]


def test_decoding_sequences_read_their_sampled_token_at_their_position() -> None:
    a, b = decoding("a", 3, token=7), decoding("b", 5, token=9)
    plan = plan_batch([a, b], n_batch=16, prefill_chunk=16)
    assert rows(plan) == [(7, 3, "a", True), (9, 5, "b", True)]
    assert members(plan) == [("a", 0, 1), ("b", 1, 1)]
    assert plan.entries[0].seq is a
    assert plan.members[1].seq is b


def test_decoding_sequences_come_first_then_prompt_chunks_in_running_order() -> None:
    p = prefilling("p", 3)
    d = decoding("d", 4, token=42)
    q = prefilling("q", 2, past=1)
    plan = plan_batch([p, d, q], n_batch=16, prefill_chunk=16)
    assert rows(plan) == [
        (42, 4, "d", True),
        (100, 0, "p", False),
        (101, 1, "p", False),
        (102, 2, "p", True),
        (101, 1, "q", True),
    ]
    assert members(plan) == [("d", 0, 1), ("p", 3, 3), ("q", 4, 1)]


def test_prompt_chunks_are_bounded_by_prefill_chunk_while_decoding() -> None:
    d = decoding("d", 2, token=5)
    p, q = prefilling("p", 10), prefilling("q", 10)
    plan = plan_batch([d, p, q], n_batch=64, prefill_chunk=6)
    assert members(plan) == [("d", 0, 1), ("p", None, 6)]
    assert [row[1] for row in rows(plan)[1:]] == [0, 1, 2, 3, 4, 5]
    assert not any(logits for *_, logits in rows(plan)[1:])


def test_prefill_chunk_is_shared_between_prefilling_sequences() -> None:
    d = decoding("d", 2, token=5)
    p, q = prefilling("p", 4), prefilling("q", 10, past=2)
    plan = plan_batch([d, p, q], n_batch=64, prefill_chunk=6)
    assert members(plan) == [("d", 0, 1), ("p", 4, 4), ("q", None, 2)]
    assert rows(plan)[-2:] == [(102, 2, "q", False), (103, 3, "q", False)]


def test_prefill_chunk_does_not_bound_prompts_when_nothing_decodes() -> None:
    p, q = prefilling("p", 10), prefilling("q", 10)
    plan = plan_batch([p, q], n_batch=64, prefill_chunk=6)
    assert members(plan) == [("p", 9, 10), ("q", 19, 10)]
    assert [i for i, row in enumerate(rows(plan)) if row[3]] == [9, 19]


def test_a_lone_sequence_reads_its_last_prompt_token_in_a_step_of_its_own() -> None:
    p = prefilling("p", 5)
    first = plan_batch([p], n_batch=64, prefill_chunk=16)
    assert members(first) == [("p", None, 4)]
    assert not any(row[3] for row in rows(first))
    p.n_past = 4
    last = plan_batch([p], n_batch=64, prefill_chunk=16)
    assert rows(last) == [(104, 4, "p", True)]
    assert members(last) == [("p", 0, 1)]


def test_a_lone_sequence_found_in_the_cache_reads_the_one_token_left() -> None:
    p = prefilling("p", 8, past=7)
    plan = plan_batch([p], n_batch=64, prefill_chunk=16)
    assert rows(plan) == [(107, 7, "p", True)]


def test_a_lone_one_token_prompt_is_read_at_once() -> None:
    plan = plan_batch([prefilling("p", 1)], n_batch=64, prefill_chunk=16)
    assert rows(plan) == [(100, 0, "p", True)]


def test_alongside_others_the_whole_rest_of_a_prompt_is_read() -> None:
    p, q = prefilling("p", 5), prefilling("q", 3)
    plan = plan_batch([p, q], n_batch=64, prefill_chunk=16)
    assert members(plan) == [("p", 4, 5), ("q", 7, 3)]


def test_a_lone_prompt_is_bounded_by_n_batch() -> None:
    plan = plan_batch([prefilling("p", 100)], n_batch=16, prefill_chunk=256)
    assert members(plan) == [("p", None, 16)]
    assert len(plan.entries) == 16


def test_n_batch_bounds_prompts_and_later_ones_wait() -> None:
    p, q, r = prefilling("p", 10), prefilling("q", 10), prefilling("r", 10)
    plan = plan_batch([p, q, r], n_batch=16, prefill_chunk=256)
    assert members(plan) == [("p", 9, 10), ("q", None, 6)]
    assert len(plan.entries) == 16


def test_decoding_tokens_count_against_n_batch() -> None:
    running = [decoding(f"d{i}", 1, token=i) for i in range(3)]
    p = prefilling("p", 20)
    plan = plan_batch([*running, p], n_batch=16, prefill_chunk=256)
    assert members(plan)[-1] == ("p", None, 13)
    assert len(plan.entries) == 16


def test_a_full_batch_of_decoding_sequences_leaves_prompts_waiting() -> None:
    running = [decoding(f"d{i}", 1, token=i) for i in range(4)]
    p = prefilling("p", 3)
    plan = plan_batch([p, *running], n_batch=4, prefill_chunk=16)
    assert [name for name, *_ in members(plan)] == ["d0", "d1", "d2", "d3"]


def test_prompts_that_arrive_together_are_read_a_few_at_a_time() -> None:
    burst = [prefilling(name, 30) for name in "abcdef"]
    plan = plan_batch(burst, n_batch=512, prefill_chunk=256, prefill_group=64)
    assert members(plan) == [("a", 29, 30), ("b", 59, 30), ("c", 89, 30)]
    every = plan_batch(burst, n_batch=512, prefill_chunk=256)
    assert [m.seq.name for m in every.members] == list("abcdef")


def test_a_long_prompt_fills_its_step_however_small_the_group() -> None:
    d = decoding("d", 4, token=42)
    long, short = prefilling("long", 300), prefilling("short", 5)
    plan = plan_batch([d, long, short], n_batch=512, prefill_chunk=256, prefill_group=64)
    assert members(plan) == [("d", 0, 1), ("long", None, 256)]
