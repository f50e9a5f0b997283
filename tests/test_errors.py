"""The error tree: builtins matched, messages redacted, the docstring drawing complete."""

from __future__ import annotations

import pickle

import pytest

import mlport.errors as errors

BUILTINS = {
    "ConfigError": ValueError,
    "ProviderNotFoundError": LookupError,
    "MissingDependencyError": ImportError,
    "InvalidSpecError": ValueError,
    "NotFoundError": LookupError,
    "AlreadyExistsError": FileExistsError,
    "ConflictError": RuntimeError,
    "PermissionDeniedError": PermissionError,
    "QuotaExceededError": RuntimeError,
    "ThrottledError": RuntimeError,
    "TransientError": ConnectionError,
    "NotSupportedError": NotImplementedError,
    "JobFailedError": RuntimeError,
    "DeploymentFailedError": RuntimeError,
    "WaitTimeoutError": TimeoutError,
    "IntegrityError": ValueError,
}


@pytest.mark.parametrize(("name", "builtin"), BUILTINS.items())
def test_each_error_is_an_mlport_error_and_its_builtin(name: str, builtin: type) -> None:
    cls = getattr(errors, name)
    error = cls("boom", provider="p", resource="r")
    assert isinstance(error, errors.MlportError)
    assert isinstance(error, builtin)
    assert str(error) == "boom"
    assert name in errors.__doc__  # the tree in the docstring names every class


def test_every_public_error_is_in_the_table() -> None:
    public = {n for n in errors.__all__ if n != "MlportError"}
    assert public == set(BUILTINS)


def test_errors_pickle_with_their_attributes() -> None:
    error = errors.ThrottledError("slow down", provider="sagemaker", retry_after=3.0)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is errors.ThrottledError
    assert (clone.provider, clone.retry_after, str(clone)) == ("sagemaker", 3.0, "slow down")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "request failed: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abcdefgh",
            "eyJhbGciOiJIUzI1NiJ9",
        ),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY bad", "wJalrXUtnFEMI"),
        (
            "DefaultEndpointsProtocol=https;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6;",
            "Eby8vdM02",
        ),
        (
            "GET https://acct.blob.core.windows.net/c/b?sv=2021&sig=AbCdEf%2B123456&se=1 403",
            "AbCdEf",
        ),
        ("cannot reach postgresql://ml:hunter22secret@db:5432/mlflow", "hunter22secret"),
        ('{"client_secret": "s3cr3t-value-123"}', "s3cr3t-value-123"),
    ],
)
def test_credentials_never_reach_messages(text: str, secret: str) -> None:
    error = errors.PermissionDeniedError(text)
    assert secret not in str(error)
    assert secret not in repr(error)
    assert "***" in str(error)


def test_registered_secrets_are_masked() -> None:
    from mlport._redact import register_secret

    register_secret("tok-1234567890-zz")
    error = errors.TransientError("server said tok-1234567890-zz is wrong")
    assert "tok-1234567890-zz" not in str(error)


def test_job_failed_error_carries_reason() -> None:
    error = errors.JobFailedError("job x ended FAILED: exit 1", failure_reason="exit 1")
    assert error.failure_reason == "exit 1"
