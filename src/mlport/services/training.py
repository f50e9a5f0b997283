"""Training jobs: submit, get, list, cancel, logs, delete.

Providers implement ``_submit``, ``_get``, ``_list``, ``_cancel``, ``_read_logs`` and ``_delete``.
Contract of each, for provider authors:

- ``_submit(request)`` starts the job and returns at once (does not wait for it to run). It stores
  ``request.spec_hash`` with the resource and returns it in ``Job.spec_hash``. If the name is taken
  it raises ``AlreadyExistsError`` whatever the spec; the base class decides whether that is the
  same job (a retried or repeated submit) or a conflict.
- ``_get(name)`` raises ``NotFoundError`` for an unknown job.
- ``_cancel(name)`` asks the job to stop; does not block.
- ``_read_logs(name, cursor)`` returns the lines after ``cursor`` (None: from the start) and the
  cursor to pass next time.
- ``_delete(name)`` removes a finished job; raises ``NotFoundError`` if absent.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlport import runtime
from mlport.errors import AlreadyExistsError, ConflictError, InvalidSpecError
from mlport.handles import Job
from mlport.services.base import Page, Service
from mlport.specs import TrainingJob, spec_hash
from mlport.status import JobStatus
from mlport.waiting import wait_until

if TYPE_CHECKING:
    from mlport.compute import ResolvedCompute

__all__ = ["JobOwner", "LogChunk", "SubmitRequest", "TrainingService", "git_state"]


@dataclass
class LogChunk:
    """New log lines and the cursor to read on from."""

    lines: list[str]
    cursor: str | None


@dataclass
class SubmitRequest:
    """What ``_submit`` receives: the spec, checked and resolved."""

    name: str
    spec: TrainingJob
    spec_hash: str
    compute: ResolvedCompute
    inputs: dict[str, str] = field(default_factory=dict)
    """Input channel -> absolute local path or URI."""
    source_dir: Path | None = None
    code_sha256: str = ""
    """Hash of the code bundle (see :func:`code_sha256`), for lineage."""


BUNDLE_EXCLUDES = frozenset(
    {".git", "__pycache__", ".mlport", ".venv", "venv", "node_modules", ".ipynb_checkpoints"}
)
"""Folders left out of a code bundle (and of its hash)."""


def bundle_files(source_dir: Path) -> list[Path]:
    """The files of the code bundle made from ``source_dir``, sorted, without caches and VCS data."""
    return sorted(
        path
        for path in source_dir.rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not BUNDLE_EXCLUDES.intersection(path.relative_to(source_dir).parts[:-1])
    )


def code_sha256(source_dir: Path) -> str:
    """A sha256 over the bundle's relative paths and file contents: changes when any file does."""
    digest = hashlib.sha256()
    for path in bundle_files(source_dir):
        relative = path.relative_to(source_dir).as_posix()
        digest.update(f"{relative}\0{runtime.sha256_file(path)}\n".encode())
    return digest.hexdigest()


def git_state(source_dir: Path) -> dict[str, Any] | None:
    """The commit ``source_dir`` is at and whether it has uncommitted changes (for lineage);
    None outside git or without git. Blocks for at most a few seconds."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        commit = subprocess.run(
            [git, "-C", str(source_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [git, "-C", str(source_dir), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def is_uri(value: str) -> bool:
    """True for ``scheme://...`` (but not a Windows drive letter)."""
    head, sep, _ = value.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").isalnum()


def unique_name(base: str, max_length: int = 63) -> str:
    """``base`` plus a UTC timestamp and a random suffix, within ``max_length`` characters."""
    suffix = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    return f"{base[: max_length - len(suffix) - 1].rstrip('-_.')}-{suffix}"


