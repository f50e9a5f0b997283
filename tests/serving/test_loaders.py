"""Loading model packages for serving: every format, verification first, request validation."""

from __future__ import annotations

import math
import os
import pathlib
import pickle
import random
import subprocess
import sys
import warnings
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # type: ignore[import-untyped]  # noqa: E402
from sklearn.ensemble import (  # type: ignore[import-untyped]  # noqa: E402
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import (  # type: ignore[import-untyped]  # noqa: E402
    LinearRegression,
    LogisticRegression,
)
from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]  # noqa: E402
from sklearn.preprocessing import (  # type: ignore[import-untyped]  # noqa: E402
    FunctionTransformer,
    OneHotEncoder,
    StandardScaler,
)

import mlport.serving.loaders as loaders  # noqa: E402
from mlport import package, runtime  # noqa: E402
from mlport.errors import IntegrityError, InvalidSpecError, NotSupportedError  # noqa: E402
from mlport.package import build, manifest_sha256  # noqa: E402
from mlport.serving.loaders import load  # noqa: E402
from mlport.serving.model import InputError, ServedModel  # noqa: E402

N_FEATURES = 20
NAMES = [f"x{index}" for index in range(N_FEATURES)]


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(120, N_FEATURES))
    labels = (features[:, 0] + 0.5 * features[:, 1] - features[:, 2] > 0).astype(int)
    return features, labels


@pytest.fixture(scope="module")
def logistic(data: tuple[Any, Any]) -> LogisticRegression:
    features, labels = data
    return LogisticRegression(max_iter=500).fit(features, labels)


@pytest.fixture(scope="module")
def forest(data: tuple[Any, Any]) -> RandomForestClassifier:
    features, labels = data
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(features, labels)


@pytest.fixture(scope="module")
def named_logistic(data: tuple[Any, Any]) -> LogisticRegression:
    """A model fitted on a DataFrame: it knows its feature names."""
    pd = pytest.importorskip("pandas")
    features, labels = data
    return LogisticRegression(max_iter=500).fit(pd.DataFrame(features, columns=NAMES), labels)


def _joblib_package(directory: pathlib.Path, model: object, **build_args: Any) -> str:
    import joblib  # type: ignore[import-untyped]

    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    build(directory, **build_args)
    return manifest_sha256(directory)


def _skops_package(directory: pathlib.Path, model: object, **build_args: Any) -> None:
    skops_io = pytest.importorskip("skops.io")
    directory.mkdir(parents=True, exist_ok=True)
    skops_io.dump(model, directory / "model.skops")
    build(directory, **build_args)


class _Marker:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def _write_evil_pickle(target: pathlib.Path, marker: pathlib.Path) -> None:
    target.write_bytes(pickle.dumps(_Marker(marker)))


# --- every format loads and predicts as its framework does ------------------------------------------


def test_joblib_package_predicts_like_the_model(
    tmp_path: pathlib.Path, data: tuple[Any, Any], logistic: LogisticRegression
) -> None:
    features, _ = data
    stored = _joblib_package(tmp_path / "pkg", logistic)

    served = load(tmp_path / "pkg", manifest_sha256=stored)

    assert isinstance(served, ServedModel)
    assert (served.loader, served.framework, served.n_features) == ("joblib", "sklearn", 20)
    assert served.batching is True
    inputs = served.validate(features.tolist())
    assert inputs.dtype == np.float64 and inputs.flags.c_contiguous
    predictions = served.predict(inputs)
    assert predictions == logistic.predict(features).tolist()
    assert all(type(label) is int for label in predictions)
    assert np.allclose(served.proba(inputs), logistic.predict_proba(features))


def test_skops_package_of_a_forest_predicts_like_the_model(
    tmp_path: pathlib.Path, data: tuple[Any, Any], forest: RandomForestClassifier
) -> None:
    features, _ = data
    pytest.importorskip("skops.io")
    runtime.save_model(forest, path=tmp_path / "pkg")

    served = load(tmp_path / "pkg", manifest_sha256=manifest_sha256(tmp_path / "pkg"))

    assert served.loader == "skops"
    assert served.predict(served.validate(features.tolist())) == forest.predict(features).tolist()


def test_skops_tree_needs_a_stored_hash_or_trust(
    tmp_path: pathlib.Path, forest: RandomForestClassifier
) -> None:
    # skops leaves scikit-learn's compiled Tree untrusted: a crafted one reads out of bounds.
    pytest.importorskip("skops.io")
    runtime.save_model(forest, path=tmp_path / "pkg")

    with pytest.raises(IntegrityError, match=r"sklearn\.tree\._tree\.Tree.*manifest_sha256"):
        load(tmp_path / "pkg")
    assert load(tmp_path / "pkg", trust=True).n_features == 20


