"""The training-script contract as a script running under a provider sees it."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlport import runtime

RUNTIME_SOURCE = Path(runtime.__file__)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLPORT_")}
    env.update(extra)
    return env


@pytest.fixture
def no_contract_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MLPORT_"):
            monkeypatch.delenv(key)


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "step"),
    [(0.25, None), (3, 7), (-1.5, 0), (1e-05, 10), (1.5e20, None), (0.0, 1)],
)
def test_log_metric_prints_one_line_that_parses_back(
    capsys: pytest.CaptureFixture[str], value: float, step: int | None
) -> None:
    runtime.log_metric("val_loss", value, step=step)

    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith('MLPORT_METRIC {"name": "val_loss", "value": ')
    assert runtime.parse_metric_line(out) == {
        "name": "val_loss",
        "value": float(value),
        "step": step,
    }


@pytest.mark.parametrize(
    ("name", "value", "step", "error", "mentions"),
    [
        ("", 1.0, None, ValueError, "name"),
        ("   ", 1.0, None, ValueError, "name"),
        ("loss", math.nan, None, ValueError, "value"),
        ("loss", math.inf, None, ValueError, "value"),
        ("loss", -math.inf, None, ValueError, "value"),
        ("loss", "0.5", None, TypeError, "value"),
        ("loss", 0.5, -1, ValueError, "step"),
        ("loss", 0.5, 1.5, TypeError, "step"),
    ],
)
def test_log_metric_rejects_bad_arguments_and_prints_nothing(
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: Any,
    step: Any,
    error: type[Exception],
    mentions: str,
) -> None:
    with pytest.raises(error, match=mentions):
        runtime.log_metric(name, value, step=step)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "2024-05-01T12:00:00.123Z ",
        "[1,mpirank:0,algo-1]<stdout>:",
        "algo-1-1714564800 | ",
    ],
)
def test_parse_metric_line_ignores_what_log_systems_put_in_front(prefix: str) -> None:
    line = prefix + 'MLPORT_METRIC {"name": "acc", "value": 0.9, "step": 2}\n'
    assert runtime.parse_metric_line(line) == {"name": "acc", "value": 0.9, "step": 2}


@pytest.mark.parametrize(
    "line",
    [
        "epoch 3 finished",
        "",
        "MLPORT_METRIC",
        "MLPORT_METRIC {not json}",
        'MLPORT_METRIC ["acc", 0.9]',
        'MLPORT_METRIC {"name": "acc"}',
        'MLPORT_METRIC {"name": "", "value": 1}',
        'MLPORT_METRIC {"name": "acc", "value": "high"}',
        'MLPORT_METRIC {"name": "acc", "value": true}',
        'MLPORT_METRIC {"name": "acc", "value": 1, "step": "two"}',
    ],
)
def test_parse_metric_line_returns_none_for_other_lines(line: str) -> None:
    assert runtime.parse_metric_line(line) is None


@pytest.mark.parametrize("value", [0.5, -2.25, 1e-05, 3.5e20, 100, 0.0])
def test_metric_definition_regex_captures_the_value_of_that_metric(
    capsys: pytest.CaptureFixture[str], value: float
) -> None:
    runtime.log_metric("acc (top-1)", value, step=4)
    line = "2024-05-01T12:00:00Z " + capsys.readouterr().out

    found = re.search(runtime.metric_definition_regex("acc (top-1)"), line)

    assert found is not None
    assert len(found.groups()) == 1
    assert float(found.group(1)) == value


def test_metric_definition_regex_does_not_match_other_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime.log_metric("val_loss", 0.3)
    runtime.log_metric("loss_ema", 0.2)
    output = capsys.readouterr().out

    assert re.search(runtime.metric_definition_regex("loss"), output) is None
    assert re.search(runtime.METRIC_REGEX, output) is not None


# --- a real training script ----------------------------------------------------------------------

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys

    from mlport import runtime

    hps = runtime.hyperparameters()
    args = runtime.parse_hyperparameter_args()
    if args != hps:
        sys.exit(f"arguments {args!r} differ from MLPORT_HYPERPARAMETERS {hps!r}")

    rows = (runtime.input_dir("train-data") / "train.csv").read_text().splitlines()
    for epoch in range(hps["epochs"]):
        runtime.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    runtime.log_metric("rows", len(rows))

    (runtime.model_dir() / "model.onnx").write_bytes(b"not really onnx")
    (runtime.output_dir() / "report.txt").write_text("ok")
    print("hosts", runtime.hosts(), "rank", runtime.rank(), "of", runtime.world_size())
    """
)


