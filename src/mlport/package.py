"""Model packages: the model files plus ``mlport-model.json``, hashed and verified.

A model package is a directory. Its manifest, ``mlport-model.json``, says which framework made the
model, how to load it (``loader``), whether loading runs code stored in the files
(``executes_code_on_load``: pickle and joblib do), the input signature when known, the sha256 of
every file, and the model's lineage. Providers convert a package to their native layout and back.

The registry keeps the sha256 of the manifest itself apart from the package, so loading checks the
manifest against that stored hash and every file against the manifest: an edit of a model file and
of the manifest together is still caught. ::

    manifest = build("out/model")                # detect the format, hash, write the manifest
    stored = manifest_sha256("out/model")        # keep this somewhere the package is not
    open_package("out/model", manifest_sha256=stored)   # what loaders call; raises on tampering

The manifest is written by :func:`mlport.runtime.write_manifest`, the same code a training script
uses through :func:`mlport.runtime.save_model`, so packages made inside a container and outside
it are identical.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from mlport import runtime
from mlport.errors import IntegrityError, InvalidSpecError, NotFoundError
from mlport.runtime import MANIFEST_NAME, MANIFEST_SCHEMA_VERSION

__all__ = [
    "MANIFEST_NAME",
    "FeatureSpec",
    "Loader",
    "Manifest",
    "Signature",
    "build",
    "detect",
    "manifest_sha256",
    "open_package",
    "sha256_dir",
    "verify",
]

Loader = Literal["joblib", "skops", "onnx", "mlflow", "xgboost-json", "lightgbm-txt", "custom"]
"""How a package's model is loaded; the same names as :data:`mlport.runtime.LOADERS`."""

_SHA256_RE = re.compile(r"[0-9a-f]{64}")

# What detect() looks for, in the order it looks, as the error message shows them.
_DETECTED_NAMES = (
    "MLmodel (MLflow)",
    "model.skops",
    "model.onnx",
    "model.joblib",
    "model.pkl",
    "model.json (XGBoost)",
    "model.ubj (XGBoost)",
    "model.txt (LightGBM)",
)

# Enough of a file's start to recognise its format without reading a large model whole.
_HEAD_BYTES = 64 * 1024
_TAIL_BYTES = 4 * 1024

_FLAVOR_VERSION_EXCLUDED = frozenset({"python_version", "mlflow_version"})


class FeatureSpec(BaseModel):
    """One input (or output) of a model.

    Attributes:
        name: The feature's name, when the model knows it (a DataFrame column).
        dtype: Its type as numpy spells it, e.g. ``"float64"``, ``"int64"``, ``"object"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    dtype: str = Field(min_length=1)


class Signature(BaseModel):
    """What a model takes and, when known, what it returns.

    Attributes:
        inputs: The model's inputs, in the order it expects them.
        outputs: The model's outputs, when known.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[FeatureSpec, ...]
    outputs: tuple[FeatureSpec, ...] | None = None


