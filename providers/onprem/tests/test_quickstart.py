"""The quickstart that `make demo` runs, as a new user runs it: no mlport.toml, a fresh folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlport

ROOT = Path(__file__).resolve().parents[3]


def test_quickstart_trains_and_registers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLPORT_CONFIG", "MLPORT_PROFILE")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart" / "run.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "name/version : churn v1 (staging)" in result.stdout
    assert "MLPORT_METRIC" in result.stdout  # the job's logs were streamed live
    served = next(line for line in result.stdout.splitlines() if "served predictions" in line)
    own = next(line for line in result.stdout.splitlines() if "the model's own" in line)
    assert served.split(":", 1)[1].strip() == own.split(":", 1)[1].strip()
    assert "drifted features : tenure, monthly_charges\n" in result.stdout
    html = next(line for line in result.stdout.splitlines() if "HTML report" in line)
    page = Path(html.split(":", 1)[1].strip().removeprefix("file://"))
    assert "support_calls" in page.read_text()
    assert ": 5000 rows predicted into" in result.stdout
    predictions = tmp_path / ".mlport" / "predictions" / "customers.predictions.csv"
    lines = predictions.read_text().splitlines()
    assert lines[0] == "row_id,prediction" and len(lines) == 5001
    assert lines[1].startswith("c00000,")
    os.chdir(tmp_path)
    ml = mlport.connect(poll_interval=0.05)
    try:
        version = ml.registry.get("churn", "staging")
        assert version.metrics["auc"] > 0.8
        assert version.lineage["job_provider"] == "onprem"
    finally:
        ml.down()
