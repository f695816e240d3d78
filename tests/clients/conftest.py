"""One real ``deepwell serve`` on the embedded model for the third-party client tests.

The clients must not reach the network: LiteLLM reads its model map from the copy it
ships instead of fetching it at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.clients.recording import Sent
from tests.e2e.conftest import Server, running_server, server_env

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "deepseek-v4-flash"
# Thinking mode is on by default; most client tests keep their replies plain and short.
PLAIN = {"thinking": {"type": "disabled"}}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("deepwell-clients")
    with running_server(data_dir, server_env(data_dir)) as running:
        yield running


@pytest.fixture
def sent() -> Iterator[Sent]:
    """What the test's clients send."""
    recorder = Sent()
    yield recorder
    recorder.close()
