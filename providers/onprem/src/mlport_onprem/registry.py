"""The on-prem model registry: the MLflow Model Registry, so MLflow's UI and tools see mlport's models.

Each ``register`` makes one MLflow run in the ``mlport`` experiment, named after the model: the
job's hyperparameters become the run's params, its metrics the run's metrics and its lineage the
run's ``mlport.lineage.<key>`` tags; the model package is logged as the run's ``model`` artifact
directory and becomes a new version of the registered model. The version's tags keep what mlport
reads back: ``mlport.request_id`` (so a retried call never makes two versions),
``mlport.package_sha256`` (the manifest's hash, checked by :meth:`OnPremRegistry.download`),
``mlport.framework``, and the full ``mlport.lineage`` and ``mlport.metrics`` as JSON.

A scikit-learn package is also written as an MLflow model (an ``MLmodel`` file beside the package
files, listed in the rebuilt manifest), so ``mlflow.pyfunc.load_model("models:/<name>/<version>")``
loads it. Stages are MLflow aliases.

MLflow is imported on first use, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from mlport import package
from mlport.errors import InvalidSpecError, NotFoundError
from mlport.handles import ModelVersion
from mlport.runtime import MANIFEST_NAME
from mlport.services import Page, RegisterRequest, RegistryService
from mlport_onprem import _mlflow

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlport_onprem.root import OnPremProvider

__all__ = ["OnPremRegistry"]

log = logging.getLogger("mlport.onprem.registry")

T = TypeVar("T")

ARTIFACT_PATH = "model"
"""Where a version's package lives inside its run's artifacts."""

STAGE_ORDER = ("production", "staging", "archived")
"""Aliases that count as a stage, in the order one wins when a version holds several."""

TAG_REQUEST_ID = "mlport.request_id"
TAG_PACKAGE_SHA256 = "mlport.package_sha256"
TAG_FRAMEWORK = "mlport.framework"
TAG_LINEAGE = "mlport.lineage"
TAG_LINEAGE_ARTIFACT = "mlport.lineage_artifact"
TAG_METRICS = "mlport.metrics"
TAG_MLFLOW_FLAVOR = "mlport.mlflow_flavor"
TAG_BASELINE = "mlport.baseline_uri"
BASELINE_ARTIFACT = "baseline-profile.json"
_INTERNAL_TAG_PREFIX = "mlport."

# MLflow's limits (mlflow.utils.validation): longer values are refused, not truncated.
_MAX_PARAM_VALUE = 6000
_MAX_RUN_TAG_VALUE = 8000
_MAX_VERSION_TAG_VALUE = 100_000
_MAX_KEY = 250
_BATCH = 100

_LINEAGE_ARTIFACT = "mlport/lineage.json"
# The model file of each loader that MLflow's sklearn flavour can take over.
_SKLEARN_MODEL_FILES = {"skops": ("model.skops",), "joblib": ("model.joblib", "model.pkl")}
_SKOPS_FORMAT = "skops"
_LIBRARY_TYPES = ("sklearn.", "numpy.", "scipy.sparse.")
_PICKLE_FORMAT = "cloudpickle"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _key(name: str) -> str:
    """``name`` as an MLflow param, metric or tag key (they allow few characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9_\-. /]", "_", name).strip("/") or "_"
    # MLflow refuses keys that a path normalisation would change ("a/../b", "./a").
    parts = [part if part not in {"", ".", ".."} else "_" for part in cleaned.split("/")]
    return "/".join(parts)[:_MAX_KEY]


