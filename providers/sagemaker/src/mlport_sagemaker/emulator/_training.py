"""Training jobs that really run: the SageMaker training toolkit's contract, on this machine.

CreateTrainingJob validates the request as SageMaker does, lets moto record the job, then runs
it in a background thread: the job's folder plays ``/opt/ml`` (``input/config/*.json``,
``input/data/<channel>``, ``code``, ``model``, ``output``, ``checkpoints``), the channels and the
code bundle (``sagemaker_submit_directory``) are downloaded from the local S3, and the entry
script (``sagemaker_program``) runs with the current interpreter as a child process with the
toolkit's ``SM_*`` variables and the hyperparameters as ``--key value`` arguments. Every output
line goes to CloudWatch Logs as it is written; MetricDefinitions are applied to it. The model
folder is uploaded as ``model.tar.gz`` when the script ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.processes import ProcessRecord, spawn, stop
from mlport_sagemaker.emulator._aws import AwsError, Call, Response
from mlport_sagemaker.emulator._s3 import Storage, extract_tar, join, make_tar, split_uri

if TYPE_CHECKING:
    import subprocess

    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["CHECKPOINT_DIR_ENV", "LogTail", "TrainingJobs", "instance_types"]

CHECKPOINT_DIR_ENV = "MLPORT_SM_CHECKPOINT_DIR"
"""Where a job's ``CheckpointConfig.LocalPath`` (default ``/opt/ml/checkpoints``) really is."""

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_STOP_GRACE = 10.0
_TAIL_INTERVAL = 0.1
_FAILURE_MAX = 1024
_STDERR_TAIL_LINES = 10
_RESERVED_HPS = ("sagemaker_",)


@cache
def instance_types(shape: str) -> frozenset[str]:
    """The values botocore's SageMaker model allows for an enum shape (e.g. TrainingInstanceType)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


def enum_error(value: str, where: str, allowed: frozenset[str]) -> AwsError:
    """The ValidationException SageMaker answers for a value outside an enum."""
    return AwsError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: "
        f"Member must satisfy enum value set: [{', '.join(sorted(allowed))}]",
    )


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def _decode_hp(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """The toolkit's ``--key value`` arguments (sorted by key; ``-k`` for one-letter keys)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(str(value))
    return args


class _Stopped(Exception):
    def __init__(self, secondary: str) -> None:
        super().__init__(secondary)
        self.secondary = secondary


@dataclass
class _Run:
    name: str
    region: str
    request: dict[str, Any]
    folder: Path
    stop_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    record: ProcessRecord | None = None
    popen: subprocess.Popen[bytes] | None = None
    metrics: dict[str, tuple[float, dt.datetime]] = field(default_factory=dict)


