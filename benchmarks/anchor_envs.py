"""The anchors' own virtualenvs: each benchmark runs the tools it compares against in a venv made
from ``benchmarks/anchors/<name>.txt``, so their dependencies never meet mlport's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"


def anchor_venv(name: str) -> Path:
    """The anchor's own virtualenv, made from benchmarks/anchors/<name>.txt if missing or stale."""
    venv = BENCH / name
    marker = venv / ".complete"
    requirements = ROOT / "benchmarks" / "anchors" / f"{name}.txt"
    if not marker.exists() or marker.read_text() != requirements.read_text():
        print(f"[bench] building the {name} anchor's venv in {venv} ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {**os.environ, "PIP_CONSTRAINT": ""}
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-r", str(requirements)],
            check=True,
            env=env,
        )
        marker.write_text(requirements.read_text())
    return venv
