"""`import mlport` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "numpy",
    "pandas",
    "sklearn",
    "boto3",
    "botocore",
    "google",
    "azure",
    "grpc",
    "tenacity",
    "rich",
    "typer",
    "pydantic",
]


def _loaded(code: str) -> set[str]:
    """Top-level modules that running ``code`` loads beyond the interpreter's own start (some
    installed packages' .pth files import namespace packages such as ``google`` at start)."""
    listing = "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    before = json.loads(subprocess.check_output([sys.executable, "-c", listing]))
    after = json.loads(subprocess.check_output([sys.executable, "-c", code + listing]))
    return {m.split(".")[0] for m in set(after) - set(before)}


def test_import_mlport_loads_no_heavy_module() -> None:
    loaded = _loaded("import mlport")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_specs_load_no_cloud_sdk_or_numpy() -> None:
    loaded = _loaded(
        "import mlport\nfrom mlport import TrainingJob, connect\nmlport.connect('dummy').training"
    )
    assert not loaded & {"numpy", "pandas", "sklearn", "boto3", "google", "azure", "grpc"}


def test_providers_never_import_tenacity() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(root))
        for pattern in ("providers/*/src/**/*.py", "tests/dummy_provider/src/**/*.py")
        for path in root.glob(pattern)
        if "tenacity" in path.read_text()
    ]
    assert offenders == [], "retries live in mlport.retry only"
