"""Reading captured requests: the JSON Lines files the portable model server writes.

The layout and record schema are those of :mod:`mlport.serving.capture`: files under
``<directory>/<endpoint>/YYYY/MM/DD/HH/<worker>-<start>.jsonl`` (UTC hours), one record per line::

    {"timestamp": "2025-01-31T12:00:00.123+00:00", "endpoint": "churn-api", "version": "1",
     "request_id": "...", "inputs": [[0.1, 3, 7.5]], "outputs": [1]}

where ``inputs`` are the request's rows in the model's feature order.

A window ``[since, until)`` is read from the hour folders it overlaps only, one line at a time
(memory holds one record, whatever the size of a file). A last line without its newline is a
record still being written and is left for the next read; a line that is not a record (a
damaged file) is skipped with a warning on the ``mlport.monitoring`` logger. Records are
yielded file by file, not in global time order (each worker writes its own files).

Standard library only: no numpy is needed to read captured data.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["CaptureRow", "capture_files", "capture_rows", "read_capture"]

_log = logging.getLogger("mlport.monitoring")

# The start time in a capture file's name: <worker>-20250131T120000123Z[.2].jsonl
_FILE_START = re.compile(r"-(\d{8}T\d{6})(\d{3})Z(?:\.\d+)?\.jsonl$")


@dataclass(frozen=True)
class CaptureRow:
    """One captured input row: the version that served it, when, and its values."""

    version: str
    timestamp: datetime
    values: list[Any]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _numbered(folder: Path, width: int) -> list[tuple[int, Path]]:
    """Sub-folders named by a number of ``width`` digits, in order."""
    if not folder.is_dir():
        return []
    found = [
        (int(child.name), child)
        for child in folder.iterdir()
        if len(child.name) == width and child.name.isdigit() and child.is_dir()
    ]
    return sorted(found)


def _overlaps(
    start: datetime, end: datetime, since: datetime | None, until: datetime | None
) -> bool:
    return (since is None or end > since) and (until is None or start < until)


def _hour_folders(root: Path, since: datetime | None, until: datetime | None) -> Iterator[Path]:
    """The ``YYYY/MM/DD/HH`` folders under ``root`` whose hour overlaps ``[since, until)``;
    years, months and days outside the window are not listed."""
    for year, year_dir in _numbered(root, 4):
        if not 1 <= year <= 9998:
            continue
        start = datetime(year, 1, 1, tzinfo=UTC)
        if not _overlaps(start, start.replace(year=year + 1), since, until):
            continue
        for month, month_dir in _numbered(year_dir, 2):
            if not 1 <= month <= 12:
                continue
            start = datetime(year, month, 1, tzinfo=UTC)
            end = (start + timedelta(days=31)).replace(day=1)
            if not _overlaps(start, end, since, until):
                continue
            for day, day_dir in _numbered(month_dir, 2):
                try:
                    start = datetime(year, month, day, tzinfo=UTC)
                except ValueError:
                    continue  # not a date: not a folder the server wrote
                if not _overlaps(start, start + timedelta(days=1), since, until):
                    continue
                for hour, hour_dir in _numbered(day_dir, 2):
                    if hour > 23:
                        continue
                    start = datetime(year, month, day, hour, tzinfo=UTC)
                    if _overlaps(start, start + timedelta(hours=1), since, until):
                        yield hour_dir


def _file_start(path: Path) -> datetime | None:
    match = _FILE_START.search(path.name)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None  # not a time: read the file rather than guess
    return stamp + timedelta(milliseconds=int(match.group(2)))


def capture_files(
    directory: str | Path,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Path]:
    """The capture files of ``endpoint`` that may hold records of ``[since, until)``.

    Only the hour folders the window overlaps are listed; a file that started at or after
    ``until`` is left out.

    Args:
        directory: The capture root (the server's ``capture.dir``).
        endpoint: The endpoint's name (its folder under the root).
        since: Start of the window, inclusive; None: from the first record. A naive datetime
            is taken as UTC.
        until: End of the window, exclusive; None: to the last record.
    """
    since, until = _utc(since), _utc(until)
    files: list[Path] = []
    for folder in _hour_folders(Path(directory) / endpoint, since, until):
        for path in sorted(folder.glob("*.jsonl")):
            start = _file_start(path)
            if until is not None and start is not None and start >= until:
                continue
            files.append(path)
    return files


def _records_of(path: Path) -> Iterator[dict[str, Any]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return  # removed since it was listed (the endpoint was deleted)
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return  # the writer has not finished this line yet
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                _log.warning("%s line %d is not JSON; skipped", path, number)
                continue
            if not isinstance(record, dict) or not isinstance(record.get("timestamp"), str):
                _log.warning("%s line %d is not a capture record; skipped", path, number)
                continue
            yield record


def _timestamp(record: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(record["timestamp"])
    except ValueError:
        return None
    return _utc(moment)


def _window(
    directory: str | Path, endpoint: str, since: datetime | None, until: datetime | None
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    since, until = _utc(since), _utc(until)
    for path in capture_files(directory, endpoint, since=since, until=until):
        for record in _records_of(path):
            moment = _timestamp(record)
            if moment is None:
                _log.warning("%s: a record with timestamp %r skipped", path, record["timestamp"])
                continue
            if (since is None or moment >= since) and (until is None or moment < until):
                yield moment, record


def read_capture(
    directory: str | Path,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Captured records of ``endpoint`` with ``since <= timestamp < until``, file by file.

    Streams: one line is held at a time. Takes the arguments of :func:`capture_files`.
    """
    for _, record in _window(directory, endpoint, since, until):
        yield record


def capture_rows(
    directory: str | Path,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[CaptureRow]:
    """The input rows of the records :func:`read_capture` yields, one :class:`CaptureRow` each.

    A record whose ``inputs`` is not a list of rows is skipped with a warning.
    """
    for moment, record in _window(directory, endpoint, since, until):
        inputs = record.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(row, list) for row in inputs):
            _log.warning(
                "capture record %s of %s has no list of rows as inputs; skipped",
                record.get("request_id"),
                endpoint,
            )
            continue
        version = str(record.get("version", ""))
        for row in inputs:
            yield CaptureRow(version, moment, row)
