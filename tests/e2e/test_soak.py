"""The soak in short (``bench/soak.py``): 64 concurrent clients for a while on a server of
their own, a third of them leaving mid-request, then nothing leaks: no busy sequence, an
empty queue, no open hold, a ledger that adds up, stable memory, no error logged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
STREAMS = 64
SECONDS = 40


def test_64_streams_with_disconnects_leak_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--streams", str(STREAMS), "--seconds", str(SECONDS), "--json"],
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
    )
    assert done.stdout, done.stderr
    result = json.loads(done.stdout)
    failed = [name for name, passed in result["checks"].items() if not passed]
    assert not failed, json.dumps(result, indent=1)
    assert done.returncode == 0, done.stderr
    requests = result["requests"]
    # More than one round per client, some answered whole, some left mid-request.
    assert requests["sent"] > STREAMS, requests
    assert requests["completed"] > 0, requests
    assert requests["cut"] > 0, requests
