"""The training-script contract: what a ``train.py`` sees and how it reports back.

The same unmodified script runs on every provider. Each provider's bootstrap maps its native
conventions (``SM_CHANNEL_*`` and ``/opt/ml/model`` on SageMaker, ``AIP_MODEL_DIR`` on Vertex AI,
Azure ML inputs and outputs) onto these environment variables before the script starts:

===========================  ====================================================================
``MLPORT_INPUT_<NAME>``      local directory of each input (see :func:`input_env_name`)
``MLPORT_MODEL_DIR``         where the model package goes (see :func:`save_model`)
``MLPORT_OUTPUT_DIR``        other outputs worth keeping (plots, reports)
``MLPORT_CHECKPOINT_DIR``    checkpoints, synced so a restarted job can resume
``MLPORT_HYPERPARAMETERS``   a JSON object; also passed as ``--key=value`` arguments
``MLPORT_HOSTS``             the hosts of a multi-node job (JSON list or comma-separated)
``MLPORT_RANK``              this host's index in ``MLPORT_HOSTS``
``MLPORT_WORLD_SIZE``        the number of hosts
===========================  ====================================================================

Metrics are reported with :func:`log_metric`, which prints one ``MLPORT_METRIC {...}`` line that
providers scrape from the logs (SageMaker through :func:`metric_definition_regex`, the others with
:func:`parse_metric_line`).

This module uses the standard library only and imports nothing from the rest of mlport: providers
copy this single file into the code bundle, so ``from mlport import runtime`` works inside a
container where mlport is not installed. Optional serialisers (skops, joblib) are imported inside
:func:`save_model` only. For the same reason it avoids what newer Pythons added after 3.9 (such
as ``datetime.UTC`` or ``X | Y`` in ``isinstance``): framework containers often run an older
interpreter than the one mlport itself needs.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import importlib.metadata
import json
import math
import operator
import os
import pathlib
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

__all__ = [
    "CHECKPOINT_DIR_ENV",
    "EXECUTES_CODE_ON_LOAD",
    "HOSTS_ENV",
    "HYPERPARAMETERS_ENV",
    "INPUT_ENV_PREFIX",
    "LOADERS",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA_VERSION",
    "METRIC_PREFIX",
    "METRIC_REGEX",
    "MODEL_DIR_ENV",
    "OUTPUT_DIR_ENV",
    "RANK_ENV",
    "WORLD_SIZE_ENV",
    "ContractError",
    "Metric",
    "checkpoint_dir",
    "hosts",
    "hyperparameter_args",
    "hyperparameters",
    "input_dir",
    "input_env_name",
    "log_metric",
    "metric_definition_regex",
    "model_dir",
    "output_dir",
    "parse_hyperparameter_args",
    "parse_metric_line",
    "rank",
    "save_model",
    "sha256_dir",
    "sha256_file",
    "world_size",
    "write_manifest",
]

INPUT_ENV_PREFIX = "MLPORT_INPUT_"
MODEL_DIR_ENV = "MLPORT_MODEL_DIR"
OUTPUT_DIR_ENV = "MLPORT_OUTPUT_DIR"
CHECKPOINT_DIR_ENV = "MLPORT_CHECKPOINT_DIR"
HYPERPARAMETERS_ENV = "MLPORT_HYPERPARAMETERS"
HOSTS_ENV = "MLPORT_HOSTS"
RANK_ENV = "MLPORT_RANK"
WORLD_SIZE_ENV = "MLPORT_WORLD_SIZE"

METRIC_PREFIX = "MLPORT_METRIC"

METRIC_REGEX = METRIC_PREFIX + r" (\{.*\})"
"""Matches a metric line anywhere in a log line; group 1 is the JSON object.

