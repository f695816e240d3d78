"""Schemathesis over ``/openapi.json``, in-process on the fake engine: whatever it sends,
conforming to the declared bodies or not, the answer is never a 5xx, every error is in
the route's envelope (DeepSeek's, or Anthropic's under ``/anthropic``), in a JSON body or
as a stream's last event, and a response matches its declared schema where one is
declared.

Bounded and repeatable: ``EXAMPLES`` examples per operation (and every method a route
does not serve), derandomized (the same examples every run), no example database. The
``/v1`` twins of the routes run the same handlers and are left out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.fuzz.app import build_app, settings_for
from tests.fuzz.checks import assert_answer, steer

pytestmark = pytest.mark.fuzz

EXAMPLES = 40

# The document is read from an app that is never started; the cases run on ``app``,
# which serves the same document (checked below).
SPEC = build_app(settings_for(Path(tempfile.gettempdir()) / "deepwell-fuzz-unused")).openapi()
schema = schemathesis.openapi.from_dict(SPEC).exclude(path_regex="^/v1/")


@pytest.fixture(scope="module")
def app(fuzz_app: FastAPI) -> Iterator[FastAPI]:
    """``fuzz_app``, started by schemathesis on its first case and stopped here."""
    yield fuzz_app
    asgi.shutdown_lifespans()


def test_the_document_is_the_one_the_app_serves(app: FastAPI) -> None:
    # The document needs no lifespan: a client outside ``with`` starts none.
    assert TestClient(app).get("/openapi.json").json() == SPEC


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_errors_in_the_envelope(
    app: FastAPI, fuzz_key: str, case: schemathesis.Case[Any]
) -> None:
    steer(case.body)
    response = case.call(app=app, headers={"Authorization": f"Bearer {fuzz_key}"})
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    kinds = response.headers.get("content-type") or [""]
    assert_answer(case.path, response.status_code, kinds[0], response.content)
