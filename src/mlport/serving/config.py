"""The portable model server's configuration, read from a JSON file.

Example (``endpoint.json``; relative paths are taken from the file's folder)::

    {
      "endpoint": "churn-api",
      "port": 0,
      "token_file": "token",
      "workers": 2,
      "variants": {
        "1": {"path": "models/1", "manifest_sha256": "3b5d...", "weight": 90},
        "2": {"path": "models/2", "manifest_sha256": "9a1c...", "weight": 10}
      },
      "capture": {"percent": 10, "dir": "capture"},
      "status_file": "status.json",
      "ready_file": "ready.json"
    }

The server re-reads the file on SIGHUP and applies what changed in ``variants``; other changes
need a restart (the server logs which it ignored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlport.errors import ConfigError

__all__ = [
    "BatchingConfig",
    "CaptureConfig",
    "ServerConfig",
    "VariantConfig",
    "load_config",
]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_MIB = 1024 * 1024


class VariantConfig(BaseModel):
    """One model version served by the endpoint.

    Attributes:
        path: The model package directory.
        manifest_sha256: The manifest's sha256 recorded at registration; checked before loading.
        weight: Share of unpinned traffic, relative to the other variants' weights (0: served
            only when pinned with ``X-Mlport-Variant``).
        trust: Load a package that cannot be checked against ``manifest_sha256``.
        loader: ``"module:function"`` called as ``function(path, manifest_sha256=..., trust=...)``
            to load the model instead of :func:`mlport.serving.loaders.load` (a format of your
            own; the function returns a :class:`~mlport.serving.model.ServedModel`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    manifest_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    trust: bool = False
    loader: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    def source(self) -> tuple[str, str | None, bool, str | None]:
        """What decides the loaded model: equal sources need no reload (only the weight moved)."""
        return (self.path, self.manifest_sha256, self.trust, self.loader)


class BatchingConfig(BaseModel):
    """Micro-batching: rows of concurrent requests predicted in one call.

    Attributes:
        enabled: Combine requests at all (a model can also opt out with ``batching=False``).
        max_batch_size: Rows per predict call at most (a larger request is predicted alone).
        max_wait_ms: How long a queued request may wait for others that are being read.
        predict_in: Where ``predict`` runs: ``"thread"`` (one thread per worker, off the event
            loop), ``"inline"`` (on the event loop: least overhead for tiny models), or
            ``"auto"``: inline while a model's recent predict calls take under 1 ms, else the
            thread.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_batch_size: int = Field(default=32, ge=1, le=65536)
    max_wait_ms: float = Field(default=2.0, ge=0, le=10_000)
    predict_in: Literal["auto", "thread", "inline"] = "auto"


class CaptureConfig(BaseModel):
    """Data capture: a share of request/response pairs written as JSON Lines.

    Attributes:
        percent: Share of successful predictions captured, 0-100.
        dir: Root folder; files go to ``<dir>/<endpoint>/YYYY/MM/DD/HH/<worker>-<start>.jsonl``.
        max_bytes: A file is closed and a new one started past this size.
        max_seconds: ... or when it is this old (and at the turn of each hour).
        queue_size: Records waiting for the writer at most; more are dropped and counted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(default=0.0, ge=0, le=100, allow_inf_nan=False)
    dir: str | None = None
    max_bytes: int = Field(default=64 * _MIB, ge=1024)
    max_seconds: float = Field(default=3600.0, gt=0)
    queue_size: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _dir_when_capturing(self) -> CaptureConfig:
        if self.percent > 0 and not self.dir:
            raise ValueError("capture.percent > 0 needs capture.dir")
        return self


class ServerConfig(BaseModel):
    """Everything the portable model server needs to run an endpoint.

    Attributes:
        endpoint: The endpoint's name (the Open Inference Protocol's model name, and the folder
            of its captured data).
        host: Interface to bind; ignored under a cloud's hosting contract (all interfaces).
        port: Port to bind (0: any free port); ignored under a hosting contract.
        token_file: File holding the bearer token clients must send (mode 0600). None serves
            without authentication, which needs ``no_auth`` or a cloud's hosting contract.
        no_auth: Serve without a token outside a cloud (``mlport serve --no-auth``).
        workers: Processes sharing the listening socket.
        variants: Version -> the model served under it.
        batching: Micro-batching settings.
        capture: Data capture settings.
        max_body_bytes: Larger request bodies are answered 413.
        status_file: JSON file the server rewrites with its generation, the variants loaded and
            the last reload error.
        ready_file: JSON ``{"port": ..., "pid": ...}`` written once every worker listens.
        graceful_seconds: On SIGTERM, how long in-flight requests may take to finish.
        predict_timeout_seconds: How long one ``predict`` call may run. Past it the requests it
            holds are answered 504 and the worker is replaced by a fresh process once its other
            requests are answered (a running call cannot be stopped; see
            :mod:`mlport.serving.server`).
        hosting: ``"auto"`` detects a cloud's contract from the environment; ``"none"`` never
            follows one; a platform name forces its contract.
        log_level: Python logging level name for the server's logs (on stderr).
        access_log: Log every request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(pattern=_NAME_PATTERN)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    token_file: str | None = None
    no_auth: bool = False
    workers: int = Field(default=1, ge=1, le=256)
    variants: dict[str, VariantConfig] = Field(min_length=1)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    max_body_bytes: int = Field(default=10 * _MIB, ge=1)
    status_file: str | None = None
    ready_file: str | None = None
    graceful_seconds: float = Field(default=30.0, ge=0)
    predict_timeout_seconds: float = Field(default=60.0, gt=0, le=86_400, allow_inf_nan=False)
    hosting: Literal["auto", "none", "sagemaker", "vertex", "azureml"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False

    @field_validator("variants")
    @classmethod
    def _variants(cls, variants: dict[str, VariantConfig]) -> dict[str, VariantConfig]:
        import re

        for version in variants:
            if not re.fullmatch(_NAME_PATTERN, version):
                raise ValueError(
                    f"variant version {version!r} must be letters, digits, '.', '_' or '-'"
                )
        if sum(variant.weight for variant in variants.values()) <= 0:
            raise ValueError("at least one variant needs a weight above 0")
        return variants

    def resolved(self, base: str | os.PathLike[str]) -> ServerConfig:
        """Return a copy whose relative paths are taken from ``base``."""
        root = Path(base)

        def absolute(value: str | None) -> str | None:
            if value is None:
                return None
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else (root / path).resolve())

        variants = {
            version: variant.model_copy(update={"path": absolute(variant.path)})
            for version, variant in self.variants.items()
        }
        capture = self.capture.model_copy(update={"dir": absolute(self.capture.dir)})
        return self.model_copy(
            update={
                "variants": variants,
                "capture": capture,
                "token_file": absolute(self.token_file),
                "status_file": absolute(self.status_file),
                "ready_file": absolute(self.ready_file),
            }
        )


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read a server configuration file; relative paths in it are taken from its folder.

    Does not block beyond reading the file.

    Raises:
        ConfigError: The file is missing, is not JSON, or does not fit :class:`ServerConfig`
            (the message names each wrong field).
    """
    file = Path(path)
    try:
        data: Any = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"server configuration {file} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"server configuration {file} is not readable JSON: {exc}") from None
    try:
        config = ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"server configuration {file}: {_describe(exc)}") from None
    return config.resolved(file.resolve().parent)
