"""``mlport.connect()``: a connection whose services may each be served by a different provider."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport import config as _config
from mlport.events import EventBus
from mlport.providers import SERVICES, load_implementation

if TYPE_CHECKING:
    from mlport.services import (
        EndpointService,
        MonitoringService,
        NotebookService,
        Provider,
        RegistryService,
        StorageService,
        TrainingService,
    )

__all__ = ["Connection", "connect"]


class Connection:
    """The services of one profile. Build it with :func:`connect`.

    Attributes:
        training, registry, endpoints, monitoring, notebooks, storage: The services, each from the
            provider its profile routes it to.
        events: Subscribe to lifecycle events of every service.
    """

    def __init__(self, resolved: _config.ResolvedConfig, runtime: dict[str, Any]) -> None:
        self._resolved = resolved
        self._runtime = runtime
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self.events = EventBus()

    @property
    def profile(self) -> str:
        """Name of the profile in use ("default" for the embedded default)."""
        return self._resolved.profile.name

    @property
    def provider(self) -> str:
        """The profile's provider (services may be routed elsewhere; see :attr:`routes`)."""
        return self._resolved.profile.spec.name

    @property
    def config_file(self) -> Path | None:
        """The mlport.toml the profile came from, if any."""
        return self._resolved.source

    @property
    def routes(self) -> dict[str, str]:
        """Service -> the provider serving it."""
        return {service: route.spec.name for service, route in self._resolved.routes.items()}

    def describe(self) -> dict[str, Any]:
        """The resolved configuration (never runtime objects or secrets)."""
        return self._resolved.describe()

    def provider_for(self, service: str) -> Provider:
        """The provider instance serving ``service`` (imported and built on first use)."""
        route = self._resolved.routes[service]
        with self._lock:
            instance = self._providers.get(route.name)
            if instance is None:
                implementation = load_implementation(route.spec)
                instance = implementation(route.spec, route.config, self._runtime, self.events)
                self._providers[route.name] = instance
            return instance

    @property
    def training(self) -> TrainingService:
        """Training jobs."""
        return self.provider_for("training").service("training")  # type: ignore[return-value]

    @property
    def registry(self) -> RegistryService:
        """The model registry."""
        return self.provider_for("registry").service("registry")  # type: ignore[return-value]

    @property
    def endpoints(self) -> EndpointService:
        """Online endpoints and batch prediction."""
        return self.provider_for("endpoints").service("endpoints")  # type: ignore[return-value]

    @property
    def monitoring(self) -> MonitoringService:
        """Drift monitoring."""
        return self.provider_for("monitoring").service("monitoring")  # type: ignore[return-value]

    @property
    def notebooks(self) -> NotebookService:
        """Notebook servers."""
        return self.provider_for("notebooks").service("notebooks")  # type: ignore[return-value]

    @property
    def storage(self) -> StorageService:
        """The artifact store."""
        return self.provider_for("storage").service("storage")  # type: ignore[return-value]

    def down(self) -> list[str]:
        """Stop every local process the providers of this connection started (``mlport down``)."""
        providers = {id(p): p for p in (self.provider_for(s) for s in SERVICES)}
        return [line for provider in providers.values() for line in provider.down()]

    def close(self) -> None:
        """Release the providers' clients. Remote resources are left as they are."""
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            provider.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        routed = {s: p for s, p in self.routes.items() if p != self.provider}
        extra = f" routes={routed}" if routed else ""
        return f"<mlport.Connection profile={self.profile!r} provider={self.provider!r}{extra}>"


def connect(
    provider: str | None = None, *, profile: str | None = None, **kwargs: Any
) -> Connection:
    """Connect to a provider, by profile or directly.

    ``connect()`` uses ``$MLPORT_PROFILE`` or mlport.toml's ``default_profile``; with no
    mlport.toml it is the embedded on-prem default rooted at ``./.mlport``.

    Args:
        provider: A provider name; without ``profile``, the keyword arguments are its settings.
        profile: A profile of mlport.toml.
        **kwargs: Profile keys, overriding the file; and the runtime objects ``credential=``
            (Azure), ``credentials=`` (Google) and ``session=`` (boto3), which are handed to the
            provider and never persisted.

    Raises:
        ConfigError: a bad mlport.toml, profile or key (the message names file, profile and key).
        ProviderNotFoundError: the provider is not installed (the message lists those that are).
        MissingDependencyError: the provider's SDK is missing (the message gives the pip command).
    """
    runtime = {key: kwargs.pop(key) for key in _config.RUNTIME_KEYS if key in kwargs}
    resolved = _config.resolve(profile, provider=provider, overrides=kwargs)
    for service in SERVICES:
        resolved.routes[service].spec.check_dependencies(serving=service)
    return Connection(resolved, runtime)