def test_skops_file_with_a_foreign_type_is_refused(tmp_path: pathlib.Path) -> None:
    _skops_package(tmp_path / "pkg", FunctionTransformer(func=math.sqrt))

    with pytest.raises(InvalidSpecError, match=r"math\.sqrt"):
        load(tmp_path / "pkg")


def test_onnx_package_predicts_like_onnxruntime_and_the_model(
    tmp_path: pathlib.Path, data: tuple[Any, Any], logistic: LogisticRegression
) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    features, _ = data
    proto = skl2onnx.to_onnx(logistic, features[:1].astype(np.float32))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.onnx").write_bytes(proto.SerializeToString())
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg")

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    own = session.run(["output_label"], {"X": features.astype(np.float32)})[0]
    inputs = served.validate(features.tolist())
    assert inputs.dtype == np.float32
    assert served.n_features == 20
    assert served.predict(inputs) == own.tolist() == logistic.predict(features).tolist()
    probabilities = served.proba(inputs)
    assert np.allclose(probabilities, logistic.predict_proba(features), atol=1e-5)


def test_onnx_regressor_gives_one_value_per_row(
    tmp_path: pathlib.Path, data: tuple[Any, Any]
) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    features, _ = data
    regressor = LinearRegression().fit(features, features[:, 0] * 3.0)
    (tmp_path / "pkg").mkdir()
    proto = skl2onnx.to_onnx(regressor, features[:1].astype(np.float32))
    (tmp_path / "pkg" / "model.onnx").write_bytes(proto.SerializeToString())
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg")

    predictions = served.predict(served.validate(features[:5].tolist()))
    assert len(predictions) == 5 and all(isinstance(value, float) for value in predictions)
    assert np.allclose(predictions, regressor.predict(features[:5]), atol=1e-4)
    with pytest.raises(NotSupportedError):
        served.proba(served.validate(features[:1].tolist()))


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning")
def test_mlflow_package_with_named_columns(tmp_path: pathlib.Path, data: tuple[Any, Any]) -> None:
    pd = pytest.importorskip("pandas")
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature

    features, labels = data
    frame = pd.DataFrame(features, columns=NAMES)
    frame["x3"] = (frame["x3"] * 10).round().astype("int64")
    model = LogisticRegression(max_iter=500).fit(frame, labels)
    mlflow_sklearn.save_model(
        model, str(tmp_path / "pkg"), signature=infer_signature(frame, model.predict(frame))
    )
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg", manifest_sha256=manifest_sha256(tmp_path / "pkg"))

    assert served.loader == "mlflow"
    assert served.feature_names == NAMES
    expected = model.predict(frame).tolist()
    assert served.predict(served.validate(frame.to_numpy().tolist())) == expected
    records = frame.to_dict("records")
    assert served.predict(served.validate(records)) == expected
    # x3 is a long in the MLflow signature: a fraction is named, not truncated.
    with pytest.raises(InputError, match=r"row 0, feature 'x3'.*whole number"):
        served.validate([{**records[0], "x3": 1.5}])


def test_mlflow_package_with_a_tensor_signature(
    tmp_path: pathlib.Path, data: tuple[Any, Any], forest: RandomForestClassifier
) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import infer_signature

    features, _ = data
    mlflow_sklearn.save_model(
        forest,
        str(tmp_path / "pkg"),
        signature=infer_signature(features, forest.predict(features)),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg", trust=True)

    assert served.n_features == 20 and served.feature_names is None
    assert served.predict(served.validate(features.tolist())) == forest.predict(features).tolist()
    with pytest.raises(InputError, match="row 0 has 3 values; the model takes 20 features"):
        served.validate([[1.0, 2.0, 3.0]])


def test_xgboost_classifier_serves_labels(tmp_path: pathlib.Path, data: tuple[Any, Any]) -> None:
    xgboost = pytest.importorskip("xgboost")
    features, labels = data
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(features, labels)
    (tmp_path / "pkg").mkdir()
    model.save_model(tmp_path / "pkg" / "model.json")
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg")

    assert (served.loader, served.framework, served.n_features) == ("xgboost-json", "xgboost", 20)
    inputs = served.validate(features.tolist())
    assert served.predict(inputs) == model.predict(features).tolist()
    assert np.allclose(served.proba(inputs), model.predict_proba(features))


def test_xgboost_booster_serves_what_booster_predict_returns(
    tmp_path: pathlib.Path, data: tuple[Any, Any]
) -> None:
    xgboost = pytest.importorskip("xgboost")
    features, labels = data
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=5,
    )
    (tmp_path / "pkg").mkdir()
    booster.save_model(tmp_path / "pkg" / "model.json")
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg")

    predictions = served.predict(served.validate(features.tolist()))
    assert np.allclose(predictions, booster.predict(xgboost.DMatrix(features)))


