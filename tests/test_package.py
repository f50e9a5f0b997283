"""Model packages: detection, building, verification and what loaders are allowed to open."""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlport import package, runtime
from mlport.errors import IntegrityError, InvalidSpecError, NotFoundError
from mlport.package import FeatureSpec, Manifest, Signature

MLMODEL_SKLEARN = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
mlflow_version: 2.14.1
model_size_bytes: 1024
model_uuid: 0f3a5c
utc_time_created: '2024-06-01 12:00:00.000000'
"""

MLMODEL_ONNX = """\
artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.16.1
    providers:
    - CUDAExecutionProvider
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 2.14.1
"""

MLMODEL_CUSTOM_PYFUNC = """\
artifact_path: model
flavors:
  python_function:
    cloudpickle_version: 3.0.0
    code: null
    env:
      conda: conda.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
mlflow_version: 2.14.1
"""

XGBOOST_JSON = '{"learner":{"attributes":{},"feature_names":[],"gradient_booster":{}},'
XGBOOST_JSON += '"version":[2,0,3]}'

LIGHTGBM_TXT = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"


def _write(directory: Path, files: dict[str, bytes | str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    return directory


@pytest.fixture
def onnx_dir(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "model", {"model.onnx": b"onnx graph", "assets/labels.txt": "cat\ndog\n"}
    )


@pytest.fixture
def joblib_package(tmp_path: Path) -> Path:
    directory = _write(tmp_path / "pickled", {"model.joblib": b"\x80\x04pickled"})
    package.build(directory)
    return directory


def _rewrite_manifest(directory: Path, **changes: Any) -> None:
    manifest_file = directory / "mlport-model.json"
    data = json.loads(manifest_file.read_text())
    data.update(changes)
    manifest_file.write_text(json.dumps(data))


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "loader", "framework", "framework_version", "executes"),
    [
        ({"model.joblib": b"\x80\x04"}, "joblib", None, None, True),
        ({"model.pkl": b"\x80\x04"}, "joblib", None, None, True),
        ({"model.skops": b"PK\x03\x04"}, "skops", "sklearn", None, False),
        ({"model.onnx": b"\x08\x07"}, "onnx", "onnx", None, False),
        ({"model.json": XGBOOST_JSON}, "xgboost-json", "xgboost", "2.0.3", False),
        ({"model.ubj": b"{L\x00\x00\x00\x07learner{"}, "xgboost-json", "xgboost", None, False),
        ({"model.txt": LIGHTGBM_TXT}, "lightgbm-txt", "lightgbm", None, False),
        ({"MLmodel": MLMODEL_SKLEARN, "model.pkl": b"\x80"}, "mlflow", "sklearn", "1.5.0", True),
        ({"MLmodel": MLMODEL_ONNX, "model.onnx": b"\x08"}, "mlflow", "onnx", "1.16.1", False),
        ({"MLmodel": MLMODEL_CUSTOM_PYFUNC}, "mlflow", None, None, True),
        ({"model.skops": b"PK", "model.joblib": b"\x80"}, "skops", "sklearn", None, False),
    ],
)
def test_detect_recognises_each_format(
    tmp_path: Path,
    files: dict[str, bytes | str],
    loader: str,
    framework: str | None,
    framework_version: str | None,
    executes: bool,
) -> None:
    directory = _write(tmp_path / "model", files)

    manifest = package.detect(directory)

    assert manifest.loader == loader
    assert manifest.framework == framework
    assert manifest.framework_version == framework_version
    assert manifest.executes_code_on_load is executes
    assert set(manifest.files) == set(files)
    assert not (directory / "mlport-model.json").exists()


def test_an_mlmodel_the_line_parser_cannot_follow_counts_as_executing_code(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("yaml") is not None:
        pytest.skip("PyYAML reads flow style; the line parser is used only without it")
    directory = _write(tmp_path / "m", {"MLmodel": "flavors: {onnx: {onnx_version: 1.16}}\n"})
    assert package.detect(directory).executes_code_on_load is True


@pytest.mark.parametrize(
    ("files", "listed"),
    [
        ({"README.md": "hi", "weights.bin": b"\x00"}, "README.md, weights.bin"),
        ({"model.json": '{"config": {}}'}, "model.json"),
        ({"model.txt": "just some notes\n"}, "model.txt"),
        ({}, "no files"),
    ],
)
def test_detect_lists_what_it_found_and_what_it_looks_for(
    tmp_path: Path, files: dict[str, bytes | str], listed: str
) -> None:
    directory = _write(tmp_path / "model", files)

    with pytest.raises(InvalidSpecError) as caught:
        package.detect(directory)

    message = str(caught.value)
    assert f"found {listed};" in message
    for name in ("MLmodel", "model.skops", "model.onnx", "model.joblib", "model.txt"):
        assert name in message
    assert "loader=" in message


def test_detect_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nowhere"):
        package.detect(tmp_path / "nowhere")


# --- build ---------------------------------------------------------------------------------------


def test_build_writes_a_manifest_with_every_file_hashed(onnx_dir: Path) -> None:
    manifest = package.build(onnx_dir, lineage={"job": "train-7"})

    on_disk = json.loads((onnx_dir / "mlport-model.json").read_text())
    assert on_disk["files"] == {
        "assets/labels.txt": hashlib.sha256(b"cat\ndog\n").hexdigest(),
        "model.onnx": hashlib.sha256(b"onnx graph").hexdigest(),
    }
    assert on_disk["loader"] == "onnx"
    assert on_disk["executes_code_on_load"] is False
    assert on_disk["lineage"] == {"job": "train-7"}
    assert on_disk["schema_version"] == 1
    assert manifest == Manifest.model_validate(on_disk)
    assert manifest.created_at.utcoffset() == datetime.timedelta(0)
    assert sorted(p.name for p in onnx_dir.iterdir()) == [
        "assets",
        "mlport-model.json",
        "model.onnx",
    ]


def test_build_keeps_recorded_fields_and_refreshes_files(onnx_dir: Path) -> None:
    first = package.build(
        onnx_dir,
        framework="pytorch",
        framework_version="2.3.0",
        signature={"inputs": [{"name": "pixels", "dtype": "float32"}]},
        lineage={"job": "train-7"},
    )
    (onnx_dir / "assets" / "extra.txt").write_text("more")

    second = package.build(onnx_dir)

    assert "assets/extra.txt" in second.files
    assert second.framework == "pytorch"
    assert second.framework_version == "2.3.0"
    assert second.signature == first.signature
    assert second.lineage == {"job": "train-7"}
    assert second.created_at == first.created_at
    package.verify(onnx_dir)

    third = package.build(onnx_dir, framework="tensorflow", lineage={"job": "train-8"})
    assert (third.framework, third.framework_version) == ("tensorflow", "2.3.0")
    assert third.lineage == {"job": "train-8"}


def test_build_with_an_explicit_loader_skips_detection(tmp_path: Path) -> None:
    directory = _write(tmp_path / "model", {"weights.bin": b"\x00\x01", "predict.py": "..."})

    manifest = package.build(directory, loader="custom", framework="numpy")

    assert manifest.loader == "custom"
    assert manifest.executes_code_on_load is True
    assert set(manifest.files) == {"weights.bin", "predict.py"}


def test_build_with_the_detected_loader_keeps_what_detection_found(tmp_path: Path) -> None:
    directory = _write(tmp_path / "model", {"model.json": XGBOOST_JSON})
    manifest = package.build(directory, loader="xgboost-json")
    assert (manifest.framework, manifest.framework_version) == ("xgboost", "2.0.3")
    assert manifest.executes_code_on_load is False


def test_build_refuses_an_undetectable_directory(tmp_path: Path) -> None:
    directory = _write(tmp_path / "model", {"weights.bin": b"\x00"})
    with pytest.raises(InvalidSpecError, match=r"weights\.bin"):
        package.build(directory)
    assert not (directory / "mlport-model.json").exists()


def test_build_accepts_a_signature_model(onnx_dir: Path) -> None:
    signature = Signature(
        inputs=(FeatureSpec(name="age", dtype="int64"), FeatureSpec(dtype="float64")),
        outputs=(FeatureSpec(name="churn", dtype="float64"),),
    )
    manifest = package.build(onnx_dir, signature=signature)
    assert manifest.signature == signature
    on_disk = json.loads((onnx_dir / "mlport-model.json").read_text())
    assert on_disk["signature"]["inputs"][1] == {"name": None, "dtype": "float64"}


@pytest.mark.parametrize(
    "signature",
    [
        {"inputs": [{"name": "x"}]},
        {"inputs": [{"name": "x", "dtype": "float32", "shape": [3]}]},
        {"features": []},
    ],
)
def test_build_rejects_a_malformed_signature(onnx_dir: Path, signature: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpecError, match="signature"):
        package.build(onnx_dir, signature=signature)


def test_build_rejects_lineage_that_is_not_json(onnx_dir: Path) -> None:
    with pytest.raises(InvalidSpecError, match="not JSON serializable"):
        package.build(onnx_dir, lineage={"when": datetime.datetime.now()})
    assert not (onnx_dir / "mlport-model.json").exists()


def test_build_rejects_an_unknown_loader(onnx_dir: Path) -> None:
    with pytest.raises(InvalidSpecError, match="pickle"):
        package.build(onnx_dir, loader="pickle")  # type: ignore[arg-type]


def test_build_on_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        package.build(tmp_path / "missing")


# --- verify --------------------------------------------------------------------------------------


def test_verify_accepts_an_untouched_package(onnx_dir: Path) -> None:
    built = package.build(onnx_dir)
    stored = package.manifest_sha256(onnx_dir)

    assert stored == hashlib.sha256((onnx_dir / "mlport-model.json").read_bytes()).hexdigest()
    assert stored == package.manifest_sha256(onnx_dir / "mlport-model.json")
    assert package.verify(onnx_dir) == built
    assert package.verify(onnx_dir, manifest_sha256=stored.upper()) == built


def test_verify_names_a_changed_file(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    (onnx_dir / "assets" / "labels.txt").write_text("cat\nwolf\n")

    with pytest.raises(IntegrityError, match=r"changed: assets/labels\.txt"):
        package.verify(onnx_dir)


def test_editing_a_file_and_the_manifest_is_caught_by_the_stored_hash(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    stored = package.manifest_sha256(onnx_dir)
    (onnx_dir / "model.onnx").write_bytes(b"backdoored graph")
    package.build(onnx_dir)
    tampered = package.manifest_sha256(onnx_dir)

    # The files agree with the new manifest, so only the stored hash can tell.
    package.verify(onnx_dir)
    with pytest.raises(IntegrityError) as caught:
        package.verify(onnx_dir, manifest_sha256=stored)

    assert stored in str(caught.value)
    assert tampered in str(caught.value)
    with pytest.raises(IntegrityError):
        package.open_package(onnx_dir, manifest_sha256=stored)


def test_verify_names_a_file_that_is_not_in_the_manifest(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    (onnx_dir / "assets" / "sitecustomize.py").write_text("import os")

    with pytest.raises(IntegrityError, match=r"not in the manifest: assets/sitecustomize\.py"):
        package.verify(onnx_dir)


def test_verify_names_a_missing_file(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    (onnx_dir / "assets" / "labels.txt").unlink()

    with pytest.raises(IntegrityError, match=r"missing: assets/labels\.txt"):
        package.verify(onnx_dir)


def test_verify_reports_every_problem_at_once(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    (onnx_dir / "model.onnx").write_bytes(b"changed")
    (onnx_dir / "assets" / "labels.txt").unlink()
    (onnx_dir / "new.bin").write_bytes(b"\x00")

    with pytest.raises(IntegrityError) as caught:
        package.verify(onnx_dir)

    message = str(caught.value)
    assert "changed: model.onnx" in message
    assert "missing: assets/labels.txt" in message
    assert "not in the manifest: new.bin" in message


def test_a_deleted_manifest_is_caught_by_the_stored_hash(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    stored = package.manifest_sha256(onnx_dir)
    (onnx_dir / "mlport-model.json").unlink()

    with pytest.raises(IntegrityError, match="missing"):
        package.verify(onnx_dir, manifest_sha256=stored)
    with pytest.raises(IntegrityError, match="missing"):
        package.open_package(onnx_dir, manifest_sha256=stored, trust=True)


def test_verify_without_a_manifest_says_how_to_make_one(onnx_dir: Path) -> None:
    with pytest.raises(
        InvalidSpecError, match=r"no mlport-model\.json in .*mlport\.package\.build"
    ):
        package.verify(onnx_dir)


def test_verify_rejects_a_malformed_stored_hash(onnx_dir: Path) -> None:
    package.build(onnx_dir)
    with pytest.raises(InvalidSpecError, match="not a hex sha256"):
        package.verify(onnx_dir, manifest_sha256="abc")


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "a/./b", "a//b", "a\\..\\b"])
def test_a_manifest_listing_paths_outside_the_package_is_rejected(
    onnx_dir: Path, path: str
) -> None:
    package.build(onnx_dir)
    _rewrite_manifest(onnx_dir, files={path: "0" * 64})

    with pytest.raises(InvalidSpecError, match="not a relative path inside the package"):
        package.verify(onnx_dir)


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"schema_version": 2}, "upgrade mlport"),
        ({"loader": "pickle"}, "loader"),
        ({"executes_code_on_load": "no"}, "executes_code_on_load"),
        ({"signed_by": "me"}, "signed_by"),
        ({"created_at": "2024-06-01T12:00:00"}, "created_at"),
    ],
)
def test_a_malformed_manifest_names_the_field(
    onnx_dir: Path, changes: dict[str, Any], mentions: str
) -> None:
    package.build(onnx_dir)
    _rewrite_manifest(onnx_dir, **changes)

    with pytest.raises(InvalidSpecError, match=mentions):
        package.verify(onnx_dir)


def test_a_symlinked_directory_cannot_slip_past_the_hashes(onnx_dir: Path, tmp_path: Path) -> None:
    package.build(onnx_dir)
    elsewhere = _write(tmp_path / "elsewhere", {"payload.py": "print('hi')"})
    (onnx_dir / "linked").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(IntegrityError, match="linked"):
        package.verify(onnx_dir)
    with pytest.raises(InvalidSpecError, match="linked"):
        package.build(onnx_dir)


# --- open_package --------------------------------------------------------------------------------


def test_open_package_refuses_a_bare_directory(onnx_dir: Path) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        package.open_package(onnx_dir)

    assert str(caught.value) == (
        f"no mlport-model.json in {onnx_dir}; pass trust=True to load a bare directory you "
        "trust, or build a package with mlport.package.build"
    )


def test_open_package_detects_a_trusted_bare_directory_without_writing(onnx_dir: Path) -> None:
    manifest = package.open_package(onnx_dir, trust=True)

    assert manifest.loader == "onnx"
    assert not (onnx_dir / "mlport-model.json").exists()


def test_open_package_loads_a_safe_format_without_a_stored_hash(onnx_dir: Path) -> None:
    built = package.build(onnx_dir)
    assert package.open_package(onnx_dir) == built


def test_open_package_refuses_code_executing_packages_it_cannot_check(
    joblib_package: Path,
) -> None:
    with pytest.raises(IntegrityError) as caught:
        package.open_package(joblib_package)

    message = str(caught.value)
    assert "would run code" in message
    assert "cannot be checked against a stored value" in message
    assert "manifest_sha256" in message


def test_open_package_loads_code_executing_packages_with_a_stored_hash(
    joblib_package: Path,
) -> None:
    stored = package.manifest_sha256(joblib_package)
    manifest = package.open_package(joblib_package, manifest_sha256=stored)
    assert manifest.loader == "joblib"
    assert manifest.executes_code_on_load is True
    assert package.open_package(joblib_package, trust=True) == manifest


def test_trust_does_not_skip_the_file_hashes(joblib_package: Path) -> None:
    (joblib_package / "model.joblib").write_bytes(b"\x80\x04evil")
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        package.open_package(joblib_package, trust=True)


# --- the manifest and the runtime agree ----------------------------------------------------------


def test_loader_names_match_the_runtime() -> None:
    assert typing.get_args(package.Loader) == runtime.LOADERS


def test_a_manifest_written_by_the_runtime_verifies(tmp_path: Path) -> None:
    directory = _write(tmp_path / "model", {"model.skops": b"PK\x03\x04"})
    runtime.write_manifest(
        directory,
        framework="sklearn",
        framework_version="1.5.0",
        loader="skops",
        executes_code_on_load=False,
        signature={"inputs": [{"name": "age", "dtype": "int64"}]},
        lineage={"job": "j-1"},
    )

    manifest = package.open_package(directory)

    assert manifest.signature == Signature(inputs=(FeatureSpec(name="age", dtype="int64"),))
    assert manifest.lineage == {"job": "j-1"}


def test_manifest_is_frozen_and_forbids_unknown_fields(onnx_dir: Path) -> None:
    manifest = package.build(onnx_dir)
    with pytest.raises(ValidationError):
        manifest.loader = "joblib"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="signed_by"):
        Manifest.model_validate({**manifest.model_dump(), "signed_by": "me"})


def test_sha256_dir_lists_nested_files_as_posix_paths(tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "model",
        {"a/b/c.bin": b"1", "mlport-model.json": "{}", "sub/mlport-model.json": "{}"},
    )
    assert package.sha256_dir(directory) == {
        "a/b/c.bin": hashlib.sha256(b"1").hexdigest(),
        "sub/mlport-model.json": hashlib.sha256(b"{}").hexdigest(),
    }


def test_save_model_then_open_package(tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    directory = runtime.save_model({"w": [1, 2]}, framework="custom", path=tmp_path / "m")
    stored = package.manifest_sha256(directory)
    manifest = package.open_package(directory, manifest_sha256=stored)
    assert manifest.framework == "custom"
    assert manifest.loader in {"joblib", "skops"}
