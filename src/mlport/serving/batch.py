"""Batch prediction over files, in chunks, with constant memory.

:func:`predict_files` reads CSV, JSON Lines or Parquet files a chunk of rows at a time, predicts
each chunk with a loaded model (:mod:`mlport.serving.loaders`) and appends the predictions to an
output file per input file, beside each row's id. Memory holds one chunk, whatever the file's
size. Every provider's batch job runs this (on-prem in a detached process; in the clouds inside
the serving image), so the output layout is the same everywhere:

- ``<output>/<input stem>.predictions.<ext>`` per input file, in the input's format, with two
  columns: ``row_id`` (the row's 0-based number in its file, or the value of ``id_column``) and
  ``prediction`` (in CSV a list- or object-valued prediction is written as JSON text);
- ``<output>/_batch.json`` written last: the files, their row counts and sha256s, the model.

An output file appears under its name only once complete (written to ``.part`` and renamed), so
an interrupted run never leaves a truncated file that looks finished.

Input rules: a CSV file's first line is a header when none of its cells reads as a number;
rows with a header are matched to the model's features by name, rows without one are in the
model's feature order. A JSON Lines row is an object (feature -> value) or a list of values.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlport.errors import InvalidSpecError, MissingDependencyError
from mlport.runtime import sha256_file
from mlport.serving.formats import cell_value, dumps, is_number, loads
from mlport.serving.model import InputError

if TYPE_CHECKING:
    from mlport.serving.model import ServedModel

__all__ = [
    "FORMATS",
    "BatchCancelled",
    "BatchSummary",
    "input_files",
    "output_name",
    "predict_files",
    "read_table",
]

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
"""Input suffix -> format. ``.json`` files are read as JSON Lines (one row per line)."""

SUMMARY_NAME = "_batch.json"
DEFAULT_BATCH_SIZE = 1000


class BatchCancelled(Exception):
    """``should_stop`` asked the run to stop; completed output files are kept."""


@dataclass
class BatchSummary:
    """What a run wrote: one entry per input file, in order."""

    files: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "rows": self.rows, "seconds": round(self.seconds, 3)}


def input_files(source: str | Path) -> list[Path]:
    """The files a batch reads: ``source`` itself, or the readable files under a folder.

    Raises:
        InvalidSpecError: ``source`` does not exist, is a file of an unknown format, or is a
            folder with no CSV, JSON Lines or Parquet file.
    """
    path = Path(source)
    known = ", ".join(sorted(FORMATS))
    if path.is_file():
        if path.suffix.lower() not in FORMATS:
            raise InvalidSpecError(
                f"batch input {path.name!r}: unknown format {path.suffix or '(no suffix)'!r}; "
                f"batch prediction reads {known} files"
            )
        return [path]
    if not path.is_dir():
        raise InvalidSpecError(f"batch input {str(source)!r} does not exist")
    found = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in FORMATS and not p.name.startswith((".", "_"))
    )
    if not found:
        raise InvalidSpecError(
            f"batch input folder {str(source)!r} holds no {known} file; put the rows to predict "
            "there, one file or many"
        )
    return found


def read_table(path: str | os.PathLike[str]) -> tuple[list[str] | None, list[list[Any]]]:
    """All rows of one CSV, JSON Lines or Parquet file, with its column names where it has
    them (a baseline for a drift profile; batch prediction reads chunks instead). CSV cells
    are numbers where they read as numbers, empty cells NaN; JSON objects become rows in the
    order of the first object's keys.

    Raises:
        InvalidSpecError: an unknown format or unreadable file.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidSpecError(
            f"{str(path)!r} is not a file; give a CSV, JSON Lines or Parquet file"
        )
    input_files(source)  # a known format
    fmt = FORMATS[source.suffix.lower()]
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    for _, chunk_columns, read in _READERS[fmt](source, DEFAULT_BATCH_SIZE, None):
        chunk: list[Any] = read
        if fmt == "csv":
            chunk = [[cell_value(cell, math.nan) for cell in row] for row in read]
        elif fmt == "jsonl" and read and isinstance(first := cast(Any, read[0]), dict):
            if columns is None:
                columns = list(first)
            chunk = [[cast(Any, row).get(name) for name in columns] for row in read]
        columns = chunk_columns or columns
        rows += chunk
    return columns, rows