def _run_script(
    script: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_training_script_sees_the_contract_and_its_metrics_parse_back(tmp_path: Path) -> None:
    script = tmp_path / "code" / "train.py"
    script.parent.mkdir()
    script.write_text(TRAIN_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a,b\n1,2\n3,4\n")
    model, output = tmp_path / "model", tmp_path / "output"
    model.mkdir()
    output.mkdir()
    hps = {"epochs": 3, "lr": 0.01, "optimizer": "adam", "layers": [64, 32], "shuffle": True}
    env = _clean_env(
        MLPORT_INPUT_TRAIN_DATA=str(data),
        MLPORT_MODEL_DIR=str(model),
        MLPORT_OUTPUT_DIR=str(output),
        MLPORT_HYPERPARAMETERS=json.dumps(hps),
        MLPORT_HOSTS='["algo-1", "algo-2"]',
        MLPORT_RANK="1",
        MLPORT_WORLD_SIZE="2",
    )

    done = _run_script(script, runtime.hyperparameter_args(hps), env)

    assert done.returncode == 0, done.stderr
    metrics = [m for m in map(runtime.parse_metric_line, done.stdout.splitlines()) if m]
    assert metrics == [
        {"name": "loss", "value": 1.0, "step": 0},
        {"name": "loss", "value": 0.5, "step": 1},
        {"name": "loss", "value": 1.0 / 3, "step": 2},
        {"name": "rows", "value": 3.0, "step": None},
    ]
    assert "hosts ['algo-1', 'algo-2'] rank 1 of 2" in done.stdout
    assert (model / "model.onnx").read_bytes() == b"not really onnx"
    assert (output / "report.txt").read_text() == "ok"


def test_training_script_started_by_hand_says_which_variable_is_missing(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a\n")

    done = _run_script(
        script,
        ["--epochs=1"],
        _clean_env(MLPORT_INPUT_TRAIN_DATA=str(data), MLPORT_HYPERPARAMETERS='{"epochs": 1}'),
    )

    assert done.returncode != 0
    assert "ContractError" in done.stderr
    assert "MLPORT_MODEL_DIR is not set" in done.stderr
    assert "not running under an mlport provider" in done.stderr


# --- directories ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("train", "MLPORT_INPUT_TRAIN"),
        ("train-data", "MLPORT_INPUT_TRAIN_DATA"),
        ("val.set 2", "MLPORT_INPUT_VAL_SET_2"),
        ("Features", "MLPORT_INPUT_FEATURES"),
        ("données", "MLPORT_INPUT_DONN_ES"),
    ],
)
def test_input_env_name(name: str, variable: str) -> None:
    assert runtime.input_env_name(name) == variable


def test_input_env_name_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError, match="name"):
        runtime.input_env_name("")


