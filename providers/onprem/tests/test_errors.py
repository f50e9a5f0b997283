"""Every MLflow, HTTP and file-system error the on-prem table lists maps to its mlport error."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import urllib3.connection
import urllib3.exceptions
from mlport_onprem import _errors, _mlflow

import mlport
from mlport.errors import MlportError, NotFoundError, PermissionDeniedError, TransientError

_mlflow.prepare_environment()

from mlflow.exceptions import MlflowException, RestException  # noqa: E402
from mlflow.protos.databricks_pb2 import ErrorCode  # noqa: E402
from mlflow.utils.rest_utils import verify_rest_response  # noqa: E402

TABLE = sorted(_errors.BY_CODE.items())


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_a_code_the_server_answers_with_maps(code: str, expected: type[MlportError]) -> None:
    error = RestException(
        {"error_code": code, "message": "Registered Model with name=churn: went wrong"}
    )
    mapped = _errors.translate(error)
    assert type(mapped) is expected
    assert "name=churn" in str(mapped)
    assert not str(mapped).startswith(code), "the code is said once, by the class"


@pytest.mark.parametrize(
    ("code", "expected"), [(code, cls) for code, cls in TABLE if code != "INTERNAL_ERROR"]
)
def test_a_code_mlflow_raises_in_process_maps(code: str, expected: type[MlportError]) -> None:
    error = MlflowException(
        "Model Version (name=churn, version=3)", error_code=ErrorCode.Value(code)
    )
    mapped = _errors.translate(error)
    assert type(mapped) is expected
    assert "name=churn, version=3" in str(mapped)


def test_every_listed_code_is_an_mlflow_code() -> None:
    for code in _errors.BY_CODE:
        assert ErrorCode.Name(ErrorCode.Value(code)) == code


def test_an_internal_error_raised_in_process_is_not_retried() -> None:
    mapped = _errors.translate(MlflowException("unexpected state in the client"))
    assert type(mapped) is MlportError
    assert "unexpected state in the client" in str(mapped)


def test_a_code_outside_the_table_stays_an_mlport_error() -> None:
    mapped = _errors.translate(
        MlflowException("dry run failed", error_code=ErrorCode.Value("DRY_RUN_FAILED"))
    )
    assert type(mapped) is MlportError
    assert "DRY_RUN_FAILED" in str(mapped)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(503, TransientError), (500, TransientError), (403, PermissionDeniedError)],
)
def test_a_reply_without_a_json_body_maps_by_its_http_status(
    status: int, expected: type[MlportError]
) -> None:
    response = requests.Response()
    response.status_code = status
    response._content = b"<html>upstream proxy says no</html>"
    with pytest.raises(MlflowException) as raised:
        verify_rest_response(response, "/api/2.0/mlflow/registered-models/get")
    assert type(_errors.translate(raised.value)) is expected


@pytest.mark.parametrize(
    "cause",
    [
        requests.ConnectionError("Connection refused"),
        requests.Timeout("read timed out"),
        urllib3.exceptions.NewConnectionError(
            urllib3.connection.HTTPConnection("127.0.0.1", 5000), "Failed to establish a connection"
        ),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_a_connection_failure_wrapped_by_mlflow_is_transient(cause: Exception) -> None:
    with pytest.raises(MlflowException) as raised:
        try:
            raise cause
        except Exception as exc:
            # As MLflow's REST client does: a new exception while handling the cause, no "from".
            raise MlflowException(  # noqa: B904
                f"API request to http://127.0.0.1:5000/api/2.0/mlflow/x failed with exception {exc}"
            )
    mapped = _errors.translate(raised.value)
    assert type(mapped) is TransientError
    assert "127.0.0.1:5000" in str(mapped)


def test_file_system_errors(tmp_path: Path) -> None:
    missing = tmp_path / "mlartifacts" / "run" / "model"
    not_found = _errors.translate(FileNotFoundError(2, "No such file or directory", str(missing)))
    assert type(not_found) is NotFoundError
    assert str(missing) in str(not_found)
    denied = _errors.translate(PermissionError(13, "Permission denied", str(missing)))
    assert type(denied) is PermissionDeniedError
    assert str(missing) in str(denied)
    assert _errors.translate(OSError(28, "No space left on device")) is None


def test_other_errors_are_left_alone() -> None:
    assert _errors.translate(ValueError("not ours")) is None


def test_the_provider_uses_the_table(tmp_path: Path) -> None:
    with mlport.connect("onprem", root=str(tmp_path / "root")) as ml:
        provider = ml.registry.provider
        mapped = provider.translate_error(
            MlflowException("Registered Model with name=churn not found", error_code=3002)
        )
    assert type(mapped) is NotFoundError
