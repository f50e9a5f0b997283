"""Model loaders: a verified model package in, a :class:`~mlport.serving.model.ServedModel` out.

:func:`load` checks the package with :func:`mlport.package.open_package` before anything in it
is read by a framework, then loads the model by the manifest's ``loader``:

=================  ====================================================================
loader             how
=================  ====================================================================
``joblib``         ``joblib.load`` (runs code: loads only when its hashes are checked)
``skops``          ``skops.io.loads``, trusting skops' defaults and, when the hashes are
                   checked against a stored value (or ``trust``), scikit-learn's, numpy's
                   and scipy.sparse's own types, such as a forest's compiled trees
``onnx``           onnxruntime on the CPU, one thread
``mlflow``         ``mlflow.pyfunc.load_model`` on the package directory
``xgboost-json``   XGBoost's scikit-learn class when the file records one, else a Booster
``lightgbm-txt``   ``lightgbm.Booster``
=================  ====================================================================

Single-file formats are read once, hashed again and loaded from those same bytes, so a file
swapped on disk after :func:`~mlport.package.open_package` checked it is never loaded.

Each served model validates request rows against the package's input signature (or, without
one, what the model itself records: ``n_features_in_``, ``feature_names_in_``, the ONNX input
shape, the booster's feature count). Rows are lists of values in feature order or objects of
feature name -> value; rows are counted from 0 in error messages, as in the request's JSON array.
Predictions are plain Python values, one per row: labels for classifiers, values for regressors,
and what ``Booster.predict`` returns for a bare XGBoost or LightGBM booster.

Frameworks (and numpy) are imported on first use, never when this module is imported.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import io
import math
import numbers
import operator
import os
import pathlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlport.errors import IntegrityError, InvalidSpecError, NotSupportedError
from mlport.package import Manifest, Signature, open_package
from mlport.serving.model import InputError, ServedModel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SERVED_LOADERS", "LoadedModel", "load"]

SERVED_LOADERS: tuple[str, ...] = (
    "joblib",
    "skops",
    "onnx",
    "mlflow",
    "xgboost-json",
    "lightgbm-txt",
)
"""The manifest loaders :func:`load` can serve."""

# skops refuses every type it does not know; scikit-learn's compiled classes (the tree of a
# forest, loss objects) are among them. These are taken from a file whose hashes were checked
# against a stored manifest sha256 (or that the caller trusts), so they are as trustworthy as the
# package itself; anything else is refused.
_SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")

# What scikit-learn says when a model fitted on a DataFrame is given an array.
_NO_NAMES_WARNING = "X does not have valid feature names"

# Features shown in a message before "...".
_SHOWN_FEATURES = 5


# --- the request rows -----------------------------------------------------------------------------


def _kind_of(dtype: Any) -> str:
    """One letter per kind of feature: f(loat), i(nteger), b(ool) or O (anything else)."""
    import numpy as np

    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return "O"
    if kind == "f":
        return "f"
    if kind in "iu":
        return "i"
    if kind == "b":
        return "b"
    return "O"


def _array_dtype(dtypes: Sequence[Any]) -> np.dtype[Any]:
    """The one dtype of an array holding features of these dtypes."""
    import numpy as np

    resolved: list[np.dtype[Any]] = []
    for dtype in dtypes:
        if _kind_of(dtype) == "O":
            return np.dtype(object)
        resolved.append(np.dtype(dtype))
    if resolved and all(dtype == resolved[0] for dtype in resolved):
        return resolved[0]
    return np.dtype(np.float64)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) or (
        isinstance(value, numbers.Real) and not isinstance(value, (str, bytes))
    )


class _Rows:
    """Checks request rows against a model's inputs and turns them into one 2-D array.

    The common case (well-formed numeric rows) costs one ``numpy.asarray`` and a few checks on
    its result; only rows that fail those are walked one value at a time to say what is wrong.
    """

    def __init__(
        self,
        *,
        n_features: int | None,
        names: Sequence[str] | None,
        dtypes: Sequence[Any] | None,
        allow_nan: bool = True,
        array_dtype: Any = None,
    ) -> None:
        import numpy as np

        if names is not None and n_features is None:
            n_features = len(names)
        self.n_features = n_features
        self.names: list[str] | None = list(names) if names is not None else None
        if array_dtype is not None:
            self.dtype: np.dtype[Any] = np.dtype(array_dtype)
        elif dtypes:
            self.dtype = _array_dtype(dtypes)
        else:
            self.dtype = np.dtype(np.float64)
        # Without a per-feature dtype every feature is of the array's dtype.
        self._default_kind = _kind_of(self.dtype)
        kinds = [_kind_of(dtype) for dtype in dtypes] if dtypes else None
        self._kinds = kinds
        self._dtypes = list(dtypes) if dtypes else None
        self._allow_nan = allow_nan
        all_kinds = set(kinds) if kinds is not None else {self._default_kind}
        # The kinds of inferred array the fast path takes as they are; any other goes through
        # the value-by-value walk, which also says what is wrong.
        # An inferred string array is never taken: numpy turns the numbers beside a string into
        # strings too.
        if all_kinds in ({"f"}, {"O"}):
            self._fast_kinds = "fiub"
        elif "O" in all_kinds:
            self._fast_kinds = ""
        else:
            self._fast_kinds = "iub"
        self._float_nan_ok = allow_nan and all_kinds <= {"f"}
        self._check_finite = self.dtype.kind == "f"
        self._getter: Callable[[Any], Any] | None = None
        self._name_set: frozenset[str] = frozenset()
        if self.names is not None:
            self._name_set = frozenset(self.names)
            self._getter = operator.itemgetter(*self.names)

    # -- messages

    def _feature(self, index: int) -> str:
        if self.names is not None and index < len(self.names):
            return f"feature {self.names[index]!r}"
        return f"feature {index}"

    def _takes(self) -> str:
        if self.n_features is None:
            return ""
        text = f"the model takes {self.n_features} feature{'s' if self.n_features != 1 else ''}"
        if self.names:
            shown = ", ".join(self.names[:_SHOWN_FEATURES])
            text += f" ({shown}{', ...' if len(self.names) > _SHOWN_FEATURES else ''})"
        return text

    def _kind(self, index: int) -> str:
        return self._kinds[index] if self._kinds is not None else self._default_kind

    def _dtype_name(self, index: int) -> str:
        return str(self._dtypes[index]) if self._dtypes is not None else str(self.dtype)

    # -- validation

    def validate(self, rows: Any) -> npt.NDArray[Any]:
        import numpy as np

        table: Any = rows
        try:
            first = rows[0]
        except (IndexError, KeyError, TypeError):
            return self._diagnose(rows)
        if isinstance(first, Mapping):
            if self._getter is None:
                return self._diagnose(rows)
            try:
                table = [self._getter(row) for row in rows]
            except (KeyError, TypeError):
                return self._diagnose(rows)
            width = len(self._name_set)
            if any(len(row) != width for row in rows):
                return self._diagnose(rows)
            if width == 1:
                table = [[value] for value in table]
        try:
            array = np.asarray(table)
        except (ValueError, TypeError):
            return self._diagnose(rows)
        if (
            array.ndim != 2
            or array.dtype.kind not in self._fast_kinds
            or (self.n_features is not None and array.shape[1] != self.n_features)
            or array.shape[1] == 0
        ):
            return self._diagnose(rows)
        if array.dtype != self.dtype:
            array = array.astype(self.dtype)
        if self._check_finite and (
            bool(np.isinf(array).any())
            if self._float_nan_ok
            else not bool(np.isfinite(array).all())
        ):
            return self._diagnose(rows)
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def _diagnose(self, rows: Any) -> npt.NDArray[Any]:
        """Walk the rows one value at a time: convert what is valid, name what is not."""
        import numpy as np

        if hasattr(rows, "tolist") and not isinstance(rows, (str, bytes)):
            rows = rows.tolist()
        if isinstance(rows, Mapping):
            raise InputError(
                "expected a list of rows, got a single object; wrap it in a list: [{...}]"
            )
        if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
            raise InputError(f"expected a list of rows, got {type(rows).__name__}")
        if not rows:
            raise InputError("no rows to predict: the list of rows is empty")
        table: list[list[Any]] = []
        width = self.n_features
        for number, row in enumerate(rows):
            if isinstance(row, Mapping):
                values = self._from_mapping(number, row)
            elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
                values = list(row)
            else:
                hint = (
                    "; a single row must still be wrapped in a list: [[...]]"
                    if _is_number(row) or isinstance(row, str)
                    else ""
                )
                raise InputError(
                    f"row {number} is {_describe(row)}, not a list of values or an object of "
                    f"feature -> value{hint}"
                )
            if width is None:
                width = len(values)
                if width == 0:
                    raise InputError(f"row {number} is empty")
            if len(values) != width:
                takes = self._takes() or f"row 0 has {width}"
                raise InputError(
                    f"row {number} has {len(values)} value{'s' if len(values) != 1 else ''}; "
                    f"{takes}"
                )
            table.append([self._value(number, index, value) for index, value in enumerate(values)])
        try:
            array = np.array(table, dtype=self.dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"the rows cannot be read as {self.dtype} values: {exc}") from None
        if array.ndim != 2:
            raise InputError("each row must be a flat list of values")
        return np.ascontiguousarray(array)

    def _from_mapping(self, number: int, row: Mapping[Any, Any]) -> list[Any]:
        if self.names is None:
            count = f"{self.n_features} values" if self.n_features is not None else "values"
            raise InputError(
                f"row {number} names its features, but this model has no feature names; send "
                f"each row as a list of {count} in the model's order"
            )
        unknown = [key for key in row if key not in self._name_set]
        missing = [name for name in self.names if name not in row]
        problems = []
        if unknown:
            problems.append(f"unknown feature{'s' if len(unknown) > 1 else ''} " + _quoted(unknown))
        if missing:
            problems.append(f"missing feature{'s' if len(missing) > 1 else ''} " + _quoted(missing))
        if problems:
            raise InputError(f"row {number} has {' and '.join(problems)}; {self._takes()}")
        return [row[name] for name in self.names]

    def _value(self, number: int, index: int, value: Any) -> Any:
        kind = self._kind(index)
        if kind == "O":
            if isinstance(value, (Mapping, list, tuple)):
                raise InputError(
                    f"row {number}, {self._feature(index)}: {_describe(value)} is not a single "
                    "value"
                )
            return value
        where = f"row {number}, {self._feature(index)}"
        if value is None:
            if kind == "f" and self._allow_nan:
                return math.nan
            raise InputError(
                f"{where}: null is not allowed ({self._missing_reason(index)}); send a number"
            )
        if not _is_number(value):
            raise InputError(
                f"{where}: {_describe(value)} is not a number (the model takes "
                f"{self._dtype_name(index)})"
            )
        try:
            number_value = float(value)
        except OverflowError:
            raise InputError(f"{where}: {value!r} is too large") from None
        if math.isnan(number_value):
            if kind == "f" and self._allow_nan:
                return number_value
            raise InputError(f"{where}: NaN is not allowed ({self._missing_reason(index)})")
        if math.isinf(number_value):
            raise InputError(f"{where}: {value!r} is not a finite number")
        if kind == "i" and not number_value.is_integer():
            raise InputError(
                f"{where}: {value!r} is not a whole number (the model takes "
                f"{self._dtype_name(index)})"
            )
        if kind == "b" and value not in (0, 1):
            raise InputError(f"{where}: {value!r} is not a boolean (true/false, 1/0)")
        return value

    def _missing_reason(self, index: int) -> str:
        if self._kind(index) != "f":
            return f"the model takes {self._dtype_name(index)}, which has no missing value"
        return "the model does not accept missing values"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if _is_number(value):
        return repr(value)
    return f"a {type(value).__name__}"


def _quoted(names: Sequence[Any]) -> str:
    shown = ", ".join(repr(name) for name in names[:_SHOWN_FEATURES])
    more = len(names) - _SHOWN_FEATURES
    return shown + (f" and {more} more" if more > 0 else "")


# --- outputs --------------------------------------------------------------------------------------


def _native(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value)
    if isinstance(value, (list, tuple)):
        return [_native(item) for item in value]
    if isinstance(value, dict):
        return {_native(key): _native(item) for key, item in value.items()}
    return value


def _jsonable(result: Any) -> list[Any]:
    """One plain-Python (JSON-able) output per row."""
    import numpy as np

    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        # A DataFrame: one column is a list of values, several are one object per row.
        if len(result.columns) == 1:
            result = result.iloc[:, 0]
        else:
            return [_native(record) for record in result.to_dict("records")]
    if hasattr(result, "to_numpy"):
        result = result.to_numpy()
    if isinstance(result, np.ndarray):
        if result.dtype.kind == "O":
            return [_native(item) for item in result.tolist()]
        listed = result.tolist()
        return listed if isinstance(listed, list) else [listed]
    if isinstance(result, (list, tuple)):
        return [_native(item) for item in result]
    return [_native(result)]


class _Frame:
    """Builds the DataFrame a model trained on named columns expects, from validated rows."""

    def __init__(self, names: Sequence[str], dtypes: Sequence[Any] | None) -> None:
        import numpy as np
        import pandas as pd  # type: ignore[import-untyped]

        self._pd = pd
        self._columns = pd.Index(list(names))
        self._casts: dict[str, Any] = {}
        if dtypes is not None:
            uniform = _array_dtype(dtypes)
            for name, dtype in zip(names, dtypes, strict=True):
                try:
                    resolved = np.dtype(dtype)
                except TypeError:
                    continue
                if resolved != uniform:
                    self._casts[name] = resolved

    @property
    def uniform(self) -> bool:
        """Whether every column has the dtype of the validated array."""
        return not self._casts

    def __call__(self, inputs: npt.NDArray[Any]) -> Any:
        frame = self._pd.DataFrame(inputs, columns=self._columns, copy=False)
        return frame.astype(self._casts) if self._casts else frame


# --- served models --------------------------------------------------------------------------------


class LoadedModel(ServedModel):
    """A model loaded by :func:`load`: a :class:`ServedModel` plus class probabilities.

    Made by :func:`load`, not constructed directly.

    Args:
        rows: How request rows are checked and converted.
        framework: The framework the model belongs to.
        loader: The manifest's loader.
        batching: Whether rows of several requests may be predicted together.
    """

    def __init__(self, rows: _Rows, *, framework: str | None, loader: str, batching: bool) -> None:
        self._rows = rows
        self.framework = framework
        self.loader = loader
        self.feature_names = rows.names
        self.n_features = rows.n_features
        self.batching = batching

    @property
    def input_dtype(self) -> str:
        """The dtype of the arrays :meth:`validate` returns, e.g. ``"float64"``."""
        return str(self._rows.dtype)

    def validate(self, rows: Sequence[Any]) -> npt.NDArray[Any]:
        """Check request rows against the model's inputs and convert them to a 2-D array.

        Args:
            rows: Lists of values in feature order, or objects of feature name -> value (in
                any order). Booleans count as 1 and 0; strings are taken only for features
                whose dtype is a string or object; null and NaN only for float features of a
                model that accepts missing values.

        Returns:
            A C-contiguous 2-D array of the model's input dtype, one row per request row.

        Raises:
            InputError: Naming the row (counted from 0) and the feature that is wrong.
        """
        return self._rows.validate(rows)

    def predict(self, inputs: Any) -> list[Any]:
        """Predict for validated inputs; one JSON-able output per row.

        Raises:
            Whatever the framework raises for inputs it cannot predict on.
        """
        return _jsonable(self._predict(inputs))

    def proba(self, inputs: Any) -> list[Any]:
        """Class probabilities for validated inputs, one list (or object) per row.

        Raises:
            NotSupportedError: The model gives no probabilities.
        """
        raise NotSupportedError(
            f"this {self.framework or self.loader} model gives no class probabilities"
        )

    @abc.abstractmethod
    def _predict(self, inputs: Any) -> Any:
        """The framework's own prediction for validated inputs."""


