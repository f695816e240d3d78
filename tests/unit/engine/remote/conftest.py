"""The loopback model server of the remote engine's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.unit.engine.remote.fakes import Upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.close()
