"""What every provider's local emulator offers, and a fault queue to build ``inject`` on.

An emulator is a real server on 127.0.0.1 that the provider's own SDK talks to (see DESIGN.md,
"How every provider is tested on one offline machine"). Tests and users drive it through
:class:`Emulator`::

    with VertexEmulator() as emu:                 # any class satisfying Emulator
        os.environ.update(emu.env)                # before the SDK is imported
        ml = mlport.connect(emu.provider, **emu.connect_kwargs)
        emu.inject("CreateCustomJob", "UNAVAILABLE", times=2)   # next two calls fail
        emu.inject("UploadModel", DROP_RESPONSE_AFTER_COMMIT)    # takes effect, answer lost
        ...
        emu.reset()                               # empty state, no pending faults
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeAlias, runtime_checkable

from mlport.errors import InvalidSpecError

__all__ = [
    "DROP_RESPONSE_AFTER_COMMIT",
    "Emulator",
    "EmulatorBase",
    "FaultInjector",
    "InjectedError",
    "environment",
]

DROP_RESPONSE_AFTER_COMMIT: Final = "drop_response_after_commit"
"""Fault that lets the call take effect but loses its answer (the client sees a dropped
connection), as happens when a network fails after the service committed. Tests idempotency."""

InjectedError: TypeAlias = str | BaseException | type[BaseException]
"""A fault: a provider error code (e.g. ``"ThrottlingException"``, ``"UNAVAILABLE"``),
:data:`DROP_RESPONSE_AFTER_COMMIT`, or an exception (instance or class) for the emulator to map."""


@runtime_checkable
class Emulator(Protocol):
    """A local stand-in for one provider's cloud service, for offline tests.

    Implementations start their server in ``__init__`` (or ``__enter__``) and are safe to use
    from the test thread while the server answers on its own threads or process.
    ``isinstance(obj, Emulator)`` checks only that the members exist.
    """

    @property
    def provider(self) -> str:
        """The provider name, as given to ``mlport.connect`` (``"vertex"``, ``"azureml"``...)."""
        ...

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables the provider's SDK needs to reach the emulator.

        Endpoints, fake credentials and the CA bundle (``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``,
        ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``). Set them before the SDK is imported.
        """
        ...

    @property
    def connect_kwargs(self) -> Mapping[str, Any]:
        """Keyword arguments for ``mlport.connect(provider, **connect_kwargs)``."""
        ...

    def reset(self) -> None:
        """Forget every resource and pending fault, as if freshly started. Blocks until done."""
        ...

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        Faults for the same method queue up in the order injected. Does not block.

        Args:
            method: The service's own operation name (``"CreateTrainingJob"``,
                ``"CreateCustomJob"``...).
            error: A provider error code, an exception, or ``"drop_response_after_commit"``: the
                call takes effect but its answer is lost, as after a network failure.
            times: How many calls fail.

        Raises:
            InvalidSpecError: ``times`` is less than 1 or the error is not one this service
                returns.
        """
        ...

    def close(self) -> None:
        """Stop the server and every process it started. Idempotent; blocks until stopped."""
        ...

    def __enter__(self) -> Self:
        """Return the emulator, started."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Call :meth:`close`."""
        ...


class EmulatorBase:
    """What every emulator class shares: used as a context manager, it is closed at the end."""

    def close(self) -> None:
        """Stop the emulator; subclasses implement it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Return the running emulator."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Call :meth:`close`."""
        self.close()


@contextlib.contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` (an emulator's :attr:`Emulator.env`) in ``os.environ`` for the block,
    then restore what was there before."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class _Fault:
    error: InjectedError
    remaining: int


class FaultInjector:
    """A thread-safe queue of faults per method, for emulators to implement ``inject`` with.

    The emulator calls :meth:`take` at the start of every request it serves and, if a fault comes
    back, answers with it instead (or, for :data:`DROP_RESPONSE_AFTER_COMMIT`, does the work and
    then drops the connection). No method blocks beyond a short internal lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, deque[_Fault]] = {}

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Queue ``error`` for the next ``times`` calls of ``method``.

        Raises:
            InvalidSpecError: ``method`` is empty or ``times`` is less than 1.
        """
        if not method:
            raise InvalidSpecError("inject() needs the name of the method to fail")
        if times < 1:
            raise InvalidSpecError(f"inject() times must be at least 1, got {times}")
        with self._lock:
            self._faults.setdefault(method, deque()).append(_Fault(error, times))

    def take(self, method: str) -> InjectedError | None:
        """Consume and return the next fault for ``method``, or None if none is pending."""
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining == 0:
                queue.popleft()
                if not queue:
                    del self._faults[method]
            return fault.error

    def pending(self, method: str | None = None) -> int:
        """Return how many calls are still to fail: for ``method``, or for all methods."""
        with self._lock:
            if method is not None:
                return sum(f.remaining for f in self._faults.get(method, ()))
            return sum(f.remaining for queue in self._faults.values() for f in queue)

    def reset(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()