Log systems often put a timestamp or stream name in front of what the script printed, so the
pattern is meant for ``re.search``, not ``re.match``. To pull one metric's value out (as a
SageMaker ``MetricDefinitions`` entry needs), use :func:`metric_definition_regex`.
"""

# A JSON number as json.dumps writes a finite float: -0.5, 3.0, 1e-05, 1.5e+20.
_NUMBER_PATTERN = r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"

_METRIC_RE = re.compile(METRIC_REGEX)

MANIFEST_NAME = "mlport-model.json"
MANIFEST_SCHEMA_VERSION = 1

EXECUTES_CODE_ON_LOAD: Mapping[str, bool] = {
    "joblib": True,
    "skops": False,
    "onnx": False,
    # MLflow models are usually pickles behind a pyfunc wrapper; mlport.package.detect relaxes
    # this for the ONNX-only flavour, the one case it can tell is safe.
    "mlflow": True,
    "xgboost-json": False,
    "lightgbm-txt": False,
    # A custom loader is arbitrary code by definition.
    "custom": True,
}
"""Whether loading each kind of model file runs code stored in the file (as unpickling does)."""

LOADERS: tuple[str, ...] = tuple(EXECUTES_CODE_ON_LOAD)
"""The loaders a model package may name in its manifest."""

_CHUNK_SIZE = 1024 * 1024

# The framework a model belongs to, by the top-level package of a class in its MRO.
_FRAMEWORK_BY_MODULE: Mapping[str, str] = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}

# Where a framework's version is found when its module has no __version__ loaded.
_DISTRIBUTION_BY_FRAMEWORK: Mapping[str, str] = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}


class ContractError(RuntimeError):
    """The environment does not hold what the training-script contract promises.

    Raised when a variable the script asked for is missing or malformed, which almost always means
    the script was started by hand rather than by an mlport provider.
    """


class Metric(TypedDict):
    """One metric as :func:`parse_metric_line` returns it."""

    name: str
    value: float
    step: int | None


# --- metrics -------------------------------------------------------------------------------------


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Report a metric by printing one ``MLPORT_METRIC {...}`` line to stdout.

    The line is flushed at once so that providers scraping the logs see it while the job runs.

    Args:
        name: The metric name, e.g. ``"val_loss"``.
        value: A finite number.
        step: The epoch or iteration this value belongs to, if any; non-negative.

    Raises:
        TypeError: ``name`` is not a string, ``value`` is not a number or ``step`` not an integer.
        ValueError: ``name`` is empty, ``value`` is NaN or infinite, or ``step`` is negative.
    """
    if not isinstance(name, str):
        raise TypeError(f"log_metric: name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("log_metric: name must not be empty")
    # Typed as object so the check below stands for callers that ignore the annotation.
    given: object = value
    not_a_number = f"log_metric: value must be a number, got {type(given).__name__}"
    # float() would accept "1.5"; a string here is a bug in the script, not a metric.
    if isinstance(given, (str, bytes)):
        raise TypeError(not_a_number)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(not_a_number) from None
    if not math.isfinite(number):
        raise ValueError(f"log_metric: value must be finite, got {number!r} for metric {name!r}")
    checked_step: int | None = None
    if step is not None:
        try:
            checked_step = operator.index(step)
        except TypeError:
            raise TypeError(
                f"log_metric: step must be an integer or None, got {type(step).__name__}"
            ) from None
        if checked_step < 0:
            raise ValueError(f"log_metric: step must not be negative, got {checked_step}")
    record = {"name": name, "value": number, "step": checked_step}
    # One write per line keeps lines whole when threads log at the same time.
    sys.stdout.write(f"{METRIC_PREFIX} {json.dumps(record)}\n")
    sys.stdout.flush()


def parse_metric_line(line: str) -> Metric | None:
    """Read back a line printed by :func:`log_metric`.

    Anything a log system put in front of the metric (a timestamp, a stream name) is ignored.

    Args:
        line: One line of a job's log.

    Returns:
        The metric as ``{"name": ..., "value": ..., "step": ...}``, or None when the line is not a
        well-formed metric line.
    """
    found = _METRIC_RE.search(line)
    if found is None:
        return None
    try:
        record = json.loads(found.group(1))
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    name = record.get("name")
    value = record.get("value")
    step = record.get("step")
    if not isinstance(name, str) or not name:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        return None
    return {"name": name, "value": float(value), "step": step}


def metric_definition_regex(name: str) -> str:
    """Build a regex whose only capture group is the value of one named metric.

    This is what a SageMaker ``MetricDefinitions`` entry needs:
    ``{"Name": "val_loss", "Regex": metric_definition_regex("val_loss")}``. It relies on
    :func:`log_metric` writing ``name`` before ``value``, which it always does.

    Args:
        name: The metric name as passed to :func:`log_metric`.

    Returns:
        A regex matching that metric's lines only (``loss`` does not match ``val_loss``).

    Raises:
        ValueError: ``name`` is empty.
    """
    if not name:
        raise ValueError("metric_definition_regex: name must not be empty")
    head = f'{METRIC_PREFIX} {{"name": {json.dumps(name)}, "value": '
    return re.escape(head) + _NUMBER_PATTERN


# --- directories ---------------------------------------------------------------------------------


def input_env_name(name: str) -> str:
    """Return the environment variable that holds the directory of input ``name``.

    Args:
        name: The input's name as given in ``TrainingJob(inputs={...})``.

    Returns:
        ``MLPORT_INPUT_`` followed by ``name`` upper-cased, every character other than an ASCII
        letter or digit replaced with ``_`` (``"train-data"`` -> ``MLPORT_INPUT_TRAIN_DATA``).

    Raises:
        ValueError: ``name`` is empty.
    """
    if not name:
        raise ValueError("input_env_name: name must not be empty")
    return INPUT_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _not_under_provider(variable: str) -> str:
    return (
        f"{variable} is not set: this script is not running under an mlport provider. "
        f"To run it by hand, set {variable} yourself."
    )


def _directory_from_env(variable: str) -> pathlib.Path:
    value = os.environ.get(variable)
    # An empty value would become Path(""), the current directory, which is never what was meant.
    if not value:
        raise ContractError(_not_under_provider(variable))
    return pathlib.Path(value)


def input_dir(name: str) -> pathlib.Path:
    """Return the local directory holding input ``name``.

    A file input arrives as ``<dir>/<basename>``.

    Args:
        name: The input's name as given in ``TrainingJob(inputs={...})``.

    Raises:
        ContractError: The input's variable is not set; the message lists the inputs that are.
    """
    variable = input_env_name(name)
    value = os.environ.get(variable)
    if not value:
        present = sorted(key for key, val in os.environ.items() if key.startswith(INPUT_ENV_PREFIX))
        listed = ", ".join(present) if present else f"none (no {INPUT_ENV_PREFIX}* variable)"
        raise ContractError(
            f"{_not_under_provider(variable)} Inputs that are set: {listed}.",
        )
    return pathlib.Path(value)


def model_dir() -> pathlib.Path:
    """Return the directory the model package goes into (``MLPORT_MODEL_DIR``).

    Raises:
        ContractError: ``MLPORT_MODEL_DIR`` is not set.
    """
    return _directory_from_env(MODEL_DIR_ENV)


def output_dir() -> pathlib.Path:
    """Return the directory for other outputs worth keeping (``MLPORT_OUTPUT_DIR``).

    Raises:
        ContractError: ``MLPORT_OUTPUT_DIR`` is not set.
    """
    return _directory_from_env(OUTPUT_DIR_ENV)


def checkpoint_dir() -> pathlib.Path:
    """Return the directory for checkpoints (``MLPORT_CHECKPOINT_DIR``).

    Raises:
        ContractError: ``MLPORT_CHECKPOINT_DIR`` is not set.
    """
    return _directory_from_env(CHECKPOINT_DIR_ENV)


# --- hyperparameters -----------------------------------------------------------------------------


def hyperparameters() -> dict[str, Any]:
    """Return the job's hyperparameters, parsed from ``MLPORT_HYPERPARAMETERS``.

    Returns:
        The JSON object, or ``{}`` when the variable is not set.

    Raises:
        ContractError: The variable holds something other than a JSON object.
    """
    raw = os.environ.get(HYPERPARAMETERS_ENV)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ContractError(f"{HYPERPARAMETERS_ENV} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ContractError(
            f"{HYPERPARAMETERS_ENV} must be a JSON object, got {type(parsed).__name__}"
        )
    return parsed


def hyperparameter_args(hps: Mapping[str, object]) -> list[str]:
    """Turn hyperparameters into the ``--key=value`` arguments a script is started with.

    Strings are passed raw; everything else as JSON, so ``True`` -> ``--flag=true``,
    ``200`` -> ``--n=200`` and ``[1, 2]`` -> ``--x=[1, 2]``.

    Args:
        hps: Hyperparameter names and values.

    Returns:
        One argument per hyperparameter, in the mapping's order.

    Raises:
        ValueError: A key is empty, starts with ``-`` or contains ``=``.
        TypeError: A value cannot be written as JSON.
    """
    args: list[str] = []
    for key, value in hps.items():
        if not key or key.startswith("-") or "=" in key:
            raise ValueError(
                f"hyperparameter name {key!r} cannot be passed as --key=value: it must be "
                "non-empty, not start with '-' and not contain '='"
            )
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value)
            except TypeError:
                raise TypeError(
                    f"hyperparameter {key!r}: {type(value).__name__} cannot be written as JSON"
                ) from None
        args.append(f"--{key}={text}")
    return args