class _Estimator(LoadedModel):
    """A scikit-learn style estimator (joblib and skops files).

    A model fitted on a DataFrame gets one (``frame``) unless it was found at load time to
    predict on arrays just as well (``quiet``): scikit-learn takes four times longer to predict
    one row of a DataFrame than of an array. Arrays are in the model's column order either way.
    """

    def __init__(
        self, model: Any, rows: _Rows, frame: _Frame | None, *, quiet: bool, **kwargs: Any
    ) -> None:
        super().__init__(rows, **kwargs)
        self._model = model
        self._frame = frame
        self._quiet = quiet

    def _call(self, method: Callable[[Any], Any], inputs: Any) -> Any:
        if self._frame is not None:
            return method(self._frame(inputs))
        if self._quiet:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _NO_NAMES_WARNING, UserWarning)
                return method(inputs)
        return method(inputs)

    def _predict(self, inputs: Any) -> Any:
        return self._call(self._model.predict, inputs)

    def proba(self, inputs: Any) -> list[Any]:
        """Class probabilities from the estimator's ``predict_proba``.

        Raises:
            NotSupportedError: The estimator has no ``predict_proba``.
        """
        if not hasattr(self._model, "predict_proba"):
            return super().proba(inputs)
        return _jsonable(self._call(self._model.predict_proba, inputs))