def _batches(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _quoted(value: str) -> str:
    """``value`` as a string literal of an MLflow search filter."""
    if "'" in value or "\\" in value:
        raise InvalidSpecError(f"{value!r} cannot be searched for in MLflow: it contains a quote")
    return f"'{value}'"


def _file_uri(source: str) -> str:
    """A local artifact location as a ``file://`` URI; any other location as MLflow gave it."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path)).as_uri()
    if not parsed.scheme and source.startswith("/"):
        return Path(source).as_uri()
    return source


class OnPremRegistry(RegistryService):
    """Model versions in the MLflow Model Registry of the root (or of the profile's server).

    Attributes:
        page_size: Models or versions fetched per MLflow search call when listing.
    """

    provider: OnPremProvider
    page_size: ClassVar[int] = 25

    @property
    def _client(self) -> MlflowClient:
        return _mlflow.client(self.provider)

    # --- register --------------------------------------------------------------------------------

    def _register(self, request: RegisterRequest) -> ModelVersion:
        source = self._local_source(request)
        # Staged inside the root rather than /tmp, which is often a small RAM disk.
        with tempfile.TemporaryDirectory(prefix=".register-", dir=self.provider.root) as scratch:
            staged = Path(scratch) / ARTIFACT_PATH
            # The copy is what gets verified, converted and uploaded, so later edits of the
            # source cannot slip in between the check and the upload.
            shutil.copytree(source, staged, symlinks=False)
            manifest, flavour = self._prepare_package(staged, request)
            framework = request.framework or manifest.framework
            digest = package.manifest_sha256(staged)
            self._ensure_model(request.name)
            run_id, artifact_uri, version_tags = self._log_run(request, staged)
            if request.baseline_profile is not None:
                profile = Path(scratch) / BASELINE_ARTIFACT
                profile.write_text(request.baseline_profile, encoding="utf-8")
                self._client.log_artifact(run_id, str(profile))
                version_tags[TAG_BASELINE] = f"{artifact_uri.rstrip('/')}/{BASELINE_ARTIFACT}"
        tags = {
            **request.tags,
            **version_tags,
            TAG_REQUEST_ID: request.request_id,
            TAG_PACKAGE_SHA256: digest,
            TAG_METRICS: _json(request.metrics),
        }
        if framework:
            tags[TAG_FRAMEWORK] = framework
        if flavour:
            tags[TAG_MLFLOW_FLAVOR] = flavour
        created = self._client.create_model_version(
            request.name,
            source=f"{artifact_uri.rstrip('/')}/{ARTIFACT_PATH}",
            run_id=run_id,
            tags=tags,
            description=request.description,
        )
        return self._view(created, list(created.aliases or []))

    def _local_source(self, request: RegisterRequest) -> Path:
        if request.local_path is not None:
            return request.local_path
        uri = request.uri or ""
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidSpecError(
                f"cannot register {uri!r}: on-prem registers local directories and file:// URIs, "
                f"and cannot read {parsed.scheme!r} URIs; copy the package to this machine first "
                "(mlport.storage.copy)",
                resource=request.name,
            )
        path = Path(urllib.parse.unquote(parsed.path))
        if not path.is_dir():
            raise InvalidSpecError(
                f"model source {uri!r} is not a directory", resource=request.name
            )
        return path

    def _prepare_package(
        self, staged: Path, request: RegisterRequest
    ) -> tuple[package.Manifest, str | None]:
        """Make ``staged`` a verified package, with an MLflow flavour where one applies."""
        if not (staged / MANIFEST_NAME).is_file():
            package.build(staged, framework=request.framework)
        manifest = package.verify(staged)
        flavour = _write_mlflow_flavour(staged, manifest, request.framework, request.name)
        if flavour is not None or (request.framework and request.framework != manifest.framework):
            # The manifest must list the files MLflow added; lineage and signature are kept.
            manifest = package.build(staged, framework=request.framework)
        return manifest, flavour

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(name)
        except MlflowException as exc:
            # Every version after the first, or another process registering at the same time.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _log_run(self, request: RegisterRequest, staged: Path) -> tuple[str, str, dict[str, str]]:
        """Log the run that carries the version; returns its id, artifact URI and version tags."""
        from mlflow.entities import Metric, Param, RunTag

        client = self._client
        run = client.create_run(
            _mlflow.experiment_id(self.provider),
            run_name=request.name,
            tags={"mlport.model": request.name, TAG_REQUEST_ID: request.request_id},
        )
        run_id = str(run.info.run_id)
        try:
            now = int(time.time() * 1000)
            metrics = [
                Metric(_key(name), float(value), now, 0) for name, value in request.metrics.items()
            ]
            params = [Param(key, value) for key, value in _params(request.lineage).items()]
            tags = [
                RunTag(f"mlport.lineage.{_key(key)}"[:_MAX_KEY], text)
                for key, value in request.lineage.items()
                if len(text := _json(value)) <= _MAX_RUN_TAG_VALUE
            ]
            for chunk in _batches(metrics):
                client.log_batch(run_id, metrics=chunk)
            for param_chunk in _batches(params):
                client.log_batch(run_id, params=param_chunk)
            for tag_chunk in _batches(tags):
                client.log_batch(run_id, tags=tag_chunk)
            version_tags: dict[str, str] = {}
            lineage = _json(request.lineage)
            if len(lineage) <= _MAX_VERSION_TAG_VALUE:
                version_tags[TAG_LINEAGE] = lineage
            else:
                client.log_text(run_id, lineage, _LINEAGE_ARTIFACT)
                version_tags[TAG_LINEAGE_ARTIFACT] = _LINEAGE_ARTIFACT
            client.log_artifacts(run_id, str(staged), artifact_path=ARTIFACT_PATH)
        except BaseException:
            # The error that stopped the run is the one to report, not a failure to mark it.
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")
        return run_id, str(run.info.artifact_uri), version_tags

    # --- read ------------------------------------------------------------------------------------

    def _find_by_request_id(self, name: str, request_id: str) -> ModelVersion | None:
        found = self._client.search_model_versions(
            f"name = {_quoted(name)} AND tags.`{TAG_REQUEST_ID}` = {_quoted(request_id)}",
            max_results=1,
        )
        if not found:
            return None
        return self._get_version(name, str(found[0].version))

    def _get_version(self, name: str, version: str) -> ModelVersion:
        found = self._client.get_model_version(name, version)
        return self._view(found, list(found.aliases or []))

    def _latest(self, name: str) -> ModelVersion:
        newest = self._client.search_model_versions(
            f"name = {_quoted(name)}", max_results=1, order_by=["version_number DESC"]
        )
        if not newest:
            raise NotFoundError(f"model {name!r} not found: it has no versions", resource=name)
        return self._get_version(name, str(newest[0].version))

    def _resolve_alias(self, name: str, alias: str) -> str:
        aliases = self._client.get_registered_model(name).aliases or {}
        version = aliases.get(alias)
        if version is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", resource=name)
        return str(version)

    def _list_models(self, page_token: str | None) -> Page[ModelVersion]:
        from mlflow.exceptions import MlflowException

        page = self._client.search_registered_models(
            max_results=self.page_size, order_by=["name ASC"], page_token=page_token
        )
        items: list[ModelVersion] = []
        for model in page:
            numbers = [int(v.version) for v in model.latest_versions or []]
            if not numbers:
                continue
            try:
                items.append(self._get_version(model.name, str(max(numbers))))
            except MlflowException as exc:
                # Deleted between the search and this read: it is simply not listed.
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        return Page(items, page.token or None)

    def _list_versions(self, name: str, page_token: str | None) -> Page[ModelVersion]:
        client = self._client
        by_version: dict[str, list[str]] = {}
        for alias, version in (client.get_registered_model(name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        page = client.search_model_versions(
            f"name = {_quoted(name)}",
            max_results=self.page_size,
            order_by=["version_number ASC"],
            page_token=page_token,
        )
        items = [self._view(found, by_version.get(str(found.version), [])) for found in page]
        return Page(items, page.token or None)

    def _view(self, found: Any, aliases: list[str]) -> ModelVersion:
        tags: dict[str, str] = dict(found.tags or {})
        return ModelVersion(
            name=found.name,
            version=str(found.version),
            uri=_file_uri(str(found.source or "")),
            stage=next((stage for stage in STAGE_ORDER if stage in aliases), None),
            aliases=sorted(aliases),
            framework=tags.get(TAG_FRAMEWORK),
            metrics=_loads(tags.get(TAG_METRICS)),
            lineage=self._lineage(found, tags),
            created_at=(
                datetime.fromtimestamp(found.creation_timestamp / 1000, tz=UTC)
                if found.creation_timestamp
                else None
            ),
            package_sha256=tags.get(TAG_PACKAGE_SHA256),
            description=found.description or None,
            baseline_uri=_file_uri(tags[TAG_BASELINE]) if TAG_BASELINE in tags else None,
            provider_id=f"models:/{found.name}/{found.version}",
            tags={k: v for k, v in tags.items() if not k.startswith(_INTERNAL_TAG_PREFIX)},
        )

    def _lineage(self, found: Any, tags: Mapping[str, str]) -> dict[str, Any]:
        artifact = tags.get(TAG_LINEAGE_ARTIFACT)
        if artifact is None or not found.run_id:
            return _loads(tags.get(TAG_LINEAGE))
        with tempfile.TemporaryDirectory(prefix="mlport-lineage-") as scratch:
            path = self._client.download_artifacts(found.run_id, artifact, scratch)
            return _loads(Path(path).read_text(encoding="utf-8"))

    # --- change ----------------------------------------------------------------------------------

    def _set_stage(self, name: str, version: str, stage: str) -> ModelVersion:
        client = self._client
        if stage == "none":
            for alias in client.get_model_version(name, version).aliases or []:
                client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, stage, version)
        return self._get_version(name, version)

    def _delete_version(self, name: str, version: str) -> None:
        self._client.delete_model_version(name, version)

    def _delete_model(self, name: str) -> None:
        self._client.delete_registered_model(name)

    # --- download --------------------------------------------------------------------------------

    def _download_to(self, name: str, version: str, target: Path) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        source = self._client.get_model_version_download_uri(name, version)
        repository = get_artifact_repository(
            source,
            tracking_uri=_mlflow.tracking_uri(self.provider),
            registry_uri=_mlflow.registry_uri(self.provider),
        )
        repository.download_artifacts("", str(target))  # type: ignore[no-untyped-call]


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        # Tags edited by hand in the MLflow UI; the registry stays readable.
        return {}
    return value if isinstance(value, dict) else {}


def _params(lineage: Mapping[str, Any]) -> dict[str, str]:
    """The run params: the job's hyperparameters, as MLflow shows them."""
    hyperparameters = lineage.get("hyperparameters")
    if not isinstance(hyperparameters, Mapping):
        return {}
    params: dict[str, str] = {}
    for name, value in hyperparameters.items():
        text = value if isinstance(value, str) else _json(value)
        # Too long for MLflow; the full value stays in the lineage.
        if len(text) <= _MAX_PARAM_VALUE:
            params[_key(str(name))] = text
    return params


# --- MLflow flavours -----------------------------------------------------------------------------


def _write_mlflow_flavour(
    staged: Path, manifest: package.Manifest, framework: str | None, name: str
) -> str | None:
    """Make a verified package also an MLflow model where its framework has a flavour.

    Returns:
        The flavour written, or None when none applies or this machine cannot write it (the
        reason is logged; the package is registered without it).
    """
    if "MLmodel" in manifest.files:
        return None
    writer = _FLAVOURS.get(framework or manifest.framework or "")
    if writer is None:
        return None
    return writer(staged, manifest, name)


def _sklearn_flavour(staged: Path, manifest: package.Manifest, name: str) -> str | None:
    model_file = next(
        (
            staged / name
            for name in _SKLEARN_MODEL_FILES.get(manifest.loader, ())
            if name in manifest.files
        ),
        None,
    )
    if model_file is None:
        return None
    try:
        import mlflow.sklearn
        from mlflow.models import Model

        loaded = _load_sklearn(model_file, manifest.loader, name)
    except ImportError as exc:
        log.warning("model %r is registered without an MLflow flavour: %s", name, exc)
        return None
    if loaded is None:
        return None
    model, trusted = loaded
    serialization = _SKOPS_FORMAT if manifest.loader == "skops" else _PICKLE_FORMAT
    with tempfile.TemporaryDirectory(prefix="mlport-mlflow-") as scratch:
        written = Path(scratch) / "model"
        with _quiet("mlflow.sklearn"):
            mlflow.sklearn.save_model(
                model,
                str(written),
                serialization_format=serialization,
                **({"skops_trusted_types": trusted} if trusted else {}),
                # Explicit requirements: inferring them runs the model in a subprocess.
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(
                    include_cloudpickle=serialization == _PICKLE_FORMAT,
                    include_skops=serialization == _SKOPS_FORMAT,
                ),
            )
        mlmodel = Model.load(str(written / "MLmodel"))
        data_name = str(mlmodel.flavors["sklearn"]["pickled_model"])
        reuse = serialization == _SKOPS_FORMAT and data_name == model_file.name
        if not reuse and (staged / data_name).exists():
            # The package has a file of that name already (a joblib model.pkl): MLflow's copy
            # gets another name, and MLmodel says so.
            renamed = f"mlflow-{data_name}"
            (written / data_name).rename(written / renamed)
            mlmodel.flavors["sklearn"]["pickled_model"] = renamed
            mlmodel.flavors["python_function"]["model_path"] = renamed
            mlmodel.save(str(written / "MLmodel"))
        for entry in written.iterdir():
            # The package's own files win: its model.skops is the model MLflow would have
            # written, and its requirements are the author's.
            if (staged / entry.name).exists():
                continue
            if entry.is_dir():
                shutil.copytree(entry, staged / entry.name)
            else:
                shutil.copy2(entry, staged / entry.name)
    return "sklearn"


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a logger's warnings: MLflow warns that a pickle runs code on load, which the
    package's manifest already says of its joblib model, the only kind pickled here."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _load_sklearn(path: Path, loader: str, name: str) -> tuple[Any, list[str]] | None:
    """Load a verified sklearn model file, with the skops types trusted to do so; None when it
    cannot be loaded safely here."""
    if loader == "skops":
        import skops.io  # type: ignore[import-untyped]

        untrusted = skops.io.get_untrusted_types(file=path)
        # scikit-learn's own compiled types (e.g. sklearn.tree._tree.Tree, in every forest) are
        # not on skops' default list because a forged file could make predict() read out of
        # bounds. This file's sha256 was verified against the manifest just before, so it is
        # the file that was trained, not a forged one. Types from other modules could run code,
        # which a skops package promises not to do.
        foreign = [t for t in untrusted if not t.startswith(_LIBRARY_TYPES)]
        if foreign:
            log.warning(
                "model %r is registered without an MLflow flavour: its skops file uses types "
                "skops does not trust (%s)",
                name,
                ", ".join(foreign),
            )
            return None
        return skops.io.load(path, trusted=untrusted), list(untrusted)
    import joblib  # type: ignore[import-untyped]

    return joblib.load(path), []


_FLAVOURS: dict[str, Callable[[Path, package.Manifest, str], str | None]] = {
    "sklearn": _sklearn_flavour,
}
"""Framework -> the function that adds its MLflow flavour to a staged package."""
