"""Running a CustomJob's worker pools as local processes.

What Vertex AI documents and the emulator reproduces:

- Every replica of every worker pool runs (here: as a process on this machine) with
  ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR`` set from
  ``base_output_directory`` (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec),
  ``CLUSTER_SPEC`` and ``TF_CONFIG``
  (https://cloud.google.com/vertex-ai/docs/training/distributed-training), ``CLOUD_ML_JOB_ID``,
  the spec's ``env`` and its ``args``.
- A python package (https://cloud.google.com/vertex-ai/docs/training/create-python-pre-built-container)
  is downloaded from ``package_uris`` and run as ``python -m <python_module> <args>``. The package
  is unpacked onto ``PYTHONPATH`` instead of being pip-installed (offline, and fast); its
  ``install_requires`` are not installed, so it uses what the environment has, as it would use
  what a prebuilt container has.
- A container of Vertex AI's prebuilt training images runs its ``command`` and ``args`` with this
  environment's Python first on ``PATH``.
- Cloud Storage FUSE (https://cloud.google.com/vertex-ai/docs/training/cloud-storage-file-system):
  ``/gcs/<bucket>/<path>`` in ``args`` and ``env`` values is rewritten to a local mirror of the
  bucket; what they name is downloaded before the run and every file written under the mirror is
  uploaded to ``gs://<bucket>/...`` after it. The script itself also reaches the storage
  emulator with ``google-cloud-storage`` (``STORAGE_EMULATOR_HOST`` is set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud.aiplatform_v1.types import custom_job as cj
from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

from mlport.processes import free_port
from mlport_vertex.emulator.state import EmulatorState
from mlport_vertex.emulator.storage import split_gs
from mlport_vertex.emulator.validation import is_prebuilt_training_image

__all__ = ["RunOutcome", "run_custom_job"]

_GCS_RE = re.compile(r"(^|=)/gcs/")
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``state`` is ``"SUCCEEDED"``, ``"FAILED"`` or ``"CANCELLED"``."""

    state: str
    message: str = ""


@dataclass
class _Replica:
    pool: int
    index: int
    argv: list[str]
    env: dict[str, str]
    key: str


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


