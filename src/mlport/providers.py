"""The registry of providers, discovered through the ``mlport.providers`` entry-point group.

An entry point names a light :class:`ProviderSpec` (importing it must not import any cloud SDK):
its config model, its capability table and the import path of the implementation, which is
imported on first use and cached. The registry is read-only: a third party adds a provider by
declaring an entry point in its own distribution::

    [project.entry-points."mlport.providers"]
    mycloud = "mlport_mycloud:provider"
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mlport.capabilities import FEATURES
from mlport.errors import MissingDependencyError, ProviderNotFoundError
from mlport.names import NameRule, ResourceKind

if TYPE_CHECKING:
    from mlport.services.base import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_PROVIDERS",
    "ProviderConfig",
    "ProviderSpec",
    "available",
    "get",
    "load_implementation",
]

ENTRY_POINT_GROUP = "mlport.providers"

KNOWN_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "onprem": "mlport-onprem",
        "sagemaker": "mlport-sagemaker",
        "vertex": "mlport-vertex",
        "azureml": "mlport-azureml",
    }
)
"""First-party providers and the distribution that installs each."""

SERVICES = ("training", "registry", "endpoints", "monitoring", "notebooks", "storage")


class ProviderConfig(BaseModel):
    """Keys every profile accepts. A provider subclasses it with its own keys.

    Fields named in a :func:`config_path_validator` are paths: relative ones (defaults included)
    resolve against the folder of mlport.toml.
    """

    # validate_default: path fields' defaults are rebased onto the folder of mlport.toml too.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    provider: str
    services: dict[str, str] = Field(
        default_factory=dict,
        description="Route a service to another profile: services = { training = 'local' }",
    )
    poll_interval: float = Field(1.0, gt=0, description="First delay between status polls, s")
    max_poll_interval: float = Field(30.0, gt=0, description="Longest delay between polls, s")
    retry_attempts: int = Field(6, ge=1, description="Tries of a throttled/transient call")
    retry_max_time: float = Field(120.0, gt=0, description="Seconds after which retries stop")

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, str]) -> dict[str, str]:
        for service in value:
            if service not in SERVICES:
                raise ValueError(
                    f"unknown service {service!r} in services; known: {', '.join(SERVICES)}"
                )
        return value


def _rebase(value: Any, info: ValidationInfo) -> Any:
    from pathlib import Path

    base = (info.context or {}).get("base_dir")
    if isinstance(value, str | Path) and base is not None and not Path(value).is_absolute():
        return str(Path(base) / value)
    return str(value) if isinstance(value, Path) else value


def config_path_validator(*fields: str) -> Any:
    """A validator for a provider config: these fields are paths relative to mlport.toml."""
    return field_validator(*fields, mode="before")(_rebase)


@dataclass(frozen=True)
class ProviderSpec:
    """What an entry point names: light metadata about a provider.

    Args:
        name: The provider's name in profiles (``provider = "sagemaker"``).
        config_model: Pydantic model of its profile section (subclass of ProviderConfig).
        implementation: ``"package.module:Class"`` of its :class:`~mlport.services.base.Provider`.
        distribution: The pip distribution that installs it.
        requires: Top-level modules its implementation needs (SDKs), checked before import.
        description: One line for ``mlport providers``.
        unsupported: Capability table: feature -> why the provider lacks it.
        name_rules: Resource-name rules, for third-party providers.
        catalog: Name of the compute catalog data file it resolves ``Compute`` against.
        extras: pip extra that installs the SDKs, if any (``mlport-x[sdk]``).
        iam_policy: ``"module:function"`` returning the provider's least-privilege policy
            document, called with the profile's settings as keywords it accepts.
    """

    name: str
    config_model: type[ProviderConfig]
    implementation: str
    distribution: str
    requires: tuple[str, ...] = ()
    description: str = ""
    unsupported: Mapping[str, str] = field(default_factory=dict)
    name_rules: Mapping[ResourceKind, NameRule] | None = None
    catalog: str | None = None
    extras: str | None = None
    iam_policy: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.unsupported) - set(FEATURES)
        if unknown:
            raise ValueError(f"provider {self.name!r}: unknown features {sorted(unknown)}")
        object.__setattr__(self, "unsupported", MappingProxyType(dict(self.unsupported)))

    def supports(self, feature: str) -> bool:
        """True unless the capability table lists ``feature`` or its service as missing."""
        service = feature.split(".", 1)[0]
        return feature not in self.unsupported and service not in self.unsupported

    @property
    def pip_command(self) -> str:
        """The command that installs this provider with its SDKs."""
        extra = f"[{self.extras}]" if self.extras else ""
        return f"pip install '{self.distribution}{extra}'"

    def check_dependencies(self, serving: str | None = None) -> None:
        """Raise if an SDK the provider needs cannot be found (nothing is imported).

        Raises:
            MissingDependencyError: naming the missing modules and the pip command that fixes it.
        """
        missing = self.missing_modules()
        if missing:
            role = f" (serving {serving})" if serving else ""
            raise MissingDependencyError(
                f"provider {self.name!r}{role} needs {', '.join(missing)}, which is not "
                f"installed; fix it with: {self.pip_command}",
                provider=self.name,
            )

    def missing_modules(self) -> list[str]:
        """The required SDK modules that cannot be found (nothing is imported)."""
        missing = []
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing


_lock = threading.Lock()
_implementations: dict[str, type[Provider]] = {}


@cache
def _discover() -> Mapping[str, ProviderSpec | Exception]:
    from importlib.metadata import entry_points

    found: dict[str, ProviderSpec | Exception] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            found[ep.name] = exc
            continue
        if not isinstance(spec, ProviderSpec):
            found[ep.name] = TypeError(f"entry point {ep.value!r} is not a ProviderSpec")
        elif spec.name != ep.name:
            found[ep.name] = ValueError(
                f"entry point {ep.name!r} names a ProviderSpec called {spec.name!r}"
            )
        else:
            found[ep.name] = spec
    return MappingProxyType(found)


def available() -> Mapping[str, ProviderSpec]:
    """The installed providers by name (a read-only mapping)."""
    return MappingProxyType(
        {name: spec for name, spec in _discover().items() if isinstance(spec, ProviderSpec)}
    )


def broken() -> Mapping[str, Exception]:
    """Entry points that failed to load, with the error, for ``mlport providers``."""
    return MappingProxyType(
        {name: err for name, err in _discover().items() if isinstance(err, Exception)}
    )


def get(name: str) -> ProviderSpec:
    """The installed provider called ``name``.

    Raises:
        ProviderNotFoundError: listing the installed providers, and the pip command when ``name``
            is a known provider that is not installed.
    """
    specs = _discover()
    found = specs.get(name)
    if isinstance(found, ProviderSpec):
        return found
    installed = ", ".join(sorted(available())) or "none"
    if isinstance(found, Exception):
        raise ProviderNotFoundError(
            f"provider {name!r} is installed but failed to load: {found}; installed: {installed}"
        )
    hint = ""
    if name in KNOWN_PROVIDERS:
        hint = f"; install it with: pip install {KNOWN_PROVIDERS[name]}"
    raise ProviderNotFoundError(f"no provider {name!r}{hint}. Installed providers: {installed}")


def load_implementation(spec: ProviderSpec) -> type[Provider]:
    """Import (once) and return the provider's implementation class.

    Raises:
        MissingDependencyError: an SDK the provider needs is missing; says what to pip install.
    """
    with _lock:
        cached = _implementations.get(spec.name)
        if cached is not None:
            return cached
        spec.check_dependencies()
        module_name, _, attr = spec.implementation.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                f"provider {spec.name!r} could not import {exc.name!r}; fix it with: "
                f"{spec.pip_command}",
                provider=spec.name,
            ) from exc
        implementation: type[Provider] = getattr(module, attr)
        _implementations[spec.name] = implementation
        return implementation
