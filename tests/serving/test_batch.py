"""Batch prediction over files: every format, chunked, rows named on error, nothing half-written."""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]  # noqa: E402

from mlport.errors import InvalidSpecError  # noqa: E402
from mlport.package import build, manifest_sha256  # noqa: E402
from mlport.serving import batch  # noqa: E402
from mlport.serving.loaders import LoadedModel, load  # noqa: E402

NAMES = ["a", "b", "c", "d"]
ROWS = 2_500
CHUNK = 300


@pytest.fixture(scope="module")
def frame() -> Any:
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal(size=(ROWS, len(NAMES))), columns=NAMES)


@pytest.fixture(scope="module")
def estimator(frame: Any) -> LogisticRegression:
    labels = (frame["a"] - frame["c"] > 0).astype(int)
    return LogisticRegression().fit(frame, labels)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, estimator: LogisticRegression) -> LoadedModel:
    import joblib  # type: ignore[import-untyped]

    folder = tmp_path_factory.mktemp("pkg")
    joblib.dump(estimator, folder / "model.joblib")
    build(folder)
    return load(folder, manifest_sha256=manifest_sha256(folder))


class Counting:
    """Wraps a model, recording how many rows each predict call got."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.feature_names = model.feature_names
        self.sizes: list[int] = []

    def validate(self, rows: Any) -> Any:
        return self.model.validate(rows)

    def predict(self, inputs: Any) -> list[Any]:
        self.sizes.append(len(inputs))
        return self.model.predict(inputs)


def _expected(estimator: LogisticRegression, frame: Any) -> list[int]:
    return [int(v) for v in estimator.predict(frame)]


def test_csv_larger_than_the_chunk_is_predicted_completely_chunk_by_chunk(
    tmp_path: pathlib.Path, model: LoadedModel, estimator: LogisticRegression, frame: Any
) -> None:
    source = tmp_path / "in" / "scores.csv"
    source.parent.mkdir()
    frame.to_csv(source, index=False)
    counting = Counting(model)
    progress: list[int] = []
    summary = batch.predict_files(
        counting,  # type: ignore[arg-type]
        source,
        tmp_path / "out",
        batch_size=CHUNK,
        on_progress=lambda done, _file: progress.append(done),
    )
    assert max(counting.sizes) == CHUNK and sum(counting.sizes) == ROWS
    assert progress[-1] == ROWS and len(progress) == -(-ROWS // CHUNK)
    with (tmp_path / "out" / "scores.predictions.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert [int(row["row_id"]) for row in written] == list(range(ROWS))
    assert [int(row["prediction"]) for row in written] == _expected(estimator, frame)
    record = json.loads((tmp_path / "out" / "_batch.json").read_text())
    assert record["rows"] == ROWS == summary.rows
    assert record["files"][0]["output"] == "scores.predictions.csv"


def test_csv_without_header_is_in_feature_order(
    tmp_path: pathlib.Path, model: LoadedModel, estimator: LogisticRegression, frame: Any
) -> None:
    source = tmp_path / "plain.csv"
    frame.head(50).to_csv(source, index=False, header=False)
    batch.predict_files(model, source, tmp_path / "out", batch_size=7)
    written = pd.read_csv(tmp_path / "out" / "plain.predictions.csv")
    assert written["prediction"].tolist() == _expected(estimator, frame.head(50))


def test_json_lines_objects_with_an_id_column(
    tmp_path: pathlib.Path, model: LoadedModel, estimator: LogisticRegression, frame: Any
) -> None:
    source = tmp_path / "rows.jsonl"
    part = frame.head(40)
    with source.open("w") as handle:
        for index, row in part.iterrows():
            handle.write(json.dumps({"id": f"c-{index}", **row.to_dict()}) + "\n")
    batch.predict_files(model, source, tmp_path / "out", batch_size=16, id_column="id")
    lines = (tmp_path / "out" / "rows.predictions.jsonl").read_text().splitlines()
    written = [json.loads(line) for line in lines]
    assert [row["row_id"] for row in written] == [f"c-{i}" for i in range(40)]
    assert [row["prediction"] for row in written] == _expected(estimator, part)


def test_parquet_with_columns_in_another_order_and_a_folder_of_files(
    tmp_path: pathlib.Path, model: LoadedModel, estimator: LogisticRegression, frame: Any
) -> None:
    pytest.importorskip("pyarrow")
    source = tmp_path / "in"
    (source / "day2").mkdir(parents=True)
    first, second = frame.iloc[:1200], frame.iloc[1200:]
    first[["d", "c", "b", "a"]].to_parquet(source / "day1.parquet", index=False)
    second.to_parquet(source / "day2" / "x.parquet", index=False)
    frame.head(5).to_csv(source / "small.csv", index=False)
    keyed = tmp_path / "keyed.parquet"
    second.assign(key=[f"k{i}" for i in range(len(second))]).to_parquet(keyed, index=False)
    with pytest.raises(InvalidSpecError, match="id_column='key': day1.parquet has no such column"):
        batch.predict_files(model, source, tmp_path / "bad", id_column="key")
    assert not list((tmp_path / "bad").rglob("*.part"))
    batch.predict_files(model, source / "day1.parquet", tmp_path / "out", batch_size=500)
    batch.predict_files(model, keyed, tmp_path / "out", batch_size=500, id_column="key")
    one = pd.read_parquet(tmp_path / "out" / "day1.predictions.parquet")
    two = pd.read_parquet(tmp_path / "out" / "keyed.predictions.parquet")
    assert one["row_id"].tolist() == list(range(1200))
    assert one["prediction"].tolist() == _expected(estimator, first)
    assert two["row_id"].tolist() == [f"k{i}" for i in range(len(second))]
    assert two["prediction"].tolist() == _expected(estimator, second)
    summary = batch.predict_files(model, source.parent / "in", tmp_path / "all", batch_size=999)
    assert [f["output"] for f in summary.files] == [
        "day1.predictions.parquet",
        "day2/x.predictions.parquet",
        "small.predictions.csv",
    ]


def test_a_bad_row_is_named_by_file_and_number_and_no_partial_output_stays(
    tmp_path: pathlib.Path, model: LoadedModel, frame: Any
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    frame.head(10).to_csv(source / "a.csv", index=False)
    broken = frame.head(700).copy().astype(object)
    broken.loc[612, "b"] = "n/a"
    broken.to_csv(source / "b.csv", index=False)
    with pytest.raises(InvalidSpecError, match=r"b\.csv row 612, feature 'b'") as caught:
        batch.predict_files(model, source, tmp_path / "out", batch_size=100)
    assert "n/a" in str(caught.value)
    assert (tmp_path / "out" / "a.predictions.csv").exists()
    assert not (tmp_path / "out" / "b.predictions.csv").exists()
    assert not list((tmp_path / "out").glob("*.part"))
    assert not (tmp_path / "out" / "_batch.json").exists()


def test_stop_between_chunks_leaves_no_partial_file(
    tmp_path: pathlib.Path, model: LoadedModel, frame: Any
) -> None:
    source = tmp_path / "big.csv"
    frame.to_csv(source, index=False)
    calls = iter(range(100))
    with pytest.raises(batch.BatchCancelled):
        batch.predict_files(
            model, source, tmp_path / "out", batch_size=100, should_stop=lambda: next(calls) >= 3
        )
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("a,b,c,d\n1,2,3\n", "x.csv", "line 2: 3 values where the header has 4"),
        ('{"a": 1}\n[1, 2]\n', "x.jsonl", "line 2: mixes objects and lists"),
        ("{not json\n", "x.jsonl", "line 1 is not JSON"),
        ("1,2,3,4\n", "x.txt", "unknown format '.txt'"),
    ],
)
def test_unreadable_input_gets_a_clear_error(
    tmp_path: pathlib.Path, model: LoadedModel, content: str, name: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidSpecError, match=message):
        batch.predict_files(model, tmp_path / name, tmp_path / "out")


def test_id_column_needs_names(tmp_path: pathlib.Path, model: LoadedModel) -> None:
    (tmp_path / "x.csv").write_text("1,2,3,4\n")
    with pytest.raises(InvalidSpecError, match="has no column names"):
        batch.predict_files(model, tmp_path / "x.csv", tmp_path / "out", id_column="id")


def test_empty_folder_and_missing_input(tmp_path: pathlib.Path, model: LoadedModel) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidSpecError, match="holds no"):
        batch.predict_files(model, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(InvalidSpecError, match="does not exist"):
        batch.predict_files(model, tmp_path / "nothing.csv", tmp_path / "out")


def test_csv_header_in_another_order_and_an_id_column(
    tmp_path: pathlib.Path, model: LoadedModel, estimator: LogisticRegression, frame: Any
) -> None:
    part = frame.head(30)
    source = tmp_path / "shuffled.csv"
    part[["d", "b", "a", "c"]].assign(key=range(100, 130)).to_csv(source, index=False)
    batch.predict_files(model, source, tmp_path / "out", batch_size=8, id_column="key")
    written = pd.read_csv(tmp_path / "out" / "shuffled.predictions.csv")
    assert written["row_id"].tolist() == list(range(100, 130))
    assert written["prediction"].tolist() == _expected(estimator, part)
