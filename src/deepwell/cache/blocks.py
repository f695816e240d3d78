"""Prompt prefixes as chains of block hashes.

A prompt is cut into blocks of ``size`` tokens. Block ``i``'s key hashes block ``i-1``'s
key with its own token ids, and block 0 starts from the namespace and the model's
fingerprint, so a key names a whole prefix from token 0, for one account and one model.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

KEY_BYTES = 16


def cache_namespace(account_id: int, user_id: str | None = None) -> str:
    """Whose cache entries these are: an account, split by ``user_id`` when a request
    gives one (no ``user_id`` and an empty one are the same namespace)."""
    return f"{account_id}/{user_id or ''}"


def block_keys(namespace: str, fingerprint: str, tokens: Sequence[int], size: int) -> list[bytes]:
    """One key per whole block of ``tokens``; a trailing partial block has none."""
    key = hashlib.blake2b(f"{namespace}\x00{fingerprint}".encode(), digest_size=KEY_BYTES).digest()
    keys = []
    for start in range(0, len(tokens) - size + 1, size):
        block = array("i", tokens[start : start + size]).tobytes()
        key = hashlib.blake2b(key + block, digest_size=KEY_BYTES).digest()
        keys.append(key)
    return keys