class JobOwner(Service):
    """What a :class:`~mlport.handles.Job` handle calls back into (training and batch jobs)."""

    def _wait_job(self, job: Job, *, timeout: float | None, logs: bool, progress: bool) -> None:
        cursor: list[str | None] = [None]

        def poll() -> tuple[bool, str, str]:
            job.refresh()
            return job.status.is_terminal, job.status.value, job.message

        def read_logs() -> list[str]:
            chunk = self._job_log_chunk(job.name, cursor[0])
            cursor[0] = chunk.cursor
            return chunk.lines

        wait_until(
            poll,
            what=f"{job.kind} job {job.name}",
            timeout=timeout,
            policy=self.provider.poll_policy,
            read_logs=read_logs if logs else None,
            progress=progress,
        )

    def _follow(self, name: str, get: Any, follow: bool) -> Iterator[str]:
        cursor: str | None = None
        delays = self.provider.poll_policy.delays()
        while True:
            chunk = self._job_log_chunk(name, cursor)
            cursor = chunk.cursor
            yield from chunk.lines
            if not follow:
                return
            if not chunk.lines:
                if get(name).status.is_terminal:
                    final = self._job_log_chunk(name, cursor)
                    yield from final.lines
                    return
                time.sleep(next(delays))
            else:
                delays = self.provider.poll_policy.delays()

    @abc.abstractmethod
    def _refetch(self, job: Job) -> Job: ...

    @abc.abstractmethod
    def _job_log_chunk(self, name: str, cursor: str | None) -> LogChunk: ...


