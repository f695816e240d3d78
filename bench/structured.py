"""How often structured output is valid: JSON mode, forced and strict tool calls, and
``json_schema`` through the SDK's ``parse``, over many seeds on the embedded model.

    .venv/bin/python bench/structured.py [--runs 20]

Each case is asked ``--runs`` times with a different seed; a run counts as valid when
the output parses and validates against its schema (jsonschema, or the pydantic
model), and as cut when it was not, and ended at ``max_tokens``. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import deepwell_server

OFF = {"thinking": {"type": "disabled"}}
BOUNDED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "temperature": {"type": "number", "minimum": -30, "maximum": 45},
    },
    "required": ["city", "days", "temperature"],
    "additionalProperties": False,
}
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Forecast Oslo for 30 days at 100 degrees."}
]


class City(BaseModel):
    name: str
    population_millions: float = Field(ge=0, le=40)
    continent: Literal["Europe", "Asia", "Africa", "America", "Oceania"]


def tool(strict: bool) -> Any:
    function = {"name": "forecast", "parameters": BOUNDED, "strict": strict}
    return {"type": "function", "function": function}


Outcome = Literal["valid", "cut", "invalid"]


def outcome(valid: bool, finish: str | None) -> Outcome:
    if valid:
        return "valid"
    return "cut" if finish == "length" else "invalid"


def json_mode(client: openai.OpenAI, seed: int, *, thinking: bool) -> Outcome:
    reply = client.chat.completions.create(
        model="deepseek-v4-flash",
        messages=[{"role": "user", "content": "Give a JSON object describing a cat."}],
        response_format={"type": "json_object"},
        max_tokens=160,
        seed=seed,
        extra_body=None if thinking else OFF,
        stream=False,
    )
    choice = reply.choices[0]
    try:
        valid = isinstance(json.loads(choice.message.content or ""), dict)
    except ValueError:
        valid = False
    return outcome(valid, choice.finish_reason)


def forced_call(client: openai.OpenAI, seed: int, *, strict: bool) -> Outcome:
    reply = client.chat.completions.create(
        model="deepseek-v4-flash",
        messages=ASK,
        tools=[tool(strict)],
        tool_choice="required",
        max_tokens=120,
        seed=seed,
        extra_body=OFF,
    )
    choice = reply.choices[0]
    calls = choice.message.tool_calls or []
    try:
        for call in calls:
            assert call.type == "function"
            jsonschema.validate(json.loads(call.function.arguments), BOUNDED)
    except (ValueError, jsonschema.ValidationError, AssertionError):
        return outcome(False, choice.finish_reason)
    return outcome(bool(calls), choice.finish_reason)


def parsed(client: openai.OpenAI, seed: int) -> Outcome:
    try:
        reply = client.chat.completions.parse(
            model="deepseek-v4-flash",
            messages=[{"role": "user", "content": "Describe Tokyo as JSON."}],
            response_format=City,
            max_tokens=100,
            seed=seed,
            extra_body=OFF,
        )
    except openai.LengthFinishReasonError:
        return "cut"
    except ValidationError:
        return "invalid"
    return outcome(isinstance(reply.choices[0].message.parsed, City), "stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as data:
        engine = {"DEEPWELL_ENGINE__N_CTX": "8192"}
        with deepwell_server(Path(data), engine) as endpoint:
            client = openai.OpenAI(api_key=endpoint.key, base_url=endpoint.base_url)
            beta = openai.OpenAI(api_key=endpoint.key, base_url=endpoint.base_url + "/beta")
            cases: dict[str, Callable[[int], Outcome]] = {
                "JSON mode, thinking off": lambda s: json_mode(client, s, thinking=False),
                "JSON mode, thinking on": lambda s: json_mode(client, s, thinking=True),
                "forced call (required)": lambda s: forced_call(client, s, strict=False),
                "strict forced call (/beta)": lambda s: forced_call(beta, s, strict=True),
                "json_schema via parse()": lambda s: parsed(client, s),
            }
            print("| case | valid | cut by max_tokens | invalid |\n|---|---|---|---|")
            for name, case in cases.items():
                seen = [case(seed) for seed in range(1, runs + 1)]
                counts = " | ".join(f"{seen.count(o)}" for o in ("valid", "cut", "invalid"))
                print(f"| {name} | {counts} |", flush=True)


if __name__ == "__main__":
    main()