class _Onnx(LoadedModel):
    def __init__(
        self,
        session: Any,
        rows: _Rows,
        *,
        input_name: str,
        output_name: str,
        proba_name: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(rows, **kwargs)
        self._session = session
        self._input_name = input_name
        self._output_name = output_name
        self._proba_name = proba_name

    def _predict(self, inputs: Any) -> Any:
        (result,) = self._session.run([self._output_name], {self._input_name: inputs})
        # Converters add a trailing axis of 1 to a single-output regressor.
        if getattr(result, "ndim", 0) == 2 and result.shape[1] == 1:
            result = result.reshape(-1)
        return result

    def proba(self, inputs: Any) -> list[Any]:
        """Class probabilities from the model's probability output, one list per row.

        Raises:
            NotSupportedError: The graph has no probability output.
        """
        if self._proba_name is None:
            return super().proba(inputs)
        (result,) = self._session.run([self._proba_name], {self._input_name: inputs})
        if isinstance(result, list):
            # A ZipMap output: class -> probability per row, in class order.
            return [[_native(value) for value in row.values()] for row in result]
        return _jsonable(result)


class _Mlflow(LoadedModel):
    def __init__(self, model: Any, rows: _Rows, frame: _Frame | None, **kwargs: Any) -> None:
        super().__init__(rows, **kwargs)
        self._model = model
        self._frame = frame

    def _predict(self, inputs: Any) -> Any:
        return self._model.predict(self._frame(inputs) if self._frame is not None else inputs)


class _XGBoostBooster(LoadedModel):
    def __init__(self, booster: Any, rows: _Rows, **kwargs: Any) -> None:
        super().__init__(rows, **kwargs)
        self._booster = booster

    def _predict(self, inputs: Any) -> Any:
        return self._booster.inplace_predict(inputs, validate_features=False)


class _LightGBM(LoadedModel):
    def __init__(self, booster: Any, rows: _Rows, **kwargs: Any) -> None:
        super().__init__(rows, **kwargs)
        self._booster = booster

    def _predict(self, inputs: Any) -> Any:
        return self._booster.predict(inputs, num_threads=1)


# --- loading --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Package:
    """A verified package on its way to a loader.

    Attributes:
        directory: The package directory.
        manifest: Its verified manifest.
        batching: Whether the served model may batch requests.
        checked: Whether the manifest was checked against a stored hash, or the caller
            trusts the package.
    """

    directory: pathlib.Path
    manifest: Manifest
    batching: bool
    checked: bool


def _model_file(
    directory: pathlib.Path,
    manifest: Manifest,
    preferred: Sequence[str],
    suffixes: Sequence[str],
) -> str:
    """The manifest entry holding the model: a preferred name, else the one file that fits."""
    for name in preferred:
        if name in manifest.files:
            return name
    candidates = sorted(name for name in manifest.files if name.endswith(tuple(suffixes)))
    if len(candidates) == 1:
        return candidates[0]
    wanted = ", ".join([*preferred, *(f"*{suffix}" for suffix in suffixes)])
    found = ", ".join(candidates) if candidates else "none"
    raise InvalidSpecError(
        f"cannot tell which file of {directory} holds the {manifest.loader} model: looked for "
        f"{wanted}; matching files: {found}"
    )


def _read_verified(directory: pathlib.Path, manifest: Manifest, name: str) -> bytes:
    """Read a file once and check those very bytes against the manifest."""
    data = (directory / name).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.files[name]:
        raise IntegrityError(
            f"{directory / name} changed after the package was verified: manifest sha256 "
            f"{manifest.files[name]}, actual {actual}"
        )
    return data


def _signature_inputs(
    signature: Signature | None,
) -> tuple[int | None, list[str] | None, list[str] | None]:
    """Feature count, names (when every input has one) and dtypes from a manifest signature."""
    if signature is None or not signature.inputs:
        return None, None, None
    names = [feature.name for feature in signature.inputs]
    return (
        len(signature.inputs),
        [name for name in names if name is not None] if all(names) else None,
        [feature.dtype for feature in signature.inputs],
    )


def _reconcile(
    directory: pathlib.Path,
    signature: Signature | None,
    model_count: int | None,
    model_names: Sequence[str] | None,
) -> tuple[int | None, list[str] | None, list[str] | None]:
    """The model's inputs: the manifest signature's, checked against what the model records."""
    count, names, dtypes = _signature_inputs(signature)
    if count is None:
        return model_count, list(model_names) if model_names is not None else None, None
    if model_count is not None and model_count != count:
        raise InvalidSpecError(
            f"the signature in {directory} lists {count} inputs, but the model takes "
            f"{model_count} features; rebuild the package with the model's signature"
        )
    if names is not None and model_names is not None and list(model_names) != names:
        raise InvalidSpecError(
            f"the signature in {directory} names the inputs {_quoted(names)}, but the model was "
            f"trained on {_quoted(list(model_names))}; rebuild the package with the model's "
            "signature"
        )
    if names is None and model_names is not None:
        names = list(model_names)
    return count, names, dtypes


def _estimator_inputs(model: Any) -> tuple[int | None, list[str] | None]:
    names = getattr(model, "feature_names_in_", None)
    count = getattr(model, "n_features_in_", None)
    return (
        int(count) if isinstance(count, numbers.Integral) else None,
        [str(name) for name in names] if names is not None else None,
    )


def _estimator_allows_nan(model: Any) -> bool:
    try:
        from sklearn.utils import get_tags  # type: ignore[import-untyped]

        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:
        # No tags (an old scikit-learn or a foreign estimator): let the model decide.
        return True


def _framework_of(model: object, recorded: str | None) -> str | None:
    if recorded is not None:
        return recorded
    top = type(model).__module__.partition(".")[0]
    return {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}.get(top, top)


def _predicts_on_arrays(model: Any, rows: _Rows) -> bool:
    """Whether a model fitted on a DataFrame predicts on a plain array (a row of zeros)."""
    import numpy as np

    if rows.n_features is None:
        return False
    probe = np.zeros((1, rows.n_features), dtype=rows.dtype)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _NO_NAMES_WARNING, UserWarning)
            model.predict(probe)
    except Exception:
        # It needs its columns by name (or rejects zeros): a DataFrame is always right.
        return False
    return True


