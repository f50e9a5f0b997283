"""Framework container images, from the image catalogue that ships with sagemaker-core.

``sagemaker.core.image_uris.retrieve`` reads bundled JSON and works offline; it is imported only
when a job names a framework (the import takes seconds), with SageMaker SDK telemetry opted out.
"""

from __future__ import annotations

import os
import re
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from mlport.errors import InvalidSpecError

__all__ = ["DEFAULT_FRAMEWORK", "TELEMETRY_OPT_OUT", "framework_image", "image_uris"]

DEFAULT_FRAMEWORK = "sklearn"
"""The container of jobs that name no framework, ``python`` or a framework SageMaker has no
container for (``lightgbm``): scikit-learn's has Python with numpy, pandas and scipy."""

_NATIVE = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "pytorch": "pytorch",
    "tensorflow": "tensorflow",
    "huggingface": "huggingface",
}
TELEMETRY_OPT_OUT = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)
"""A sagemaker-core user config (``SAGEMAKER_USER_CONFIG_OVERRIDE``) that turns telemetry off;
the SDK reads the opt-out from such a file only."""


def _opt_out() -> None:
    if os.environ.get("SAGEMAKER_USER_CONFIG_OVERRIDE"):
        return
    folder = Path(tempfile.gettempdir()) / f"mlport-sagemaker-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(TELEMETRY_OPT_OUT)
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(path)


@cache
def image_uris() -> Any:
    """``sagemaker.core.image_uris``, imported once, with telemetry opted out."""
    _opt_out()
    from sagemaker.core import image_uris as module

    return module


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _pick_version(framework: str, wanted: str | None, scope: str) -> str:
    config = image_uris().config_for_framework(framework)
    section = config.get(scope, config)
    versions = list(section.get("versions", {})) + list(section.get("version_aliases", {}))
    if not versions:
        raise InvalidSpecError(f"sagemaker has no {scope} image of {framework}")
    if wanted is None:
        return str(max(section.get("versions", {}) or versions, key=_version_key))
    matching = [v for v in versions if v == wanted or v.startswith(f"{wanted}-")]
    matching += [v for v in versions if v.startswith(f"{wanted}.") and v not in matching]
    if not matching:
        known = ", ".join(sorted(set(versions), key=_version_key))
        raise InvalidSpecError(
            f"environment.version {wanted!r}: SageMaker has no {framework} container of that "
            f"version; it has {known}"
        )
    return str(max(matching, key=_version_key))


def framework_image(
    framework: str | None, version: str | None, region: str, instance_type: str, scope: str
) -> tuple[str, list[str]]:
    """The container image for a framework, and the pip requirements it lacks.

    Args:
        scope: ``training`` or ``inference``.

    Raises:
        InvalidSpecError: a version SageMaker has no container for (the message lists those
            it has).
    """
    extra: list[str] = []
    native = _NATIVE.get(framework or "")
    if native is None:
        if framework == "lightgbm":
            extra.append(f"lightgbm=={version}.*" if version else "lightgbm")
        native, version = DEFAULT_FRAMEWORK, None
    chosen = _pick_version(native, version, scope)
    try:
        uri = image_uris().retrieve(
            native,
            region=region,
            version=chosen,
            instance_type=instance_type,
            image_scope=scope,
            py_version="py3" if native == "sklearn" else None,
        )
    except ValueError as exc:
        raise InvalidSpecError(f"environment: {exc}") from None
    return str(uri), extra
