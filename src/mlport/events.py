"""Lifecycle events: every create, update, delete and state change a service makes is announced.

Subscribe with ``ml.events.subscribe(callback)``; events are also logged at INFO on the
``mlport.events`` logger. A failing subscriber is logged and never breaks the operation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Event", "EventBus"]

log = logging.getLogger("mlport.events")


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``"training.submitted"`` on job ``churn`` at ``sagemaker``."""

    kind: str
    provider: str
    resource: str
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


class EventBus:
    """Delivers events to subscribers, synchronously, in subscription order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], Any]] = []

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Log the event and hand it to every subscriber."""
        log.info("%s %s %s %s", event.provider, event.kind, event.resource, event.data or "")
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event.kind)
