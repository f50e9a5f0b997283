"""On-prem batch prediction: each job a folder under ``<root>/batch/<name>/``, run by a detached
process (``python -m mlport_onprem.batch JOB_DIR``).

Submitting copies the model version from the registry into the job folder (verified against
its sha256), writes ``job.json`` and starts the runner; it returns at once. The runner loads the
model, predicts the input files a chunk at a time with :func:`mlport.serving.batch.predict_files`
(constant memory), reports progress into the root's state, stops between chunks on a cancel
(SIGTERM) or when ``max_runtime`` is reached — and, should a chunk hang, is ended by its watchdog
after ``cancel_grace`` seconds — and records the outcome in ``result.json`` and the state. A
runner that died without a result is recorded FAILED on the next look, never RUNNING forever.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.errors import AlreadyExistsError, InvalidSpecError, NotFoundError
from mlport.handles import Job
from mlport.processes import ProcessRecord, is_running
from mlport.services import LogChunk, Page
from mlport.services.endpoints import BatchRequest
from mlport_onprem._common import now, read_json, start_detached, write_json
from mlport_onprem.state import StateStore
from mlport_onprem.training import TERMINAL, job_view, read_log_files

if TYPE_CHECKING:
    from mlport_onprem.root import OnPremProvider

__all__ = ["BatchJobs", "main"]

TABLE = "batches"
PAGE_SIZE = 50
PROGRESS_EVERY = 0.5  # seconds between progress writes to the state


def _local(value: str, what: str, name: str) -> str:
    if value.startswith("file://"):
        return value.removeprefix("file://")
    if "://" in value:
        raise InvalidSpecError(
            f"{what} {value!r}: on-prem batch jobs read and write local paths and file:// URIs; "
            "copy the data here first (mlport.storage.copy)",
            provider="onprem",
            resource=name,
        )
    return value


class BatchJobs:
    """The batch half of the on-prem endpoint service (mixed into it)."""

    provider: OnPremProvider

    def _batch_dir(self, name: str) -> Path:
        return self.provider.root / "batch" / name

    def _batch_doc(self, name: str) -> dict[str, Any]:
        doc = self.provider.state.get(TABLE, name)
        if doc is None:
            raise NotFoundError(
                f"batch job {name!r} not found under {self.provider.root}",
                provider="onprem",
                resource=name,
            )
        return doc

    def _batch_predict(self, request: BatchRequest) -> Job:
        from mlport.serving.batch import input_files

        name, version, options = request.name, request.version, request.options
        if version.provider not in ("", "onprem"):
            raise InvalidSpecError(
                f"version {version.name}:{version.version} is registered on {version.provider!r}; "
                "on-prem batch jobs run versions of the on-prem registry",
                provider="onprem",
                resource=name,
            )
        source = _local(request.input, "input", name)
        output = _local(request.output, "output", name)
        input_files(source)  # a missing input or one with nothing readable fails here, at once
        if Path(output).is_file():
            raise InvalidSpecError(
                f"output {output!r} is a file; batch output is a folder", resource=name
            )
        doc = {
            "name": name,
            "status": "PENDING",
            "created_at": now(),
            "message": "queued",
            "output_uri": Path(output).resolve().as_uri(),
            "lineage": {
                "model": {"name": version.name, "version": version.version},
                "input": source,
                "output": output,
            },
        }
        if not self.provider.state.insert(TABLE, name, doc):
            raise AlreadyExistsError(f"batch job {name!r} exists", provider="onprem", resource=name)
        folder = self._batch_dir(name)
        try:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            self.provider.service("registry").download(version, folder / "model")  # type: ignore[attr-defined]
            job = {
                "name": name,
                "root": str(self.provider.root),
                "model_dir": str(folder / "model"),
                "manifest_sha256": version.package_sha256,
                "input": source,
                "output": output,
                "batch_size": options.batch_size,
                "id_column": options.id_column,
                "max_runtime": int(options.max_runtime),
                "cancel_grace": self.provider.config.cancel_grace,
            }
            (folder / "job.json").write_text(json.dumps(job, indent=2))
            record = start_detached(self.provider, "mlport_onprem.batch", folder, "runner")
        except BaseException:
            # Nothing half-created: the name is free again if the job could not start.
            self.provider.state.delete(TABLE, name)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._batch_view(
            self.provider.state.update(TABLE, name, runner=record.to_json()) or doc
        )

    def _batch_view(self, doc: dict[str, Any]) -> Job:
        return job_view(doc, self._batch_dir(doc["name"]), kind="batch")

    def _reconcile_batch(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc["status"] in TERMINAL:
            return doc
        result = read_json(self._batch_dir(doc["name"]) / "result.json")
        if result is not None:
            # The runner records its result just before it exits; its process record stays
            # in the table until `mlport down` (a runner that is still exiting is stopped).
            return self.provider.state.update(TABLE, doc["name"], **result) or doc
        text = doc.get("runner")
        if not text or is_running(ProcessRecord.from_json(text)):
            return doc
        result = read_json(
            self._batch_dir(doc["name"]) / "result.json"
        )  # written just before it exited?
        if result is None:
            cancelled = doc["status"] == "CANCELLING"
            result = {
                "status": "CANCELLED" if cancelled else "FAILED",
                "failure_reason": "cancelled"
                if cancelled
                else "the batch job's process exited without recording a result (it was "
                "killed, or the machine restarted)",
                "ended_at": now(),
            }
        self.provider.processes.remove(ProcessRecord.from_json(text))
        return self.provider.state.update(TABLE, doc["name"], **result) or doc

    def _get_batch(self, name: str) -> Job:
        return self._batch_view(self._reconcile_batch(self._batch_doc(name)))

    def _list_batch(self, page_token: str | None) -> Page[Job]:
        offset = int(page_token or 0)
        docs = self.provider.state.page(TABLE, offset, PAGE_SIZE + 1)
        jobs = [self._batch_view(self._reconcile_batch(doc)) for doc in docs[:PAGE_SIZE]]
        return Page(jobs, str(offset + PAGE_SIZE) if len(docs) > PAGE_SIZE else None)

    def _read_batch_logs(self, name: str, cursor: str | None) -> LogChunk:
        finished = self._batch_doc(name)["status"] in TERMINAL
        folder = self._batch_dir(name)
        return read_log_files([folder / "batch.log", folder / "runner.err"], cursor, finished)

    def _cancel_batch(self, name: str) -> None:
        doc = self._batch_doc(name)
        self.provider.state.update(TABLE, name, status="CANCELLING", message="cancelling")
        text = doc.get("runner")
        if text:
            record = ProcessRecord.from_json(text)
            if is_running(record):
                os.kill(record.pid, signal.SIGTERM)


class Runner:
    """Runs one batch job folder to its end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.job: dict[str, Any] = json.loads((folder / "job.json").read_text())
        self.name: str = self.job["name"]
        self.root = Path(self.job["root"])
        self.state = StateStore(self.root / "state.db")
        self.stop_reason: str | None = None
        self.done = threading.Event()
        self.finished = threading.Lock()
        self.log = (folder / "batch.log").open("a", buffering=1)
        self.last_progress = 0.0

    def say(self, message: str, **fields: Any) -> None:
        self.log.write(f"{now()} {message}\n")
        self.state.update(TABLE, self.name, message=message, **fields)

    def finish(self, status: str, **fields: Any) -> None:
        """Record the outcome once (the main thread or the watchdog, whichever comes first)."""
        if not self.finished.acquire(blocking=False):
            return
        result = {"status": status, "ended_at": now(), "message": "", **fields}
        write_json(self.folder / "result.json", result)
        self.state.update(TABLE, self.name, **result)
        reason = fields.get("failure_reason")
        self.log.write(f"{now()} {status}{': ' + reason if reason else ''}\n")

    def request_stop(self, reason: str) -> None:
        """Stop between chunks; if a chunk does not end within the grace, end the process."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        grace = float(self.job["cancel_grace"])

        def watchdog() -> None:
            if self.done.wait(grace):
                return
            status = "CANCELLED" if reason == "cancelled" else "FAILED"
            self.finish(status, failure_reason=f"{reason} (stopped mid-chunk)")
            self.log.flush()
            os._exit(1)

        threading.Thread(target=watchdog, daemon=True).start()

    def progress(self, rows: int, file: str) -> None:
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = now
            self.say(f"{rows:,} rows predicted ({file})", metrics={"rows": rows})

    def run(self) -> None:
        from mlport.serving import batch, loaders

        signal.signal(signal.SIGTERM, lambda *_: self.request_stop("cancelled"))
        max_runtime = int(self.job["max_runtime"])
        timer = threading.Timer(
            max_runtime, lambda: self.request_stop(f"max_runtime exceeded ({max_runtime}s)")
        )
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        try:
            doc = self.state.update(TABLE, self.name, started_at=now()) or {}
            if doc.get("status") == "CANCELLING":  # cancelled before this process started
                raise batch.BatchCancelled("cancelled")
            self.state.update(TABLE, self.name, status="RUNNING")
            self.say("loading the model")
            model = loaders.load(
                self.job["model_dir"], manifest_sha256=self.job.get("manifest_sha256")
            )
            self.say("predicting")
            summary = batch.predict_files(
                model,
                self.job["input"],
                self.job["output"],
                batch_size=int(self.job["batch_size"]),
                id_column=self.job.get("id_column"),
                on_progress=self.progress,
                should_stop=lambda: self.stop_reason is not None,
            )
            seconds = time.monotonic() - started
            self.finish(
                "SUCCEEDED",
                metrics={
                    "rows": summary.rows,
                    "files": len(summary.files),
                    "rows_per_second": round(summary.rows / max(seconds, 1e-9), 1),
                },
                lineage={**self._lineage(), "files": summary.files},
            )
        except batch.BatchCancelled:
            reason = self.stop_reason or "cancelled"
            self.finish(
                "CANCELLED" if reason == "cancelled" else "FAILED",
                failure_reason=reason,
                lineage=self._lineage(),
            )
        except Exception as exc:
            self.log.write(traceback.format_exc())
            self.finish("FAILED", failure_reason=str(exc), lineage=self._lineage())
        finally:
            self.done.set()
            timer.cancel()
            self.log.close()

    def _lineage(self) -> dict[str, Any]:
        doc = self.state.get(TABLE, self.name) or {}
        return dict(doc.get("lineage", {}))


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m mlport_onprem.batch JOB_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlport_onprem.batch JOB_DIR", file=sys.stderr)
        return 2
    Runner(Path(args[0]).resolve()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
