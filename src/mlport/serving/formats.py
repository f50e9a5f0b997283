"""Request bodies in, predictions out: the wire formats of every hosting contract.

Every prediction route turns its body into *rows* (lists of values in feature order, or objects
of feature name -> value), which the model validates; predictions come back as one JSON value
per row and are written in the route's own shape.

JSON bodies accepted on ``/invocations``, the Vertex predict route and ``/score``:

- ``[row, ...]``                                     a list of rows
- ``{"instances": [row, ...], "parameters": {...}}``  Vertex AI, TF Serving rows
- ``{"inputs": [row, ...]}`` or ``{"inputs": {"f1": [...], ...}}``   rows or columns
- ``{"data": [row, ...]}``                            Azure ML's plain body
- ``{"input_data": ...}``                             Azure ML MLflow: split
  (``{"columns", "index", "data"}``), records (``[{...}, ...]``) or list (``[[...], ...]``)
- ``{"dataframe_split": {...}}``, ``{"dataframe_records": [...]}``   MLflow scoring server

``text/csv`` bodies (``/invocations``): one row per line, no header unless its cells are the
model's feature names. The Open Inference Protocol's tensors have their own functions below.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "FormatError",
    "cell_value",
    "csv_rows",
    "dumps",
    "is_number",
    "json_rows",
    "loads",
    "predictions_csv",
    "v2_outputs",
    "v2_rows",
]


class FormatError(ValueError):
    """A request body that no route format can read (answered 400 with this message)."""


def _default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


loads: Callable[[bytes], Any]
"""Parse JSON bytes (orjson when installed); raises ValueError on malformed input."""
dumps: Callable[[Any], bytes]
"""Serialise to compact JSON bytes; numpy values become JSON numbers and lists."""

try:
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _orjson_dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=_default, option=_OPTIONS)

    loads = orjson.loads
    dumps = _orjson_dumps
except ImportError:  # pragma: no cover - exercised where orjson is absent

    def _json_loads(data: bytes) -> Any:
        return json.loads(data)

    def _json_dumps(value: Any) -> bytes:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()

    loads = _json_loads
    dumps = _json_dumps


def _rows_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{where} must be a list of rows, got {_kind(value)}")
    if not value:
        raise FormatError(f"{where} holds no rows")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _columns_to_rows(columns: Mapping[str, Any], where: str) -> list[Any]:
    length: int | None = None
    for name, values in columns.items():
        if not isinstance(values, list):
            raise FormatError(f"{where}[{name!r}] must be a list of values, got {_kind(values)}")
        if length is None:
            length = len(values)
        elif len(values) != length:
            raise FormatError(
                f"{where}: the columns have different lengths ({length} and {len(values)})"
            )
    if not length:
        raise FormatError(f"{where} holds no rows")
    names = list(columns)
    return [{name: columns[name][i] for name in names} for i in range(length)]


def _split_rows(split: Any, where: str) -> list[Any]:
    if not isinstance(split, dict):
        raise FormatError(f"{where} must be an object with 'columns' and 'data'")
    data = _rows_list(split.get("data"), f"{where}.data")
    columns = split.get("columns")
    if columns is None:
        return data
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise FormatError(f"{where}.columns must be a list of names")
    rows = []
    for number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise FormatError(
                f"{where}.data[{number}] must be a list of {len(columns)} values, one per column"
            )
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def _input_data_rows(value: Any) -> list[Any]:
    if isinstance(value, dict):
        if "data" in value:
            return _split_rows(value, "input_data")
        return _columns_to_rows(value, "input_data")
    return _rows_list(value, "input_data")


_KEYS = "'instances', 'inputs', 'data', 'input_data', 'dataframe_split' or 'dataframe_records'"


def json_rows(document: Any) -> list[Any]:
    """Find the rows in a parsed JSON body, in any of the shapes listed in the module docstring.

    Raises:
        FormatError: No rows in a shape this server reads.
    """
    if isinstance(document, list):
        return _rows_list(document, "the body")
    if not isinstance(document, dict):
        raise FormatError(f"the body must be a JSON list of rows or an object with {_KEYS}")
    if "instances" in document:
        return _rows_list(document["instances"], "instances")
    if "inputs" in document:
        inputs = document["inputs"]
        if isinstance(inputs, dict):
            return _columns_to_rows(inputs, "inputs")
        return _rows_list(inputs, "inputs")
    if "input_data" in document:
        return _input_data_rows(document["input_data"])
    if "dataframe_split" in document:
        return _split_rows(document["dataframe_split"], "dataframe_split")
    if "dataframe_records" in document:
        return _rows_list(document["dataframe_records"], "dataframe_records")
    if "data" in document:
        return _rows_list(document["data"], "data")
    raise FormatError(f"the body has none of {_KEYS}")


def cell_value(text: str, empty: Any = None) -> Any:
    """A CSV cell as an int or float where it reads as one, else the text; ``empty`` if blank."""
    text = text.strip()
    if not text:
        return empty
    if text.isdigit() or (text[0] in "+-" and text[1:].isdigit()):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def is_number(text: str) -> bool:
    """Whether a CSV cell reads as a number (a first line with none is a header)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(body: bytes, feature_names: Sequence[str] | None) -> list[Any]:
    """Read a ``text/csv`` body: one row per line; a first line of feature names is a header.

    Raises:
        FormatError: The body is not UTF-8 CSV, has no rows, or its lines differ in length.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"the CSV body is not UTF-8: {exc}") from None
    try:
        lines = [line for line in csv.reader(io.StringIO(text), strict=True) if line]
    except csv.Error as exc:
        raise FormatError(f"the CSV body cannot be read: {exc}") from None
    header: list[str] | None = None
    if lines and feature_names and [cell.strip() for cell in lines[0]] == list(feature_names):
        header = list(feature_names)
        lines = lines[1:]
    if not lines:
        raise FormatError("the CSV body holds no rows")
    width = len(lines[0])
    rows: list[Any] = []
    for number, line in enumerate(lines):
        if len(line) != width:
            raise FormatError(f"CSV row {number} has {len(line)} values but row 0 has {width}")
        values = [cell_value(cell) for cell in line]
        rows.append(dict(zip(header, values, strict=True)) if header else values)
    return rows


def predictions_csv(predictions: Sequence[Any]) -> bytes:
    """Write predictions as CSV, one line per row (a list-valued prediction fills a line)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for value in predictions:
        writer.writerow(value if isinstance(value, list) else [value])
    return out.getvalue().encode()


