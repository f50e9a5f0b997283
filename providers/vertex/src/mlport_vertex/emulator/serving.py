"""Serving a model version the way its container would: the portable model server, locally.

What runs (https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers): a model
whose ``container_spec.image_uri`` is a prebuilt scikit-learn or XGBoost prediction container, or
the mlport serving image, has its ``artifact_uri`` downloaded from the storage emulator and served
by ``python -m mlport.serving``. The prebuilt containers look for ``model.joblib``, ``model.pkl``
(scikit-learn, XGBoost) or ``model.bst`` (XGBoost); the mlport image for a model package. Other
images cannot run here: deploying them fails with a message that says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.cloud.aiplatform_v1.types import model as model_types

from mlport_vertex.emulator._rpc import ApiError
from mlport_vertex.emulator.state import EmulatorState
from mlport_vertex.emulator.validation import is_mlport_serving_image, prebuilt_prediction_framework
from mlport_vertex.emulator.workers import ModelServer, ModelServerError

__all__ = ["ModelRuntime", "prebuilt_files_problem"]


def prebuilt_files_problem(names: set[str], artifact_uri: str, image: str) -> str | None:
    """Why a prebuilt prediction container would refuse the files ``names``, or None.

    The scikit-learn container loads exactly one of ``model.joblib`` and ``model.pkl``; the
    XGBoost one exactly one of ``model.bst``, ``model.joblib`` and ``model.pkl``.
    """
    framework = prebuilt_prediction_framework(image)
    if framework not in ("sklearn", "xgboost"):
        return None
    allowed = ("model.pkl", "model.joblib") + (("model.bst",) if framework == "xgboost" else ())
    if len([n for n in allowed if n in names]) == 1:
        return None
    return (
        f"Model directory {artifact_uri} is expected to contain exactly one of: "
        f"[{', '.join(allowed)}]; it has {sorted(names)}."
    )


class ModelRuntime:
    """Downloads model artifacts and starts model servers for deployments and batch jobs.

    Args:
        state: The emulator state.
        serving_image: The mlport serving image URI recognised besides any ``*/mlport-serving``.
    """

    def __init__(self, state: EmulatorState, serving_image: str | None) -> None:
        self.state = state
        self.serving_image = serving_image

    def check_servable(self, model: model_types.Model) -> None:
        """Refuse a model the emulator cannot serve.

        Raises:
            ApiError: FAILED_PRECONDITION naming the image or the missing artifacts.
        """
        image = model.container_spec.image_uri
        framework = prebuilt_prediction_framework(image)
        if framework is None and not is_mlport_serving_image(image, self.serving_image):
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The emulator cannot run the serving container {image!r}: only Vertex AI's "
                "prebuilt scikit-learn and XGBoost prediction containers and the mlport serving "
                "image (a repository named mlport-serving) are served locally.",
            )
        if framework not in (None, "sklearn", "xgboost"):
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The emulator does not serve {framework} prebuilt containers ({image}); "
                "scikit-learn and XGBoost ones are served.",
            )
        if not model.artifact_uri:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Model {model.name}@{model.version_id} has no artifact_uri to serve.",
            )

    def artifacts(self, model: model_types.Model) -> Path:
        """Download the version's artifacts once; returns the local model directory.

        Raises:
            ApiError: FAILED_PRECONDITION when the directory has none of the files the
                container loads.
        """
        self.check_servable(model)
        target = (
            self.state.work_dir / "models" / f"{model.name.rsplit('/', 1)[-1]}-v{model.version_id}"
        )
        if not target.exists():
            staging = target.with_name(target.name + ".part")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                self.state.gcs.download(model.artifact_uri, staging)
            except Exception as exc:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Cannot read the artifacts of {model.name}@{model.version_id} at "
                    f"{model.artifact_uri}: {exc}",
                ) from exc
            staging.rename(target)
        names = {p.name for p in target.iterdir() if p.is_file()}
        problem = prebuilt_files_problem(names, model.artifact_uri, model.container_spec.image_uri)
        if problem is not None:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, problem)
        framework = prebuilt_prediction_framework(model.container_spec.image_uri)
        if framework == "xgboost" and "model.bst" in names and "model.ubj" not in names:
            # XGBoost writes model.bst as UBJSON since 2.1; the server reads it as model.ubj.
            shutil.copyfile(target / "model.bst", target / "model.ubj")
        return target

    def start(self, key: str, model: model_types.Model) -> ModelServer:
        """Start a model server for ``model`` under the worker key ``key``; blocks until ready.

        Raises:
            ApiError: The model cannot be served (FAILED_PRECONDITION) or its server failed to
                start (INTERNAL, quoting its error output).
        """
        model_dir = self.artifacts(model)
        try:
            return self.state.workers.start_model_server(
                key, model_dir, self.state.work_dir / "servers" / key.replace("/", "-")
            )
        except ModelServerError as exc:
            raise ApiError(
                grpc.StatusCode.INTERNAL,
                f"Model server for {model.name}@{model.version_id} failed to start: {exc}",
            ) from exc
