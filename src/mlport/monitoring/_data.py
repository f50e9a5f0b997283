"""Turning the inputs the engine accepts into named columns with their missing values removed.

Accepted: a dict of column name -> array or list; a 2-D numpy array (names given separately,
or taken from the reference); a sequence of rows in feature order (as captured requests hold
them); a pandas DataFrame (pandas is only touched when one is passed in).

A column is numeric when its values are numbers (ints, floats; not bools) and it is not listed
as categorical; anything else (strings, bools, mixed) is categorical. Missing values (None,
NaN, pandas NA/NaT, and for numeric columns also +-inf) are dropped and counted.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mlport.errors import InvalidSpecError

Kind = Literal["numeric", "categorical"]


@dataclass
class Column:
    """One feature's values, missing ones removed.

    ``values`` is a float64 array of the column's own (callers may sort it in place) for a
    numeric column; a categorical one has its values counted in ``counts`` instead.
    """

    name: str
    kind: Kind
    values: npt.NDArray[np.float64]
    counts: dict[Any, int]
    missing: int

    @property
    def size(self) -> int:
        """Number of values present."""
        return int(self.values.size) if self.kind == "numeric" else sum(self.counts.values())


def _is_pandas_frame(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return type(value).__name__ in ("NAType", "NaTType")


def _scalar(value: Any) -> Any:
    # Categories are str, int, float or bool (what JSON keeps); anything else (dates, ...) is
    # compared by its text, the same way in the reference, a profile and the current data.
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def column_names(data: Any, feature_names: Sequence[str] | None) -> list[str]:
    """The feature names of ``data``, in order.

    Raises:
        InvalidSpecError: the names do not match the data's width.
    """
    if _is_pandas_frame(data):
        return [str(c) for c in data.columns]
    if isinstance(data, Mapping):
        return [str(c) for c in data]
    width = _width(data)
    if feature_names is None:
        return [str(i) for i in range(width)]
    names = [str(n) for n in feature_names]
    if len(names) != width:
        raise InvalidSpecError(f"{len(names)} feature names given for {width} columns")
    return names


def _width(data: Any) -> int:
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidSpecError(f"a numpy array of features must be 2-D, not {data.ndim}-D")
        return int(data.shape[1])
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not data:
            raise InvalidSpecError("no rows given")
        first = data[0]
        if not isinstance(first, Sequence) or isinstance(first, str | bytes):
            raise InvalidSpecError("rows must be sequences of feature values")
        return len(first)
    raise InvalidSpecError(
        "data must be a dict of columns, a 2-D numpy array, a list of rows or a pandas "
        f"DataFrame, not {type(data).__name__}"
    )


def raw_columns(data: Any, feature_names: Sequence[str] | None) -> dict[str, Any]:
    """Column name -> the column's raw values (array, list or pandas Series)."""
    names = column_names(data, feature_names)
    if _is_pandas_frame(data):
        return {name: data[column] for name, column in zip(names, data.columns, strict=True)}
    if isinstance(data, Mapping):
        return {str(name): values for name, values in data.items()}
    if isinstance(data, np.ndarray):
        return {name: data[:, i] for i, name in enumerate(names)}
    rows = data
    width = len(names)
    for row in rows:
        if len(row) != width:
            raise InvalidSpecError(f"rows differ in length: {len(row)} and {width}")
    transposed = list(zip(*rows, strict=True))
    return {name: list(transposed[i]) for i, name in enumerate(names)}


def to_column(name: str, raw: Any, kind: Kind | None) -> Column:
    """Clean one column. ``kind`` forces numeric or categorical; None detects it.

    Raises:
        InvalidSpecError: ``kind="numeric"`` for values that are not numbers.
    """
    if type(raw).__module__.split(".")[0] == "pandas":
        return _pandas_column(name, raw, kind)
    array = raw if isinstance(raw, np.ndarray) else np.asarray(raw)
    if array.dtype.kind in "US" and not isinstance(raw, np.ndarray):
        # numpy would turn [1, "a"] into strings; keep each value's own type.
        array = np.array(raw, dtype=object)
    if array.ndim != 1:
        array = array.ravel()
    kind_code = array.dtype.kind
    if kind_code in "iuf":
        if kind != "categorical":
            return _numeric(name, array)
        if kind_code == "f":
            nan = np.isnan(array)
            return _categorical(name, array[~nan].tolist(), int(nan.sum()))
        return _categorical(name, array.tolist(), 0)
    if kind_code in "bUS":
        if kind == "numeric":
            raise InvalidSpecError(f"feature {name!r} is numeric in the reference but not here")
        return _categorical(name, array.tolist(), 0)
    if kind_code == "c":
        raise InvalidSpecError(f"feature {name!r} holds complex numbers")
    values = array.tolist() if kind_code != "O" else list(array)
    present = [v for v in values if not _is_missing(v)]
    missing = len(values) - len(present)
    numbers = all(_is_number(v) for v in present)
    if kind == "numeric" or (kind is None and present and numbers):
        if not numbers:
            raise InvalidSpecError(f"feature {name!r} is numeric in the reference but not here")
        column = _numeric(name, np.asarray([float(v) for v in present], dtype=np.float64))
        column.missing += missing
        return column
    return _categorical(name, present, missing)


def _pandas_column(name: str, series: Any, kind: Kind | None) -> Column:
    import pandas as pd  # type: ignore[import-untyped]

    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric and kind != "categorical":
        return _numeric(name, series.to_numpy(dtype=np.float64, na_value=np.nan))
    mask = series.isna().to_numpy()
    column = to_column(name, series.to_numpy(dtype=object)[~mask], kind)
    column.missing += int(mask.sum())
    return column


def _numeric(name: str, values: npt.NDArray[Any]) -> Column:
    # A contiguous copy of our own: the engine sorts it in place.
    owned = np.array(values, dtype=np.float64, order="C")
    finite = np.isfinite(owned)
    if finite.all():
        return Column(name, "numeric", owned, {}, 0)
    kept = owned[finite]
    return Column(name, "numeric", kept, {}, int(owned.size - kept.size))


def _categorical(name: str, values: list[Any], missing: int) -> Column:
    counts = Counter(_scalar(v) for v in values)
    return Column(name, "categorical", np.empty(0), dict(counts), missing)


def select(raw: Mapping[str, Any], only: Collection[str] | None) -> list[str]:
    """The names of ``raw`` to use: all, or ``only`` (in its order).

    Raises:
        InvalidSpecError: a name in ``only`` is not a column of ``raw``.
    """
    names = list(raw) if only is None else list(only)
    absent = [n for n in names if n not in raw]
    if absent:
        raise InvalidSpecError(
            f"feature(s) {', '.join(map(repr, absent))} not in the data "
            f"(it has {', '.join(map(repr, raw))})"
        )
    return names
