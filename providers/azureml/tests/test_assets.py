"""Models, environments and code assets through MLClient; files land on Azurite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from mlport_azureml.emulator import AzureMLEmulator


def _model_dir(tmp_path: Path, content: bytes = b"weights") -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.bin").write_bytes(content)
    return folder


def test_model_from_local_files_is_uploaded_and_versioned(
    ml: Any, emulator: AzureMLEmulator, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import Model

    first = ml.models.create_or_update(Model(name="churn", path=_model_dir(tmp_path)))
    second = ml.models.create_or_update(Model(name="churn", path=_model_dir(tmp_path)))
    assert (first.version, second.version) == ("1", "2")
    assert first.path.startswith("azureml://")
    assert "/datastores/workspaceblobstore/paths/LocalUpload/" in first.path
    blobs = emulator.azurite.list_names(emulator.service.blob_container, "LocalUpload/")
    assert any(name.endswith("model/model.bin") for name in blobs)
    assert first.creation_context is not None
    assert {m.version for m in ml.models.list(name="churn")} == {"1", "2"}


def test_archived_model_version_leaves_the_active_list(ml: Any, tmp_path: Path) -> None:
    from azure.ai.ml.entities import Model

    ml.models.create_or_update(Model(name="churn", path=_model_dir(tmp_path), version="1"))
    ml.models.create_or_update(Model(name="churn", path=_model_dir(tmp_path), version="2"))
    ml.models.archive(name="churn", version="1")
    assert [m.version for m in ml.models.list(name="churn")] == ["2"]
    from azure.ai.ml.constants import ListViewType

    every = ml.models.list(name="churn", list_view_type=ListViewType.ALL)
    assert {m.version for m in every} == {"1", "2"}


def test_model_version_cannot_point_elsewhere_once_created(
    ml_no_retry: Any, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import Model

    ml_no_retry.models.create_or_update(
        Model(name="churn", version="1", path="azureml://datastores/workspaceblobstore/paths/a/")
    )
    with pytest.raises(ResourceExistsError, match="cannot be changed"):
        ml_no_retry.models.create_or_update(
            Model(
                name="churn", version="1", path="azureml://datastores/workspaceblobstore/paths/b/"
            )
        )


def test_missing_model_is_resource_not_found(ml: Any) -> None:
    with pytest.raises(ResourceNotFoundError):
        ml.models.get(name="nothing", version="1")


def test_environment_versions(ml: Any) -> None:
    from azure.ai.ml.entities import Environment

    created = ml.environments.create_or_update(
        Environment(name="sklearn", version="3", image="mcr.microsoft.com/azureml/base:latest")
    )
    assert created.version == "3"
    assert ml.environments.get("sklearn", version="3").image.endswith("base:latest")


def test_code_upload_goes_through_a_sas_uri_and_is_reused_by_hash(
    ml: Any, emulator: AzureMLEmulator, tmp_path: Path
) -> None:
    from azure.ai.ml.entities._assets import Code

    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text("print('hi')\n")
    first = ml._code.create_or_update(Code(name="trainer", version="1", path=source))
    blobs = emulator.azurite.list_names(emulator.service.blob_container, "")
    assert any(name.endswith("src/main.py") for name in blobs)
    again = ml._code.create_or_update(Code(name="trainer", version="2", path=source))
    assert (first.name, first.version) == ("trainer", "1")
    assert again.version == "1"  # same content hash: the existing version is returned


def test_bad_asset_name_is_a_user_error(ml_no_retry: Any) -> None:
    from azure.ai.ml.entities import Environment

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.environments.create_or_update(
            Environment(name="-bad", version="1", image="python:3.11")
        )
    assert caught.value.status_code == 400
    assert caught.value.error.code == "UserError"