def _decode_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_hyperparameter_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Read hyperparameters back from command-line arguments.

    The inverse of :func:`hyperparameter_args`, usable in place of argparse. Each value is decoded
    as JSON where it parses and kept as a string otherwise, so a string hyperparameter that looks
    like JSON (``"200"``, ``"true"``) comes back decoded; read :func:`hyperparameters` when the
    exact type matters. ``--key value`` is accepted as well as ``--key=value``, and a ``--flag``
    with no value is ``True``. A repeated key keeps its last value.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns:
        Hyperparameter names and values.

    Raises:
        ValueError: An argument is not of the form ``--key=value`` / ``--key value``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    parsed: dict[str, Any] = {}
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"unexpected argument {arg!r}: expected --key=value or --key value")
        key, has_value, text = arg[2:].partition("=")
        if not key:
            raise ValueError(f"unexpected argument {arg!r}: the key is empty")
        if has_value:
            parsed[key] = _decode_argument(text)
        elif position < len(args) and not args[position].startswith("--"):
            parsed[key] = _decode_argument(args[position])
            position += 1
        else:
            parsed[key] = True
    return parsed


# --- distributed jobs ----------------------------------------------------------------------------


def hosts() -> list[str]:
    """Return the hosts of a multi-node job, from ``MLPORT_HOSTS``.

    Returns:
        The host names, or ``[]`` when the variable is not set (a single-node job).

    Raises:
        ContractError: The variable is a JSON value other than a list of strings.
    """
    raw = os.environ.get(HOSTS_ENV, "").strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ContractError(f"{HOSTS_ENV} is not a valid JSON list: {exc}") from None
        if not isinstance(parsed, list) or not all(isinstance(host, str) for host in parsed):
            raise ContractError(f"{HOSTS_ENV} must be a JSON list of strings, got {raw!r}")
        return [host for host in parsed if host]
    return [host.strip() for host in raw.split(",") if host.strip()]


