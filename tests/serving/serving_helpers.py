"""The model server tests' view of a running server process."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import servable_models

from mlport.processes import ProcessRecord

TOKEN = "test-token-0123456789abcdef"
LOADER = "servable_models:load"


@dataclass
class Server:
    """A running server process."""

    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    folder: Path
    config_path: Path
    port: int
    pid: int
    token: str | None = TOKEN
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def status_path(self) -> Path:
        return self.folder / "status.json"

    def client(self, **kwargs: Any) -> httpx.Client:
        """A keep-alive client carrying the token (closed with the server)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_path.read_text())  # type: ignore[no-any-return]

    def wait_status(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.status()
                if condition(status):
                    return status
            except (OSError, ValueError):
                status = {}
            assert time.monotonic() < deadline, f"status never matched: {status}"
            time.sleep(0.05)

    def rewrite(self, **changes: Any) -> None:
        """Change top-level fields of the configuration file."""
        config = json.loads(self.config_path.read_text())
        config.update(changes)
        self.config_path.write_text(json.dumps(config))

    def stderr(self) -> str:
        return Path(self.record.stderr_path).read_text()


def model_folder(root: Path, name: str, **spec: Any) -> str:
    """A folder the test loader turns into a RowSumModel (see servable_models)."""
    return str(servable_models.write(root / name, **spec))
