from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tool
from tests.oci import registry as registry  # a module's own loopback registry
from tests.processes import Process, free_port, http_ok


class OpaServer:
    """A real OPA server on loopback that a test may kill and restart."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process: Process | None = None

    def start(self) -> None:
        self.process = Process(
            "opa", [str(tool("opa")), "run", "--server", "--addr", f"127.0.0.1:{self.port}", "--log-level", "error"],
            self.log_dir,
        )
        self.process.wait_until(lambda: http_ok(f"{self.url}/health"), 30, "healthy")

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@pytest.fixture(scope="session")
def opa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    server = OpaServer(tmp_path_factory.mktemp("opa"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def opa(tmp_path: Path) -> Iterator[OpaServer]:
    """An OPA server of the test's own, which it may kill and restart (``opa_server`` is shared)."""
    server = OpaServer(tmp_path / "opa")
    server.start()
    yield server
    server.stop()
