"""The base of every provider and service.

A provider implements the ``_``-prefixed abstract methods of each service it offers; the public
methods here hold what every provider shares: validation, name rules, the capability table,
retries, error mapping, idempotency, waiting and events. Provider methods may raise SDK errors:
:meth:`Provider.translate_error` (the provider's ``_errors.py`` table) maps them onto
:mod:`mlport.errors` before the retry policy sees them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar

from mlport import names
from mlport.errors import MlportError, NotFoundError, NotSupportedError
from mlport.events import Event, EventBus
from mlport.retry import RetryPolicy, call_with_retries
from mlport.waiting import PollPolicy

if TYPE_CHECKING:
    from mlport.compute import ResolvedCompute
    from mlport.providers import ProviderConfig, ProviderSpec
    from mlport.specs import Compute

__all__ = ["Page", "Provider", "Service"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is None on the last page."""

    items: list[T]
    next_token: str | None = None


class Provider:
    """Base of a provider implementation: holds its config, runtime objects and services.

    Subclasses set :attr:`service_classes`: service kind -> the class, or its import path
    (``"package.module:Class"``) so that a service's heavy imports happen only when it is first
    used. Runtime objects (``credential``, ``credentials``,
    ``session``) live in :attr:`runtime` and are never written anywhere.
    """

    service_classes: ClassVar[Mapping[str, type[Service] | str]] = {}

    def __init__(
        self,
        spec: ProviderSpec,
        config: ProviderConfig,
        runtime: Mapping[str, Any] | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.runtime = dict(runtime or {})
        self.events = events or EventBus()
        self.retry_policy = RetryPolicy(
            attempts=config.retry_attempts, max_time=config.retry_max_time
        )
        self.poll_policy = PollPolicy(
            initial=config.poll_interval,
            maximum=max(config.poll_interval, config.max_poll_interval),
        )
        self._services: dict[str, Service] = {}

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.name!r}>"

    def service(self, kind: str) -> Service:
        """The provider's service of ``kind`` (created once), or one that raises NotSupportedError."""
        if kind not in self._services:
            cls = self.service_classes.get(kind)
            if cls is None or not self.spec.supports(kind):
                self._services[kind] = _unsupported(kind, self)
            else:
                if isinstance(cls, str):
                    import importlib

                    module, _, attr = cls.partition(":")
                    cls = getattr(importlib.import_module(module), attr)
                    assert isinstance(cls, type)
                self._services[kind] = cls(self)
        return self._services[kind]

    def translate_error(self, error: Exception) -> MlportError | None:
        """Map an SDK error onto the mlport hierarchy; None leaves it as it is.

        Providers override this with their ``_errors.py`` table.
        """
        return None

    def resolve_compute(self, compute: Compute, purpose: str = "training") -> ResolvedCompute:
        """Resolve portable compute against this provider's catalog (or pass a native type).

        A provider without a catalog (``ProviderSpec.catalog`` None) receives the request as it
        is, with ``instance_type`` None unless a native one was given; override this method to
        map it another way.
        """
        from mlport.compute import ResolvedCompute, resolve

        if self.spec.catalog is None:
            return ResolvedCompute(
                compute.instance_type, compute.count, compute.spot, None, compute
            )
        return resolve(compute, self.spec.catalog)

    def down(self, grace: float | None = None) -> list[str]:
        """Stop the local processes this provider started (servers, jobs); returns what stopped.

        Cloud providers start none; on-prem and the emulators override this.
        """
        return []

    def close(self) -> None:
        """Release clients and connections. Does not touch any remote resource."""


class Service(abc.ABC):
    """Shared machinery of the services. ``kind`` names the service (``"training"``)."""

    kind: ClassVar[str]
    resource_kind: ClassVar[names.ResourceKind]

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider.name!r}>"

    @property
    def provider_name(self) -> str:
        """The name of the provider behind this service."""
        return self.provider.name

    def supports(self, feature: str) -> bool:
        """True if this provider offers ``feature`` (see :mod:`mlport.capabilities`)."""
        return self.provider.spec.supports(feature)

    def _require(self, feature: str) -> None:
        if not self.supports(feature):
            from mlport.capabilities import FEATURES

            reason = self.provider.spec.unsupported.get(
                feature
            ) or self.provider.spec.unsupported.get(feature.split(".", 1)[0], "")
            raise NotSupportedError(
                f"provider {self.provider.name!r} does not support {FEATURES.get(feature, feature)}"
                + (f": {reason}" if reason else ""),
                provider=self.provider.name,
            )

    def _not_implemented(self, feature: str) -> NoReturn:
        raise NotSupportedError(
            f"provider {self.provider.name!r} claims {feature!r} but does not implement it; "
            "list it in the provider's capability table (ProviderSpec.unsupported)",
            provider=self.provider.name,
        )

    def _check_name(self, name: str, kind: names.ResourceKind | None = None) -> None:
        names.check(
            name, kind or self.resource_kind, self.provider.name, self.provider.spec.name_rules
        )

    def _call(self, op: str, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call a provider method with error mapping and the retry policy."""

        def attempt() -> R:
            try:
                return fn(*args, **kwargs)
            except MlportError:
                raise
            except Exception as exc:
                mapped = self.provider.translate_error(exc)
                if mapped is None:
                    raise
                if mapped.provider is None:
                    mapped.provider = self.provider.name
                raise mapped from exc

        return call_with_retries(
            attempt, self.provider.retry_policy, what=f"{self.provider.name} {self.kind}.{op}"
        )

    def _bind(self, handle: T) -> T:
        bind = getattr(handle, "_bind", None)
        if bind is not None:
            if not getattr(handle, "provider", ""):
                handle.provider = self.provider.name  # type: ignore[attr-defined]
            bind(self)
        return handle

    def _paginate(self, fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        """Lazily walk pages: the next page is fetched only when the iterator gets there."""
        token: str | None = None
        while True:
            page = self._call("list", fetch, token)
            for item in page.items:
                yield self._bind(item)
            if not page.next_token:
                return
            token = page.next_token

    def _find(self, fetch: Callable[..., T], *args: Any) -> T | None:
        try:
            return self._bind(self._call("get", fetch, *args))
        except NotFoundError:
            return None

    def _emit(self, action: str, resource: str, **data: Any) -> None:
        self.provider.events.emit(
            Event(
                kind=f"{self.kind}.{action}",
                provider=self.provider.name,
                resource=resource,
                data=data,
            )
        )

    def _delete_idempotent(
        self, feature: str, name: str, fn: Callable[..., Any], *args: Any
    ) -> None:
        self._require(feature)
        try:
            self._call("delete", fn, *args)
        except NotFoundError:
            return
        self._emit("deleted", name)


@dataclass
class _Unsupported:
    kind: str
    provider: Provider
    reason: str = field(default="")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        from mlport.capabilities import FEATURES

        raise NotSupportedError(
            f"provider {self.provider.name!r} does not offer {FEATURES.get(self.kind, self.kind)}"
            + (f": {self.reason}" if self.reason else ""),
            provider=self.provider.name,
        )

    def supports(self, feature: str) -> bool:
        return False


def _unsupported(kind: str, provider: Provider) -> Any:
    return _Unsupported(kind, provider, provider.spec.unsupported.get(kind, ""))
