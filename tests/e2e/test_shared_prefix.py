"""A prompt prefix that several requests share is read once, even when they arrive
together: the others wait for that read and share its KV, and are billed for it as
cache hits, because it was one."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import PLAIN, Server, create_key
from tests.e2e.test_cache import BLOCK, MODEL, document

pytestmark = pytest.mark.e2e

USERS = 8


async def test_requests_arriving_together_read_a_shared_prefix_once(server: Server) -> None:
    key = create_key(server.env, "shared-prefix")
    system = "You answer questions about this text.\n\n" + document(7, 500)
    client = server.async_client()
    client.api_key = key

    async def ask(user: int) -> tuple[int, int]:
        reply = await client.chat.completions.create(
            extra_body=PLAIN,
            model=MODEL,
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": f"User {user}: which word comes first?"},
            ],
            max_tokens=2,
            temperature=0,
        )
        assert reply.usage is not None
        hit: int = (reply.usage.model_extra or {})["prompt_cache_hit_tokens"]
        return hit, reply.usage.prompt_tokens

    async with client:
        answers = await asyncio.gather(*(ask(user) for user in range(USERS)))
    hits = sorted(hit for hit, _ in answers)
    shortest = min(prompt for _, prompt in answers)
    # All but the first reuse (nearly) the whole shared part: the system turn.
    shared = shortest - 2 * BLOCK
    assert hits[0] < shared
    assert all(hit >= shared for hit in hits[1:]), hits
