"""The child processes the emulator runs where Vertex AI would run machines.

Training replicas and model servers are started with :func:`mlport.processes.spawn` (output in
files, a process group of their own) and stopped on :meth:`Workers.stop_all`, which the emulator
calls on reset and close.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlport.errors import MlportError
from mlport.processes import (
    ProcessExitedError,
    ProcessRecord,
    spawn,
    stop,
    wait_for_ready_file,
)

__all__ = ["ModelServer", "ModelServerError", "Workers"]

_SERVER_START_TIMEOUT = 120.0
_PREDICT_TIMEOUT = 120.0


class ModelServerError(MlportError, RuntimeError):
    """A model server did not start or could not answer."""


@dataclass(frozen=True)
class ModelServer:
    """A running portable model server for one deployed model.

    Attributes:
        key: The worker key it was started under.
        port: Its port on 127.0.0.1.
        record: Its process.
    """

    key: str
    port: int
    record: ProcessRecord

    def predict(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """POST ``body`` to the Vertex predict route; returns the HTTP status and body.

        Blocks until the server answers.

        Raises:
            ModelServerError: The server cannot be reached.
        """
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/predict",
            data=body,
            headers={"Content-Type": content_type},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=_PREDICT_TIMEOUT) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise ModelServerError(f"the model server is not answering: {exc}") from exc


class Workers:
    """The emulator's child processes, by key. Thread-safe.

    Args:
        log_dir: Where their output files go.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._records: dict[str, ProcessRecord] = {}
        self._servers: dict[str, ModelServer] = {}

    def start(
        self,
        key: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_name: str,
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        """Start a process under ``key`` (replacing nothing: keys are unique per run)."""
        popen, record = spawn(
            argv, name=log_name, log_dir=self.log_dir, cwd=cwd, env=env, detach=False
        )
        with self._lock:
            self._records[key] = record
        return popen, record

    def stop(self, key: str) -> bool:
        """Stop the process under ``key``; False if there was none."""
        with self._lock:
            record = self._records.pop(key, None)
            self._servers.pop(key, None)
        if record is None:
            return False
        stop(record, grace=2.0)
        return True

    def forget(self, key: str) -> None:
        """Drop the record of a process that has exited by itself."""
        with self._lock:
            self._records.pop(key, None)

    def stop_all(self) -> None:
        """Stop every process. Blocks until they are gone (a few seconds at most)."""
        with self._lock:
            records = list(self._records.values())
            self._records.clear()
            self._servers.clear()
        for record in records:
            stop(record, grace=2.0)

    def records(self) -> list[ProcessRecord]:
        """The processes running now (training replicas and model servers)."""
        with self._lock:
            return list(self._records.values())

    def server(self, key: str) -> ModelServer | None:
        """The model server running under ``key``."""
        with self._lock:
            return self._servers.get(key)

    def start_model_server(self, key: str, model_dir: Path, work_dir: Path) -> ModelServer:
        """Serve the model in ``model_dir`` with ``python -m mlport.serving``; blocks until ready.

        The model is loaded with ``trust``: the emulator plays the cloud's prediction container,
        which loads the pickle or joblib file it is given.

        Raises:
            ModelServerError: The server exited or did not become ready; the message quotes its
                error output.
        """
        work_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "endpoint": "vertex-" + key.replace("/", "-")[-100:],
            "port": 0,
            "no_auth": True,
            "workers": 1,
            "hosting": "none",
            "variants": {"1": {"path": str(model_dir), "trust": True}},
            "ready_file": str(work_dir / "ready.json"),
            "graceful_seconds": 1,
        }
        (work_dir / "ready.json").unlink(missing_ok=True)
        (work_dir / "server.json").write_text(json.dumps(config), encoding="utf-8")
        popen, record = self.start(
            key,
            [sys.executable, "-m", "mlport.serving", "--config", str(work_dir / "server.json")],
            env={},
            cwd=work_dir,
            log_name="server-" + key.replace("/", "-")[-80:],
        )
        try:
            ready = wait_for_ready_file(
                work_dir / "ready.json", timeout=_SERVER_START_TIMEOUT, process=popen
            )
        except (ProcessExitedError, MlportError) as exc:
            self.stop(key)
            raise ModelServerError(f"the model server did not start: {exc}") from exc
        info: dict[str, Any] = json.loads(ready)
        server = ModelServer(key=key, port=int(info["port"]), record=record)
        with self._lock:
            self._servers[key] = server
        return server