def test_directories_come_from_the_environment(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLPORT_INPUT_TRAIN_DATA", str(tmp_path / "in"))
    monkeypatch.setenv("MLPORT_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("MLPORT_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("MLPORT_CHECKPOINT_DIR", str(tmp_path / "ckpt"))

    assert runtime.input_dir("train-data") == tmp_path / "in"
    assert runtime.model_dir() == tmp_path / "model"
    assert runtime.output_dir() == tmp_path / "out"
    assert runtime.checkpoint_dir() == tmp_path / "ckpt"


@pytest.mark.parametrize(
    ("read", "variable"),
    [
        (runtime.model_dir, "MLPORT_MODEL_DIR"),
        (runtime.output_dir, "MLPORT_OUTPUT_DIR"),
        (runtime.checkpoint_dir, "MLPORT_CHECKPOINT_DIR"),
    ],
)
def test_missing_directory_variable_is_named(
    no_contract_env: None, read: Any, variable: str
) -> None:
    with pytest.raises(runtime.ContractError, match=variable) as caught:
        read()
    assert "not running under an mlport provider" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


def test_empty_directory_variable_counts_as_missing(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPORT_MODEL_DIR", "")
    with pytest.raises(runtime.ContractError, match="MLPORT_MODEL_DIR"):
        runtime.model_dir()


def test_missing_input_lists_the_inputs_that_are_set(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLPORT_INPUT_VALIDATION", str(tmp_path))
    monkeypatch.setenv("MLPORT_INPUT_TEST", str(tmp_path))

    with pytest.raises(runtime.ContractError) as caught:
        runtime.input_dir("train")

    message = str(caught.value)
    assert "MLPORT_INPUT_TRAIN is not set" in message
    assert "not running under an mlport provider" in message
    assert "MLPORT_INPUT_TEST, MLPORT_INPUT_VALIDATION" in message


def test_missing_input_with_no_inputs_at_all_says_so(no_contract_env: None) -> None:
    with pytest.raises(runtime.ContractError, match=r"Inputs that are set: none"):
        runtime.input_dir("train")


# --- hyperparameters -----------------------------------------------------------------------------


def test_hyperparameters_default_to_empty(no_contract_env: None) -> None:
    assert runtime.hyperparameters() == {}


def test_hyperparameters_parse_the_json_object(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPORT_HYPERPARAMETERS", '{"n_estimators": 200, "criterion": "gini"}')
    assert runtime.hyperparameters() == {"n_estimators": 200, "criterion": "gini"}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_malformed_hyperparameters_name_the_variable(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MLPORT_HYPERPARAMETERS", raw)
    with pytest.raises(runtime.ContractError, match="MLPORT_HYPERPARAMETERS"):
        runtime.hyperparameters()


def test_hyperparameter_args_write_strings_raw_and_the_rest_as_json() -> None:
    hps = {"flag": True, "n": 200, "x": [1, 2], "optimizer": "adam", "lr": 0.001, "seed": None}
    assert runtime.hyperparameter_args(hps) == [
        "--flag=true",
        "--n=200",
        "--x=[1, 2]",
        "--optimizer=adam",
        "--lr=0.001",
        "--seed=null",
    ]


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        0,
        200,
        -3,
        0.5,
        1e-05,
        -2.5e10,
        [1, 2],
        [],
        {"a": [1, {"b": None}], "c": "d"},
        "adam",
        "with spaces",
        "key=value=more",
        "",
        "-starts-with-dash",
        "s3://bucket/prefix/",
        "ünïcödé",
    ],
)
def test_hyperparameter_args_round_trip(value: object) -> None:
    hps = {"param": value, "other": 1}
    assert runtime.parse_hyperparameter_args(runtime.hyperparameter_args(hps)) == hps


@pytest.mark.parametrize(("text", "decoded"), [("200", 200), ("true", True), ("[1]", [1])])
def test_strings_that_look_like_json_come_back_decoded(text: str, decoded: object) -> None:
    # Documented: the argument form cannot tell "200" from 200; hyperparameters() can.
    assert runtime.parse_hyperparameter_args(runtime.hyperparameter_args({"k": text})) == {
        "k": decoded
    }


def test_parse_hyperparameter_args_accepts_space_separated_values_and_bare_flags() -> None:
    argv = ["--epochs", "3", "--verbose", "--lr", "-0.5", "--name=run 1", "--dry-run"]
    assert runtime.parse_hyperparameter_args(argv) == {
        "epochs": 3,
        "verbose": True,
        "lr": -0.5,
        "name": "run 1",
        "dry-run": True,
    }


def test_parse_hyperparameter_args_reads_sys_argv_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--n=2"])
    assert runtime.parse_hyperparameter_args() == {"n": 2}


@pytest.mark.parametrize("argv", [["train.csv"], ["--"], ["--=3"], ["-n", "3"]])
def test_parse_hyperparameter_args_rejects_other_arguments(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="argument"):
        runtime.parse_hyperparameter_args(argv)


@pytest.mark.parametrize("key", ["", "a=b", "--n"])
def test_hyperparameter_args_reject_keys_that_cannot_round_trip(key: str) -> None:
    with pytest.raises(ValueError, match="hyperparameter name"):
        runtime.hyperparameter_args({key: 1})


def test_hyperparameter_args_name_the_value_that_is_not_json() -> None:
    with pytest.raises(TypeError, match="'model'"):
        runtime.hyperparameter_args({"model": object()})


# --- distributed jobs ----------------------------------------------------------------------------


def test_single_node_defaults(no_contract_env: None) -> None:
    assert runtime.hosts() == []
    assert runtime.rank() == 0
    assert runtime.world_size() == 1


@pytest.mark.parametrize(
    "raw",
    ['["algo-1", "algo-2", "algo-3"]', "algo-1,algo-2,algo-3", " algo-1 , algo-2,, algo-3 "],
)
def test_hosts_as_json_or_comma_separated(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MLPORT_HOSTS", raw)
    assert runtime.hosts() == ["algo-1", "algo-2", "algo-3"]


@pytest.mark.parametrize(
    ("read", "variable", "raw"),
    [
        (runtime.rank, "MLPORT_RANK", "first"),
        (runtime.rank, "MLPORT_RANK", "-1"),
        (runtime.world_size, "MLPORT_WORLD_SIZE", "0"),
        (runtime.hosts, "MLPORT_HOSTS", "[1, 2]"),
        (runtime.hosts, "MLPORT_HOSTS", "[broken"),
    ],
)
def test_malformed_distributed_variables_are_named(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, read: Any, variable: str, raw: str
) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(runtime.ContractError, match=variable):
        read()


# --- hashing and model packages ------------------------------------------------------------------


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 123)
    target = tmp_path / "weights.bin"
    target.write_bytes(data)
    assert runtime.sha256_file(target) == hashlib.sha256(data).hexdigest()


def test_write_manifest_records_every_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"graph")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "vocab.txt").write_text("a\nb\n")

    written = runtime.write_manifest(
        tmp_path,
        framework="onnx",
        framework_version=None,
        loader="onnx",
        executes_code_on_load=False,
        signature={"inputs": [{"name": "x", "dtype": "float32"}]},
        lineage={"job": "train-1"},
    )

    on_disk = json.loads((tmp_path / runtime.MANIFEST_NAME).read_text())
    assert on_disk == written
    assert on_disk["schema_version"] == 1
    assert on_disk["files"] == {
        "assets/vocab.txt": hashlib.sha256(b"a\nb\n").hexdigest(),
        "model.onnx": hashlib.sha256(b"graph").hexdigest(),
    }
    assert on_disk["created_at"].endswith("Z")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "assets",
        "mlport-model.json",
        "model.onnx",
    ]


def test_write_manifest_rejects_an_unknown_loader(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pickle"):
        runtime.write_manifest(
            tmp_path,
            framework=None,
            framework_version=None,
            loader="pickle",
            executes_code_on_load=True,
        )
    assert list(tmp_path.iterdir()) == []


def test_write_manifest_leaves_nothing_behind_when_lineage_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"graph")
    with pytest.raises(TypeError):
        runtime.write_manifest(
            tmp_path,
            framework=None,
            framework_version=None,
            loader="onnx",
            executes_code_on_load=False,
            lineage={"started": object()},
        )
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


class _HandMadeModel:
    def predict(self, rows: list[list[float]]) -> list[float]:
        return [sum(row) for row in rows]


def test_save_model_asks_for_the_framework_when_it_cannot_tell(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"_HandMadeModel.*framework=") as caught:
        runtime.save_model(_HandMadeModel(), path=tmp_path)
    assert "sklearn" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_save_model_without_a_model_dir_names_the_variable(no_contract_env: None) -> None:
    with pytest.raises(runtime.ContractError, match="MLPORT_MODEL_DIR"):
        runtime.save_model(_HandMadeModel(), framework="custom")


@pytest.mark.skipif(
    importlib.util.find_spec("skops") is not None or importlib.util.find_spec("joblib") is not None,
    reason="a serialiser is installed",
)
def test_save_model_without_a_serialiser_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"skops.*joblib"):
        runtime.save_model(_HandMadeModel(), framework="custom", path=tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("skops") is not None, reason="skops is preferred")
