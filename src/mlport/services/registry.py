"""The model registry: register versions, resolve stages and aliases, list, delete.

Provider contract:

- ``_register(request)`` stores a new version and returns it. It keeps ``request.request_id``
  with the version (a tag), so ``_find_request(name, request_id)`` can tell, after a lost answer,
  whether the version was made: the base class never makes two versions for one call.
- ``_get_version(name, version)`` and ``_resolve_alias(name, alias) -> version`` raise
  ``NotFoundError``; ``_latest(name)`` gives the newest version.
- ``_set_stage(name, version, stage)`` moves the stage alias to this version (one version per
  stage) and returns the updated version.
"""

from __future__ import annotations

import abc
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlport.errors import RETRYABLE, InvalidSpecError, NotFoundError
from mlport.handles import Job, ModelVersion
from mlport.services.base import Page, Service
from mlport.services.training import is_uri
from mlport.status import JobStatus

__all__ = ["RegisterRequest", "RegistryService"]

STAGES = ("none", "staging", "production", "archived")


@dataclass
class RegisterRequest:
    """What ``_register`` receives.

    Exactly one of ``local_path`` (a model package directory on this machine) and ``uri`` is set.
    """

    name: str
    request_id: str
    local_path: Path | None = None
    uri: str | None = None
    framework: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    baseline_profile: str | None = None
    """A drift baseline profile (``mlport.monitoring.Profile`` JSON) to store with the version."""


