"""SageMaker training jobs from the portable spec.

``submit`` uploads the code bundle (the user's files, the bootstrap and a copy of
``mlport.runtime``) and every local input to the profile's bucket, then calls CreateTrainingJob:
the framework container from ``Environment``, one channel per input, ResourceConfig from the
compute catalog, StoppingCondition from ``max_runtime``, managed spot with a checkpoint URI for
``Compute(spot=True)``, a MetricDefinition per metric the code logs. The spec hash and the code's
sha256 travel in the job's Environment, so ``describe`` alone tells whether a re-submitted spec
is the same job.

Status comes from DescribeTrainingJob (its secondary status is the progress message), logs from
CloudWatch Logs, cancel is StopTrainingJob. SageMaker keeps jobs: they cannot be deleted.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport import runtime
from mlport.errors import InvalidSpecError
from mlport.handles import Job
from mlport.services import LogChunk, Page, SubmitRequest, TrainingService
from mlport.services.training import bundle_files, git_state
from mlport.status import JobStatus
from mlport_sagemaker import bootstrap
from mlport_sagemaker._images import framework_image
from mlport_sagemaker._status import JOB_STATES, SECONDARY_PENDING
from mlport_sagemaker.storage import make_tarball

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["BOOTSTRAP_NAME", "SageMakerTraining", "merge_options"]

BOOTSTRAP_NAME = "mlport_sagemaker_bootstrap.py"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SPEC_HASH_ENV = "MLPORT_SPEC_HASH"
CODE_SHA_ENV = "MLPORT_CODE_SHA256"
GIT_ENV = "MLPORT_GIT_COMMIT"
PAGE_SIZE = 50
_MAX_METRICS = 40
_MAX_HYPERPARAMETER = 2500
_METRIC_CALL = re.compile(r"log_metric\(\s*(?:name\s*=\s*)?[\"']([^\"'\\]{1,255})[\"']")
_VOLUME_GB = 30


def merge_options(request: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Apply ``provider_options["sagemaker"]``: nested dicts merge, other values replace."""
    merged = dict(request)
    for key, value in options.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_options(merged[key], value)
        else:
            merged[key] = value
    return merged


def logged_metric_names(files: list[Path]) -> list[str]:
    """Names passed as literals to ``log_metric`` in the bundle's Python files, in order."""
    found: dict[str, None] = {}
    for path in files:
        if path.suffix != ".py":
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for name in _METRIC_CALL.findall(text):
            found.setdefault(name, None)
    return list(found)[:_MAX_METRICS]


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


