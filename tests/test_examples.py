"""The examples run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_tour_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "core_tour.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo ok" in result.stdout
    assert "did you mean 'max_runtime'" in result.stdout
    assert "IntegrityError" in result.stdout
    assert (tmp_path / ".mlport" / "tour" / "model" / "mlport-model.json").is_file()
