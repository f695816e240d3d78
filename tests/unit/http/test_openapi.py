"""``/openapi.json`` declares the body of every generating route, with resolvable refs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepwell.app import create_app
from deepwell.engine.fake import FakeEngine
from deepwell.settings import DEFAULT_MODEL, Settings


def refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(refs(v) for k, v in value.items() if k != "$ref"))
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value))
    return set()


def test_generating_routes_declare_their_json_bodies(tmp_path: Path, clean_env: None) -> None:
    app = create_app(Settings(data_dir=tmp_path), engines={DEFAULT_MODEL: FakeEngine()})
    spec = app.openapi()
    bodies = {
        path: op["requestBody"]["content"]["application/json"]["schema"]
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method == "post" and "requestBody" in op
    }
    assert set(bodies) == {
        "/chat/completions",
        "/v1/chat/completions",
        "/beta/chat/completions",
        "/v1/beta/chat/completions",
        "/beta/completions",
        "/v1/beta/completions",
        "/anthropic/v1/messages",
        "/anthropic/v1/messages/count_tokens",
        "/admin/keys",
        "/admin/accounts/{name}/top-ups",
        "/console/api/keys",
    }
    assert "messages" in bodies["/chat/completions"]["properties"]
    assert "suffix" in bodies["/beta/completions"]["properties"]
    schemas = spec["components"]["schemas"]
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs(spec))
    assert app.openapi() is spec
