"""Prompt-lookup drafts: what follows the latest n-gram's previous appearance."""

from __future__ import annotations

from deepwell.engine.llamacpp.drafts import MIN_DRAFT, NGRAM, PAUSE_AFTER, TILE, PromptLookup

GRAM = list(range(1, NGRAM + 1))
"""An n-gram that the histories below repeat."""


def test_the_tokens_after_the_last_appearance_are_the_draft() -> None:
    lookup = PromptLookup([*GRAM, 40, 50, 60, 90, *GRAM])
    assert lookup.draft(room=2) == [40, 50]
    assert lookup.draft(room=20) == [40, 50, 60]  # the first draft is the smallest


def test_no_draft_without_an_earlier_appearance() -> None:
    assert PromptLookup([*GRAM, 40]).draft(room=8) == []
    assert PromptLookup(GRAM[:-1]).draft(room=8) == []


def test_the_latest_appearance_wins_and_room_bounds_the_draft() -> None:
    lookup = PromptLookup([*GRAM, 40, *GRAM, 20, 30, *GRAM])
    assert lookup.draft(room=1) == [20]


def test_drafts_grow_when_taken_and_shrink_when_not_by_whole_tiles() -> None:
    lookup = PromptLookup([*range(20), *range(NGRAM)], max_draft=12)
    first = lookup.draft(room=20)
    assert (len(first) + 1) % TILE == 0
    lookup.feedback(len(first), len(first))
    assert len(lookup.draft(room=20)) == len(first) + TILE
    lookup.feedback(11, 9)  # 9 taken: the next draft is the tile that fits in 10
    assert len(lookup.draft(room=20)) == 7
    lookup.feedback(7, 0)  # a miss at once: the next draft is still worth a step
    assert len(lookup.draft(room=20)) == MIN_DRAFT


def test_a_small_max_draft_is_kept() -> None:
    lookup = PromptLookup([*GRAM, 40, 50, 60, *GRAM], max_draft=2)
    assert lookup.draft(room=20) == [40, 50]


def test_drafting_pauses_after_drafts_in_a_row_that_did_not_pay() -> None:
    lookup = PromptLookup([*GRAM, 40, *GRAM])
    for _ in range(PAUSE_AFTER):
        lookup.feedback(3, 1)
    assert lookup.draft(room=8) == []
    for token in [*range(100, 116), *GRAM]:
        lookup.extend(token)
    assert lookup.draft(room=8) != []