def output_name(relative: Path) -> Path:
    """The output file for an input file at ``relative`` (to the input folder)."""
    return relative.with_name(f"{relative.stem}.predictions{relative.suffix.lower()}")


# -- readers: each yields (ids, columns or None, rows) per chunk


Chunk = tuple[list[Any], list[str] | None, list[list[Any]]]


def _split_id(
    columns: list[str] | None, id_column: str | None, where: str
) -> tuple[list[str] | None, int | None]:
    if id_column is None:
        return columns, None
    if columns is None:
        raise InvalidSpecError(
            f"id_column={id_column!r}: {where} has no column names (a CSV file without a header "
            "row, or JSON Lines rows that are lists); add a header, or leave id_column out to "
            "number the rows"
        )
    if id_column not in columns:
        raise InvalidSpecError(
            f"id_column={id_column!r}: {where} has no such column; its columns: "
            f"{', '.join(columns)}"
        )
    index = columns.index(id_column)
    return columns[:index] + columns[index + 1 :], index


def _read_csv(path: Path, size: int, id_column: str | None) -> Iterator[Chunk]:
    """Rows of text cells; :func:`_csv_inputs` converts them."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        columns: list[str] | None = None
        id_index: int | None = None
        first = True
        width: int | None = None
        ids: list[Any] = []
        rows: list[list[Any]] = []
        number = 0
        try:
            for line in reader:
                if not line:
                    continue
                if first:
                    first = False
                    if not any(is_number(cell) for cell in line):
                        columns = [cell.strip() for cell in line]
                        width = len(columns)
                        columns, id_index = _split_id(columns, id_column, path.name)
                        continue
                    _split_id(None, id_column, path.name)
                if width is None:
                    width = len(line)
                elif len(line) != width:
                    raise InvalidSpecError(
                        f"{path.name} line {reader.line_num}: {len(line)} values where the "
                        f"{'header' if columns is not None else 'first row'} has {width}"
                    )
                if id_index is not None:
                    ids.append(cell_value(line.pop(id_index)))
                else:
                    ids.append(number)
                rows.append(line)
                number += 1
                if len(rows) >= size:
                    yield ids, columns, rows
                    ids, rows = [], []
        except csv.Error as exc:
            raise InvalidSpecError(
                f"{path.name} line {reader.line_num} cannot be read as CSV: {exc}"
            ) from None
        except UnicodeDecodeError as exc:
            raise InvalidSpecError(f"{path.name} is not UTF-8 text: {exc}") from None
        if rows:
            yield ids, columns, rows


def _read_jsonl(path: Path, size: int, id_column: str | None) -> Iterator[Chunk]:
    ids: list[Any] = []
    rows: list[Any] = []
    number = 0
    named: bool | None = None
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = loads(line)
            except ValueError as exc:
                raise InvalidSpecError(
                    f"{path.name} line {line_number} is not JSON: {exc}"
                ) from None
            is_object = isinstance(row, dict)
            if not is_object and not isinstance(row, list):
                raise InvalidSpecError(
                    f"{path.name} line {line_number}: each line must be a JSON object "
                    f"(feature -> value) or a list of values, got {type(row).__name__}"
                )
            if named is None:
                named = is_object
                if not named:
                    _split_id(None, id_column, path.name)
            elif named != is_object:
                raise InvalidSpecError(
                    f"{path.name} line {line_number}: mixes objects and lists; write every row "
                    "the same way"
                )
            if id_column is not None:
                if id_column not in row:
                    raise InvalidSpecError(
                        f"id_column={id_column!r}: {path.name} line {line_number} has no such key"
                    )
                ids.append(row.pop(id_column))
            else:
                ids.append(number)
            rows.append(row)
            number += 1
            if len(rows) >= size:
                yield ids, None, rows
                ids, rows = [], []
    if rows:
        yield ids, None, rows


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError(
            "reading and writing Parquet needs pyarrow; install it with: pip install pyarrow"
        ) from None
    return pyarrow


def _read_parquet(path: Path, size: int, id_column: str | None) -> Iterator[Chunk]:
    pa = _pyarrow()
    try:
        parquet = pa.parquet.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidSpecError(f"{path.name} cannot be read as Parquet: {exc}") from None
    names = list(parquet.schema_arrow.names)
    columns, _ = _split_id(names, id_column, path.name)
    number = 0
    for batch in parquet.iter_batches(batch_size=size):
        data = batch.to_pydict()
        ids = data.pop(id_column) if id_column is not None else None
        count = batch.num_rows
        if ids is None:
            ids = list(range(number, number + count))
        number += count
        assert columns is not None
        rows = [list(row) for row in zip(*(data[name] for name in columns), strict=True)]
        yield ids, columns, rows


_READERS: dict[str, Callable[[Path, int, str | None], Iterator[Chunk]]] = {
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}


# -- writers


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, ids: Sequence[Any], predictions: Sequence[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvWriter(_Writer):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handle = path.open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.handle)
        self.csv.writerow(["row_id", "prediction"])

    def write(self, ids: Sequence[Any], predictions: Sequence[Any]) -> None:
        self.csv.writerows(
            (
                row_id,
                dumps(value).decode() if isinstance(value, (list, dict)) else value,
            )
            for row_id, value in zip(ids, predictions, strict=True)
        )

    def close(self) -> None:
        self.handle.close()


class _JsonlWriter(_Writer):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handle = path.open("wb")

    def write(self, ids: Sequence[Any], predictions: Sequence[Any]) -> None:
        self.handle.write(
            b"".join(
                dumps({"row_id": row_id, "prediction": value}) + b"\n"
                for row_id, value in zip(ids, predictions, strict=True)
            )
        )

    def close(self) -> None:
        self.handle.close()


class _ParquetWriter(_Writer):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pa = _pyarrow()
        self.writer: Any = None

    def write(self, ids: Sequence[Any], predictions: Sequence[Any]) -> None:
        pa = self.pa
        if self.writer is None:
            table = pa.table({"row_id": list(ids), "prediction": list(predictions)})
            self.writer = pa.parquet.ParquetWriter(self.path, table.schema)
        else:
            try:
                table = pa.table(
                    {"row_id": list(ids), "prediction": list(predictions)},
                    schema=self.writer.schema,
                )
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise InvalidSpecError(
                    f"{self.path.name}: the model's predictions changed type between chunks "
                    f"({exc}); write JSON Lines output instead"
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:  # no rows: still a readable file with the two columns
            pa = self.pa
            pa.parquet.write_table(
                pa.table({"row_id": pa.array([], pa.int64()), "prediction": pa.array([])}),
                self.path,
            )


_WRITERS: dict[str, type[_Writer]] = {
    "csv": _CsvWriter,
    "jsonl": _JsonlWriter,
    "parquet": _ParquetWriter,
}


# -- the run


def _model_rows(model: ServedModel, columns: list[str] | None, rows: list[Any]) -> list[Any]:
    """Rows in the model's feature order where the columns allow it, else as the model reads
    them (objects by name, which it checks and explains)."""
    if columns is None:
        return rows
    names = model.feature_names
    if names is None:
        return rows
    if columns == names:
        return rows
    if len(columns) == len(names) and set(columns) == set(names):
        order = [columns.index(name) for name in names]
        return [[row[i] for i in order] for row in rows]
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _csv_inputs(model: ServedModel, columns: list[str] | None, rows: list[list[str]]) -> Any:
    """CSV text cells as the model's input: parsed by numpy in one call for a float model,
    else cell by cell (numbers become numbers, empty cells NaN, other text stays text)."""
    names = model.feature_names
    order: list[int] | None = None
    if columns is not None and names is not None and columns != names:
        if len(columns) == len(names) and set(columns) == set(names):
            order = [columns.index(name) for name in names]
        else:
            order = []  # the model explains what is missing or unknown
    dtype = getattr(model, "input_dtype", "")
    if order != [] and dtype.startswith("float"):
        import numpy as np

        try:
            array = np.array(rows, dtype=dtype)
        except ValueError:  # empty cells, text: the careful path says which row
            pass
        else:
            return array[:, order] if order else array
    return _model_rows(
        model, columns, [[cell_value(cell, math.nan) for cell in row] for row in rows]
    )


def _bad_row(
    model: ServedModel, rows: list[Any], first_id: int, where: str, exc: InputError
) -> InvalidSpecError:
    """Name the first row of a chunk the model refuses, by its number in the file."""
    for offset, row in enumerate(rows):
        try:
            model.validate([row])
        except InputError as single:
            text = str(single)
            own = re.match(r"row 0(?![0-9])([,:]?) ?", text)  # the message names "row 0"
            if own is None:
                return InvalidSpecError(f"{where} row {first_id + offset}: {text}")
            rest = text[own.end() :]
            return InvalidSpecError(f"{where} row {first_id + offset}{own.group(1)} {rest}")
    return InvalidSpecError(f"{where} rows {first_id}..{first_id + len(rows) - 1}: {exc}")


def predict_files(
    model: ServedModel,
    source: str | Path,
    output: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    id_column: str | None = None,
    on_progress: Callable[[int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Predict every row of ``source`` (a file or a folder) into ``output`` (a folder).

    Args:
        model: A loaded model (:func:`mlport.serving.loaders.load`).
        batch_size: Rows read, predicted and written at a time; memory holds one such chunk.
        id_column: A column (or JSON key) holding each row's id; it is not sent to the model.
            Without it a row's id is its 0-based number in its file.
        on_progress: Called after each chunk with the rows done so far and the current file.
        should_stop: Checked between chunks; True stops the run with :class:`BatchCancelled`.

    Returns:
        The files written and the rows predicted.

    Raises:
        InvalidSpecError: an unreadable input, or a row the model refuses (named by file and
            row number); output files completed before it are kept.
        BatchCancelled: ``should_stop`` returned True.
    """
    if batch_size < 1:
        raise InvalidSpecError(f"batch_size must be at least 1, got {batch_size}")
    files = input_files(source)
    base = Path(source) if Path(source).is_dir() else Path(source).parent
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary()
    started = time.monotonic()
    for path in files:
        relative = path.relative_to(base)
        fmt = FORMATS[path.suffix.lower()]
        destination = target / output_name(relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        writer = _WRITERS[fmt](partial)
        rows_in_file = 0
        try:
            for ids, columns, rows in _READERS[fmt](path, batch_size, id_column):
                if should_stop is not None and should_stop():
                    raise BatchCancelled(f"stopped after {summary.rows} rows")
                if fmt == "csv":
                    prepared = _csv_inputs(model, columns, rows)
                else:
                    prepared = _model_rows(model, columns, rows)
                try:
                    inputs = model.validate(prepared)
                except InputError as exc:
                    raise _bad_row(
                        model, list(prepared), rows_in_file, str(relative), exc
                    ) from None
                predictions = model.predict(inputs)
                writer.write(ids, predictions)
                rows_in_file += len(rows)
                summary.rows += len(rows)
                if on_progress is not None:
                    on_progress(summary.rows, str(relative))
            writer.close()
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        partial.replace(destination)
        summary.files.append(
            {
                "input": str(relative),
                "output": str(destination.relative_to(target)),
                "rows": rows_in_file,
                "sha256": sha256_file(destination),
            }
        )
    summary.seconds = time.monotonic() - started
    record = {
        **summary.to_json(),
        "ended_at": datetime.now(UTC).isoformat(),
        "batch_size": batch_size,
        "id_column": id_column,
    }
    (target / SUMMARY_NAME).write_text(json.dumps(record, indent=2))
    return summary