def _int_from_env(variable: str, default: int, minimum: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise ContractError(f"{variable} must be an integer, got {raw!r}") from None
    if number < minimum:
        raise ContractError(f"{variable} must be at least {minimum}, got {number}")
    return number


def rank() -> int:
    """Return this host's index among the job's hosts, from ``MLPORT_RANK`` (default 0).

    Raises:
        ContractError: The variable is not a non-negative integer.
    """
    return _int_from_env(RANK_ENV, 0, 0)


def world_size() -> int:
    """Return the number of hosts in the job, from ``MLPORT_WORLD_SIZE`` (default 1).

    Raises:
        ContractError: The variable is not a positive integer.
    """
    return _int_from_env(WORLD_SIZE_ENV, 1, 1)


# --- hashing -------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks so memory stays constant.

    Raises:
        OSError: The file cannot be read.
    """
    digest = hashlib.sha256()
    with pathlib.Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_dir(path: str | os.PathLike[str]) -> dict[str, str]:
    """Hash every file under a directory, except a model package's own manifest.

    Args:
        path: The directory.

    Returns:
        Relative POSIX path -> hex sha256, sorted by path. ``mlport-model.json`` at the top level is
        left out; one in a subdirectory is an ordinary file.

    Raises:
        NotADirectoryError: ``path`` is not a directory.
        ValueError: The tree holds a symlink to a directory, whose files a loader could read but
            the hashes would not cover.
    """
    root = pathlib.Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    hashes: dict[str, str] = {}
    for current, dirnames, filenames in os.walk(root):
        here = pathlib.Path(current)
        for dirname in dirnames:
            if (here / dirname).is_symlink():
                linked = (here / dirname).relative_to(root).as_posix()
                raise ValueError(
                    f"{root}: {linked} is a symlink to a directory; copy the files in instead"
                )
        for filename in filenames:
            relative = (here / filename).relative_to(root).as_posix()
            if relative == MANIFEST_NAME:
                continue
            hashes[relative] = sha256_file(here / filename)
    return dict(sorted(hashes.items()))


# --- model packages ------------------------------------------------------------------------------


def _check_signature(signature: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(signature, Mapping):
        raise TypeError(f"signature must be a mapping, got {type(signature).__name__}")
    inputs = signature.get("inputs")
    if not isinstance(inputs, (list, tuple)):
        raise ValueError('signature must have "inputs": a list of {"name": ..., "dtype": ...}')
    for index, feature in enumerate(inputs):
        if not isinstance(feature, Mapping):
            raise ValueError(f"signature inputs[{index}] must be a mapping")
        if not isinstance(feature.get("dtype"), str):
            raise ValueError(f'signature inputs[{index}] needs "dtype" as a string')
        name = feature.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f'signature inputs[{index}] "name" must be a string or null')
    return json.loads(json.dumps(dict(signature)))  # type: ignore[no-any-return]


def _utc_now() -> str:
    # datetime.UTC is 3.11+; this file also runs in containers with an older Python.
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_manifest(
    directory: str | os.PathLike[str],
    *,
    framework: str | None,
    framework_version: str | None,
    loader: str,
    executes_code_on_load: bool,
    signature: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """Hash every file in ``directory`` and write its ``mlport-model.json``.

    The manifest is written to a temporary file and moved into place, so a reader never sees half
    a manifest. Files are hashed before the manifest is written; write the model files first.

    Args:
        directory: The package directory, holding the model files.
        framework: The framework the model belongs to (``"sklearn"``), if known.
        framework_version: That framework's version, if known.
        loader: How to load the model; one of :data:`LOADERS`.
        executes_code_on_load: Whether loading runs code stored in the files (pickle, joblib).
        signature: ``{"inputs": [{"name": str | None, "dtype": str}, ...], ...}``, if known.
        lineage: Where the model came from (job, data, code), as JSON-compatible values.
        created_at: ISO-8601 UTC time to record; now when None.

    Returns:
        The manifest as written.

    Raises:
        ValueError: ``loader`` is unknown, the signature is malformed, or the tree holds a
            symlinked directory.
        TypeError: ``signature`` or ``lineage`` holds values that cannot be written as JSON.
        NotADirectoryError: ``directory`` is not a directory.
    """
    if loader not in EXECUTES_CODE_ON_LOAD:
        raise ValueError(f"unknown loader {loader!r}; expected one of {', '.join(LOADERS)}")
    root = pathlib.Path(directory)
    manifest: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "framework": framework,
        "framework_version": framework_version,
        "loader": loader,
        "executes_code_on_load": bool(executes_code_on_load),
        "signature": None if signature is None else _check_signature(signature),
        "files": sha256_dir(root),
        "lineage": dict(lineage or {}),
        "created_at": created_at or _utc_now(),
    }
    # Serialise before touching the disk so a bad lineage value leaves no temporary file behind.
    text = json.dumps(manifest, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=root, prefix=f".{MANIFEST_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file owner-only; a serving container may run as another user.
        pathlib.Path(temporary).chmod(0o644)
        pathlib.Path(temporary).replace(root / MANIFEST_NAME)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return manifest


def _detect_framework(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in _FRAMEWORK_BY_MODULE:
            return _FRAMEWORK_BY_MODULE[top]
    return None


def _framework_version(framework: str) -> str | None:
    module = sys.modules.get(framework)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    distribution = _DISTRIBUTION_BY_FRAMEWORK.get(framework)
    if distribution is None:
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def save_model(
    obj: object,
    framework: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    signature: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Write a trained model as a model package.

    The model is serialised with skops when it is installed (``model.skops``; loading it runs no
    stored code) and with joblib otherwise (``model.joblib``; loading it unpickles, which runs
    code, and the manifest says so). Then ``mlport-model.json`` is written with the sha256 of
    every file in the directory.

    Args:
        obj: The trained model.
        framework: ``"sklearn"``, ``"xgboost"``, ``"lightgbm"``, ...; detected from the model's
            class when None.
        path: The directory to write to; ``MLPORT_MODEL_DIR`` when None. Created if missing.
        signature: The model's inputs, ``{"inputs": [{"name": ..., "dtype": ...}, ...]}``.

    Returns:
        The package directory.

    Raises:
        ValueError: The framework cannot be detected and was not given.
        ContractError: ``path`` is None and ``MLPORT_MODEL_DIR`` is not set.
        ImportError: Neither skops nor joblib is installed.
    """
    if framework is None:
        framework = _detect_framework(obj)
        if framework is None:
            raise ValueError(
                f"cannot tell which framework a {type(obj).__module__}.{type(obj).__qualname__} "
                f"belongs to (known: {', '.join(_FRAMEWORK_BY_MODULE)}); pass framework=, e.g. "
                "save_model(model, framework='sklearn')"
            )
    elif not framework:
        raise ValueError("save_model: framework must not be empty")
    directory = model_dir() if path is None else pathlib.Path(path)
    directory.mkdir(parents=True, exist_ok=True)

    skops_io = _optional_module("skops.io")
    if skops_io is not None:
        skops_io.dump(obj, directory / "model.skops")
        loader = "skops"
    else:
        joblib = _optional_module("joblib")
        if joblib is None:
            raise ImportError(
                "save_model needs skops (preferred: loading it runs no stored code) or joblib; "
                "install one, e.g. pip install skops"
            )
        joblib.dump(obj, directory / "model.joblib")
        loader = "joblib"

    write_manifest(
        directory,
        framework=framework,
        framework_version=_framework_version(framework),
        loader=loader,
        executes_code_on_load=EXECUTES_CODE_ON_LOAD[loader],
        signature=signature,
    )
    return directory
