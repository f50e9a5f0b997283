"""On-prem training: each job is a folder under the root, run by a supervisor process.

``submit`` validates the spec, copies the code bundle into ``jobs/<name>/code``, writes
``job.json`` and hands the folder to the executor; it returns at once. Status, metrics and
lineage live in the root's state, written by the supervisor; ``_get`` reconciles them with the
real process, so a job whose supervisor died without a result is FAILED with the reason, never
RUNNING forever.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.compute import local_machine
from mlport.errors import AlreadyExistsError, InvalidSpecError, NotFoundError
from mlport.handles import Job
from mlport.services import LogChunk, Page, SubmitRequest, TrainingService
from mlport.services.training import bundle_files, git_state
from mlport.status import JobStatus
from mlport_onprem._common import now

if TYPE_CHECKING:
    from mlport_onprem.root import OnPremProvider

__all__ = ["OnPremTraining", "job_view", "read_log_files"]

PAGE_SIZE = 50
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def job_view(doc: dict[str, Any], folder: Path, kind: str = "training") -> Job:
    """The handle of a job (training or batch) from its state document."""

    def when(key: str) -> datetime | None:
        value = doc.get(key)
        return datetime.fromisoformat(value) if value else None

    return Job(
        name=doc["name"],
        kind=kind,
        status=JobStatus(doc["status"]),
        provider_id=str(folder),
        metrics=doc.get("metrics", {}),
        failure_reason=doc.get("failure_reason"),
        model_uri=doc.get("model_uri"),
        output_uri=doc.get("output_uri"),
        lineage=doc.get("lineage", {}),
        message=doc.get("message", ""),
        created_at=when("created_at"),
        started_at=when("started_at"),
        ended_at=when("ended_at"),
        spec_hash=doc.get("spec_hash"),
        tags=doc.get("tags", {}),
    )


def read_log_files(paths: list[Path], cursor: str | None, finished: bool) -> LogChunk:
    """New complete lines of log files since ``cursor`` (one byte offset per file, ``a:b``)."""
    offsets = [int(part) for part in cursor.split(":")] if cursor else [0] * len(paths)
    lines: list[str] = []
    for index, path in enumerate(paths):
        if not path.exists():
            continue
        with path.open("rb") as handle:
            handle.seek(offsets[index])
            data = handle.read()
        # A partial last line waits for its newline, unless the job has ended.
        complete = data if finished else data[: data.rfind(b"\n") + 1]
        offsets[index] += len(complete)
        lines += complete.decode(errors="replace").splitlines()
    return LogChunk(lines, ":".join(str(offset) for offset in offsets))


class OnPremTraining(TrainingService):
    """Training jobs as local processes under the root."""

    provider: OnPremProvider

    def _job_dir(self, name: str) -> Path:
        return self.provider.root / "jobs" / name

    def _submit(self, request: SubmitRequest) -> Job:
        spec = request.spec
        if spec.environment.image:
            raise InvalidSpecError(
                f"environment.image {spec.environment.image!r}: the on-prem local executor runs "
                "Python environments, not container images; use Environment(framework=..., "
                "version=...) or requirements=[...]",
                provider="onprem",
                resource=request.name,
            )
        for channel, source in request.inputs.items():
            if "://" in source:
                raise InvalidSpecError(
                    f"inputs[{channel!r}]: {source!r}: on-prem jobs read local paths and file:// "
                    "URIs; copy the data here first (mlport.storage.copy)",
                    provider="onprem",
                    resource=request.name,
                )
        assert request.source_dir is not None
        requirements = list(spec.environment.requirements)
        req_file = request.source_dir / "requirements.txt"
        if req_file.is_file():
            requirements += [
                line.strip()
                for line in req_file.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        doc = {
            "name": request.name,
            "status": "PENDING",
            "spec_hash": request.spec_hash,
            "created_at": now(),
            "tags": dict(spec.tags),
            "executor": self.provider.config.executor,
            "message": "queued",
        }
        if not self.provider.state.insert("jobs", request.name, doc):
            raise AlreadyExistsError(
                f"training job {request.name!r} exists", provider="onprem", resource=request.name
            )
        job_dir = self._job_dir(request.name)
        machine = local_machine()
        try:
            shutil.rmtree(job_dir, ignore_errors=True)
            code_dir = job_dir / "code"
            for path in bundle_files(request.source_dir):
                target = code_dir / path.relative_to(request.source_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            lineage = {
                "code_sha256": request.code_sha256,
                "source_dir": str(request.source_dir),
                "git": git_state(request.source_dir),
                "compute": {
                    "requested": request.compute.requested.model_dump(exclude_defaults=True)
                    if request.compute.requested
                    else {},
                    "machine": {
                        "cpus": machine.vcpus,
                        "memory_gib": machine.memory_gib,
                        "gpus": machine.gpus,
                        "gpu_type": machine.gpu_type,
                    },
                },
            }
            job = {
                "name": request.name,
                "root": str(self.provider.root),
                "spec": spec.model_dump(mode="json"),
                "inputs": request.inputs,
                "requirements": requirements,
                "framework": spec.environment.framework,
                "framework_version": spec.environment.version,
                "pip_args": self.provider.config.pip_args,
                "cancel_grace": self.provider.config.cancel_grace,
                "lineage": lineage,
            }
            (job_dir / "job.json").write_text(json.dumps(job, indent=2))
            started = self.provider.executor.start(request.name)
        except BaseException:
            # Nothing half-created: the name is free again if the job could not be started.
            self.provider.state.delete("jobs", request.name)
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        self.provider.state.update("jobs", request.name, **started)
        return self._view(self.provider.state.get("jobs", request.name) or doc)

    def _reconcile(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Make the state agree with the real processes."""
        if doc["status"] in TERMINAL:
            return doc
        result_file = self._job_dir(doc["name"]) / "result.json"
        if result_file.exists():
            result = json.loads(result_file.read_text())
            return self.provider.state.update("jobs", doc["name"], **result) or doc
        executor = self.provider.executor
        if "supervisor" not in doc or executor.is_alive(doc):
            return doc
        # The supervisor may have written its result between the two checks above.
        if result_file.exists():
            return self._reconcile(doc)
        executor.kill_orphans(doc)
        cancelled = doc["status"] == "CANCELLING"
        reason = (
            "cancelled"
            if cancelled
            else "the job's supervisor process exited without recording a result "
            "(it was killed, or the machine restarted)"
        )
        return (
            self.provider.state.update(
                "jobs",
                doc["name"],
                status="CANCELLED" if cancelled else "FAILED",
                failure_reason=reason,
                ended_at=now(),
            )
            or doc
        )

    def _view(self, doc: dict[str, Any]) -> Job:
        return job_view(doc, self._job_dir(doc["name"]))

    def _doc(self, name: str) -> dict[str, Any]:
        doc = self.provider.state.get("jobs", name)
        if doc is None:
            raise NotFoundError(
                f"training job {name!r} not found under {self.provider.root}",
                provider="onprem",
                resource=name,
            )
        return doc

    def _get(self, name: str) -> Job:
        return self._view(self._reconcile(self._doc(name)))

    def _list(self, page_token: str | None) -> Page[Job]:
        offset = int(page_token or 0)
        docs = self.provider.state.page("jobs", offset, PAGE_SIZE + 1)
        jobs = [self._view(self._reconcile(doc)) for doc in docs[:PAGE_SIZE]]
        return Page(jobs, str(offset + PAGE_SIZE) if len(docs) > PAGE_SIZE else None)

    def _cancel(self, name: str) -> None:
        doc = self._doc(name)
        self.provider.state.update("jobs", name, status="CANCELLING", message="cancelling")
        self.provider.executor.cancel(doc)

    def _read_logs(self, name: str, cursor: str | None) -> LogChunk:
        finished = self._doc(name)["status"] in TERMINAL
        job_dir = self._job_dir(name)
        return read_log_files([job_dir / "script.out", job_dir / "script.err"], cursor, finished)

    def _delete(self, name: str) -> None:
        self._doc(name)
        shutil.rmtree(self._job_dir(name), ignore_errors=True)
        self.provider.state.delete("jobs", name)
