"""ModelService through the GAPIC v1 client: upload, versions, aliases, updates, deletes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import VertexEmulator

from .helpers import SERVE_IMAGE, upload_iris_artifacts

pytestmark = pytest.mark.usefixtures("emu")


@pytest.fixture
def models(client_options: dict[str, Any]) -> Any:
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(**client_options)


@pytest.fixture
def artifacts(emu: VertexEmulator, tmp_path: Path) -> str:
    return upload_iris_artifacts(emu, tmp_path)


def _model(artifacts: str, **extra: Any) -> dict[str, Any]:
    return {
        "display_name": "iris",
        "artifact_uri": artifacts,
        "container_spec": {"image_uri": SERVE_IMAGE},
        **extra,
    }


def test_upload_is_a_long_running_operation_with_versions(
    models: Any, parent: str, artifacts: str, emu: VertexEmulator
) -> None:
    operation = models.upload_model(parent=parent, model=_model(artifacts))
    first = operation.result(timeout=10)
    assert first.model_version_id == "1"
    assert first.model.startswith(f"projects/{emu.project_number}/locations/us-central1/models/")
    assert operation.metadata is not None

    second = models.upload_model(
        request={
            "parent": parent,
            "model": _model(artifacts, version_aliases=["challenger"]),
            "parent_model": first.model,
        }
    ).result(timeout=10)
    assert second.model == first.model and second.model_version_id == "2"

    default = models.get_model(name=first.model)
    assert default.version_id == "1" and list(default.version_aliases) == ["default"]
    assert models.get_model(name=f"{first.model}@2").version_aliases == ["challenger"]
    assert models.get_model(name=f"{first.model}@challenger").version_id == "2"
    versions = models.list_model_versions(name=first.model)
    assert [m.version_id for m in versions] == ["1", "2"]
    assert [m.name for m in models.list_models(parent=parent)] == [first.model]

    moved = models.merge_version_aliases(
        name=f"{first.model}@2", version_aliases=["default", "-challenger", "prod"]
    )
    assert sorted(moved.version_aliases) == ["default", "prod"]
    assert list(models.get_model(name=f"{first.model}@1").version_aliases) == []
    assert models.get_model(name=first.model).version_id == "2"


def test_model_errors(models: Any, parent: str, artifacts: str) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="display name"):
        models.upload_model(parent=parent, model=_model(artifacts, display_name=""))
    with pytest.raises(exceptions.InvalidArgument, match="image_uri"):
        models.upload_model(parent=parent, model={"display_name": "x", "artifact_uri": artifacts})
    with pytest.raises(exceptions.InvalidArgument, match="No files"):
        models.upload_model(parent=parent, model=_model("gs://mlport-local-vertex-staging/none/"))
    with pytest.raises(exceptions.NotFound):
        models.upload_model(
            request={
                "parent": parent,
                "model": _model(artifacts),
                "parent_model": f"{parent}/models/404",
            }
        )
    with pytest.raises(exceptions.NotFound):
        models.get_model(name=f"{parent}/models/404")
    created = models.upload_model(
        request={"parent": parent, "model": _model(artifacts), "model_id": "iris"}
    ).result()
    assert created.model.endswith("/models/iris")
    with pytest.raises(exceptions.AlreadyExists):
        models.upload_model(
            request={"parent": parent, "model": _model(artifacts), "model_id": "iris"}
        )
    with pytest.raises(exceptions.NotFound):
        models.get_model(name=f"{created.model}@7")
    with pytest.raises(exceptions.InvalidArgument, match="default alias cannot be removed"):
        models.merge_version_aliases(name=f"{created.model}@1", version_aliases=["-default"])
    with pytest.raises(exceptions.InvalidArgument, match="Alias"):
        models.merge_version_aliases(name=f"{created.model}@1", version_aliases=["7"])
    with pytest.raises(exceptions.FailedPrecondition, match="default version"):
        models.delete_model_version(name=f"{created.model}@1")


def test_update_and_delete(models: Any, parent: str, artifacts: str) -> None:
    from google.protobuf import field_mask_pb2

    created = models.upload_model(parent=parent, model=_model(artifacts)).result()
    models.upload_model(
        request={"parent": parent, "model": _model(artifacts), "parent_model": created.model}
    ).result()
    updated = models.update_model(
        model={"name": created.model, "display_name": "renamed", "labels": {"stage": "dev"}},
        update_mask=field_mask_pb2.FieldMask(paths=["display_name", "labels"]),
    )
    assert updated.display_name == "renamed" and updated.labels["stage"] == "dev"
    assert updated.update_time >= updated.create_time
    with pytest.raises(exceptions.InvalidArgument):
        models.update_model(model={"name": created.model}, update_mask=None)

    models.delete_model_version(name=f"{created.model}@2").result()
    assert [m.version_id for m in models.list_model_versions(name=created.model)] == ["1"]
    models.delete_model(name=created.model).result()
    with pytest.raises(exceptions.NotFound):
        models.get_model(name=created.model)
    assert list(models.list_models(parent=parent)) == []


def test_prebuilt_container_needs_exactly_one_model_file(
    models: Any, parent: str, emu: VertexEmulator
) -> None:
    from google.cloud import storage

    bucket = storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )
    bucket.blob("two/model.joblib").upload_from_string(b"x")
    bucket.blob("two/model.pkl").upload_from_string(b"x")
    operation = models.upload_model(parent=parent, model=_model(f"{emu.staging_bucket}/two/"))
    with pytest.raises(exceptions.InvalidArgument, match="exactly one of"):
        operation.result(timeout=10)
    assert list(models.list_models(parent=parent)) == []
