"""`mlport endpoints ...` against on-prem endpoints: real server processes, a profile in mlport.toml.

The commands run in this process through ``mlport.cli.main`` (as the ``mlport`` script does), so
MLflow is imported once; the ``ml`` fixture stops every server the commands started.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import cli
from mlport.processes import ProcessRecord, is_running

TOML = """\
[profiles.local]
provider = "onprem"
root = "root"
poll_interval = 0.05
max_poll_interval = 0.25
cancel_grace = 3
"""

ROWS = [[0.5, -1.0], [2.0, 1.0], [-3.0, 0.1]]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mlport ARGS`` in this process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def endpoints(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mlport endpoints ARGS --profile local``."""
    return run(capsys, "endpoints", *args, "--profile", "local")


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), err
    return lines[0]


def _package(folder: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(x, y), folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


@pytest.fixture
def project(ml: mlport.Connection, root: Path, tmp_path: Path) -> Path:
    """tmp_path (the working directory) with an mlport.toml whose profile 'local' uses ``root``."""
    (tmp_path / "mlport.toml").write_text(TOML)
    assert mlport.connect(profile="local").describe()["settings"]["root"] == str(root)
    return tmp_path


def test_deploy_list_predict_logs_delete(
    ml: mlport.Connection,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import joblib

    # unknown endpoint, model or stage: one line, exit status 2, nothing on stdout
    for args, message in [
        (["predict", "ghost", "--json", "[[1, 2]]"], "endpoint 'ghost' not found"),
        (["logs", "ghost"], "endpoint 'ghost' not found"),
        (["deploy", "api", "nomodel"], "model 'nomodel' not found"),
    ]:
        code, out, err = endpoints(capsys, *args)
        assert (code, out) == (2, ""), err
        assert message in one_error(err)
    code, _, err = run(capsys, "--debug", "endpoints", "logs", "ghost", "--profile", "local")
    assert code == 2 and "Traceback" in err

    folder = _package(project / "pkg")
    ml.registry.register("clf", str(folder)).set_stage("production")
    expected = [int(v) for v in joblib.load(folder / "model.joblib").predict(ROWS)]
    for args, message in [
        (["deploy", "api", "clf", "--stage", "staging"], "has no alias 'staging'"),
        (["deploy", "api", "clf", "--traffic-percent", "10"], "does not exist yet"),
    ]:
        code, out, err = endpoints(capsys, *args)
        assert (code, out) == (2, ""), err
        assert message in one_error(err)

    # deploy: the latest version by default, READY with progress on stderr
    code, out, err = endpoints(capsys, "deploy", "clf-api", "clf", "--timeout", "60")
    assert code == 0, err
    assert "deploying model clf version 1 to endpoint clf-api" in err
    assert "[mlport] endpoint clf-api: READY" in err
    shown = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert {k: v.strip() for k, v in shown.items() if k != "url"} == {
        "name": "clf-api",
        "status": "READY",
        "model": "clf",
        "versions": "1 (100%)",
    }
    assert shown["url"].strip().startswith("http://127.0.0.1:")

    code, out, err = endpoints(capsys, "list")
    assert code == 0, err
    assert "clf-api" in out and "READY" in out and "1 (100%)" in out

    # predict: the same predictions as the model's own, from every kind of input
    code, out, err = endpoints(capsys, "predict", "clf-api", "--json", json.dumps(ROWS))
    assert code == 0, err
    assert out.count("\n") == 1 and json.loads(out) == expected
    (project / "rows.json").write_text(json.dumps({"instances": ROWS}))
    (project / "rows.csv").write_text("".join(f"{a},{b}\n" for a, b in ROWS))
    for source in ("rows.json", "rows.csv"):
        code, out, err = endpoints(capsys, "predict", "clf-api", "--file", source)
        assert (code, json.loads(out)) == (0, expected), err
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(ROWS)))
    code, out, err = endpoints(capsys, "predict", "clf-api", "--file", "-", "--variant", "1")
    assert (code, json.loads(out)) == (0, expected), err

    # a CSV header sends named rows: this model has no feature names, and the error says why
    monkeypatch.setattr(sys, "stdin", io.StringIO("a,b\n1,2\n"))
    code, _, err = endpoints(capsys, "predict", "clf-api", "--file", "-")
    assert code == 2
    assert "no feature names" in one_error(err) and "remove the header line" in err

    # logs, all or the last line
    code, out, err = endpoints(capsys, "logs", "clf-api")
    assert code == 0, err
    assert "serving clf-api at http://127.0.0.1:" in out
    code, out, err = endpoints(capsys, "logs", "clf-api", "--tail", "1")
    assert code == 0 and len(out.strip().splitlines()) == 1, err

    # delete stops the server; a second delete has nothing to do
    provider: Any = ml.provider_for("endpoints")
    server = ProcessRecord.from_json(provider.state.get("endpoints", "clf-api")["server"])
    code, out, err = endpoints(capsys, "delete", "clf-api")
    assert (code, out.strip()) == (0, "endpoint clf-api: deleted"), err
    assert not is_running(server)
    code, out, err = endpoints(capsys, "delete", "clf-api")
    assert (code, out.strip()) == (0, "endpoint clf-api: not found, nothing to do"), err
    code, out, err = endpoints(capsys, "list")
    assert (code, out.strip()) == (0, "no endpoints"), err

    # a deployment that outlives --timeout carries on (the ml fixture stops its server)
    code, out, err = endpoints(
        capsys, "deploy", "slow-api", "clf", "--stage", "production", "--timeout", "0.01"
    )
    assert (code, out) == (2, ""), err
    assert "deploying model clf version 1 (stage production)" in err
    assert "not READY within --timeout 0.01s" in one_error(err.splitlines()[-1])
    assert [e.name for e in ml.endpoints.list()] == ["slow-api"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "api"], "no rows to predict: give --json"),
        (["predict", "api", "--json", "[]"], "--json holds no rows"),
        (["predict", "api", "--json", "[[1, 2]"], "--json is not valid JSON"),
        (["predict", "api", "--json", "[1, 2]"], "wrap it in a list: [[1, 2]]"),
        (["predict", "api", "--json", '{"rows": []}'], 'without "instances"'),
        (["predict", "api", "--json", "[[1]]", "--file", "x.csv"], "--json or with --file"),
        (["predict", "api", "--file", "missing.json"], "--file missing.json: no such file"),
        (["deploy", "api", "clf", "--version", "1", "--stage", "production"], "not both"),
        (["deploy", "api", "clf", "--version", "prod"], "use --stage prod"),
    ],
)
def test_bad_input_is_one_line_before_connecting(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a profile that cannot connect: these errors come before any connection is made
    monkeypatch.delenv("MLPORT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlport.toml").write_text(TOML.replace('"onprem"', '"nimbus"'))
    code, out, err = run(capsys, "endpoints", *args, "--profile", "local")
    assert (code, out) == (2, "")
    assert message in one_error(err)


def test_usage_errors_name_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "endpoints", "deploy", "api", "clf", "--replicas", "0")
    assert code == 2 and "--replicas" in err
    code, _, err = run(capsys, "endpoints", "logs", "api", "--tail", "many")
    assert code == 2 and "--tail" in err