class RegistryService(Service):
    """Registered models and their versions on one provider."""

    kind: ClassVar[str] = "registry"
    resource_kind = "model"

    def register(
        self,
        name: str,
        source: Job | str | Path,
        *,
        framework: str | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        baseline: str | Path | None = None,
    ) -> ModelVersion:
        """Register a new version of model ``name`` from a finished job, a local package dir or a URI.

        Every call appends a version; a call retried after a lost answer never makes two.

        Args:
            baseline: The training data (a CSV file with a header, JSON Lines or Parquet): its
                drift profile (:class:`mlport.monitoring.Profile`) is stored with the version,
                and monitors of endpoints serving it use it when enabled without a baseline.

        Raises:
            InvalidSpecError: the job has not SUCCEEDED or has no model, the path does not exist,
                an unreadable baseline.
        """
        self._require("registry")
        self._check_name(name)
        profile: str | None = None
        if baseline is not None:
            self._require("registry.baseline")
            from mlport.monitoring import Profile

            path = Path(baseline).expanduser()
            if not path.is_file():
                raise InvalidSpecError(
                    f"baseline {str(baseline)!r} is not a file; give the training data (a CSV "
                    "file with a header, JSON Lines or Parquet)",
                    resource=name,
                )
            profile = Profile.from_file(path).to_json()
        request = RegisterRequest(
            name=name,
            request_id=uuid.uuid4().hex,
            framework=framework,
            metrics=dict(metrics or {}),
            tags=dict(tags or {}),
            description=description,
            baseline_profile=profile,
        )
        self._resolve_source(source, request)
        attempts = 0

        def attempt() -> ModelVersion:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                made = self._find_request(name, request.request_id)
                if made is not None:
                    return made
            return self._register(request)

        try:
            version = self._bind(self._call("register", attempt))
        except RETRYABLE:
            made = self._find_request(name, request.request_id)
            if made is None:
                raise
            version = self._bind(made)
        self._emit("registered", name, version=version.version, uri=version.uri)
        return version

    def _resolve_source(self, source: Job | str | Path, request: RegisterRequest) -> None:
        if isinstance(source, Job):
            if source.status is not JobStatus.SUCCEEDED or not source.model_uri:
                raise InvalidSpecError(
                    f"job {source.name!r} has no model to register: it is {source.status.value}"
                    + ("; wait() for it first" if not source.status.is_terminal else ""),
                    resource=source.name,
                )
            uri = source.model_uri
            request.lineage = {
                **source.lineage,
                "job": source.name,
                "job_provider": source.provider,
                "job_id": source.provider_id,
            }
            request.metrics = {**source.metrics, **request.metrics}
        else:
            uri = str(source)
        if is_uri(uri) and not uri.startswith("file://"):
            request.uri = uri
            return
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.is_dir():
            raise InvalidSpecError(
                f"model source {uri!r} is neither a finished job, an existing directory, nor a URI"
            )
        request.local_path = path.resolve()

    def get(self, name: str, version: str | int | None = None) -> ModelVersion:
        """A version by number, stage or alias (``"production"``); the latest when None.

        Raises:
            NotFoundError: no such model, version or alias.
        """
        self._require("registry")
        if version is None or str(version) == "latest":
            return self._bind(self._call("get", self._latest, name))
        text = str(version)
        if not text.isdigit():
            text = self._call("get", self._resolve_alias, name, text)
        return self._bind(self._call("get", self._get_version, name, text))

    def versions(self, name: str) -> Iterator[ModelVersion]:
        """Every version of ``name``, pages fetched lazily."""
        self._require("registry")
        return self._paginate(lambda token: self._list_versions(name, token))

    def list(self) -> Iterator[ModelVersion]:
        """The latest version of every registered model, pages fetched lazily."""
        self._require("registry")
        return self._paginate(self._list_models)

    def set_stage(self, name: str, version: str | int, stage: str) -> ModelVersion:
        """Move ``stage`` to this version (the version that held it loses it).

        ``stage`` is ``staging``, ``production``, ``archived`` or ``none`` (clears), or any
        lowercase alias word.

        Raises:
            InvalidSpecError: a malformed stage.
            NotFoundError: no such version.
        """
        self._require("registry.stages")
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", stage) or stage == "latest":
            raise InvalidSpecError(
                f"stage {stage!r} must be a lowercase word such as {', '.join(STAGES)} "
                "('latest' is reserved)"
            )
        result = self._bind(self._call("set_stage", self._set_stage, name, str(version), stage))
        self._emit("stage_set", name, version=str(version), stage=stage)
        return result

    def delete(self, name: str, version: str | int | None = None) -> None:
        """Delete one version, or the whole model when ``version`` is None. Idempotent."""
        if version is None:
            self._delete_idempotent("registry.delete", name, self._delete_model, name)
        else:
            self._delete_idempotent(
                "registry.delete", f"{name}:{version}", self._delete_version, name, str(version)
            )

    def download(self, version: ModelVersion, dest: str | Path) -> Path:
        """Copy a version's model package to ``dest`` and verify every file's sha256.

        The manifest is checked against the sha256 recorded when the version was registered and
        every file against the manifest, so an edit of a model file together with its manifest
        is caught. Blocks until the files are copied and checked.

        Args:
            version: The version, from ``register`` or ``get``.
            dest: An empty or missing directory.

        Returns:
            ``dest``, holding the verified package.

        Raises:
            InvalidSpecError: ``dest`` is a file or a non-empty directory.
            IntegrityError: a file or the manifest does not match; the message names the files.
        """
        from mlport import package

        self._require("registry")
        target = Path(dest).expanduser()
        if target.is_file() or (target.is_dir() and any(target.iterdir())):
            raise InvalidSpecError(
                f"cannot download {version.name} version {version.version} into {target}: it "
                "must be an empty or missing directory",
                resource=version.name,
            )
        target.mkdir(parents=True, exist_ok=True)
        self._call("download", self._download_to, version.name, version.version, target)
        package.verify(target, manifest_sha256=version.package_sha256)
        self._emit("downloaded", version.name, version=version.version, path=str(target))
        return target

    def list_versions(self, name: str) -> Iterator[ModelVersion]:
        """Same as :meth:`versions` (MLflow's word for it)."""
        return self.versions(name)

    def _find_request(self, name: str, request_id: str) -> ModelVersion | None:
        try:
            return self._find_by_request_id(name, request_id)
        except NotFoundError:
            return None

    @abc.abstractmethod
    def _register(self, request: RegisterRequest) -> ModelVersion: ...

    @abc.abstractmethod
    def _find_by_request_id(self, name: str, request_id: str) -> ModelVersion | None: ...

    @abc.abstractmethod
    def _get_version(self, name: str, version: str) -> ModelVersion: ...

    @abc.abstractmethod
    def _latest(self, name: str) -> ModelVersion: ...

    @abc.abstractmethod
    def _resolve_alias(self, name: str, alias: str) -> str: ...

    @abc.abstractmethod
    def _list_models(self, page_token: str | None) -> Page[ModelVersion]: ...

    @abc.abstractmethod
    def _list_versions(self, name: str, page_token: str | None) -> Page[ModelVersion]: ...

    def _download_to(self, name: str, version: str, target: Path) -> None:
        """Copy the version's package files into the existing empty directory ``target``."""
        self._not_implemented("registry")

    def _set_stage(self, name: str, version: str, stage: str) -> ModelVersion:
        self._not_implemented("registry.stages")

    def _delete_version(self, name: str, version: str) -> None:
        self._not_implemented("registry.delete")

    def _delete_model(self, name: str) -> None:
        self._not_implemented("registry.delete")
