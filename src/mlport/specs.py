"""Specs: what a user asks for. Pydantic models with ``extra="forbid"``, portable across providers.

A spec rejects at construction what no provider accepts (a typo in a field, a negative CPU count,
a name outside the portable alphabet). Rules that only some providers have are checked when the
spec is submitted, by the service of the provider that runs it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlport import names
from mlport.errors import InvalidSpecError

__all__ = [
    "BatchOptions",
    "Code",
    "Compute",
    "DeploymentOptions",
    "Duration",
    "Environment",
    "MonitorOptions",
    "NotebookOptions",
    "Spec",
    "TrainingJob",
    "parse_duration",
    "spec_hash",
]

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(value: object) -> int:
    """Seconds in a duration: ``"2h"``, ``"30m"``, ``"90s"``, ``"1h30m"``, ``"1d"``, or a number.

    Raises:
        ValueError: for anything else, or a duration that is not positive.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '2h', '30m', '90s' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(
                f"{value!r} is not a duration: use a number of seconds or a string such as "
                "'2h', '30m', '90s' or '1h30m'"
            )
    else:
        raise ValueError("expected a duration such as '2h', '30m', '90s' or a number of seconds")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return max(1, round(seconds))


def format_duration(seconds: int) -> str:
    """The shortest exact string for ``seconds`` (``5400`` -> ``"1h30m"``)."""
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[int, BeforeValidator(parse_duration)]
"""Seconds; accepts "2h", "30m", "90s", "1h30m" or a number."""

Percent = Annotated[float, Field(ge=0, le=100)]
PathLike = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, Path) else v)]
JsonValue = Any


class Spec(BaseModel):
    """Base of every spec: unknown fields are errors, values are checked on assignment too.

    Bad input raises :class:`~mlport.errors.InvalidSpecError` (a ``ValueError``) whose message
    names the spec, the field and the fix, e.g. ``TrainingJob: field 'nmae': unknown field; did
    you mean 'name'?``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise spec_error(type(self), exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise spec_error(type(self), exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate a dict (e.g. loaded from YAML) into this spec; raises InvalidSpecError."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise spec_error(cls, exc) from None


def spec_error(model: type[BaseModel], exc: ValidationError) -> InvalidSpecError:
    """Turn pydantic's error into one InvalidSpecError naming the spec, each field and the fix."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            parent: Any = model
            for part in error["loc"][:-1]:
                is_model = isinstance(parent, type) and issubclass(parent, BaseModel)
                field = parent.model_fields.get(str(part)) if is_model else None
                parent = field.annotation if field is not None else None
            known = (
                list(parent.model_fields)
                if isinstance(parent, type) and issubclass(parent, BaseModel)
                else []
            )
            close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else (f"; fields: {', '.join(known)}" if known else "")
            )
            problems.append(f"field {loc!r}: unknown field{hint}")
        elif error["type"] == "missing":
            problems.append(f"field {loc!r}: required")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"field {loc!r}: {message}" if loc else message)
    return InvalidSpecError(f"{model.__name__}: " + "; ".join(problems))


def spec_hash(spec: BaseModel, *, exclude: set[str] | None = None) -> str:
    """A stable sha256 of a spec's JSON form, stored with the resource to make creates idempotent."""
    data = spec.model_dump(mode="json", exclude=exclude, exclude_none=True)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Code(Spec):
    """The training code: a local source directory and the script in it to run.

    Args:
        source_dir: Directory uploaded as the code bundle.
        entry_point: Script (relative to ``source_dir``) run with the interpreter.
    """

    source_dir: PathLike
    entry_point: str = "train.py"

    @field_validator("entry_point")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = Path(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError(
                f"entry_point {value!r} must be a path inside source_dir, such as 'train.py'"
            )
        return value


FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "huggingface", "python")


