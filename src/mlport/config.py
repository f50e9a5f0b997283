"""mlport.toml: profiles, the default profile, and per-service routing between profiles.

The file is found at ``$MLPORT_CONFIG`` or as ``mlport.toml`` in the working directory. The profile
is chosen by argument, then ``$MLPORT_PROFILE``, then ``default_profile``; with no file at all,
:func:`resolve` gives the embedded default, on-prem rooted at ``./.mlport``::

    default_profile = "local"

    [profiles.local]
    provider = "onprem"
    root = ".mlport"

    [profiles.hybrid]
    provider = "sagemaker"
    region = "us-east-1"
    services = { training = "local" }   # train at home, everything else on SageMaker

Every error names the file, the profile and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlport import providers
from mlport.errors import ConfigError, ProviderNotFoundError
from mlport.providers import SERVICES, ProviderConfig, ProviderSpec

__all__ = [
    "DEFAULT_PROFILE",
    "ConfigFile",
    "ResolvedConfig",
    "ResolvedProfile",
    "find_config_file",
    "load_file",
    "resolve",
]

CONFIG_ENV = "MLPORT_CONFIG"
PROFILE_ENV = "MLPORT_PROFILE"
FILE_NAME = "mlport.toml"
DEFAULT_PROFILE: Mapping[str, Any] = {"provider": "onprem", "root": ".mlport"}
"""The embedded default used when there is no mlport.toml: on-prem, in ./.mlport."""

RUNTIME_KEYS = ("credential", "credentials", "session")
"""Connection arguments that are live objects: passed to the provider, never validated into
config, never written anywhere."""


@dataclass(frozen=True)
class ConfigFile:
    """A parsed mlport.toml."""

    path: Path
    default_profile: str | None
    profiles: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ResolvedProfile:
    """One profile, validated by its provider's config model."""

    name: str
    spec: ProviderSpec
    config: ProviderConfig


@dataclass(frozen=True)
class ResolvedConfig:
    """What a connection is built from: the chosen profile and, per service, the profile serving it."""

    source: Path | None
    profile: ResolvedProfile
    routes: Mapping[str, ResolvedProfile] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The resolved settings, for ``mlport config check`` (runtime objects never appear)."""
        return {
            "file": str(self.source) if self.source else None,
            "profile": self.profile.name,
            "provider": self.profile.spec.name,
            "settings": self.profile.config.model_dump(mode="json", exclude={"services"}),
            "services": {
                service: {"profile": route.name, "provider": route.spec.name}
                for service, route in self.routes.items()
            },
        }


def find_config_file(cwd: Path | None = None) -> Path | None:
    """``$MLPORT_CONFIG`` if set (it must exist), else ``./mlport.toml`` if present.

    Raises:
        ConfigError: ``$MLPORT_CONFIG`` names a file that does not exist.
    """
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={env} does not name an existing file")
        return path.resolve()
    candidate = (cwd or Path.cwd()) / FILE_NAME
    return candidate.resolve() if candidate.is_file() else None


def load_file(path: Path) -> ConfigFile:
    """Parse and check the shape of an mlport.toml (profiles are validated by :func:`resolve`).

    Raises:
        ConfigError: malformed TOML (with line and column), unknown top-level keys, wrong types.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    unknown = set(data) - {"default_profile", "profiles"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {sorted(unknown)[0]!r}; "
            "expected 'default_profile' and [profiles.NAME] tables"
        )
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: key 'default_profile' must be a string")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    for name, body in profiles.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: profile {name!r} must be a table ([profiles.{name}])")
    if default is not None and default not in profiles:
        raise ConfigError(
            f"{path}: default_profile {default!r} does not exist; profiles: "
            f"{', '.join(sorted(profiles)) or 'none'}"
        )
    return ConfigFile(path=path, default_profile=default, profiles=profiles)