class Manifest(BaseModel):
    """The contents of ``mlport-model.json``.

    Attributes:
        schema_version: The manifest format version; 1.
        framework: The framework that made the model (``"sklearn"``), if known.
        framework_version: That framework's version, if known.
        loader: How to load the model.
        executes_code_on_load: Whether loading runs code stored in the files (pickle, joblib,
            most MLflow flavours). Such packages load only when their hashes can be checked.
        signature: The model's inputs, if known.
        files: Relative POSIX path -> sha256 of every file in the package but the manifest.
        lineage: Where the model came from (training job, data, code).
        created_at: When the package was first built, in UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: StrictInt = MANIFEST_SCHEMA_VERSION
    framework: str | None = None
    framework_version: str | None = None
    loader: Loader
    executes_code_on_load: StrictBool
    signature: Signature | None = None
    files: dict[str, str]
    lineage: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != MANIFEST_SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {value} is not one this mlport reads "
                f"({MANIFEST_SCHEMA_VERSION}); upgrade mlport to load this package"
            )
        return value

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str]) -> dict[str, str]:
        # A manifest may come from anywhere: a path that escapes the package would make verify()
        # hash, and a loader open, a file outside it.
        for relative, digest in files.items():
            parts = relative.split("/")
            if (
                not relative
                or relative.startswith("/")
                or "\\" in relative
                or any(part in {"", ".", ".."} for part in parts)
            ):
                raise ValueError(f"{relative!r} is not a relative path inside the package")
            if relative == MANIFEST_NAME:
                raise ValueError(f"{MANIFEST_NAME} cannot list itself")
            if not _SHA256_RE.fullmatch(digest):
                raise ValueError(f"{relative!r}: {digest!r} is not a lower-case hex sha256")
        return files


@dataclasses.dataclass(frozen=True)
class _Detection:
    loader: Loader
    framework: str | None = None
    framework_version: str | None = None
    executes_code_on_load: bool = True


# --- hashing -------------------------------------------------------------------------------------


def _existing_dir(path: str | os.PathLike[str]) -> pathlib.Path:
    directory = pathlib.Path(path)
    if not directory.exists():
        raise NotFoundError(f"no model package at {directory}: it does not exist")
    if not directory.is_dir():
        raise InvalidSpecError(f"{directory} is a file; a model package is a directory")
    return directory


def _hash_files(directory: pathlib.Path) -> dict[str, str]:
    try:
        return runtime.sha256_dir(directory)
    except ValueError as exc:
        raise InvalidSpecError(str(exc)) from None


def sha256_dir(path: str | os.PathLike[str]) -> dict[str, str]:
    """Hash every file of a package directory, as its manifest lists them.

    Args:
        path: The package directory.

    Returns:
        Relative POSIX path -> hex sha256, sorted by path, without ``mlport-model.json``.

    Raises:
        NotFoundError: The directory does not exist.
        InvalidSpecError: ``path`` is a file, or the tree holds a symlinked directory.
    """
    return _hash_files(_existing_dir(path))


def manifest_sha256(path: str | os.PathLike[str]) -> str:
    """Return the sha256 of a package's manifest file, to store apart from the package.

    Args:
        path: The package directory, or its ``mlport-model.json``.

    Raises:
        NotFoundError: The path does not exist.
        InvalidSpecError: The directory has no manifest.
    """
    target = pathlib.Path(path)
    if not target.exists():
        raise NotFoundError(f"no model package at {target}: it does not exist")
    if target.is_dir():
        target = target / MANIFEST_NAME
        if not target.is_file():
            raise InvalidSpecError(
                f"no {MANIFEST_NAME} in {target.parent}; build one with mlport.package.build"
            )
    return runtime.sha256_file(target)


# --- detection -----------------------------------------------------------------------------------


def _read_head(path: pathlib.Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(_HEAD_BYTES)


def _read_tail(path: pathlib.Path) -> bytes:
    with path.open("rb") as stream:
        stream.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
        return stream.read()


def _xgboost(path: pathlib.Path) -> _Detection | None:
    # XGBoost writes {"learner": {...}, "version": [major, minor, patch]}, in that order, in both
    # its JSON and UBJSON formats.
    if b"learner" not in _read_head(path):
        return None
    version = None
    if path.suffix == ".json":
        found = re.search(
            rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]', _read_tail(path)
        )
        if found:
            version = ".".join(part.decode() for part in found.groups())
    return _Detection("xgboost-json", "xgboost", version, executes_code_on_load=False)


def _lightgbm(path: pathlib.Path) -> _Detection | None:
    lines = _read_head(path).decode("utf-8", errors="replace").splitlines()
    content = [line.strip() for line in lines if line.strip()]
    if not content or content[0] != "tree":
        return None
    if not any(line.startswith("version=") for line in content[1:20]):
        return None
    return _Detection("lightgbm-txt", "lightgbm", None, executes_code_on_load=False)


def _scalar(text: str) -> str | None:
    value = text.strip()
    if value in {"", "null", "~"}:
        return None
    if len(value) >= 2 and value[0] == value[-1] and value[0] in {"'", '"'}:
        return value[1:-1]
    return value


def _parse_flavors(text: str) -> dict[str, dict[str, Any]]:
    """Read the top-level ``flavors:`` mapping of an MLmodel file and each flavour's own keys.

    PyYAML is used when installed. Without it, a line parser reads the block layout MLflow writes;
    anything it cannot follow yields no flavours, which is treated as code-executing.
    """
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            document = yaml.safe_load(text)
        except Exception:
            # Unreadable means no flavours, which the caller treats as code-executing.
            return {}
        flavors = document.get("flavors") if isinstance(document, dict) else None
        if not isinstance(flavors, dict):
            return {}
        return {
            str(name): (dict(body) if isinstance(body, dict) else {})
            for name, body in flavors.items()
        }

    parsed: dict[str, dict[str, Any]] = {}
    in_flavors = False
    flavor_indent: int | None = None
    key_indent: int | None = None
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if indent == 0:
            in_flavors = stripped == "flavors:"
            current = None
            continue
        if not in_flavors:
            continue
        if flavor_indent is None:
            flavor_indent = indent
        if indent == flavor_indent:
            name, _, _ = stripped.partition(":")
            current = parsed.setdefault(name.strip(), {})
            key_indent = None
        elif indent > flavor_indent and current is not None:
            if key_indent is None:
                key_indent = indent
            if indent == key_indent and ":" in stripped:
                key, _, value = stripped.partition(":")
                current[key.strip()] = _scalar(value)
    return parsed


def _mlflow(path: pathlib.Path) -> _Detection:
    flavors = _parse_flavors(path.read_text(encoding="utf-8", errors="replace"))
    native = [name for name in flavors if name != "python_function"]
    framework = native[0] if native else None
    framework_version = None
    if framework is not None:
        for key, value in flavors[framework].items():
            if key.endswith("_version") and key not in _FLAVOR_VERSION_EXCLUDED and value:
                framework_version = str(value)
                break
    # Only an ONNX model served by MLflow's own ONNX pyfunc loads without unpickling; a custom
    # python_model or any other flavour is a (cloud)pickle.
    pyfunc_module = flavors.get("python_function", {}).get("loader_module")
    onnx_only = native == ["onnx"] and pyfunc_module in {None, "mlflow.onnx"}
    return _Detection("mlflow", framework, framework_version, executes_code_on_load=not onnx_only)


def _detect_format(directory: pathlib.Path) -> _Detection | None:
    names = {entry.name for entry in directory.iterdir() if entry.is_file()}
    if "MLmodel" in names:
        return _mlflow(directory / "MLmodel")
    if "model.skops" in names:
        return _Detection("skops", "sklearn", None, executes_code_on_load=False)
    if "model.onnx" in names:
        return _Detection("onnx", "onnx", None, executes_code_on_load=False)
    if "model.joblib" in names or "model.pkl" in names:
        return _Detection("joblib", None, None, executes_code_on_load=True)
    for name in ("model.json", "model.ubj"):
        if name in names and (found := _xgboost(directory / name)) is not None:
            return found
    if "model.txt" in names:
        return _lightgbm(directory / "model.txt")
    return None


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def detect(path: str | os.PathLike[str]) -> Manifest:
    """Work out the manifest of a bare model directory, without writing it.

    Rules, first match wins: ``MLmodel`` -> mlflow (code-executing unless its only flavour is
    ONNX); ``model.skops`` -> skops; ``model.onnx`` -> onnx; ``model.joblib`` or ``model.pkl`` ->
    joblib (code-executing); ``model.json`` / ``model.ubj`` written by XGBoost -> xgboost-json;
    ``model.txt`` written by LightGBM -> lightgbm-txt.

    Args:
        path: The directory.

    Returns:
        The manifest the directory would get, files hashed.

    Raises:
        NotFoundError: The directory does not exist.
        InvalidSpecError: Nothing in it is a model file mlport recognises; the message lists the
            files found and the names looked for.
    """
    directory = _existing_dir(path)
    found = _detect_format(directory)
    if found is None:
        present = sorted(entry.name for entry in directory.iterdir())
        shown = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "")
        raise InvalidSpecError(
            f"cannot tell how to load the model in {directory}: found "
            f"{shown if present else 'no files'}; looked for {', '.join(_DETECTED_NAMES)}. "
            "Save the model under one of those names, or pass loader= to mlport.package.build"
        )
    return Manifest(
        framework=found.framework,
        framework_version=found.framework_version,
        loader=found.loader,
        executes_code_on_load=found.executes_code_on_load,
        files=_hash_files(directory),
        created_at=_utc_now(),
    )


# --- build and verify ----------------------------------------------------------------------------


def _parse_manifest(data: bytes, where: pathlib.Path) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidSpecError(f"{where} is not a valid model manifest: {problems}") from None


def _no_manifest(directory: pathlib.Path) -> InvalidSpecError:
    return InvalidSpecError(
        f"no {MANIFEST_NAME} in {directory}; build a package with mlport.package.build"
    )


def _signature_dict(signature: Signature) -> dict[str, Any]:
    data = signature.model_dump(mode="json")
    if signature.outputs is None:
        del data["outputs"]
    return data


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def build(
    path: str | os.PathLike[str],
    *,
    framework: str | None = None,
    loader: Loader | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    framework_version: str | None = None,
) -> Manifest:
    """Turn a directory into a model package by writing its ``mlport-model.json``.

    Every file is hashed and the manifest is replaced atomically. When the directory already has a
    manifest, its ``files`` are rebuilt and every other field is kept unless given here; otherwise
    the format is detected (see :func:`detect`) unless ``loader`` is given.

    Args:
        path: The directory holding the model files.
        framework: The framework that made the model, overriding what was detected or recorded.
        loader: How to load the model; skips detection. A loader other than the detected one
            counts as code-executing when it is joblib, mlflow or custom.
        signature: The model's inputs (and outputs), as a :class:`Signature` or its dict form.
        lineage: Where the model came from, as JSON-compatible values.
        framework_version: The framework's version, overriding what was detected or recorded.

    Returns:
        The manifest as written.

    Raises:
        NotFoundError: The directory does not exist.
        InvalidSpecError: The format cannot be detected and ``loader`` is not given, an argument is
            malformed, or an existing manifest cannot be read.
    """
    directory = _existing_dir(path)
    if loader is not None and loader not in runtime.LOADERS:
        raise InvalidSpecError(
            f"unknown loader {loader!r}; expected one of {', '.join(runtime.LOADERS)}"
        )
    manifest_file = directory / MANIFEST_NAME
    existing = (
        _parse_manifest(manifest_file.read_bytes(), manifest_file)
        if manifest_file.is_file()
        else None
    )

    # What to keep: the existing manifest, or what detection found for the same loader.
    base: Manifest | _Detection
    if existing is not None and loader in {None, existing.loader}:
        base = existing
    elif loader is None:
        base = detect(directory)
    else:
        detected = _detect_format(directory)
        base = (
            detected
            if detected is not None and detected.loader == loader
            else _Detection(loader, executes_code_on_load=runtime.EXECUTES_CODE_ON_LOAD[loader])
        )

    kept_signature = base.signature if isinstance(base, Manifest) else None
    if signature is not None:
        try:
            kept_signature = (
                signature
                if isinstance(signature, Signature)
                else Signature.model_validate(signature)
            )
        except ValidationError as exc:
            raise InvalidSpecError(f"invalid signature: {exc}") from None
    if lineage is None:
        lineage = base.lineage if isinstance(base, Manifest) else {}

    try:
        written = runtime.write_manifest(
            directory,
            framework=framework if framework is not None else base.framework,
            framework_version=(
                framework_version if framework_version is not None else base.framework_version
            ),
            loader=base.loader,
            executes_code_on_load=base.executes_code_on_load,
            signature=None if kept_signature is None else _signature_dict(kept_signature),
            lineage=lineage,
            created_at=_iso(existing.created_at) if existing is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"cannot build a model package in {directory}: {exc}") from None
    return _parse_manifest(json.dumps(written).encode(), manifest_file)


def verify(path: str | os.PathLike[str], *, manifest_sha256: str | None = None) -> Manifest:
    """Check a model package against its manifest, and the manifest against a stored hash.

    Args:
        path: The package directory.
        manifest_sha256: The sha256 of the manifest recorded when the package was registered.
            Without it an edit of a file together with the manifest goes unnoticed.

    Returns:
        The verified manifest.

    Raises:
        IntegrityError: The manifest does not match ``manifest_sha256`` (or is missing while one
            was given), or a file is changed, missing, or not listed in the manifest; the message
            names the files.
        InvalidSpecError: There is no manifest, it cannot be read, or ``manifest_sha256`` is not a
            sha256.
        NotFoundError: The directory does not exist.
    """
    directory = _existing_dir(path)
    manifest_file = directory / MANIFEST_NAME
    expected = None
    if manifest_sha256 is not None:
        expected = manifest_sha256.strip().lower()
        if not _SHA256_RE.fullmatch(expected):
            raise InvalidSpecError(f"manifest_sha256 {manifest_sha256!r} is not a hex sha256")
    if not manifest_file.is_file():
        if expected is not None:
            raise IntegrityError(
                f"{manifest_file} is missing, but a manifest with sha256 {expected} was recorded "
                "for this package"
            )
        raise _no_manifest(directory)

    # Hash and parse the same bytes, so the manifest cannot change between the two.
    data = manifest_file.read_bytes()
    if expected is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"{manifest_file} has been changed since it was recorded: expected sha256 "
                f"{expected}, actual {actual}"
            )
    manifest = _parse_manifest(data, manifest_file)

    try:
        actual_files = runtime.sha256_dir(directory)
    except ValueError as exc:
        raise IntegrityError(str(exc)) from None
    problems: list[str] = []
    changed = [
        f"{name} (manifest sha256 {digest}, actual {actual_files[name]})"
        for name, digest in manifest.files.items()
        if name in actual_files and actual_files[name] != digest
    ]
    missing = sorted(name for name in manifest.files if name not in actual_files)
    extra = sorted(name for name in actual_files if name not in manifest.files)
    if changed:
        problems.append("changed: " + ", ".join(changed))
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("not in the manifest: " + ", ".join(extra))
    if problems:
        raise IntegrityError(
            f"model package {directory} does not match its manifest; " + "; ".join(problems)
        )
    return manifest


def open_package(
    path: str | os.PathLike[str],
    *,
    trust: bool = False,
    manifest_sha256: str | None = None,
) -> Manifest:
    """Check a model package before loading it; what every loader calls first.

    Does not block beyond reading and hashing the files.

    Args:
        path: The package directory.
        trust: Load what cannot be checked: a bare directory with no manifest (detected instead,
            see :func:`detect`), or a code-executing package without ``manifest_sha256``. Files
            listed in a manifest are verified either way.
        manifest_sha256: The manifest's sha256 recorded when the package was registered.

    Returns:
        The manifest to load the model by.

    Raises:
        InvalidSpecError: The directory has no manifest and ``trust`` is False.
        IntegrityError: Verification failed (see :func:`verify`), or the package's loader runs
            code on load and there is neither ``manifest_sha256`` to check it against nor
            ``trust``.
        NotFoundError: The directory does not exist.
    """
    directory = _existing_dir(path)
    if not (directory / MANIFEST_NAME).is_file() and manifest_sha256 is None:
        if not trust:
            raise InvalidSpecError(
                f"no {MANIFEST_NAME} in {directory}; pass trust=True to load a bare directory you "
                "trust, or build a package with mlport.package.build"
            )
        return detect(directory)
    manifest = verify(directory, manifest_sha256=manifest_sha256)
    if manifest.executes_code_on_load and manifest_sha256 is None and not trust:
        raise IntegrityError(
            f"refusing to load {directory}: its loader ({manifest.loader}) would run code stored "
            "in the package, and its hashes cannot be checked against a stored value because no "
            "manifest_sha256 was given. Pass the manifest sha256 recorded when the package was "
            "registered, or trust=True if you trust this directory."
        )
    return manifest
