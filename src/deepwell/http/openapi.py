"""``/openapi.json`` that tells the truth: routes parse their bodies themselves (to
answer DeepSeek's errors), so each declares its body's schema here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
_SCHEMAS = "x-deepwell-schemas"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: ``model`` as its required JSON request body."""
    schema = model.model_json_schema(ref_template=_REF)
    definitions = schema.pop("$defs", {})
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {"requestBody": body, _SCHEMAS: {model.__name__: schema, **definitions}}


def install(app: FastAPI) -> None:
    """Generate the document once, with every body's schemas under ``components``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    schemas.update(operation.pop(_SCHEMAS, {}))
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
