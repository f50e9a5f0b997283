"""The local executor: each job's supervisor is a detached process on this machine."""

from __future__ import annotations

import os
import signal
from typing import Any

from mlport.processes import ProcessRecord, is_running, stop
from mlport_onprem._common import start_detached
from mlport_onprem.executors import Executor

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs ``python -m mlport_onprem.supervisor JOB_DIR`` in its own session."""

    def start(self, name: str) -> dict[str, Any]:
        """Spawn the supervisor, detached, its output in the job folder; returns its record."""
        job_dir = self.provider.root / "jobs" / name
        record = start_detached(
            self.provider, "mlport_onprem.supervisor", job_dir, f"job-{name}-supervisor"
        )
        return {"supervisor": record.to_json()}

    def _supervisor(self, doc: dict[str, Any]) -> ProcessRecord | None:
        text = doc.get("supervisor")
        return ProcessRecord.from_json(text) if text else None

    def cancel(self, doc: dict[str, Any]) -> None:
        """SIGTERM the supervisor: it stops the script's process group and records CANCELLED."""
        record = self._supervisor(doc)
        if record is not None and is_running(record):
            os.kill(record.pid, signal.SIGTERM)

    def is_alive(self, doc: dict[str, Any]) -> bool:
        """True while the supervisor process (same PID and start time) runs."""
        record = self._supervisor(doc)
        return record is not None and is_running(record)

    def kill_orphans(self, doc: dict[str, Any]) -> None:
        """Stop the script's group left behind by a supervisor that was killed."""
        for key in ("child", "supervisor"):
            text = doc.get(key)
            if text:
                record = ProcessRecord.from_json(text)
                stop(record, grace=self.provider.config.cancel_grace)
                self.provider.processes.remove(record)
