"""Operations end to end: ``/metrics`` that Prometheus can parse and whose counters move
as requests run, and the ``x-request-id`` of every response."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import PLAIN, Server

pytestmark = pytest.mark.e2e

FLASH = "deepseek-v4-flash"


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(
        value
        for (found, labels), value in samples.items()
        if found == name and ("model", FLASH) in labels
    )


def test_metrics_move_as_a_request_runs(server: Server) -> None:
    before = scrape(server)
    with server.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=FLASH,
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=4,
            extra_body=PLAIN,
        )
    completion = raw.parse()
    assert raw.headers["x-request-id"] == completion.id
    after = scrape(server)
    assert total(after, "deepwell_requests_total") == total(before, "deepwell_requests_total") + 1
    assert completion.usage is not None
    prompt = total(after, "deepwell_prompt_tokens_total") - total(
        before, "deepwell_prompt_tokens_total"
    )
    assert prompt == completion.usage.prompt_tokens
    output = total(after, "deepwell_output_tokens_total") - total(
        before, "deepwell_output_tokens_total"
    )
    assert output == completion.usage.completion_tokens
    ttft = "deepwell_time_to_first_token_seconds_count"
    assert total(after, ttft) == total(before, ttft) + 1
    assert any(name == "deepwell_engine_sequences" for name, _ in after)
    assert any(name == "deepwell_queue_capacity" for name, _ in after)


def test_every_response_has_a_request_id(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/models", timeout=10)
    assert response.status_code == 401
    assert len(response.headers["x-request-id"]) == 36