class Environment(Spec):
    """Where the code runs: a framework and version, or a container image.

    With neither, each provider uses its default Python environment.

    Args:
        framework: One of ``sklearn``, ``xgboost``, ``lightgbm``, ``pytorch``, ``tensorflow``,
            ``huggingface``, ``python``.
        version: The framework's version, e.g. ``"1.5"``.
        image: A container image URI; excludes ``framework``.
        python: Python version, e.g. ``"3.11"``.
        requirements: Extra pip requirements installed before the script runs.
    """

    framework: (
        Literal["sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "huggingface", "python"]
        | None
    ) = None
    version: str | None = None
    image: str | None = None
    python: str | None = None
    requirements: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        if self.image and self.framework:
            raise ValueError("give either image or framework, not both")
        if self.version and not self.framework:
            raise ValueError(
                "version needs a framework, e.g. Environment(framework='sklearn', version='1.5')"
            )
        if self.python and not re.fullmatch(r"3\.\d{1,2}", self.python):
            raise ValueError(f"python {self.python!r} must look like '3.11'")
        return self


class Compute(Spec):
    """Portable compute: resolved to the cheapest matching instance type of each provider.

    A native ``instance_type`` always wins over the portable fields.

    Args:
        cpus: Minimum vCPUs per node.
        memory_gb: Minimum memory per node, GiB.
        gpus: Minimum GPUs per node.
        gpu_type: GPU model, e.g. ``"T4"``, ``"A100"``; implies ``gpus >= 1``.
        count: Number of nodes.
        spot: Use spot / low-priority capacity where the provider has it.
        instance_type: A provider-native type (``"ml.m5.xlarge"``, ``"n1-standard-4"``, ...).
    """

    cpus: float | None = Field(default=None, gt=0)
    memory_gb: float | None = Field(default=None, gt=0)
    gpus: int = Field(default=0, ge=0)
    gpu_type: str | None = None
    count: int = Field(default=1, ge=1, le=1000)
    spot: bool = False
    instance_type: str | None = None

    @field_validator("gpu_type")
    @classmethod
    def _gpu_name(cls, value: str | None) -> str | None:
        return value.upper().replace("NVIDIA_", "").replace("TESLA_", "") if value else value

    @model_validator(mode="after")
    def _gpus_for_type(self) -> Compute:
        if self.gpu_type and self.gpus == 0:
            object.__setattr__(self, "gpus", 1)
        return self


class TrainingJob(Spec):
    """A training job, runnable unchanged on every provider.

    Give ``name`` to make submission idempotent (the same spec returns the existing job, a
    different one raises ``AlreadyExistsError``), or ``base_name`` for a fresh unique name per
    submission (default: the entry point's stem).

    Args:
        name: Exact job name.
        base_name: Prefix of a generated unique name.
        code: The code to run.
        environment: Framework/version or image.
        inputs: Channel name -> local path or URI; local paths are staged to the provider's storage.
        hyperparameters: JSON values, passed as ``--key=value`` and in ``MLPORT_HYPERPARAMETERS``.
        compute: Portable or native compute.
        max_runtime: "2h", "30m", "90s" or seconds; the job is stopped and FAILED after it.
        env: Extra environment variables for the script.
        tags: Key/value tags stored on the resource.
        provider_options: Provider name -> native options (the escape hatch).
    """

    name: str | None = None
    base_name: str | None = None
    code: Code
    environment: Environment = Field(default_factory=Environment)
    inputs: dict[str, str] = Field(default_factory=dict)
    hyperparameters: dict[str, JsonValue] = Field(default_factory=dict)
    compute: Compute = Field(default_factory=Compute)
    max_runtime: Duration = 24 * 3600
    env: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    provider_options: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)

    @field_validator("inputs", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, Path) else v for k, v in value.items()}
        return value

    @field_validator("name", "base_name")
    @classmethod
    def _portable(cls, value: str | None) -> str | None:
        return names.check_portable(value, "job") if value is not None else None

    @field_validator("inputs")
    @classmethod
    def _channels(cls, value: dict[str, str]) -> dict[str, str]:
        for channel, source in value.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", channel):
                raise ValueError(
                    f"input name {channel!r} must be 1-64 letters, digits, '_' or '-', "
                    "starting with a letter"
                )
            if not source:
                raise ValueError(f"input {channel!r} has an empty path")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
                raise ValueError(f"hyperparameter name {key!r} must be an identifier-like word")
            try:
                json.dumps(item, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"hyperparameter {key!r} is not a JSON value: {exc}") from None
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"environment variable name {key!r} is not valid")
            if key.startswith("MLPORT_"):
                raise ValueError(f"environment variable {key!r}: the MLPORT_ prefix is reserved")
        return value

    @field_validator("provider_options")
    @classmethod
    def _option_keys(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for provider in value:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", provider):
                raise ValueError(
                    f"provider_options key {provider!r} must be a provider name such as 'sagemaker'"
                )
        return value

    @model_validator(mode="after")
    def _one_name(self) -> TrainingJob:
        if self.name and self.base_name:
            raise ValueError("give name (idempotent) or base_name (unique suffix), not both")
        return self


class DeploymentOptions(Spec):
    """How an endpoint serves a model version.

    Args:
        compute: Per-replica compute.
        min_replicas: Replicas kept running.
        max_replicas: Upper bound for autoscaling; defaults to ``min_replicas``.
        capture_percent: Share of requests/responses captured for monitoring.
        traffic_percent: With an existing endpoint: deploy beside the current version as a canary
            taking this share of traffic. Without it, the new version replaces the old one.
        provider_options: Provider name -> native options.
    """

    compute: Compute = Field(default_factory=Compute)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    capture_percent: Percent = 0
    traffic_percent: Percent | None = None
    provider_options: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _replicas(self) -> DeploymentOptions:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class BatchOptions(Spec):
    """A batch prediction over files.

    Args:
        input: Local path or URI of the input (CSV, JSON Lines or Parquet; a file or a folder).
        output: Local path or URI of the folder predictions are written to.
        compute: Per-node compute.
        max_runtime: Upper bound on the job's run time.
        batch_size: Rows read, predicted and written at a time (memory holds one such chunk).
        id_column: A column of the input holding each row's id, written beside its prediction
            and not sent to the model; without it a row's id is its 0-based number in its file.
        provider_options: Provider name -> native options.
    """

    input: PathLike
    output: PathLike
    compute: Compute = Field(default_factory=Compute)
    max_runtime: Duration = 24 * 3600
    batch_size: int = Field(1000, ge=1, le=1_000_000)
    id_column: str | None = Field(None, min_length=1)
    provider_options: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)


class NotebookOptions(Spec):
    """A notebook server.

    Args:
        compute: The machine it runs on.
        idle_timeout: Stop the notebook after this long without activity.
        image: A custom kernel image, where the provider supports one.
        provider_options: Provider name -> native options.
    """

    compute: Compute = Field(default_factory=Compute)
    idle_timeout: Duration | None = None
    image: str | None = None
    provider_options: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)


class MonitorOptions(Spec):
    """Drift monitoring of an endpoint's captured traffic against a baseline.

    Args:
        baseline: Local path or URI of the training data (or a saved baseline profile); None
            uses the profile registered with the served version (``registry.register(...,
            baseline=...)``).
        schedule: How often the monitor runs ("1h", "15m", ...); None runs it only on demand.
        thresholds: Feature name (or ``"*"`` for all) -> drift threshold overriding the default.
        alert: A webhook URL POSTed a JSON summary when a threshold is crossed.
        features: Only these features; default all.
    """

    baseline: PathLike | None = None
    schedule: Duration | None = 3600
    thresholds: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    alert: str | None = None
    features: list[str] | None = None

    @field_validator("alert")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://", value):
            raise ValueError(f"alert {value!r} must be an http(s) webhook URL")
        return value
