"""Name rules: portable at construction, per provider at submit."""

from __future__ import annotations

import pytest

from mlport import InvalidSpecError, names


@pytest.mark.parametrize("name", ["churn", "churn-v2", "a.b_c-d", "X1"])
def test_portable_names(name: str) -> None:
    assert names.check_portable(name) == name


@pytest.mark.parametrize("name", ["", " x", "a b", "_x", "x/y", "é", "x" * 256])
def test_names_no_provider_accepts(name: str) -> None:
    with pytest.raises(InvalidSpecError, match="portable-name"):
        names.check_portable(name)


@pytest.mark.parametrize(
    ("name", "kind", "provider", "rule"),
    [
        ("my_job", "job", "sagemaker", "sagemaker-name"),
        ("x" * 64, "endpoint", "sagemaker", "sagemaker-name"),
        ("ab", "endpoint", "azureml", "azureml-endpoint-name"),
        ("1endpoint", "endpoint", "azureml", "azureml-endpoint-name"),
        ("Dev-Box", "notebook", "vertex", "vertex-instance-id"),
        ("x" * 129, "job", "onprem", "onprem-name"),
    ],
)
def test_provider_rules_name_rule_and_provider(
    name: str, kind: str, provider: str, rule: str
) -> None:
    with pytest.raises(InvalidSpecError) as info:
        names.check(name, kind, provider)  # type: ignore[arg-type]
    assert rule in str(info.value)
    assert repr(provider) in str(info.value)


def test_refusals_for_portable_check() -> None:
    refused = names.refusals("my_model.v2", "endpoint")
    assert set(refused) == {"sagemaker", "azureml"}
    assert names.refusals("churn-api", "endpoint") == {}