class TrainingJobs:
    """CreateTrainingJob (a real run), StopTrainingJob."""

    def __init__(self, emulator: SageMakerEmulator) -> None:
        self._emu = emulator
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lock = threading.Lock()
        emulator.register(
            "sagemaker", {"CreateTrainingJob": self.create, "StopTrainingJob": self.stop}
        )

    # -- API ---------------------------------------------------------------------------------

    def create(self, call: Call) -> Response:
        """CreateTrainingJob: validate, record (moto), start the run."""
        params = call.params()
        name = params.get("TrainingJobName", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            )
        backend = self._emu.backend(call.region)
        if name in backend.training_jobs:
            raise AwsError(
                "ResourceInUse",
                "Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({self._arn(call.region, name)})",
            )
        resources = params.get("ResourceConfig") or {}
        instance_type = resources.get("InstanceType")
        allowed = instance_types("TrainingInstanceType")
        if instance_type is not None and instance_type not in allowed:
            raise enum_error(instance_type, "resourceConfig.instanceType", allowed)
        if not instance_type and not resources.get("InstanceGroups"):
            raise AwsError("ValidationException", "ResourceConfig needs an InstanceType.")
        stopping = params.get("StoppingCondition") or {}
        if params.get("EnableManagedSpotTraining"):
            wait = stopping.get("MaxWaitTimeInSeconds")
            if wait is None or int(wait) < int(stopping.get("MaxRuntimeInSeconds", 86400)):
                raise AwsError(
                    "ValidationException",
                    "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or "
                    "equal to MaxRuntimeInSeconds",
                )
        elif stopping.get("MaxWaitTimeInSeconds") is not None:
            raise AwsError(
                "ValidationException",
                "MaxWaitTimeInSeconds is only valid with EnableManagedSpotTraining.",
            )
        output = (params.get("OutputDataConfig") or {}).get("S3OutputPath")
        split_uri(output or "")
        for channel in params.get("InputDataConfig") or []:
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if source is None:
                raise AwsError(
                    "ValidationException",
                    f"channel {channel.get('ChannelName')!r}: the emulator supports S3DataSource "
                    "channels only",
                )
            split_uri(source.get("S3Uri", ""))
        for key, value in (params.get("HyperParameters") or {}).items():
            if not isinstance(value, str):
                raise AwsError(
                    "ValidationException",
                    f"hyperparameter {key!r}: every value must be a string, got {value!r}",
                )
        response = self._emu.forward(call)
        if response.status != 200:
            return response
        run = _Run(
            name=name,
            region=call.region,
            request=params,
            folder=self._emu.workdir / "training" / call.region / name,
        )
        started = now()
        with self._emu.lock:
            job = backend.training_jobs[name]
            spec = dict(params.get("AlgorithmSpecification") or {})
            job.algorithm_specification = spec
            job.training_job_status = "InProgress"
            job.secondary_status = "Starting"
            job.failure_reason = None
            job.model_artifacts = None
            job.training_start_time = None
            job.training_end_time = None
            job.final_metric_data_list = []
            job.secondary_status_transitions = [
                {
                    "Status": "Starting",
                    "StartTime": started,
                    "StatusMessage": "Launching requested ML instances",
                }
            ]
            job.last_modified_time = started
            job.environment = params.get("Environment")
            job.retry_strategy = params.get("RetryStrategy")
        with self._lock:
            self._runs[(call.region, name)] = run
        run.thread = threading.Thread(
            target=self._run, args=(run,), name=f"training-{name}", daemon=True
        )
        run.thread.start()
        return response

    def stop(self, call: Call) -> Response:
        """StopTrainingJob: Stopping, SIGTERM to the script, then Stopped."""
        name = call.params().get("TrainingJobName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            job = backend.training_jobs.get(name)
            if job is None:
                raise AwsError(
                    "ResourceNotFound",
                    f"Requested resource not found: {self._arn(call.region, name)}",
                )
            if job.training_job_status != "InProgress":
                raise AwsError(
                    "ValidationException",
                    f"The training job {name} with status {job.training_job_status} cannot be "
                    "stopped.",
                )
            job.training_job_status = "Stopping"
            self._transition(job, "Stopping", "Stopping the training job")
        with self._lock:
            run = self._runs.get((call.region, name))
        if run is not None:
            run.stop_requested.set()
        return Response.json({})

    # -- component ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every running script and wait for the threads."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop_requested.set()
        for run in runs:
            if run.record is not None:
                stop(run.record, grace=2.0)
            if run.thread is not None:
                run.thread.join(timeout=30)

    def clear(self) -> None:
        """Forget the runs (moto's state was reset)."""
        with self._lock:
            self._runs.clear()

    # -- the run -----------------------------------------------------------------------------

    def _arn(self, region: str, name: str) -> str:
        from mlport_sagemaker.emulator.server import ACCOUNT_ID

        return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:training-job/{name}"

    def _job(self, run: _Run) -> Any:
        return self._emu.backend(run.region).training_jobs.get(run.name)

    @staticmethod
    def _transition(job: Any, status: str, message: str) -> None:
        moment = now()
        transitions = list(job.secondary_status_transitions or [])
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1] = {**transitions[-1], "EndTime": moment}
        transitions.append({"Status": status, "StartTime": moment, "StatusMessage": message})
        job.secondary_status_transitions = transitions
        job.secondary_status = status
        job.last_modified_time = moment

    def _set(self, run: _Run, status: str | None, message: str, **fields: Any) -> None:
        with self._emu.lock:
            job = self._job(run)
            if job is None:
                return
            if status is not None:
                self._transition(job, status, message)
            for key, value in fields.items():
                setattr(job, key, value)

    def _pause(self, run: _Run, where: str) -> None:
        if self._emu.delay:
            run.stop_requested.wait(self._emu.delay)
        if run.stop_requested.is_set():
            raise _Stopped("Stopped")

    def _run(self, run: _Run) -> None:
        storage = Storage(self._emu.client("s3", run.region))
        outcome, secondary, reason = "Failed", "Failed", ""
        try:
            self._pause(run, "Starting")
            self._set(run, "Downloading", "Downloading input data")
            command, env = self._prepare(run, storage)
            self._pause(run, "Downloading")
            self._set(
                run,
                "Training",
                "Training image download completed. Training in progress.",
                training_start_time=now(),
            )
            outcome, secondary, reason = self._train(run, command, env)
        except _Stopped as stopped:
            outcome, secondary, reason = "Stopped", stopped.secondary, ""
        except AwsError as error:
            reason = f"ClientError: {error.message}"
        except Exception as error:  # the job fails, the emulator keeps serving
            reason = f"ClientError: {type(error).__name__}: {error}"
        if outcome in ("Completed", "Stopped") and run.folder.joinpath("model").is_dir():
            try:
                self._set(run, "Uploading", "Uploading generated training model")
                self._upload(run, storage)
            except Exception as error:
                if outcome == "Completed":
                    outcome, secondary = "Failed", "Failed"
                    reason = f"ClientError: uploading the model failed: {error}"
        messages = {
            "Completed": "Training job completed",
            "Failed": "Training job failed",
            "Stopped": "Training job stopped",
            "MaxRuntimeExceeded": "Training job stopped because it ran longer than "
            "MaxRuntimeInSeconds",
        }
        end = now()
        with self._emu.lock:
            job = self._job(run)
            if job is None:
                return
            self._transition(job, secondary, messages.get(secondary, secondary))
            transitions = list(job.secondary_status_transitions)
            transitions[-1] = {**transitions[-1], "EndTime": end}
            job.secondary_status_transitions = transitions
            job.training_job_status = outcome
            job.training_end_time = end
            job.failure_reason = reason or None
            start = job.training_start_time or end
            seconds = max(1, int((end - start).total_seconds()))
            job.training_time_in_seconds = seconds
            job.billable_time_in_seconds = seconds

    def _prepare(self, run: _Run, storage: Storage) -> tuple[list[str], dict[str, str]]:
        request = run.request
        base = run.folder
        config_dir = base / "input" / "config"
        data_dir = base / "input" / "data"
        code_dir = base / "code"
        for folder in (
            config_dir,
            data_dir,
            code_dir,
            base / "model",
            base / "output" / "data" / "algo-1",
            base / "output" / "intermediate",
            base / "checkpoints",
            base / "logs",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        raw_hps: dict[str, str] = dict(request.get("HyperParameters") or {})
        decoded = {key: _decode_hp(value) for key, value in raw_hps.items()}
        user_hps = {k: v for k, v in decoded.items() if not k.startswith(_RESERVED_HPS)}
        framework_params = {k: v for k, v in decoded.items() if k.startswith(_RESERVED_HPS)}
        resources = request.get("ResourceConfig") or {}
        instance_type = resources.get("InstanceType", "local")
        resource_config = {
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1"],
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": instance_type,
                    "hosts": ["algo-1"],
                }
            ],
            "network_interface_name": "eth0",
        }
        channels: dict[str, dict[str, Any]] = {}
        channel_dirs: dict[str, Path] = {}
        for channel in request.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            source = channel["DataSource"]["S3DataSource"]
            channels[name] = {
                "ContentType": channel.get("ContentType"),
                "TrainingInputMode": channel.get("InputMode")
                or (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File"),
                "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            channels[name] = {k: v for k, v in channels[name].items() if v is not None}
            target = data_dir / name
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise AwsError(
                    "ValidationException",
                    f"channel {name!r}: the emulator supports S3DataType S3Prefix only",
                )
            if storage.download_prefix(source["S3Uri"], target) == 0:
                raise AwsError(
                    "ValidationException",
                    f'Data download failed:No S3 objects found under S3 URL "{source["S3Uri"]}" '
                    f"given in input data source. Please ensure that the bucket exists in the "
                    f"selected region ({run.region}), that objects exist under that S3 prefix, "
                    "and that the role has permission to read them.",
                )
            channel_dirs[name] = target
        checkpoint = request.get("CheckpointConfig") or {}
        checkpoint_dir = base / "checkpoints"
        if checkpoint.get("S3Uri"):
            # SageMaker restores what an earlier attempt saved before the script starts.
            storage.download_prefix(checkpoint["S3Uri"].rstrip("/") + "/", checkpoint_dir)
        (config_dir / "hyperparameters.json").write_text(json.dumps(raw_hps))
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
        (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config))

        program = framework_params.get("sagemaker_program")
        submit = framework_params.get("sagemaker_submit_directory")
        image = (request.get("AlgorithmSpecification") or {}).get("TrainingImage", "")
        if not program:
            raise AwsError(
                "ValidationException",
                f"the local SageMaker emulator cannot run the training image {image!r} itself: it "
                "runs script-mode jobs only (the hyperparameters sagemaker_program and "
                "sagemaker_submit_directory naming the entry script and its source bundle)",
            )
        if submit:
            if isinstance(submit, str) and submit.startswith("s3://"):
                archive = base / "sourcedir.tar.gz"
                archive.write_bytes(storage.read(submit))
                extract_tar(archive, code_dir)
            elif isinstance(submit, str) and Path(submit).is_dir():
                import shutil

                shutil.copytree(submit, code_dir, dirs_exist_ok=True)
        entry = code_dir / str(program)
        if not entry.is_file():
            raise AwsError(
                "ValidationException",
                f"the entry script {program!r} is not in the code bundle {submit!r}",
            )
        args = cmd_args(user_hps)
        if str(program).endswith(".py"):
            command = [sys.executable, str(program), *args]
        elif str(program).endswith(".sh"):
            command = ["/bin/sh", str(program), *args]
        else:
            command = [str(entry), *args]
        module_name = str(program)[:-3] if str(program).endswith(".py") else str(program)
        training_env = {
            "additional_framework_parameters": framework_params,
            "channel_input_dirs": {k: str(v) for k, v in channel_dirs.items()},
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "hosts": ["algo-1"],
            "hyperparameters": user_hps,
            "input_config_dir": str(config_dir),
            "input_data_config": channels,
            "input_dir": str(base / "input"),
            "job_name": run.name,
            "log_level": 20,
            "model_dir": str(base / "model"),
            "module_dir": submit or str(code_dir),
            "module_name": module_name,
            "network_interface_name": "eth0",
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
            "output_data_dir": str(base / "output" / "data" / "algo-1"),
            "output_dir": str(base / "output"),
            "output_intermediate_dir": str(base / "output" / "intermediate"),
            "resource_config": resource_config,
            "user_entry_point": str(program),
        }
        sm: dict[str, Any] = {
            "hosts": ["algo-1"],
            "network_interface_name": "eth0",
            "hps": user_hps,
            "user_entry_point": str(program),
            "framework_params": framework_params,
            "resource_config": resource_config,
            "input_data_config": channels,
            "output_data_dir": training_env["output_data_dir"],
            "channels": sorted(channel_dirs),
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "module_name": module_name,
            "log_level": 20,
            "framework_module": "",
            "input_dir": training_env["input_dir"],
            "input_config_dir": str(config_dir),
            "output_dir": training_env["output_dir"],
            "num_cpus": training_env["num_cpus"],
            "num_gpus": 0,
            "model_dir": training_env["model_dir"],
            "module_dir": training_env["module_dir"],
            "training_env": training_env,
            "user_args": args,
            "output_intermediate_dir": training_env["output_intermediate_dir"],
        }
        for name, path in channel_dirs.items():
            sm[f"channel_{name}"] = str(path)
        for key, value in user_hps.items():
            sm[f"hp_{key}"] = value
        env = {f"SM_{key.upper()}": _env_value(value) for key, value in sm.items()}
        python_path = os.pathsep.join(
            part for part in (str(code_dir), os.environ.get("PYTHONPATH", "")) if part
        )
        env.update(
            {
                "TRAINING_JOB_NAME": run.name,
                "TRAINING_JOB_ARN": self._arn(run.region, run.name),
                "SAGEMAKER_BASE_DIR": str(base),
                "SAGEMAKER_REGION": run.region,
                CHECKPOINT_DIR_ENV: str(checkpoint_dir),
                "PYTHONPATH": python_path,
                "PYTHONUNBUFFERED": "1",
                **{key: value for key, value in self._emu.env.items() if key.startswith("AWS_")},
                "AWS_DEFAULT_REGION": run.region,
                "AWS_REGION": run.region,
            }
        )
        env.update({str(k): str(v) for k, v in (request.get("Environment") or {}).items()})
        return command, env

    def _train(self, run: _Run, command: list[str], env: dict[str, str]) -> tuple[str, str, str]:
        logs = self._emu.client("logs", run.region)
        stream = f"{run.name}/algo-1-{int(time.time())}"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=LOG_GROUP)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        definitions = [
            (item["Name"], re.compile(item["Regex"]))
            for item in (run.request.get("AlgorithmSpecification") or {}).get(
                "MetricDefinitions", []
            )
            if item.get("Name") and item.get("Regex")
        ]
        log_dir = run.folder / "logs"
        popen, record = spawn(
            command, name="algo-1", log_dir=log_dir, cwd=run.folder / "code", env=env, detach=False
        )
        run.popen, run.record = popen, record
        tails = [LogTail(Path(record.stdout_path)), LogTail(Path(record.stderr_path))]
        limit = (run.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + float(limit) if limit else None
        stopped: str | None = None
        while True:
            done = popen.poll() is not None
            self._publish(run, logs, stream, tails, definitions, final=done)
            if done:
                break
            if run.stop_requested.is_set():
                stopped = "Stopped"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped = "MaxRuntimeExceeded"
                self._set(run, None, "", training_job_status="Stopping")
            if stopped:
                stop(record, grace=_STOP_GRACE)
                popen.wait()
                self._publish(run, logs, stream, tails, definitions, final=True)
                break
            run.stop_requested.wait(_TAIL_INTERVAL)
        if stopped:
            return "Stopped", stopped, ""
        code = popen.returncode
        if code == 0:
            return "Completed", "Completed", ""
        failure = run.folder / "output" / "failure"
        if failure.is_file() and failure.read_text(errors="replace").strip():
            return "Failed", "Failed", failure.read_text(errors="replace").strip()[:_FAILURE_MAX]
        tail = "\n".join(tails[1].lines[-_STDERR_TAIL_LINES:])
        shown = " ".join(command[1:]) if command[0] == sys.executable else " ".join(command)
        reason = (
            f"AlgorithmError: ExecuteUserScriptError:\nExitCode {code}\n"
            f'ErrorMessage "{tail}"\nCommand "python {shown}", exit code: {code}'
        )
        return "Failed", "Failed", reason[-_FAILURE_MAX:]

    def _publish(
        self,
        run: _Run,
        logs: Any,
        stream: str,
        tails: list[LogTail],
        definitions: list[tuple[str, re.Pattern[str]]],
        *,
        final: bool = False,
    ) -> None:
        lines = [line for tail in tails for line in tail.read(final=final)]
        if not lines:
            return
        stamp = int(time.time() * 1000)
        events = [{"timestamp": stamp, "message": line} for line in lines]
        for start in range(0, len(events), 1000):
            logs.put_log_events(
                logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events[start : start + 1000]
            )
        if not definitions:
            return
        changed = False
        for line in lines:
            for metric, pattern in definitions:
                match = pattern.search(line)
                if match is None:
                    continue
                try:
                    value = float(match.group(1) if match.groups() else match.group(0))
                except (ValueError, IndexError):
                    continue
                run.metrics[metric] = (value, now())
                changed = True
        if changed:
            self._set(
                run,
                None,
                "",
                final_metric_data_list=[
                    {"MetricName": name, "Value": value, "Timestamp": moment}
                    for name, (value, moment) in run.metrics.items()
                ],
            )

    def _upload(self, run: _Run, storage: Storage) -> None:
        output = (run.request.get("OutputDataConfig") or {})["S3OutputPath"]
        base = join(output, run.name, "output")
        archive = run.folder / "model.tar.gz"
        make_tar(run.folder / "model", archive)
        storage.upload_file(archive, join(base, "model.tar.gz"))
        self._set(run, None, "", model_artifacts={"S3ModelArtifacts": join(base, "model.tar.gz")})
        data = run.folder / "output" / "data" / "algo-1"
        if data.is_dir() and any(data.iterdir()):
            out = run.folder / "output.tar.gz"
            make_tar(data, out)
            storage.upload_file(out, join(base, "output.tar.gz"))
        checkpoint = run.request.get("CheckpointConfig") or {}
        if checkpoint.get("S3Uri"):
            storage.upload_dir(run.folder / "checkpoints", checkpoint["S3Uri"])


class LogTail:
    """Complete lines appended to a file since the last read (the last few kept in ``lines``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.lines: list[str] = []

    def read(self, *, final: bool = False) -> list[str]:
        """Return the lines completed since the last call (``final``: the unterminated too)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except OSError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        lines = [line.decode("utf-8", errors="replace").rstrip("\r") for line in complete]
        self.lines.extend(lines)
        del self.lines[: -_STDERR_TAIL_LINES * 2]
        return lines