def test_cli_stays_light() -> None:
    code = (
        "import sys, json; from mlport.cli import app; import typer.main; "
        "typer.main.get_command(app); print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(json.loads(subprocess.check_output([sys.executable, "-c", code])))
    heavy = {"mlport.connection", "mlport_onprem", "mlflow", "numpy", "sklearn"}
    assert not modules & heavy, modules & heavy


def test_batch_predicts_a_file_and_reports_the_rows(
    ml: mlport.Connection, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    import joblib

    folder = _package(project / "pkg")
    ml.registry.register("clf", str(folder))
    rows = [[i / 10, 1 - i / 7] for i in range(40)]
    (project / "rows.csv").write_text("".join(f"{a},{b}\n" for a, b in rows))
    code, out, err = endpoints(capsys, "batch", "clf", "rows.csv", "out", "--batch-size", "7")
    assert code == 0, err
    assert "batch job batch-clf-" in err and ": SUCCEEDED, 40 rows, output file://" in out
    with (project / "out" / "rows.predictions.csv").open() as handle:
        written = [int(row["prediction"]) for row in csv.DictReader(handle)]
    assert written == [int(v) for v in joblib.load(folder / "model.joblib").predict(rows)]
    code, out, err = endpoints(capsys, "batch", "clf", "missing.csv", "out")
    assert code == 2 and "does not exist" in one_error(err)