class _Mount:
    """The local mirror of ``/gcs/``."""

    def __init__(self, state: EmulatorState, root: Path) -> None:
        self.state = state
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.referenced: set[str] = set()

    def translate(self, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            return match.group(1) + str(self.root) + "/"

        translated = _GCS_RE.sub(replace, value)
        if translated != value:
            for piece in re.findall(re.escape(str(self.root)) + r"/([^\s=,;]+)", translated):
                self.referenced.add(piece)
        return translated

    def download_inputs(self) -> None:
        for piece in sorted(self.referenced):
            bucket, _, path = piece.partition("/")
            if not bucket:
                continue
            if not self.state.gcs.bucket_exists(bucket):
                raise ValueError(f"/gcs/{bucket}: the bucket gs://{bucket} does not exist")
            uri = f"gs://{bucket}/{path}"
            exact = any(b.name == path for b in self.state.gcs.blobs(uri)) if path else False
            target = self.root / bucket / path
            if exact:
                self.state.gcs.download(uri, target.parent)
            elif path and self.state.gcs.exists(uri.rstrip("/") + "/"):
                self.state.gcs.download(uri.rstrip("/"), target)
            else:
                (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def upload_changes(self, before: dict[Path, tuple[int, int]]) -> None:
        after = _snapshot(self.root)
        for path, stamp in after.items():
            if before.get(path) == stamp:
                continue
            relative = path.relative_to(self.root).as_posix()
            bucket, _, key = relative.partition("/")
            if bucket and key:
                self.state.gcs.write(f"gs://{bucket}/{key}", path.read_bytes())


def _unpack(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    elif archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(into)
    else:
        raise ValueError(f"{archive.name} is not a .tar.gz, .whl or .zip package")
    entries = [p for p in into.iterdir()]
    if (
        len(entries) == 1
        and entries[0].is_dir()
        and ((entries[0] / "setup.py").exists() or (entries[0] / "pyproject.toml").exists())
    ):
        return entries[0]
    return into


def _spec_dict(spec: cj.CustomJobSpec) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(
        cj.CustomJobSpec.pb(spec), preserving_proto_field_name=True
    )
    return data


def _replicas(
    state: EmulatorState, job: cj.CustomJob, run_dir: Path, mount: _Mount
) -> list[_Replica]:
    spec = job.job_spec
    job_id = job.name.rsplit("/", 1)[-1]
    pools = [(i, p) for i, p in enumerate(spec.worker_pool_specs) if p.replica_count or i == 0]
    hosts = {
        f"workerpool{i}": [f"127.0.0.1:{free_port()}" for _ in range(max(p.replica_count, 1))]
        for i, p in pools
    }
    tf_roles = {0: "chief", 1: "worker", 2: "ps", 3: "evaluator"}
    tf_cluster = {tf_roles[i]: hosts[f"workerpool{i}"] for i, _ in pools if i in tf_roles}
    base: dict[str, str] = {
        "CLOUD_ML_JOB_ID": job_id,
        "CLOUD_ML_PROJECT_ID": state.project,
        "CLOUD_ML_REGION": job.name.split("/")[3],
        "GOOGLE_CLOUD_PROJECT": state.project,
        "STORAGE_EMULATOR_HOST": state.gcs.url,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
    }
    if spec.base_output_directory.output_uri_prefix:
        out = spec.base_output_directory.output_uri_prefix.rstrip("/")
        base.update(
            {
                "AIP_MODEL_DIR": f"{out}/model/",
                "AIP_CHECKPOINT_DIR": f"{out}/checkpoints/",
                "AIP_TENSORBOARD_LOG_DIR": f"{out}/logs/",
            }
        )
    job_dict = _spec_dict(spec)
    replicas = []
    for i, pool in pools:
        env = dict(base)
        if pool.container_spec.image_uri:
            for var in pool.container_spec.env:
                env[var.name] = mount.translate(var.value)
            command = list(pool.container_spec.command)
            if command and command[0] in ("python", "python3"):
                command[0] = sys.executable
            argv = command + [mount.translate(a) for a in pool.container_spec.args]
        else:
            package = pool.python_package_spec
            for var in package.env:
                env[var.name] = mount.translate(var.value)
            paths = []
            for n, uri in enumerate(package.package_uris):
                _, key = split_gs(uri)
                local = run_dir / "packages" / str(n)
                state.gcs.download(uri, local)
                paths.append(str(_unpack(local / Path(key).name, run_dir / "unpacked" / str(n))))
            env["PYTHONPATH"] = os.pathsep.join(
                paths + [p for p in [os.environ.get("PYTHONPATH", "")] if p]
            )
            argv = [sys.executable, "-m", package.python_module] + [
                mount.translate(a) for a in package.args
            ]
        for index in range(max(pool.replica_count, 1)):
            task = {"type": f"workerpool{i}", "index": index, "trial": ""}
            replica_env = dict(env)
            replica_env["CLUSTER_SPEC"] = json.dumps(
                {"cluster": hosts, "environment": "cloud", "task": task, "job": job_dict}
            )
            if i in tf_roles:
                replica_env["TF_CONFIG"] = json.dumps(
                    {
                        "cluster": tf_cluster,
                        "task": {"type": tf_roles[i], "index": index},
                        "environment": "cloud",
                    }
                )
            replicas.append(
                _Replica(i, index, argv, replica_env, f"job-{job_id}-workerpool{i}-{index}")
            )
    return replicas


def _runnable(job: cj.CustomJob) -> str | None:
    """Why the job cannot run locally, or None."""
    for i, pool in enumerate(job.job_spec.worker_pool_specs):
        if not pool.replica_count and i:
            continue
        image = pool.container_spec.image_uri or pool.python_package_spec.executor_image_uri
        if not is_prebuilt_training_image(image):
            return (
                f"workerPoolSpecs[{i}] uses the image {image!r}, which the emulator cannot run: "
                "only Vertex AI's prebuilt training containers (and python packages on them) "
                "run locally."
            )
        if pool.container_spec.image_uri and not pool.container_spec.command:
            return (
                f"workerPoolSpecs[{i}].container_spec has no command; the emulator runs a "
                "prebuilt container's command locally and cannot guess one."
            )
    return None


def run_custom_job(
    state: EmulatorState,
    job: cj.CustomJob,
    *,
    cancelled: Callable[[], bool],
    alive: Callable[[], bool],
) -> RunOutcome:
    """Run every replica and wait; blocks until they end, the job is cancelled or times out.

    Args:
        state: The emulator state.
        job: A copy of the job.
        cancelled: Tells whether a cancel was asked for.
        alive: False once the emulator was reset or closed (the run is abandoned).
    """
    reason = _runnable(job)
    if reason:
        return RunOutcome("FAILED", reason)
    job_id = job.name.rsplit("/", 1)[-1]
    run_dir = state.work_dir / "jobs" / job_id
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    mount = _Mount(state, run_dir / "gcs")
    try:
        replicas = _replicas(state, job, run_dir, mount)
        mount.download_inputs()
    except Exception as exc:
        return RunOutcome("FAILED", f"Preparing the job failed: {exc}")
    before = _snapshot(mount.root)
    timeout = job.job_spec.scheduling.timeout
    limit = timeout.total_seconds() if timeout else None
    started = time.monotonic()
    running: list[tuple[_Replica, Any, Any]] = []
    for replica in replicas:
        workdir = run_dir / f"workerpool{replica.pool}-{replica.index}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            popen, record = state.workers.start(
                replica.key, replica.argv, env=replica.env, cwd=workdir, log_name=replica.key
            )
        except OSError as exc:
            for other, _, _ in running:
                state.workers.stop(other.key)
            return RunOutcome("FAILED", f"workerpool{replica.pool}-{replica.index}: {exc}")
        running.append((replica, popen, record))
        with state.lock:
            state.extra.setdefault("job_logs", {}).setdefault(job.name, {})[
                f"workerpool{replica.pool}-{replica.index}"
            ] = (record.stdout_path, record.stderr_path)
    failure = ""
    while True:
        if not alive():
            for replica, _, _ in running:
                state.workers.stop(replica.key)
            return RunOutcome("CANCELLED", "The emulator was reset.")
        if cancelled():
            for replica, _, _ in running:
                state.workers.stop(replica.key)
            return RunOutcome("CANCELLED", "CustomJob was cancelled.")
        if limit is not None and time.monotonic() - started > limit:
            for replica, _, _ in running:
                state.workers.stop(replica.key)
            return RunOutcome("FAILED", f"The job ran longer than its timeout of {limit:g} s.")
        codes = [popen.poll() for _, popen, _ in running]
        for (replica, _, record), code in zip(running, codes, strict=True):
            if code not in (None, 0) and not failure:
                tail = Path(record.stderr_path).read_text(errors="replace")[-_STDERR_TAIL:]
                failure = (
                    f"The replica workerpool{replica.pool}-{replica.index} exited with a "
                    f"non-zero status of {code}. Its last output:\n{tail}"
                )
        if failure:
            for replica, _, _ in running:
                state.workers.stop(replica.key)
            return RunOutcome("FAILED", failure)
        if all(code == 0 for code in codes):
            break
        time.sleep(0.05)
    for replica, _, _ in running:
        state.workers.forget(replica.key)
    try:
        mount.upload_changes(before)
    except Exception as exc:
        return RunOutcome("FAILED", f"Uploading the files written under /gcs/ failed: {exc}")
    return RunOutcome("SUCCEEDED")