class SageMakerTraining(TrainingService):
    """Training jobs on SageMaker."""

    provider: SageMakerProvider

    @property
    def _sm(self) -> Any:
        return self.provider.sagemaker

    # --- submit ----------------------------------------------------------------------------------

    def _submit(self, request: SubmitRequest) -> Job:
        spec = request.spec
        provider = self.provider
        role = provider.role
        job_root = provider.s3_uri("jobs", request.name)
        files = bundle_files(request.source_dir) if request.source_dir else []
        instance_type = request.compute.instance_type or "ml.m5.large"
        if spec.environment.image:
            image, extra = spec.environment.image, list[str]()
        else:
            image, extra = framework_image(
                spec.environment.framework,
                spec.environment.version,
                provider.region,
                instance_type,
                "training",
            )
        requirements = [*spec.environment.requirements, *extra]
        code_uri = self._upload_bundle(request, files, requirements, f"{job_root}/source")
        channels = [
            self._channel(channel, source, f"{job_root}/input/{channel}")
            for channel, source in request.inputs.items()
        ]
        hyperparameters = self._hyperparameters(spec.hyperparameters, code_uri)
        git = git_state(request.source_dir) if request.source_dir else None
        environment = {
            **spec.env,
            bootstrap.ENTRY_ENV: spec.code.entry_point,
            SPEC_HASH_ENV: request.spec_hash,
            CODE_SHA_ENV: request.code_sha256,
        }
        if git:
            environment[GIT_ENV] = git["commit"] + ("-dirty" if git["dirty"] else "")
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": spec.max_runtime}
        body: dict[str, Any] = {
            "TrainingJobName": request.name,
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": name, "Regex": runtime.metric_definition_regex(name)}
                    for name in logged_metric_names(files)
                ],
            },
            "RoleArn": role,
            "HyperParameters": hyperparameters,
            "OutputDataConfig": {"S3OutputPath": provider.s3_uri("jobs")},
            "ResourceConfig": {
                "InstanceType": instance_type,
                "InstanceCount": request.compute.count,
                "VolumeSizeInGB": _VOLUME_GB,
            },
            "StoppingCondition": stopping,
            "CheckpointConfig": {"S3Uri": f"{job_root}/checkpoints"},
            "Environment": environment,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())],
        }
        if channels:
            body["InputDataConfig"] = channels
        if request.compute.spot:
            body["EnableManagedSpotTraining"] = True
            # Spot capacity may take a while to come; the job may wait as long as it may run.
            stopping["MaxWaitTimeInSeconds"] = spec.max_runtime * 2
        if provider.config.kms_key_id:
            body["OutputDataConfig"]["KmsKeyId"] = provider.config.kms_key_id
            body["ResourceConfig"]["VolumeKmsKeyId"] = provider.config.kms_key_id
        body = merge_options(body, spec.provider_options.get("sagemaker", {}))
        try:
            self._sm.create_training_job(**body)
        except Exception as exc:
            # A refused job leaves no staged bundle or inputs behind; after a retryable error
            # or a taken name the job may exist and its files stay.
            if provider.failed_for_good(exc):
                with contextlib.suppress(Exception):
                    provider.storage.delete(job_root)
            raise
        return self._get(request.name)

    def _upload_bundle(
        self, request: SubmitRequest, files: list[Path], requirements: list[str], prefix: str
    ) -> str:
        """The code bundle as SageMaker's toolkit expects it: ``sourcedir.tar.gz``."""
        source = request.source_dir
        assert source is not None
        names: dict[Path, str] = {path: path.relative_to(source).as_posix() for path in files}
        reserved = {BOOTSTRAP_NAME, bootstrap.RUNTIME_DIR}
        clash = sorted(n for n in names.values() if n.split("/", 1)[0] in reserved)
        if clash:
            raise InvalidSpecError(
                f"code.source_dir holds {clash[0]!r}, a name the SageMaker bootstrap uses; "
                "rename it",
                resource=request.name,
            )
        with tempfile.TemporaryDirectory(prefix="mlport-bundle-") as scratch:
            folder = Path(scratch)
            extra = folder / "extra"
            (extra / "mlport").mkdir(parents=True)
            shutil.copy2(bootstrap.__file__, extra / BOOTSTRAP_NAME)
            (extra / "mlport" / "__init__.py").write_text('"""mlport.runtime for jobs."""\n')
            shutil.copy2(runtime.__file__, extra / "mlport" / "runtime.py")
            names[extra / BOOTSTRAP_NAME] = BOOTSTRAP_NAME
            names[extra / "mlport" / "__init__.py"] = f"{bootstrap.RUNTIME_DIR}/mlport/__init__.py"
            names[extra / "mlport" / "runtime.py"] = f"{bootstrap.RUNTIME_DIR}/mlport/runtime.py"
            if requirements:
                # SageMaker's toolkit installs requirements.txt before the script starts.
                merged = folder / "requirements.txt"
                own = source / "requirements.txt"
                lines = own.read_text().splitlines() if own.is_file() else []
                merged.write_text("\n".join([*lines, *requirements]) + "\n")
                names = {p: n for p, n in names.items() if n != "requirements.txt"}
                names[merged] = "requirements.txt"
            archive = make_tarball(folder, folder / "sourcedir.tar.gz", arcnames=names)
            uri = f"{prefix}/sourcedir.tar.gz"
            self.provider.storage.upload(archive, uri)
        return uri

    def _channel(self, channel: str, source: str, prefix: str) -> dict[str, Any]:
        if source.startswith("s3://"):
            uri = source
        elif "://" in source:
            raise InvalidSpecError(
                f"inputs[{channel!r}]: SageMaker reads inputs from S3 or local paths, not "
                f"{source.split('://', 1)[0]}:// URIs; copy it to S3 first (mlport.storage.copy)"
            )
        else:
            path = Path(source)
            uri = f"{prefix}/{path.name}" if path.is_file() else prefix
            self.provider.storage.upload(path, uri)
        return {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }

    @staticmethod
    def _hyperparameters(values: dict[str, Any], code_uri: str) -> dict[str, str]:
        encoded = {key: json.dumps(value) for key, value in values.items()}
        for key, text in encoded.items():
            if len(text) > _MAX_HYPERPARAMETER:
                raise InvalidSpecError(
                    f"hyperparameters[{key!r}] is {len(text)} characters as JSON; SageMaker "
                    f"takes at most {_MAX_HYPERPARAMETER}: pass large values as an input file"
                )
        encoded["sagemaker_program"] = json.dumps(BOOTSTRAP_NAME)
        encoded["sagemaker_submit_directory"] = json.dumps(code_uri)
        return encoded

    # --- read ------------------------------------------------------------------------------------

    def _get(self, name: str) -> Job:
        return self._view(self._sm.describe_training_job(TrainingJobName=name))

    def _view(self, found: dict[str, Any]) -> Job:
        native = found.get("TrainingJobStatus", "")
        status = JOB_STATES[native]
        secondary = found.get("SecondaryStatus", "")
        if status is JobStatus.RUNNING and secondary in SECONDARY_PENDING:
            status = JobStatus.PENDING
        transitions = found.get("SecondaryStatusTransitions") or []
        detail = transitions[-1].get("StatusMessage", "") if transitions else ""
        message = f"{secondary}: {detail}" if secondary and detail else secondary or native
        environment = found.get("Environment") or {}
        hyperparameters: dict[str, Any] = {}
        for key, text in (found.get("HyperParameters") or {}).items():
            if key.startswith("sagemaker_"):
                continue
            try:
                hyperparameters[key] = json.loads(text)
            except ValueError:
                hyperparameters[key] = text
        inputs = {
            channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
            for channel in found.get("InputDataConfig") or []
            if "S3DataSource" in channel.get("DataSource", {})
        }
        lineage: dict[str, Any] = {
            "image": found.get("AlgorithmSpecification", {}).get("TrainingImage"),
            "inputs": inputs,
            "hyperparameters": hyperparameters,
            "code_sha256": environment.get(CODE_SHA_ENV),
            "entry_point": environment.get(bootstrap.ENTRY_ENV),
        }
        if environment.get(GIT_ENV):
            lineage["git_commit"] = environment[GIT_ENV]
        output = found.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
        name = found["TrainingJobName"]
        return Job(
            name=name,
            kind="training",
            status=status,
            provider_id=found.get("TrainingJobArn", ""),
            metrics={
                item["MetricName"]: float(item["Value"])
                for item in found.get("FinalMetricDataList") or []
            },
            failure_reason=found.get("FailureReason") or None,
            model_uri=(
                found.get("ModelArtifacts", {}).get("S3ModelArtifacts")
                if status is JobStatus.SUCCEEDED
                else None
            ),
            output_uri=f"{output}/{name}/output" if output else None,
            lineage={k: v for k, v in lineage.items() if v not in (None, {}, "")},
            message=message,
            created_at=_when(found.get("CreationTime")),
            started_at=_when(found.get("TrainingStartTime")),
            ended_at=_when(found.get("TrainingEndTime")),
            spec_hash=environment.get(SPEC_HASH_ENV),
        )

    def _list(self, page_token: str | None) -> Page[Job]:
        kwargs: dict[str, Any] = {
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": PAGE_SIZE,
        }
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_training_jobs(**kwargs)
        jobs = []
        for item in answer.get("TrainingJobSummaries", []):
            status = JOB_STATES[item.get("TrainingJobStatus", "")]
            jobs.append(
                Job(
                    name=item["TrainingJobName"],
                    status=status,
                    provider_id=item.get("TrainingJobArn", ""),
                    message=item.get("SecondaryStatus", ""),
                    created_at=_when(item.get("CreationTime")),
                    ended_at=_when(item.get("TrainingEndTime")),
                )
            )
        return Page(jobs, answer.get("NextToken"))

    def _cancel(self, name: str) -> None:
        self._sm.stop_training_job(TrainingJobName=name)

    def _read_logs(self, name: str, cursor: str | None) -> LogChunk:
        return read_log_streams(self.provider.client("logs"), LOG_GROUP, f"{name}/", cursor)


