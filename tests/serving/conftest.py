"""Fixtures of the model server's tests: test models, and real server processes on 127.0.0.1.

A server process is started with :func:`mlport.processes.spawn` on port 0, found through its
ready file, and stopped when the fixture that started it is torn down.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlport.processes import spawn, stop, wait_for_ready_file

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from serving_helpers import TOKEN, Server, model_folder  # noqa: E402


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start server processes from a configuration; each is stopped at teardown."""
    started: list[Server] = []
    counter = iter(range(1000))

    def start(
        variants: dict[str, dict[str, Any]] | None = None,
        *,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        token: str | None = TOKEN,
        **config: Any,
    ) -> Server:
        folder = tmp_path / f"server-{next(counter)}"
        folder.mkdir()
        if variants is None:
            variants = {"1": {"path": model_folder(folder, "m1"), "loader": "servable_models:load"}}
        document: dict[str, Any] = {
            "endpoint": "demo",
            "port": 0,
            "variants": variants,
            "status_file": "status.json",
            "ready_file": "ready.json",
            "graceful_seconds": 10,
            **config,
        }
        if token is not None and "token_file" not in document and not document.get("no_auth"):
            token_file = folder / "token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            document["token_file"] = "token"
        config_path = folder / "server.json"
        config_path.write_text(json.dumps(document))
        command = argv or [sys.executable, "-m", "mlport.serving", "--config", str(config_path)]
        child_env = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        child_env.update(env or {})
        popen, record = spawn(command, name="server", log_dir=folder, cwd=folder, env=child_env)
        ready_path = folder / "ready.json"
        try:
            ready = json.loads(wait_for_ready_file(ready_path, timeout=30, process=popen))
        except Exception:
            stop(record, grace=2)
            raise
        server = Server(
            popen=popen,
            record=record,
            folder=folder,
            config_path=config_path,
            port=int(ready["port"]),
            pid=int(ready["pid"]),
            token=token,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        for client in server.clients:
            client.close()
        stop(server.record, grace=15)
