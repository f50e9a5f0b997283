"""Small helpers every on-prem service uses: timestamps, JSON files written atomically, file locks,
log tails, and starting a detached process of this package for a folder."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport import _files
from mlport._files import locked
from mlport.processes import ProcessRecord, spawn

if TYPE_CHECKING:
    from mlport_onprem.root import OnPremProvider

__all__ = ["locked", "now", "read_json", "start_detached", "tail", "write_atomic", "write_json"]


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat()


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0644) so that readers never see a partial file."""
    _files.write_atomic(path, text, mode=0o644)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON object atomically."""
    write_atomic(path, json.dumps(data, indent=2))


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file (read from its end); "" if it does not exist."""
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 16384))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def start_detached(provider: OnPremProvider, module: str, folder: Path, name: str) -> ProcessRecord:
    """Start ``python -m MODULE FOLDER`` detached, its output in ``folder/<name>.out|.err``,
    recorded in the root's process table (so ``mlport down`` stops it)."""
    _, record = spawn(
        [sys.executable, "-m", module, str(folder)],
        name=name,
        log_dir=folder,
        cwd=folder,
        env={"PYTHONUNBUFFERED": "1"},
        detach=True,
    )
    provider.processes.add(record)
    return record