def read_log_streams(logs: Any, group: str, prefix: str, cursor: str | None) -> LogChunk:
    """The new lines of every CloudWatch Logs stream in ``group`` starting with ``prefix``.

    The cursor is a JSON object: stream -> the forward token to read on from. Lines of a
    multi-stream job (several hosts) carry the stream's host in front.
    """
    tokens: dict[str, str] = json.loads(cursor) if cursor else {}
    try:
        streams = [
            stream["logStreamName"]
            for stream in logs.describe_log_streams(
                logGroupName=group, logStreamNamePrefix=prefix
            ).get("logStreams", [])
        ]
    except Exception as exc:
        if _code(exc) == "ResourceNotFoundException":
            return LogChunk([], cursor)  # no log group yet: nothing has run
        raise
    lines: list[str] = []
    for stream in sorted(streams):
        label = stream[len(prefix) :].split("-", 1)[0] if len(streams) > 1 else ""
        kwargs: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if stream in tokens:
            kwargs["nextToken"] = tokens[stream]
        while True:
            page = logs.get_log_events(**kwargs)
            events = page.get("events", [])
            for event in events:
                text = str(event.get("message", "")).rstrip("\n")
                lines.append(f"[{label}] {text}" if label else text)
            token = page.get("nextForwardToken")
            if token:
                tokens[stream] = token
            if not events or not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    return LogChunk(lines, json.dumps(tokens) if tokens else cursor)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
