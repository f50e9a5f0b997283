"""The mlport command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def mlport(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlport", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )


def test_version() -> None:
    result = mlport("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("mlport ")


def test_providers_lists_installed_and_known() -> None:
    result = mlport("providers")
    assert result.returncode == 0
    assert "dummy" in result.stdout and "mlport-sagemaker" in result.stdout
    assert "missing mlport_dummy_missing_sdk" in result.stdout
    assert "pip install 'mlport-dummy[sdk]'" in result.stdout
    assert "pip install 'mlport-dummy[sdk]'" in result.stdout


def test_providers_show_prints_schema() -> None:
    result = mlport("providers", "show", "dummy")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout.split("\nunsupported")[0])
    assert "world" in schema["properties"]
    assert "training.distributed" in result.stdout


def test_errors_are_one_line_and_exit_2() -> None:
    result = mlport("providers", "show", "nimbus")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no provider 'nimbus'")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    debug = mlport("--debug", "providers", "show", "nimbus")
    assert "Traceback" in debug.stderr


def test_config_check_prints_resolved_profile(tmp_path: Path) -> None:
    (tmp_path / "mlport.toml").write_text(
        "default_profile='a'\n[profiles.a]\nprovider='dummy'\nservices={training='b'}\n"
        "[profiles.b]\nprovider='dummy-limited'\n"
    )
    result = mlport("config", "check", "--portable", "--name", "my_model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["profile"] == "a"
    assert shown["services"]["training"]["provider"] == "dummy-limited"
    assert "would be refused by sagemaker" in result.stderr


def test_config_check_reports_bad_key(tmp_path: Path) -> None:
    (tmp_path / "mlport.toml").write_text("[profiles.a]\nprovider='dummy'\nwrold=1\n")
    result = mlport("config", "check", "--profile", "a", cwd=tmp_path)
    assert result.returncode == 2
    assert "'wrold'" in result.stderr and "profile 'a'" in result.stderr


@pytest.mark.parametrize(
    ("args", "request_"),
    [
        (["--cpus", "8", "--memory-gb", "32"], {"cpus": 8, "memory_gb": 32}),
        (["--gpu-type", "T4"], {"gpu_type": "T4"}),
    ],
)
def test_compute_show_side_by_side(args: list[str], request_: dict[str, object]) -> None:
    from mlport import Compute
    from mlport.compute import CLOUD_CATALOGS, resolve

    result = mlport("compute", "show", *args)
    assert result.returncode == 0, result.stderr
    for provider in (*CLOUD_CATALOGS, "onprem"):
        assert provider in result.stdout
    for provider in CLOUD_CATALOGS:
        row = resolve(Compute(**request_), provider).row  # type: ignore[arg-type]
        assert row is not None and row.key in result.stdout


def test_usage_error_exits_2() -> None:
    assert mlport("compute", "show", "--cpus", "many").returncode == 2
