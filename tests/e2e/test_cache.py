"""Context caching on the real engine: DeepSeek's hit/miss accounting, tiers, restarts."""

from __future__ import annotations

import random
import re
import stat
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import PLAIN, Server, create_key, running_server, server_env

pytestmark = pytest.mark.e2e

MODEL = "deepseek-v4-flash"
BLOCK = 64
WORDS = (
    "river stone light garden window paper engine signal harbor forest market silver",
    "winter letter bridge candle orbit meadow lantern pocket thunder velvet canyon echo",
)
VOCABULARY = " ".join(WORDS).split(" ")
# What ``ask`` returns: (answer, prompt_cache_hit_tokens, prompt_tokens).
Answer = tuple[str | None, int, int]


def document(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def ask(client: openai.OpenAI, text: str, question: str = "Which word comes first?") -> Answer:
    reply = client.chat.completions.create(
        extra_body=PLAIN,
        model=MODEL,
        messages=[{"role": "user", "content": f"{text}\n\n{question}"}],
        max_tokens=4,
        temperature=0,
    )
    usage = reply.usage
    assert usage is not None
    extra = usage.model_extra or {}
    hit: int = extra["prompt_cache_hit_tokens"]
    miss: int = extra["prompt_cache_miss_tokens"]
    assert hit + miss == usage.prompt_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == hit
    assert hit % BLOCK == 0
    return reply.choices[0].message.content, hit, usage.prompt_tokens


def test_a_repeated_long_prompt_hits_the_cache(server: Server) -> None:
    text = document(1, 1300)
    with server.client() as client:
        _, first_hit, prompt_tokens = ask(client, text)
        _, second_hit, _ = ask(client, text)

    assert prompt_tokens >= 1400
    assert first_hit == 0
    assert second_hit >= 1024
    assert second_hit > prompt_tokens - BLOCK - 1


def test_another_account_gets_no_hit(server: Server) -> None:
    text = document(2, 600)
    with server.client() as client:
        ask(client, text)
    with openai.OpenAI(
        api_key=create_key(server_env(server.data_dir), "stranger"),
        base_url=server.base_url,
        max_retries=0,
    ) as stranger:
        _, hit, _ = ask(stranger, text)
    assert hit == 0


def test_a_shared_first_half_is_a_partial_hit(server: Server) -> None:
    first_half = document(3, 500)
    with server.client() as client:
        _, _, whole = ask(client, first_half + " " + document(4, 500))
        _, hit, _ = ask(client, first_half + " " + document(5, 500))

    assert BLOCK <= hit < whole // 2 + BLOCK


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deepwell-cache")


@pytest.fixture(scope="module")
def cold_answers(cache_dir: Path) -> tuple[str, list[Answer]]:
    """Five prompts answered cold by a first server process on ``cache_dir``."""
    env = server_env(cache_dir, DEEPWELL_ENGINE__N_SEQ_MAX="2")
    key = create_key(env, "restart")
    with running_server(cache_dir, env, key=key) as first, first.client() as client:
        answers = [ask(client, document(10 + i, 250)) for i in range(5)]
    return key, answers


def test_the_cache_survives_a_restart(
    cache_dir: Path, cold_answers: tuple[str, list[Answer]]
) -> None:
    key, cold = cold_answers
    env = server_env(cache_dir, DEEPWELL_ENGINE__N_SEQ_MAX="2")
    with running_server(cache_dir, env, key=key) as second, second.client() as client:
        warm = [ask(client, document(10 + i, 250)) for i in range(5)]
        disk = second.engine_health()["cache"]["disk"]

    assert all(hit >= prompt - 2 * BLOCK for _, hit, prompt in warm)
    assert disk["hits"] >= 5
    same = sum(w[0] == c[0] for w, c in zip(warm, cold, strict=True))
    assert same >= 4, list(zip(warm, cold, strict=True))


def test_a_corrupted_cache_file_is_ignored(
    cache_dir: Path, cold_answers: tuple[str, list[Answer]]
) -> None:
    key, cold = cold_answers
    files = [p for p in (cache_dir / "cache").rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 2, len(data), 4096):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    env = server_env(cache_dir, DEEPWELL_ENGINE__N_SEQ_MAX="2")
    with running_server(cache_dir, env, key=key) as third, third.client() as client:
        answer, hit, _ = ask(client, document(10, 250))
        disk = third.engine_health()["cache"]["disk"]

    assert hit == 0
    assert answer == cold[0][0]
    assert disk["errors"] >= 1


def _change_a_digit_of_blocks(path: Path) -> None:
    """Change one digit of the block count in ``path``'s header, as the hostile review did."""
    data = path.read_bytes()
    found = re.search(rb'"blocks": (\d)', data)
    assert found is not None
    digit = b"9" if found.group(1) != b"9" else b"8"
    path.write_bytes(data[: found.start(1)] + digit + data[found.end(1) :])


def test_a_changed_digit_in_every_header_is_a_miss_not_a_dead_engine(
    cache_dir: Path, cold_answers: tuple[str, list[Answer]]
) -> None:
    key, cold = cold_answers
    files = [p for p in (cache_dir / "cache").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        _change_a_digit_of_blocks(path)

    env = server_env(cache_dir, DEEPWELL_ENGINE__N_SEQ_MAX="2")
    with running_server(cache_dir, env, key=key) as fourth, fourth.client() as client:
        answer, hit, _ = ask(client, document(10, 250))
        health = httpx.get(f"{fourth.base_url}/health", timeout=5)
        again, _, _ = ask(client, document(11, 250))
        after = httpx.get(f"{fourth.base_url}/health", timeout=5)

    assert hit == 0
    assert answer == cold[0][0]
    assert isinstance(again, str)  # the engine serves the next request too
    assert health.status_code == 200
    assert after.status_code == 200
    engine = next(iter(after.json()["engines"].values()))
    assert engine["state"] == "ready"
    assert engine["cache"]["disk"]["errors"] >= 1
