"""Provider discovery through real entry points, lazy import, and the capability table."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mlport
from mlport import MissingDependencyError, NotSupportedError, ProviderNotFoundError, providers


def test_entry_points_are_discovered() -> None:
    found = providers.available()
    assert {"dummy", "dummy-limited", "dummy-nosdk"} <= set(found)
    assert found["dummy"].distribution == "mlport-dummy"


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        providers.available()["evil"] = providers.available()["dummy"]  # type: ignore[index]


def test_implementation_is_imported_on_first_use() -> None:
    code = (
        "import sys, mlport\n"
        "ml = mlport.connect('dummy')\n"
        "assert 'mlport_dummy.cloud' not in sys.modules, 'imported at connect'\n"
        "ml.training\n"
        "assert 'mlport_dummy.cloud' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_provider_lists_installed_ones() -> None:
    with pytest.raises(ProviderNotFoundError) as info:
        mlport.connect("nimbus")
    assert "'nimbus'" in str(info.value) and "dummy" in str(info.value)


def test_known_but_missing_provider_gives_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import MappingProxyType

    from mlport import providers

    known = {**providers.KNOWN_PROVIDERS, "othercloud": "mlport-othercloud"}
    monkeypatch.setattr(providers, "KNOWN_PROVIDERS", MappingProxyType(known))
    with pytest.raises(ProviderNotFoundError, match="pip install mlport-othercloud"):
        mlport.connect("othercloud", region="us-east-1")


def test_missing_sdk_gives_pip_command() -> None:
    with pytest.raises(MissingDependencyError) as info:
        mlport.connect("dummy-nosdk")
    assert "mlport_dummy_missing_sdk" in str(info.value)
    assert "pip install 'mlport-dummy[sdk]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_unsupported_service_and_feature_raise_not_supported() -> None:
    ml = mlport.connect("dummy-limited")
    with pytest.raises(NotSupportedError, match="dummy-limited.*notebook"):
        ml.notebooks.create("x")
    with pytest.raises(NotSupportedError, match="jobs are kept for ever"):
        ml.training.delete("x")
    assert not ml.training.supports("training.delete")
    assert ml.training.supports("training.cancel")


def test_unknown_feature_in_capability_table_is_refused() -> None:
    from mlport.providers import ProviderConfig, ProviderSpec

    with pytest.raises(ValueError, match="training.teleport"):
        ProviderSpec("x", ProviderConfig, "m:C", "x", unsupported={"training.teleport": "no"})