def _estimator(
    model: Any,
    directory: pathlib.Path,
    manifest: Manifest,
    batching: bool,
) -> LoadedModel:
    if not hasattr(model, "predict"):
        raise InvalidSpecError(
            f"the object in {directory} is a {type(model).__module__}.{type(model).__qualname__}, "
            "which has no predict method"
        )
    model_count, model_names = _estimator_inputs(model)
    count, names, dtypes = _reconcile(directory, manifest.signature, model_count, model_names)
    rows = _Rows(
        n_features=count,
        names=names,
        dtypes=dtypes,
        allow_nan=_estimator_allows_nan(model),
    )
    # A model fitted on a DataFrame may select columns by name or need per-column dtypes: it gets
    # a DataFrame, unless one array of its dtype, in its column order, is known to do.
    frame = _Frame(model_names, dtypes) if model_names is not None else None
    quiet = False
    if frame is not None and frame.uniform and rows.dtype.kind != "O":
        quiet = _predicts_on_arrays(model, rows)
        frame = None if quiet else frame
    return _Estimator(
        model,
        rows,
        frame,
        quiet=quiet,
        framework=_framework_of(model, manifest.framework),
        loader=manifest.loader,
        batching=batching,
    )


def _load_joblib(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import joblib  # type: ignore[import-untyped]

    name = _model_file(directory, manifest, ("model.joblib", "model.pkl"), (".joblib", ".pkl"))
    data = _read_verified(directory, manifest, name)
    model = joblib.load(io.BytesIO(data))
    return _estimator(model, directory, manifest, batching)


def _load_skops(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import skops.io  # type: ignore[import-untyped]

    name = _model_file(directory, manifest, ("model.skops",), (".skops",))
    data = _read_verified(directory, manifest, name)
    untrusted = sorted(skops.io.get_untrusted_types(data=data))
    refused = [path for path in untrusted if not path.startswith(_SKOPS_TRUSTED_PREFIXES)]
    if refused:
        raise InvalidSpecError(
            f"{directory / name} holds types outside scikit-learn, numpy and scipy.sparse that "
            f"skops does not trust by default: {', '.join(refused)}. mlport does not load them "
            "from a skops file; save the model with joblib instead (it loads when the "
            "package's manifest sha256 is recorded)"
        )
    if untrusted and not package.checked:
        # These compiled types trust the indices stored in the file (a crafted tree reads out
        # of bounds), so they are only as safe as the file is authentic.
        raise IntegrityError(
            f"refusing to load {directory / name}: it holds {', '.join(untrusted)}, which skops "
            "does not trust by default because a crafted file can make them read out of bounds, "
            "and its hashes cannot be checked against a stored value because no "
            "manifest_sha256 was given. Pass the manifest sha256 recorded when the package was "
            "registered, or trust=True if you trust this directory."
        )
    model = skops.io.loads(data, trusted=untrusted)
    return _estimator(model, directory, manifest, batching)


_ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def _load_onnx(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import onnxruntime  # type: ignore[import-untyped]

    name = _model_file(directory, manifest, ("model.onnx",), (".onnx",))
    data = _read_verified(directory, manifest, name)
    options = onnxruntime.SessionOptions()
    # The server scales with worker processes; threads inside one request only contend.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise InvalidSpecError(f"onnxruntime cannot load {directory / name}: {exc}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidSpecError(
            f"{directory / name} has {len(inputs)} inputs "
            f"({', '.join(item.name for item in inputs)}); the server feeds one 2-D input"
        )
    (graph_input,) = inputs
    shape = list(graph_input.shape or [])
    if len(shape) != 2:
        raise InvalidSpecError(
            f"{directory / name}: input {graph_input.name!r} has shape {shape}; the server "
            "feeds a 2-D input of rows by features"
        )
    dtype = _ONNX_DTYPES.get(graph_input.type)
    if dtype is None:
        raise InvalidSpecError(
            f"{directory / name}: input {graph_input.name!r} is a {graph_input.type}, which "
            f"the server cannot build from JSON (it can: {', '.join(_ONNX_DTYPES)})"
        )
    width = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
    count, names, dtypes = _reconcile(directory, manifest.signature, width, None)
    outputs = [item.name for item in session.get_outputs()]
    label = next((output for output in outputs if "label" in output.lower()), outputs[0])
    proba = next((output for output in outputs if "prob" in output.lower()), None)
    rows = _Rows(
        n_features=count,
        names=names,
        dtypes=dtypes if dtypes is not None else [dtype] * count if count else None,
        array_dtype=dtype,
    )
    return _Onnx(
        session,
        rows,
        input_name=graph_input.name,
        output_name=label,
        proba_name=proba if proba != label else None,
        framework=manifest.framework or "onnx",
        loader=manifest.loader,
        batching=batching,
    )


def _load_mlflow(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(directory))
    schema = model.metadata.get_input_schema() if model.metadata is not None else None
    model_count: int | None = None
    model_names: list[str] | None = None
    model_dtypes: list[Any] | None = None
    tensor = False
    if schema is not None:
        if schema.is_tensor_spec():
            tensor = True
            specs = schema.inputs
            spec_shape = specs[0].shape if len(specs) == 1 else None
            if spec_shape is not None and len(spec_shape) == 2 and spec_shape[1] > 0:
                model_count = int(spec_shape[1])
                model_dtypes = [schema.numpy_types()[0]] * model_count
        else:
            model_dtypes = list(schema.numpy_types())
            model_count = len(model_dtypes)
            if schema.has_input_names():
                model_names = [str(name) for name in schema.input_names()]
    count, names, dtypes = _reconcile(directory, manifest.signature, model_count, model_names)
    if dtypes is None:
        dtypes = model_dtypes
    rows = _Rows(n_features=count, names=names, dtypes=dtypes)
    frame = None if tensor or model_names is None else _Frame(model_names, model_dtypes)
    return _Mlflow(
        model,
        rows,
        frame,
        framework=manifest.framework,
        loader=manifest.loader,
        batching=batching,
    )


def _load_xgboost(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import json

    import xgboost

    name = _model_file(directory, manifest, ("model.json", "model.ubj"), (".json", ".ubj"))
    data = bytearray(_read_verified(directory, manifest, name))
    booster = xgboost.Booster()
    try:
        booster.load_model(data)
    except xgboost.core.XGBoostError as exc:
        raise InvalidSpecError(f"XGBoost cannot load {directory / name}: {exc}") from None
    count, names, dtypes = _reconcile(
        directory, manifest.signature, booster.num_features(), booster.feature_names
    )
    rows = _Rows(n_features=count, names=names, dtypes=dtypes)
    framework = manifest.framework or "xgboost"
    # XGBoost's scikit-learn classes record themselves in the file: serve labels as they do.
    meta = booster.attr("scikit_learn")
    kind = json.loads(meta).get("_estimator_type") if meta else None
    classes: dict[str, type[Any]] = {
        "classifier": xgboost.XGBClassifier,
        "regressor": xgboost.XGBRegressor,
        "ranker": xgboost.XGBRanker,
    }
    if kind in classes:
        estimator = classes[kind](n_jobs=1)
        estimator.load_model(data)
        return _Estimator(
            estimator,
            rows,
            None,
            quiet=False,
            framework=framework,
            loader=manifest.loader,
            batching=batching,
        )
    booster.set_param({"nthread": 1})
    return _XGBoostBooster(
        booster, rows, framework=framework, loader=manifest.loader, batching=batching
    )


def _load_lightgbm(package: _Package) -> LoadedModel:
    directory, manifest, batching = package.directory, package.manifest, package.batching
    import lightgbm

    name = _model_file(directory, manifest, ("model.txt",), (".txt",))
    text = _read_verified(directory, manifest, name).decode("utf-8", errors="replace")
    try:
        booster = lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as exc:
        raise InvalidSpecError(f"LightGBM cannot load {directory / name}: {exc}") from None
    # LightGBM names unnamed features Column_0, Column_1, ...: those are no names to send.
    recorded: list[str] = booster.feature_name()
    model_names = (
        None if recorded == [f"Column_{index}" for index in range(len(recorded))] else recorded
    )
    count, names, dtypes = _reconcile(
        directory, manifest.signature, booster.num_feature(), model_names
    )
    rows = _Rows(n_features=count, names=names, dtypes=dtypes)
    return _LightGBM(
        booster,
        rows,
        framework=manifest.framework or "lightgbm",
        loader=manifest.loader,
        batching=batching,
    )


_LOADERS: Mapping[str, Callable[[_Package], LoadedModel]] = {
    "joblib": _load_joblib,
    "skops": _load_skops,
    "onnx": _load_onnx,
    "mlflow": _load_mlflow,
    "xgboost-json": _load_xgboost,
    "lightgbm-txt": _load_lightgbm,
}


def load(
    path: str | os.PathLike[str],
    *,
    manifest_sha256: str | None = None,
    trust: bool = False,
    batching: bool | None = None,
) -> LoadedModel:
    """Verify a model package and load its model for serving.

    Blocks while the files are hashed and the model is loaded (seconds for MLflow, which is
    slow to import). Nothing in the package reaches a framework before it has been verified.

    Args:
        path: The package directory.
        manifest_sha256: The manifest's sha256 recorded when the package was registered. A
            package whose loader runs code on load (joblib, most MLflow models) is refused
            without it unless ``trust`` is True.
        trust: Load what cannot be checked against a stored hash (see
            :func:`mlport.package.open_package`); the files are still checked against the
            manifest.
        batching: Whether the server may predict rows of several requests together; True when
            None.

    Returns:
        The loaded model.

    Raises:
        IntegrityError: A file or the manifest does not match its recorded sha256, or the
            package would run code on load and cannot be checked.
        InvalidSpecError: No manifest (and not ``trust``), a loader this server cannot serve,
            or a model file its framework cannot read.
        NotFoundError: The directory does not exist.
        ImportError: The framework the package needs is not installed.
    """
    manifest = open_package(path, trust=trust, manifest_sha256=manifest_sha256)
    loader = _LOADERS.get(manifest.loader)
    if loader is None:
        raise InvalidSpecError(
            f"the model server cannot load {path}: its loader is {manifest.loader!r}; it serves "
            f"{', '.join(SERVED_LOADERS)}. Save the model in one of those formats"
        )
    return loader(
        _Package(
            directory=pathlib.Path(path),
            manifest=manifest,
            batching=True if batching is None else batching,
            checked=manifest_sha256 is not None or trust,
        )
    )
