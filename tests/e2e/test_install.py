"""The README's run command on a fresh virtual environment: deepwell installed as the
README installs it, without the test requirements, serves both dialects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anthropic
import pytest

from tests.e2e.conftest import PLAIN, running_server, server_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Building llama-cpp-python takes minutes when pip has no wheel of it cached yet.
INSTALL_TIMEOUT_S = 1800


def readme_run_command() -> list[str]:
    """The steps of the command under the README's "Run it"."""
    section = (ROOT / "README.md").read_text().split("## Run it\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [step.strip() for step in block.split("&&")]


def test_the_readme_run_command_serves_from_a_fresh_environment(tmp_path: Path) -> None:
    *install, serve = readme_run_command()
    assert install[0] == "python3 -m venv .venv"
    assert serve == ".venv/bin/deepwell serve"
    venv = tmp_path / "venv"
    for step in install:
        subprocess.run(
            ["bash", "-c", step.replace(".venv", str(venv))],
            cwd=ROOT,
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "pytest==" not in installed

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(
        data_dir, server_env(data_dir), python=str(venv / "bin" / "python")
    ) as server:
        reply = server.client().chat.completions.create(
            model="deepseek-v4-flash",
            messages=[{"role": "user", "content": "Hello!"}],
            max_tokens=4,
            extra_body=PLAIN,
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens > 0
        with anthropic.Anthropic(
            api_key=server.key, base_url=server.base_url + "/anthropic", max_retries=0
        ) as sdk:
            message = sdk.messages.create(
                model="deepseek-v4-flash",
                max_tokens=4,
                messages=[{"role": "user", "content": "Hello!"}],
                extra_body=PLAIN,
            )
        assert message.usage.output_tokens > 0