class TrainingService(JobOwner):
    """Training jobs on one provider."""

    kind: ClassVar[str] = "training"
    resource_kind = "job"

    def submit(self, spec: TrainingJob) -> Job:
        """Start a training job and return its handle at once (``job.wait()`` blocks).

        With ``spec.name`` the call is idempotent: the same spec returns the existing job.

        Raises:
            InvalidSpecError: a path that does not exist, a name this provider refuses, compute
                it cannot provide.
            AlreadyExistsError: ``spec.name`` is taken by a job with a different spec.
            NotSupportedError: a feature the provider lacks (spot, multi-node, ...).
        """
        self._require("training")
        if not isinstance(spec, TrainingJob):
            raise InvalidSpecError(f"submit() takes a TrainingJob, got {type(spec).__name__}")
        if spec.compute.spot:
            self._require("training.spot")
        if spec.compute.count > 1:
            self._require("training.distributed")
        source_dir = self._check_code(spec)
        inputs = self._check_inputs(spec)
        compute = self.provider.resolve_compute(spec.compute, "training")
        name = spec.name or unique_name(spec.base_name or Path(spec.code.entry_point).stem)
        self._check_name(name)
        code_hash = code_sha256(source_dir)
        # The code's content is part of the spec: an edited train.py is a different job.
        digest = hashlib.sha256(
            f"{spec_hash(spec, exclude={'name', 'base_name'})}:{code_hash}".encode()
        ).hexdigest()
        if spec.name:
            existing = self._find(self._get, name)
            if existing is not None:
                return self._same_or_conflict(existing, digest)
        request = SubmitRequest(
            name=name,
            spec=spec,
            spec_hash=digest,
            compute=compute,
            inputs=inputs,
            source_dir=source_dir,
            code_sha256=code_hash,
        )
        try:
            job = self._bind(self._call("submit", self._submit, request))
        except AlreadyExistsError:
            # A concurrent submit of the same name, or our own create whose answer was lost.
            existing = self._find(self._get, name)
            if existing is None:
                raise
            return self._same_or_conflict(existing, digest)
        self._emit("submitted", name, provider_id=job.provider_id)
        return job

    def _same_or_conflict(self, existing: Job, digest: str) -> Job:
        if existing.spec_hash == digest:
            return existing
        raise AlreadyExistsError(
            f"training job {existing.name!r} already exists on {self.provider.name!r} with a "
            "different spec; choose another name, or use base_name= for a unique name per run",
            provider=self.provider.name,
            resource=existing.name,
        )

    @staticmethod
    def _check_code(spec: TrainingJob) -> Path:
        source = Path(spec.code.source_dir).expanduser()
        if not source.is_dir():
            raise InvalidSpecError(
                f"code.source_dir {str(source)!r} is not a directory", resource=spec.name
            )
        entry = source / spec.code.entry_point
        if not entry.is_file():
            found = sorted(p.name for p in source.glob("*.py"))[:10]
            raise InvalidSpecError(
                f"code.entry_point {spec.code.entry_point!r} not found in {str(source)!r}"
                + (f"; Python files there: {', '.join(found)}" if found else ""),
                resource=spec.name,
            )
        return source.resolve()

    @staticmethod
    def _check_inputs(spec: TrainingJob) -> dict[str, str]:
        resolved = {}
        for channel, source in spec.inputs.items():
            if is_uri(source) and not source.startswith("file://"):
                resolved[channel] = source
                continue
            path = Path(source.removeprefix("file://")).expanduser()
            if not path.exists():
                raise InvalidSpecError(
                    f"inputs[{channel!r}]: {source!r} does not exist", resource=spec.name
                )
            resolved[channel] = str(path.resolve())
        return resolved

    def get(self, name: str) -> Job:
        """The job called ``name``.

        Raises:
            NotFoundError: no such job.
        """
        return self._bind(self._call("get", self._get, name))

    def list(self, *, status: JobStatus | str | None = None) -> Iterator[Job]:
        """Jobs, newest first where the provider orders them; pages are fetched lazily."""
        wanted = JobStatus(status) if status is not None else None
        for job in self._paginate(self._list):
            if wanted is None or job.status is wanted:
                yield job

    def cancel(self, name: str) -> Job:
        """Ask the job to stop. Idempotent: a finished job is returned as it is. Does not block.

        Raises:
            NotFoundError: no such job.
        """
        self._require("training.cancel")
        job = self.get(name)
        if job.status.is_terminal or job.status is JobStatus.CANCELLING:
            return job
        self._call("cancel", self._cancel, name)
        self._emit("cancelled", name)
        return self.get(name)

    def logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow=True`` keeps yielding until the job ends.

        Raises:
            NotFoundError: no such job.
        """
        self._require("training.logs")
        return self._follow(name, self.get, follow)

    def wait(self, name: str, timeout: float | None = None, *, logs: bool = False) -> Job:
        """Block until the job ends (see :meth:`mlport.handles.Job.wait`)."""
        return self.get(name).wait(timeout, logs=logs)

    def delete(self, name: str) -> None:
        """Delete a finished job. Idempotent: deleting a missing job is not an error.

        Raises:
            ConflictError: the job is still running; cancel it first.
            NotSupportedError: the provider keeps jobs (SageMaker).
        """
        self._require("training.delete")
        job = self._find(self._get, name)
        if job is None:
            return
        if not job.status.is_terminal:
            raise ConflictError(
                f"training job {name!r} is {job.status.value}; cancel it and wait before deleting",
                provider=self.provider.name,
                resource=name,
            )
        self._delete_idempotent("training.delete", name, self._delete, name)

    def _refetch(self, job: Job) -> Job:
        return self.get(job.name)

    def _job_log_chunk(self, name: str, cursor: str | None) -> LogChunk:
        if not self.supports("training.logs"):
            return LogChunk([], cursor)
        return self._call("logs", self._read_logs, name, cursor)

    @abc.abstractmethod
    def _submit(self, request: SubmitRequest) -> Job: ...

    @abc.abstractmethod
    def _get(self, name: str) -> Job: ...

    @abc.abstractmethod
    def _list(self, page_token: str | None) -> Page[Job]: ...

    # Optional: a provider whose capability table lists the feature need not implement these.
    def _cancel(self, name: str) -> None:
        self._not_implemented("training.cancel")

    def _read_logs(self, name: str, cursor: str | None) -> LogChunk:
        self._not_implemented("training.logs")

    def _delete(self, name: str) -> None:
        self._not_implemented("training.delete")
