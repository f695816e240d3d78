"""block_keys: one chained key per whole block, scoped by namespace and fingerprint."""

from __future__ import annotations

import hashlib
from array import array

import pytest

from deepwell.cache.blocks import KEY_BYTES, block_keys, cache_namespace

SIZE = 4
TOKENS = list(range(100, 116))  # four whole blocks of SIZE


def test_one_key_per_whole_block() -> None:
    keys = block_keys("acct", "fp", TOKENS, SIZE)
    assert len(keys) == 4
    assert all(isinstance(key, bytes) and len(key) == KEY_BYTES for key in keys)
    assert len(set(keys)) == 4


def test_keys_are_deterministic() -> None:
    assert block_keys("acct", "fp", TOKENS, SIZE) == block_keys("acct", "fp", list(TOKENS), SIZE)
    assert block_keys("acct", "fp", TOKENS, SIZE) == block_keys("acct", "fp", tuple(TOKENS), SIZE)


def test_keys_are_pinned() -> None:
    """Keys name files on disk: they must not drift between releases."""
    key = hashlib.blake2b(b"acct\x00fp", digest_size=KEY_BYTES).digest()
    expected = []
    for start in range(0, len(TOKENS), SIZE):
        block = array("i", TOKENS[start : start + SIZE]).tobytes()
        key = hashlib.blake2b(key + block, digest_size=KEY_BYTES).digest()
        expected.append(key)
    assert block_keys("acct", "fp", TOKENS, SIZE) == expected


def test_same_prefix_gives_same_leading_keys() -> None:
    short = block_keys("acct", "fp", TOKENS[:8], SIZE)
    long = block_keys("acct", "fp", [*TOKENS[:8], 1, 2, 3, 4, 5, 6, 7, 8], SIZE)
    assert len(short) == 2
    assert long[:2] == short
    assert long[2:] != block_keys("acct", "fp", TOKENS, SIZE)[2:]


@pytest.mark.parametrize("changed_block", [0, 1, 2, 3])
def test_change_in_block_changes_that_key_and_all_later_ones(changed_block: int) -> None:
    tokens = list(TOKENS)
    tokens[changed_block * SIZE + 1] += 1
    before = block_keys("acct", "fp", TOKENS, SIZE)
    after = block_keys("acct", "fp", tokens, SIZE)
    assert after[:changed_block] == before[:changed_block]
    for index in range(changed_block, 4):
        assert after[index] != before[index]


def test_key_depends_on_whole_prefix_not_only_own_block() -> None:
    """Two prompts whose block 1 is identical but block 0 differs: block 1 keys differ."""
    first = block_keys("acct", "fp", [1, 2, 3, 4, 9, 9, 9, 9], SIZE)
    second = block_keys("acct", "fp", [5, 6, 7, 8, 9, 9, 9, 9], SIZE)
    assert first[1] != second[1]


def test_repeated_block_gets_distinct_keys() -> None:
    keys = block_keys("acct", "fp", [7] * 12, SIZE)
    assert len(set(keys)) == 3


def test_token_order_within_block_matters() -> None:
    assert block_keys("acct", "fp", [1, 2, 3, 4], SIZE) != block_keys(
        "acct", "fp", [4, 3, 2, 1], SIZE
    )


def test_namespace_separates_everything() -> None:
    first = block_keys("alice", "fp", TOKENS, SIZE)
    second = block_keys("bob", "fp", TOKENS, SIZE)
    assert set(first).isdisjoint(second)


def test_fingerprint_separates_everything() -> None:
    first = block_keys("acct", "model-a", TOKENS, SIZE)
    second = block_keys("acct", "model-b", TOKENS, SIZE)
    assert set(first).isdisjoint(second)


def test_namespace_and_fingerprint_are_not_interchangeable() -> None:
    assert block_keys("x", "y", TOKENS, SIZE) != block_keys("y", "x", TOKENS, SIZE)
    assert block_keys("ab", "c", TOKENS, SIZE) != block_keys("a", "bc", TOKENS, SIZE)


@pytest.mark.parametrize("extra", [1, 2, 3])
def test_partial_trailing_block_has_no_key(extra: int) -> None:
    whole = block_keys("acct", "fp", TOKENS[:8], SIZE)
    with_tail = block_keys("acct", "fp", TOKENS[: 8 + extra], SIZE)
    assert with_tail == whole


@pytest.mark.parametrize("count", [0, 1, SIZE - 1])
def test_fewer_tokens_than_a_block_give_no_keys(count: int) -> None:
    assert block_keys("acct", "fp", TOKENS[:count], SIZE) == []


def test_exactly_one_block() -> None:
    assert len(block_keys("acct", "fp", TOKENS[:SIZE], SIZE)) == 1


@pytest.mark.parametrize(("size", "count"), [(1, 16), (2, 8), (4, 4), (5, 3), (8, 2), (16, 1)])
def test_size_sets_block_count(size: int, count: int) -> None:
    assert len(block_keys("acct", "fp", TOKENS, size)) == count


def test_size_changes_the_keys() -> None:
    by_four = block_keys("acct", "fp", TOKENS, 4)
    by_eight = block_keys("acct", "fp", TOKENS, 8)
    assert set(by_four).isdisjoint(by_eight)


def test_size_one_first_key_covers_one_token() -> None:
    assert block_keys("acct", "fp", [42], 1) == block_keys("acct", "fp", [42, 43], 1)[:1]


def test_large_token_ids() -> None:
    keys = block_keys("acct", "fp", [0, 2**31 - 1, 151_000, 7], SIZE)
    assert len(keys) == 1


def test_cache_namespace_is_the_account_then_the_user() -> None:
    assert cache_namespace(7) == "7/"
    assert cache_namespace(7, None) == cache_namespace(7, "") == "7/"
    assert cache_namespace(7, "alice") == "7/alice"
    assert cache_namespace(7, "alice") != cache_namespace(7, "bob")
    assert cache_namespace(1, "2/x") != cache_namespace(12, "x")