def test_save_model_with_joblib_labels_the_package_as_executing_code(
    no_contract_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    joblib = pytest.importorskip("joblib")
    monkeypatch.setenv("MLPORT_MODEL_DIR", str(tmp_path / "model"))

    directory = runtime.save_model(
        {"weights": [1.0, 2.0]},
        framework="custom",
        signature={"inputs": [{"name": None, "dtype": "float64"}]},
    )

    assert directory == tmp_path / "model"
    manifest = json.loads((directory / "mlport-model.json").read_text())
    assert manifest["loader"] == "joblib"
    assert manifest["executes_code_on_load"] is True
    assert manifest["framework"] == "custom"
    assert manifest["signature"] == {"inputs": [{"name": None, "dtype": "float64"}]}
    assert manifest["files"] == {"model.joblib": runtime.sha256_file(directory / "model.joblib")}
    assert joblib.load(directory / "model.joblib") == {"weights": [1.0, 2.0]}


# --- standard library only -----------------------------------------------------------------------


def test_runtime_imports_only_the_standard_library() -> None:
    tree = ast.parse(RUNTIME_SOURCE.read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports break when the file is copied alone"
            assert node.module is not None
            imported.append(node.module)
    outside = [
        name
        for name in imported
        if name != "__future__" and name.partition(".")[0] not in sys.stdlib_module_names
    ]
    assert imported
    assert outside == []


def test_runtime_parses_as_python_3_9() -> None:
    # Framework containers often run an older Python than mlport itself requires.
    ast.parse(RUNTIME_SOURCE.read_text(encoding="utf-8"), feature_version=(3, 9))


CONTAINER_CHECK = textwrap.dedent(
    """
    import json, sys
    from mlport import runtime

    runtime.log_metric("acc", 0.75, step=1)
    print(json.dumps({
        "file": runtime.__file__,
        "hyperparameters": runtime.hyperparameters(),
        "outside": sorted(
            name for name in sys.modules
            if name.partition(".")[0] not in sys.stdlib_module_names
            and name not in {"__main__", "mlport", "mlport.runtime"}
        ),
    }))
    """
)


def _bundle_with_runtime_only(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "mlport").mkdir(parents=True)
    shutil.copy(RUNTIME_SOURCE, bundle / "mlport" / "runtime.py")
    return bundle


def test_runtime_copied_alone_imports_in_an_isolated_interpreter(tmp_path: Path) -> None:
    bundle = _bundle_with_runtime_only(tmp_path)
    code = f"import sys; sys.path.insert(0, {str(bundle)!r})\n" + CONTAINER_CHECK

    # -I ignores PYTHONPATH and the user site; -S drops site-packages, where mlport is installed.
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        cwd=tmp_path,
        env=_clean_env(MLPORT_HYPERPARAMETERS='{"depth": 3}'),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    metric_line, report_line = done.stdout.splitlines()
    assert runtime.parse_metric_line(metric_line) == {"name": "acc", "value": 0.75, "step": 1}
    report = json.loads(report_line)
    assert Path(report["file"]) == bundle / "mlport" / "runtime.py"
    assert report["hyperparameters"] == {"depth": 3}
    assert report["outside"] == []


def test_runtime_copied_alone_serves_a_script_next_to_it(tmp_path: Path) -> None:
    bundle = _bundle_with_runtime_only(tmp_path)
    (bundle / "train.py").write_text(CONTAINER_CHECK)

    # As a container starts it: the script's folder on sys.path, no site-packages.
    done = subprocess.run(
        [sys.executable, "-S", "-E", str(bundle / "train.py")],
        cwd=bundle,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[1])
    assert Path(report["file"]) == bundle / "mlport" / "runtime.py"
    assert report["outside"] == []