# --- Open Inference Protocol (V2) tensors --------------------------------------------------------

_V2_TYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    }
)


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _tensor(tensor: Any, number: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{number}]"
    if not isinstance(tensor, dict):
        raise FormatError(f"{where} must be an object with name, shape, datatype and data")
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise FormatError(f"{where}.name must be a non-empty string")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise FormatError(f"{where} ({name}): shape must be a list of sizes, e.g. [1, 20]")
    if datatype not in _V2_TYPES:
        raise FormatError(
            f"{where} ({name}): datatype {datatype!r} is not one of {', '.join(sorted(_V2_TYPES))}"
        )
    if not isinstance(data, list):
        raise FormatError(f"{where} ({name}): data must be a list")
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise FormatError(
            f"{where} ({name}): shape {shape} needs {math.prod(shape)} values, data has {len(flat)}"
        )
    return name, shape, flat


def v2_rows(document: Any, feature_names: Sequence[str] | None) -> list[Any]:
    """Turn an Open Inference Protocol request's input tensors into rows.

    One tensor of shape ``[n, ...]`` holds ``n`` rows (its name is free). Several tensors, or one
    named after a feature, are columns: each of shape ``[n]`` or ``[n, 1]``, named by feature.

    Raises:
        FormatError: The body is not a V2 inference request or its tensors do not fit.
    """
    if not isinstance(document, dict):
        raise FormatError("a V2 inference request is an object with 'inputs'")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise FormatError("a V2 inference request needs 'inputs': a non-empty list of tensors")
    tensors = [_tensor(tensor, number) for number, tensor in enumerate(inputs)]
    names = set(feature_names or ())
    if len(tensors) == 1 and tensors[0][0] not in names:
        _, shape, flat = tensors[0]
        n = shape[0]
        if n == 0:
            raise FormatError("inputs[0] holds no rows (its shape starts with 0)")
        if len(shape) == 1:
            return [[value] for value in flat]
        width = len(flat) // n
        return [flat[i * width : (i + 1) * width] for i in range(n)]
    length = None
    for name, shape, flat in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise FormatError(
                f"input {name!r} has shape {shape}; with several inputs each is one column of "
                "shape [n] or [n, 1]"
            )
        if length is None:
            length = len(flat)
        elif len(flat) != length:
            raise FormatError(f"the inputs have different lengths ({length} and {len(flat)})")
    if not length:
        raise FormatError("the inputs hold no rows")
    return [{name: flat[i] for name, _, flat in tensors} for i in range(length)]


def _datatype(values: Sequence[Any]) -> str:
    kinds = set()
    for value in values:
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            kinds.add("BOOL")
        elif isinstance(value, numbers.Integral):
            kinds.add("INT64")
        elif isinstance(value, numbers.Real):
            kinds.add("FP64")
        else:
            kinds.add("BYTES")
    if len(kinds) == 1:
        return kinds.pop()
    if kinds <= {"INT64", "FP64"}:
        return "FP64"
    return "BYTES"


def v2_outputs(predictions: Sequence[Any]) -> list[dict[str, Any]]:
    """The output tensor of a V2 inference response: ``predict``, one entry per row.

    A list-valued prediction of the same length for every row makes a ``[n, k]`` tensor; other
    values that are not numbers or booleans are sent as BYTES (JSON text for objects).
    """
    n = len(predictions)
    if n and all(isinstance(p, list) for p in predictions):
        width = len(predictions[0])
        if all(len(p) == width for p in predictions):
            flat = [value for row in predictions for value in row]
            datatype = _datatype(flat)
            data = flat if datatype != "BYTES" else [_text(v) for v in flat]
            return [{"name": "predict", "datatype": datatype, "shape": [n, width], "data": data}]
    datatype = _datatype(predictions)
    data = list(predictions) if datatype != "BYTES" else [_text(v) for v in predictions]
    return [{"name": "predict", "datatype": datatype, "shape": [n], "data": data}]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value).decode()