def test_lightgbm_booster_predicts_like_the_model(
    tmp_path: pathlib.Path, data: tuple[Any, Any]
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, labels = data
    model = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1, n_jobs=1)
    model.fit(features, labels)
    (tmp_path / "pkg").mkdir()
    model.booster_.save_model(tmp_path / "pkg" / "model.txt")
    build(tmp_path / "pkg")

    served = load(tmp_path / "pkg")

    assert (served.loader, served.n_features, served.feature_names) == ("lightgbm-txt", 20, None)
    predictions = served.predict(served.validate(features.tolist()))
    assert np.allclose(predictions, model.booster_.predict(features))
    assert np.allclose(predictions, model.predict_proba(features)[:, 1])


# --- verification before loading ----------------------------------------------------------------


def test_tampered_joblib_file_is_refused_before_it_is_unpickled(
    tmp_path: pathlib.Path, logistic: LogisticRegression
) -> None:
    stored = _joblib_package(tmp_path / "pkg", logistic)
    marker = tmp_path / "unpickled"
    _write_evil_pickle(tmp_path / "pkg" / "model.joblib", marker)

    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        load(tmp_path / "pkg", manifest_sha256=stored)
    with pytest.raises(IntegrityError, match=r"model\.joblib"):
        load(tmp_path / "pkg", trust=True)

    assert not marker.exists()


def test_tampered_file_and_rebuilt_manifest_are_caught_by_the_stored_hash(
    tmp_path: pathlib.Path, logistic: LogisticRegression
) -> None:
    stored = _joblib_package(tmp_path / "pkg", logistic)
    marker = tmp_path / "unpickled"
    _write_evil_pickle(tmp_path / "pkg" / "model.joblib", marker)
    build(tmp_path / "pkg")

    with pytest.raises(IntegrityError, match="mlport-model.json"):
        load(tmp_path / "pkg", manifest_sha256=stored)

    assert not marker.exists()


