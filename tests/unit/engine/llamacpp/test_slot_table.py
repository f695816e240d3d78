"""SlotTable: prefix reuse, slot choice and eviction, without a model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from deepwell.engine.llamacpp.slots import Room, Slot, SlotTable, common_prefix


def use(table: SlotTable, index: int, tokens: Sequence[int], *, ns: str = "a") -> Slot:
    """Run a request of ``ns`` on slot ``index`` that leaves ``tokens`` in it, and end it."""
    slot = table.slots[index]
    table.occupy(slot, ns)
    slot.tokens = list(tokens)
    table.release(slot)
    return slot


def hold(table: SlotTable, index: int, tokens: Sequence[int], *, ns: str = "a") -> Slot:
    """Start a request of ``ns`` on slot ``index`` holding ``tokens``, still running."""
    slot = table.slots[index]
    table.occupy(slot, ns)
    slot.tokens = list(tokens)
    return slot


# -- longest_prefix ----------------------------------------------------------------------


def test_longest_prefix_picks_the_slot_sharing_most() -> None:
    table = SlotTable(3)
    use(table, 0, [1, 2, 9])
    best = use(table, 1, [1, 2, 3, 4])
    use(table, 2, [1, 9])
    assert table.longest_prefix("a", (1, 2, 3, 4, 5)) == (best, 4)


def test_longest_prefix_never_crosses_a_namespace() -> None:
    table = SlotTable(2)
    use(table, 0, [1, 2, 3, 4], ns="other")
    mine = use(table, 1, [1, 2], ns="a")
    assert table.longest_prefix("a", (1, 2, 3, 4, 5)) == (mine, 2)
    assert table.longest_prefix("third", (1, 2, 3, 4, 5)) == (None, 0)


def test_longest_prefix_finds_nothing_without_a_shared_first_token() -> None:
    table = SlotTable(1)
    use(table, 0, [7, 8])
    assert table.longest_prefix("a", (1, 2, 3)) == (None, 0)


@pytest.mark.parametrize("held", [[1, 2, 3], [1, 2, 3, 4, 5]])
def test_longest_prefix_leaves_one_prompt_token_to_read(held: list[int]) -> None:
    table = SlotTable(1)
    slot = use(table, 0, held)
    assert table.longest_prefix("a", (1, 2, 3)) == (slot, 2)


def test_a_one_token_prompt_reuses_nothing() -> None:
    table = SlotTable(1)
    use(table, 0, [1, 2])
    assert table.longest_prefix("a", (1,)) == (None, 0)


def test_longest_prefix_prefers_an_idle_slot_on_a_tie() -> None:
    table = SlotTable(3)
    hold(table, 0, [1, 2, 3])
    idle = use(table, 1, [1, 2, 3, 9])
    use(table, 2, [1, 2, 3, 8])
    assert table.longest_prefix("a", (1, 2, 3, 4)) == (idle, 3)


def test_longest_prefix_keeps_the_first_idle_slot_on_a_tie() -> None:
    table = SlotTable(2)
    first = use(table, 0, [1, 2, 3])
    hold(table, 1, [1, 2, 3])
    assert table.longest_prefix("a", (1, 2, 3, 4)) == (first, 3)


def test_longest_prefix_prefers_a_longer_busy_slot_to_a_shorter_idle_one() -> None:
    table = SlotTable(2)
    use(table, 0, [1, 2])
    busy = hold(table, 1, [1, 2, 3])
    assert table.longest_prefix("a", (1, 2, 3, 4)) == (busy, 3)


# -- target_slot -------------------------------------------------------------------------


def test_target_is_the_source_itself_when_idle() -> None:
    table = SlotTable(3)
    source = use(table, 1, [1, 2, 3])
    assert table.target_slot(source, 2) is source


def test_target_is_not_the_source_when_nothing_is_shared() -> None:
    table = SlotTable(2)
    source = use(table, 0, [1, 2, 3])
    assert table.target_slot(source, 0) is table.slots[1]


def test_target_is_an_empty_slot_when_the_source_is_busy() -> None:
    table = SlotTable(3)
    use(table, 0, [5, 6])
    source = hold(table, 1, [1, 2, 3])
    assert table.target_slot(source, 2) is table.slots[2]


def test_target_is_an_empty_slot_before_any_holding_tokens() -> None:
    table = SlotTable(3)
    use(table, 0, [5, 6])
    use(table, 1, [7, 8])
    cleared = use(table, 2, [9])
    cleared.tokens = []  # evicted: empty, though used more recently than the others
    assert table.target_slot(None, 0) is cleared


def test_target_is_the_least_recently_used_idle_slot_when_none_is_empty() -> None:
    table = SlotTable(3)
    use(table, 1, [5])
    use(table, 0, [6])
    hold(table, 2, [7])
    use(table, 1, [5, 5])
    assert table.target_slot(None, 0) is table.slots[0]


def test_target_skips_an_idle_source_that_is_not_taken_over() -> None:
    table = SlotTable(2)
    source = use(table, 0, [1])
    use(table, 1, [2])
    assert table.target_slot(source, 0) is table.slots[1]


def test_no_target_when_every_slot_is_busy() -> None:
    table = SlotTable(2)
    source = hold(table, 0, [1, 2, 3])
    hold(table, 1, [4])
    assert table.target_slot(source, 2) is None
    assert table.target_slot(None, 0) is None


def test_no_target_when_the_only_idle_slot_is_the_source_sharing_nothing() -> None:
    table = SlotTable(2)
    source = use(table, 0, [1])
    hold(table, 1, [2])
    assert table.target_slot(source, 0) is None


# -- room_for ----------------------------------------------------------------------------


def test_no_eviction_when_the_cells_are_free() -> None:
    table = SlotTable(2)
    use(table, 0, [1] * 6)
    assert table.room_for(4, capacity=10, keep=()) == Room((), enough=True)


def test_eviction_goes_least_recently_used_first_and_stops_when_enough() -> None:
    table = SlotTable(4)
    use(table, 1, [1] * 3)
    use(table, 2, [2] * 3)
    use(table, 0, [3] * 3)
    # 9 of 10 cells are used; 5 are needed: the two least recently used slots go.
    assert table.room_for(5, capacity=10, keep=()) == Room(
        (table.slots[1], table.slots[2]), enough=True
    )


def test_eviction_order_follows_last_use_not_slot_order() -> None:
    table = SlotTable(3)
    use(table, 0, [1] * 3)
    use(table, 1, [2] * 3)
    use(table, 2, [3] * 3)
    use(table, 0, [1] * 3)
    room = table.room_for(4, capacity=10, keep=())
    assert room.evict == (table.slots[1],)


def test_eviction_only_decides_and_clears_nothing() -> None:
    table = SlotTable(2)
    use(table, 0, [1, 2, 3])
    room = table.room_for(9, capacity=10, keep=())
    assert room.evict == (table.slots[0],)
    assert table.slots[0].tokens == [1, 2, 3]
    assert table.cells_in_use() == 3


def test_kept_and_busy_slots_are_never_evicted() -> None:
    table = SlotTable(4)
    kept = use(table, 0, [1] * 2)
    busy = hold(table, 1, [2] * 2)
    other = use(table, 2, [3] * 2)
    use(table, 3, [4] * 2)
    room = table.room_for(5, capacity=10, keep=(None, kept))
    assert kept not in room.evict
    assert busy not in room.evict
    assert room.evict == (other, table.slots[3])
    assert room.enough


def test_room_not_possible_still_names_every_evictable_slot() -> None:
    table = SlotTable(3)
    busy = hold(table, 0, [1] * 5)
    kept = use(table, 1, [2] * 2)
    other = use(table, 2, [3] * 2)
    room = table.room_for(6, capacity=10, keep=(kept,))
    assert room.evict == (other,)
    assert not room.enough
    assert busy not in room.evict


def test_room_is_enough_exactly_at_capacity() -> None:
    table = SlotTable(1)
    use(table, 0, [1] * 6)
    assert table.room_for(4, capacity=10, keep=()).enough
    room = table.room_for(5, capacity=10, keep=())
    assert room.evict == (table.slots[0],)
    assert room.enough


# -- the rest ----------------------------------------------------------------------------


def test_least_recent_idle_ignores_busy_and_empty_slots() -> None:
    table = SlotTable(4)
    hold(table, 0, [1])
    second = use(table, 1, [2])
    use(table, 2, [3])
    assert table.least_recent_idle() is second
    use(table, 1, [2])
    assert table.least_recent_idle() is table.slots[2]


def test_least_recent_idle_is_none_without_idle_tokens() -> None:
    table = SlotTable(2)
    hold(table, 0, [1])
    assert table.least_recent_idle() is None


def test_occupy_and_release_tick_the_clock() -> None:
    table = SlotTable(2)
    a, b = table.slots
    table.occupy(a, "x")
    table.occupy(b, "y")
    assert (a.busy, a.namespace, b.busy, b.namespace) == (True, "x", True, "y")
    assert a.last_used < b.last_used
    table.release(a)
    assert not a.busy
    assert a.last_used > b.last_used
    assert table.busy_count() == 1


def test_cells_in_use_and_busy_count() -> None:
    table = SlotTable(3)
    hold(table, 0, [1, 2, 3])
    use(table, 1, [4, 5])
    assert table.cells_in_use() == 5
    assert table.busy_count() == 1


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [
        ([1, 2, 3], (1, 2, 3), 10, 3),
        ([1, 2, 3], (1, 2, 4), 10, 2),
        ([1, 2, 3], (1, 2, 3, 4), 2, 2),
        ([1, 2], (1, 2, 3), 10, 2),
        ([9], (1,), 10, 0),
        ([], (1,), 10, 0),
    ],
)
def test_common_prefix(a: list[int], b: tuple[int, ...], limit: int, expected: int) -> None:
    assert common_prefix(a, b, limit) == expected
