"""A small share of the schema fuzzing on the real engine: a few generated bodies that
follow the document per generating route, with ``max_tokens`` capped, against the shared
server; never a 5xx, every error in the route's envelope, no sequence left busy."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.e2e.conftest import Server
from tests.fuzz.app import build_app, settings_for
from tests.fuzz.checks import assert_answer, steer

pytestmark = pytest.mark.e2e

EXAMPLES = 6
MAX_TOKENS = 4
SPEC = build_app(settings_for(Path(tempfile.gettempdir()) / "deepwell-fuzz-unused")).openapi()
GENERATING = "^(/chat/completions|/beta/chat/completions|/beta/completions|/anthropic/v1/messages)$"
schema = schemathesis.openapi.from_dict(SPEC).include(method="POST", path_regex=GENERATING)
# Bodies that break the document are the in-process fuzzing's; these few go to the engine.
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])


def test_the_server_serves_the_document(server: Server) -> None:
    assert httpx.get(f"{server.base_url}/openapi.json", timeout=10).json() == SPEC


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_generated_bodies_on_the_real_engine(server: Server, case: schemathesis.Case[Any]) -> None:
    steer(case.body, max_tokens=MAX_TOKENS, repair_all=True)
    response = case.call(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.key}"}, timeout=120
    )
    kinds = response.headers.get("content-type") or [""]
    assert_answer(case.path, response.status_code, kinds[0], response.content)
    assert server.busy_after_settling(timeout=30) == 0