def test_file_swapped_after_verification_is_not_loaded(
    tmp_path: pathlib.Path, logistic: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _joblib_package(tmp_path / "pkg", logistic)
    marker = tmp_path / "unpickled"

    def open_then_swap(*args: Any, **kwargs: Any) -> Any:
        manifest = package.open_package(*args, **kwargs)
        _write_evil_pickle(tmp_path / "pkg" / "model.joblib", marker)
        return manifest

    monkeypatch.setattr(loaders, "open_package", open_then_swap)

    with pytest.raises(IntegrityError, match="changed after the package was verified"):
        load(tmp_path / "pkg", manifest_sha256=stored)
    assert not marker.exists()


def test_code_executing_package_needs_a_stored_hash_or_trust(
    tmp_path: pathlib.Path, data: tuple[Any, Any], logistic: LogisticRegression
) -> None:
    features, _ = data
    _joblib_package(tmp_path / "pkg", logistic)

    with pytest.raises(IntegrityError, match="manifest_sha256"):
        load(tmp_path / "pkg")

    served = load(tmp_path / "pkg", trust=True)
    assert served.predict(served.validate(features[:3].tolist())) == (
        logistic.predict(features[:3]).tolist()
    )


def test_bare_directory_needs_trust(tmp_path: pathlib.Path, logistic: LogisticRegression) -> None:
    skops_io = pytest.importorskip("skops.io")
    (tmp_path / "bare").mkdir()
    skops_io.dump(logistic, tmp_path / "bare" / "model.skops")

    with pytest.raises(InvalidSpecError, match="trust=True"):
        load(tmp_path / "bare")
    assert load(tmp_path / "bare", trust=True).n_features == 20


def test_custom_loader_is_refused_naming_what_the_server_loads(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "predictor.py").write_text("def predict(rows):\n    return rows\n")
    build(tmp_path / "pkg", loader="custom")

    with pytest.raises(InvalidSpecError) as caught:
        load(tmp_path / "pkg", manifest_sha256=manifest_sha256(tmp_path / "pkg"))

    message = str(caught.value)
    assert "'custom'" in message
    for served_loader in ("joblib", "skops", "onnx", "mlflow", "xgboost-json", "lightgbm-txt"):
        assert served_loader in message


def test_signature_that_contradicts_the_model_is_refused(
    tmp_path: pathlib.Path, logistic: LogisticRegression
) -> None:
    signature = {"inputs": [{"name": f"f{index}", "dtype": "float64"} for index in range(5)]}

    stored = _joblib_package(tmp_path / "pkg", logistic, signature=signature)

    with pytest.raises(InvalidSpecError, match="lists 5 inputs, but the model takes 20"):
        load(tmp_path / "pkg", manifest_sha256=stored)


def test_batching_can_be_turned_off(tmp_path: pathlib.Path, logistic: LogisticRegression) -> None:
    stored = _joblib_package(tmp_path / "pkg", logistic)

    assert load(tmp_path / "pkg", manifest_sha256=stored, batching=False).batching is False


# --- request validation ---------------------------------------------------------------------------


@pytest.fixture
def named(tmp_path: pathlib.Path, named_logistic: LogisticRegression) -> loaders.LoadedModel:
    stored = _joblib_package(tmp_path / "named", named_logistic)
    return load(tmp_path / "named", manifest_sha256=stored)


def test_named_model_takes_rows_by_position_or_by_name_in_any_order(
    named: loaders.LoadedModel, data: tuple[Any, Any], named_logistic: LogisticRegression
) -> None:
    pd = pytest.importorskip("pandas")
    features, _ = data
    expected = named_logistic.predict(pd.DataFrame(features, columns=NAMES)).tolist()
    shuffled = NAMES[:]
    random.Random(3).shuffle(shuffled)
    records = [{name: row[NAMES.index(name)] for name in shuffled} for row in features.tolist()]

    assert named.feature_names == NAMES
    with warnings.catch_warnings():
        # No "X does not have valid feature names" per request.
        warnings.simplefilter("error")
        assert named.predict(named.validate(features.tolist())) == expected
    assert named.predict(named.validate(records)) == expected
    mixed = [records[0], features[1].tolist()]
    assert named.predict(named.validate(mixed)) == expected[:2]


def test_model_that_selects_columns_by_name_gets_them_by_name(
    tmp_path: pathlib.Path, data: tuple[Any, Any]
) -> None:
    pd = pytest.importorskip("pandas")
    features, labels = data
    frame = pd.DataFrame(features, columns=NAMES)
    model = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), ["x2", "x0", "x1"])]),
        LogisticRegression(),
    ).fit(frame, labels)
    served = load(tmp_path / "pkg", manifest_sha256=_joblib_package(tmp_path / "pkg", model))

    rows = frame.to_dict("records")

    assert served.predict(served.validate(rows)) == model.predict(frame).tolist()
    assert np.allclose(served.proba(served.validate(rows[:3])), model.predict_proba(frame[:3]))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [[0.0] * 20, [0.0] * 20, [0.0] * 20, [0.0] * 5],
            r"^row 3 has 5 values; the model takes 20 features \(x0, x1, x2, x3, x4, \.\.\.\)$",
        ),
        ([{**{name: 0.0 for name in NAMES}, "bogus": 1.0}], r"row 0 has unknown feature 'bogus'"),
        (
            [{name: 0.0 for name in NAMES if name not in {"x7", "x9"}}],
            r"row 0 has missing features 'x7', 'x9'",
        ),
        ([[0.0] * 19 + ["abc"]], r"row 0, feature 'x19': the string 'abc' is not a number"),
        ([[0.0] * 19 + ["1.5"]], r"row 0, feature 'x19': the string '1.5' is not a number"),
        ([[0.0] * 20, [0.0] * 4 + [math.nan] + [0.0] * 15], r"row 1, feature 'x4': NaN"),
        ([[0.0] * 4 + [None] + [0.0] * 15], r"row 0, feature 'x4': null is not allowed"),
        ([[0.0] * 4 + [math.inf] + [0.0] * 15], r"row 0, feature 'x4': inf is not a finite"),
        ([[0.0] * 4 + [[1.0]] + [0.0] * 15], r"row 0, feature 'x4': a list is not a number"),
        ([0.0] * 20, r"row 0 is 0\.0, not a list.*wrapped in a list"),
        ([], r"empty"),
        ({"x0": 1.0}, r"expected a list of rows"),
        ("0,1,2", r"expected a list of rows"),
    ],
)
def test_bad_rows_are_named(named: loaders.LoadedModel, rows: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        named.validate(rows)


def test_dict_rows_need_feature_names(tmp_path: pathlib.Path, logistic: LogisticRegression) -> None:
    served = load(tmp_path / "pkg", manifest_sha256=_joblib_package(tmp_path / "pkg", logistic))

    with pytest.raises(InputError, match="no feature names; send each row as a list of 20"):
        served.validate([{"x0": 1.0}])


def test_booleans_count_as_one_and_zero(named: loaders.LoadedModel) -> None:
    inputs = named.validate([[True, False] + [0] * 18])

    assert inputs.tolist() == [[1.0, 0.0] + [0.0] * 18]


def test_signature_dtypes_decide_what_each_feature_takes(
    tmp_path: pathlib.Path, data: tuple[Any, Any]
) -> None:
    features, labels = data
    model = HistGradientBoostingClassifier(max_iter=5).fit(features[:, :3], labels)
    signature = {
        "inputs": [
            {"name": "age", "dtype": "int64"},
            {"name": "income", "dtype": "float64"},
            {"name": "score", "dtype": "float64"},
        ]
    }
    _skops_package(tmp_path / "pkg", model, signature=signature)
    served = load(tmp_path / "pkg", trust=True)

    # The model handles missing values: null and NaN are taken for float features.
    inputs = served.validate([{"age": 3, "income": None, "score": math.nan}])
    assert inputs.dtype == np.float64
    assert inputs[0, 0] == 3 and math.isnan(inputs[0, 1]) and math.isnan(inputs[0, 2])
    assert len(served.predict(inputs)) == 1
    with pytest.raises(InputError, match=r"row 0, feature 'age': 2\.5 is not a whole number"):
        served.validate([[2.5, 1.0, 1.0]])
    with pytest.raises(InputError, match=r"row 0, feature 'age': NaN is not allowed.*int64"):
        served.validate([[math.nan, 1.0, 1.0]])


def test_string_features_are_taken_where_the_signature_says_object(
    tmp_path: pathlib.Path,
) -> None:
    table = np.array(
        [["red", 1.0], ["blue", 2.0], ["red", 3.0], ["green", 0.5], ["blue", 2.5]], dtype=object
    )
    model = make_pipeline(
        ColumnTransformer(
            [("colour", OneHotEncoder(handle_unknown="ignore"), [0]), ("size", "passthrough", [1])]
        ),
        LogisticRegression(),
    ).fit(table, [0, 1, 0, 1, 1])
    signature = {
        "inputs": [{"name": "colour", "dtype": "object"}, {"name": "size", "dtype": "float64"}]
    }
    _skops_package(tmp_path / "pkg", model, signature=signature)
    served = load(tmp_path / "pkg")

    rows = [{"size": 2.0, "colour": "blue"}, {"colour": "red", "size": 1.0}]
    expected = model.predict(np.array([["blue", 2.0], ["red", 1.0]], dtype=object)).tolist()
    inputs = served.validate(rows)
    # Numbers stay numbers beside strings.
    assert inputs.tolist() == [["blue", 2.0], ["red", 1.0]]
    assert served.predict(inputs) == expected
    with pytest.raises(
        InputError, match=r"row 1, feature 'size': the string 'big' is not a number"
    ):
        served.validate([["red", 1.0], ["red", "big"]])


def test_numpy_input_from_python_callers_is_taken_as_is(
    named: loaders.LoadedModel, data: tuple[Any, Any]
) -> None:
    features, _ = data
    fortran = np.asfortranarray(features[:4])

    inputs = named.validate(fortran)

    assert inputs.flags.c_contiguous and np.array_equal(inputs, features[:4])


def test_validated_inputs_of_several_requests_predict_together(
    named: loaders.LoadedModel, data: tuple[Any, Any]
) -> None:
    features, _ = data
    parts = [named.validate(features[:2].tolist()), named.validate(features[2:5].tolist())]

    batch = named.concat(parts)

    assert named.size(batch) == 5
    assert named.predict(batch) == named.predict(named.validate(features[:5].tolist()))


# --- import cost ------------------------------------------------------------------------------------


def test_importing_the_loaders_imports_no_framework() -> None:
    code = (
        "import sys, mlport.serving.loaders\n"
        "heavy = sorted(m for m in ('numpy', 'pandas', 'sklearn', 'joblib', 'skops', "
        "'onnxruntime', 'mlflow', 'xgboost', 'lightgbm') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(loaders.__file__).parents[2])},
    )

    assert result.stdout.strip() == ""
