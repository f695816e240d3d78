"""Prompt-lookup drafts: what follows the latest n-gram's previous appearance."""

from __future__ import annotations

from deepwell.engine.llamacpp.drafts import MIN_DRAFT, PAUSE_AFTER, TILE, PromptLookup


def test_the_tokens_after_the_last_appearance_are_the_draft() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 6, 9, 1, 2, 3])
    assert lookup.draft(room=3) == [4, 5, 6]
    assert lookup.draft(room=20) == [4, 5, 6, 9, 1, 2, 3]


def test_no_draft_without_an_earlier_appearance() -> None:
    assert PromptLookup([1, 2, 3, 4]).draft(room=8) == []
    assert PromptLookup([1, 2]).draft(room=8) == []


def test_the_latest_appearance_wins_and_room_bounds_the_draft() -> None:
    lookup = PromptLookup([7, 8, 9, 1, 7, 8, 9, 2, 3, 7, 8, 9])
    assert lookup.draft(room=1) == [2]


def test_drafts_grow_when_taken_and_shrink_when_not_by_whole_tiles() -> None:
    lookup = PromptLookup([*range(20), 0, 1, 2], max_draft=12)
    first = lookup.draft(room=20)
    assert (len(first) + 1) % TILE == 0
    lookup.feedback(len(first), len(first))
    assert len(lookup.draft(room=20)) == len(first) + TILE
    lookup.feedback(11, 9)  # 9 taken: the next draft is the tile that fits in 10
    assert len(lookup.draft(room=20)) == 7
    lookup.feedback(7, 0)  # a miss at once: the next draft is still worth a step
    assert len(lookup.draft(room=20)) == MIN_DRAFT


def test_a_small_max_draft_is_kept() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 6, 1, 2, 3], max_draft=2)
    assert lookup.draft(room=20) == [4, 5]


def test_drafting_pauses_after_misses_in_a_row() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 1, 2, 3])
    for _ in range(PAUSE_AFTER):
        lookup.feedback(2, 0)
    assert lookup.draft(room=8) == []
    for token in range(100, 116):
        lookup.extend(token)
    lookup.extend(1)
    lookup.extend(2)
    lookup.extend(3)
    assert lookup.draft(room=8) != []