def _validate(
    source: Path | None, name: str, body: Mapping[str, Any], base_dir: Path
) -> ResolvedProfile:
    where = f"{source}: profile {name!r}" if source else f"profile {name!r}"
    provider = body.get("provider")
    if not isinstance(provider, str) or not provider:
        raise ConfigError(f"{where}: key 'provider' is missing; e.g. provider = \"onprem\"")
    try:
        spec = providers.get(provider)
    except ProviderNotFoundError as exc:
        raise ProviderNotFoundError(f"{where}: key 'provider': {exc}") from None
    try:
        config = spec.config_model.model_validate(dict(body), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(exc, spec)}") from None
    return ResolvedProfile(name=name, spec=spec, config=config)


def _explain(exc: ValidationError, spec: ProviderSpec) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"]) or "(profile)"
        if error["type"] == "extra_forbidden":
            accepted = ", ".join(sorted(spec.config_model.model_fields))
            problems.append(
                f"key {key!r}: unknown key for provider {spec.name!r} (accepted: {accepted})"
            )
        elif error["type"] == "missing":
            problems.append(f"key {key!r}: required by provider {spec.name!r}")
        else:
            problems.append(f"key {key!r}: {error['msg']}")
    return "; ".join(problems)


def resolve(
    profile: str | None = None,
    *,
    provider: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> ResolvedConfig:
    """Choose and validate the profile for a connection, and route each service.

    Args:
        profile: Profile name; defaults to ``$MLPORT_PROFILE``, then ``default_profile``.
        provider: A provider name. Without ``profile`` it makes an ad-hoc profile of just the
            overrides; with one, it overrides the profile's provider.
        overrides: Profile keys that win over the file.
        cwd: Where to look for mlport.toml (tests).

    Raises:
        ConfigError: bad file, unknown profile, unknown or mistyped key, routing loop.
        ProviderNotFoundError: the profile names a provider that is not installed.
    """
    overrides = dict(overrides or {})
    if provider is not None:
        overrides["provider"] = provider
    path = find_config_file(cwd)
    file = load_file(path) if path else None
    base_dir = path.parent if path else (cwd or Path.cwd())
    source = file.path if file else None

    if profile is None and provider is None:
        profile = os.environ.get(PROFILE_ENV) or (file.default_profile if file else None)
    if profile is None:
        if provider is not None:
            body: dict[str, Any] = {}
            name = provider
        else:
            body, name = dict(DEFAULT_PROFILE), "default"
        chosen = _validate(None, name, {**body, **overrides}, base_dir)
        _check_no_routes(chosen, source)
        return ResolvedConfig(source=source, profile=chosen, routes=dict.fromkeys(SERVICES, chosen))

    profiles = file.profiles if file else {}
    if profile not in profiles:
        where = str(source) if source else f"no {FILE_NAME} found"
        raise ConfigError(
            f"{where}: profile {profile!r} does not exist; profiles: "
            f"{', '.join(sorted(profiles)) or 'none'}"
        )
    chosen = _validate(source, profile, {**profiles[profile], **overrides}, base_dir)
    resolved: dict[str, ResolvedProfile] = {profile: chosen}
    routes: dict[str, ResolvedProfile] = {}
    for service in SERVICES:
        current, seen = chosen, [chosen.name]
        while service in current.config.services:
            target = current.config.services[service]
            if target in seen:
                raise ConfigError(
                    f"{source}: profile {current.name!r}: key 'services.{service}': routing loop "
                    + " -> ".join([*seen, target])
                )
            if target not in profiles:
                raise ConfigError(
                    f"{source}: profile {current.name!r}: key 'services.{service}' points at "
                    f"profile {target!r}, which does not exist; profiles: {', '.join(sorted(profiles))}"
                )
            if target not in resolved:
                resolved[target] = _validate(source, target, profiles[target], base_dir)
            current = resolved[target]
            seen.append(target)
        routes[service] = current
    return ResolvedConfig(source=source, profile=chosen, routes=routes)


def _check_no_routes(chosen: ResolvedProfile, source: Path | None) -> None:
    if chosen.config.services:
        raise ConfigError(
            f"{chosen.name!r}: key 'services' routes to other profiles, which needs a "
            f"{FILE_NAME}" + (f" ({source})" if source else "")
        )
