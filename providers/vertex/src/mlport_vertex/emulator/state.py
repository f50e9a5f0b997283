"""The emulator's state: resources by name, ids, long-running operations, background work.

One :class:`EmulatorState` is shared by every service. Resources are proto-plus messages kept by
their full resource name; a lock guards every read-modify-write. Background work (lifecycles,
training runs, LROs with a delay) runs on daemon threads that check :attr:`EmulatorState.generation`
before every change, so a :meth:`EmulatorState.reset` makes them stop touching state.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import any_pb2, empty_pb2  # type: ignore[import-untyped, unused-ignore]
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import ApiError, invalid, not_found

if TYPE_CHECKING:
    from mlport_vertex.emulator.storage import Gcs
    from mlport_vertex.emulator.workers import Workers

__all__ = ["Delays", "EmulatorState", "PageToken", "now"]

_log = logging.getLogger("mlport_vertex.emulator")

_LOCATION_RE = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")


def now() -> dt.datetime:
    """The current time, UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Delays:
    """How long the emulator waits where Vertex AI takes time. All zero by default (tests).

    Attributes:
        state: Seconds between the lifecycle states of a job (QUEUED -> PENDING -> RUNNING) and
            of a Workbench instance (PROVISIONING -> ACTIVE, STOPPING -> STOPPED).
        operation: Seconds before a long-running operation is done (creates, deploys, deletes).
    """

    state: float = 0.0
    operation: float = 0.0


class PageToken:
    """Paging over a list: the page token is the offset of the next item, as text."""

    @staticmethod
    def page(items: list[Any], page_size: int, token: str) -> tuple[list[Any], str]:
        """Return one page of ``items`` and the next token ("" at the end).

        Raises:
            ApiError: INVALID_ARGUMENT for a token this emulator did not hand out.
        """
        try:
            start = int(token) if token else 0
        except ValueError:
            raise invalid("page_token", f"Invalid page token: {token!r}.") from None
        if start < 0:
            raise invalid("page_token", f"Invalid page token: {token!r}.")
        size = page_size if page_size > 0 else 100
        chunk = items[start : start + size]
        end = start + size
        return chunk, (str(end) if end < len(items) else "")


@dataclass
class EmulatorState:
    """Everything the services share.

    Attributes:
        project: The project id clients use.
        project_number: The number Vertex AI puts in the resource names it returns.
        location: The default location (any Vertex-style region name is accepted).
        delays: Lifecycle and operation delays.
        work_dir: Where jobs, model servers and downloads keep their files.
        gcs: The storage emulator client.
        workers: The child processes (training runs, model servers).
    """

    project: str
    project_number: str
    location: str
    delays: Delays
    work_dir: Path
    gcs: Gcs
    workers: Workers
    lock: threading.RLock = field(default_factory=threading.RLock)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, operations_pb2.Operation] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    generation: int = 0
    _ids: Iterator[int] = field(
        default_factory=lambda: itertools.count(random.randint(10**18, 2 * 10**18))
    )

    # Names ---------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh numeric id, as Vertex AI gives jobs, models and endpoints."""
        with self.lock:
            return str(next(self._ids))

    def parent(self, parent: str, field_name: str = "parent") -> str:
        """Check ``projects/{project}/locations/{location}`` and return it with the number.

        Raises:
            ApiError: INVALID_ARGUMENT for a malformed parent, PERMISSION_DENIED for another
                project.
        """
        match = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)", parent or "")
        if not match:
            raise invalid(
                field_name,
                f"{field_name} must have the form projects/{{project}}/locations/{{location}}, "
                f"got {parent!r}.",
            )
        project, location = match.groups()
        return f"projects/{self.project_ref(project)}/locations/{self.location_ref(location)}"

    def project_ref(self, project: str) -> str:
        """The project number for ``project`` (its id or number).

        Raises:
            ApiError: PERMISSION_DENIED for a project the emulator does not play.
        """
        if project not in (self.project, self.project_number):
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission denied on resource project {project}. The emulator serves only "
                f'project "{self.project}" ({self.project_number}).',
            )
        return self.project_number

    def location_ref(self, location: str) -> str:
        """Check a location name (``us-central1``...).

        Raises:
            ApiError: INVALID_ARGUMENT for a name no region has.
        """
        if not _LOCATION_RE.match(location):
            raise invalid("parent", f"Location {location!r} is not a valid region name.")
        return location

    def resource_name(self, name: str, collection: str, field_name: str = "name") -> str:
        """Normalise ``projects/p/locations/l/{collection}/{id}`` (project id -> number).

        Keeps a version suffix (``@2``, ``@alias``) on the id.

        Raises:
            ApiError: INVALID_ARGUMENT for a malformed name.
        """
        match = re.fullmatch(
            rf"projects/([^/]+)/locations/([^/]+)/{collection}/([^/]+)", name or ""
        )
        if not match:
            raise invalid(
                field_name,
                f"{field_name} must have the form projects/{{project}}/locations/{{location}}/"
                f"{collection}/{{id}}, got {name!r}.",
            )
        project, location, ident = match.groups()
        return (
            f"projects/{self.project_ref(project)}/locations/{self.location_ref(location)}/"
            f"{collection}/{ident}"
        )

    # Resources -----------------------------------------------------------------------------

    def table(self, kind: str) -> dict[str, Any]:
        """The resources of one kind, by full name."""
        return self.resources.setdefault(kind, {})

    def get(self, kind: str, name: str) -> Any:
        """The resource ``name`` of ``kind``.

        Raises:
            ApiError: NOT_FOUND.
        """
        with self.lock:
            found = self.table(kind).get(name)
        if found is None:
            raise not_found(name)
        return found

    def listed(self, kind: str, parent: str) -> list[Any]:
        """Every resource of ``kind`` under ``parent``, oldest first."""
        prefix = parent + "/"
        with self.lock:
            items = [r for n, r in self.table(kind).items() if n.startswith(prefix)]
        return items

    # Operations ----------------------------------------------------------------------------

    def operation(
        self,
        resource: str,
        work: Callable[[], Any],
        *,
        metadata: Any = None,
        delay: float | None = None,
    ) -> operations_pb2.Operation:
        """Start a long-running operation named ``{resource}/operations/{id}``.

        ``work`` runs now (so validation errors fail the call itself, as Vertex does for
        requests it can check at once) and returns the response message (proto-plus or
        protobuf; None for ``google.protobuf.Empty``). The operation is reported done after
        ``delay`` (default :attr:`Delays.operation`) seconds.
        """
        response = work()
        op = operations_pb2.Operation(name=f"{resource}/operations/{self.new_id()}")
        if metadata is not None:
            op.metadata.Pack(_pb(metadata))
        packed = any_pb2.Any()
        packed.Pack(_pb(response) if response is not None else empty_pb2.Empty())
        wait = self.delays.operation if delay is None else delay
        with self.lock:
            self.operations[op.name] = op
        if wait <= 0:
            with self.lock:
                op.done = True
                op.response.CopyFrom(packed)
        else:
            generation = self.generation

            def finish() -> None:
                time.sleep(wait)
                with self.lock:
                    if self.generation != generation:
                        return
                    op.done = True
                    op.response.CopyFrom(packed)

            self.background(finish, name=f"op-{op.name.rsplit('/', 1)[-1]}")
        result = operations_pb2.Operation()
        with self.lock:
            result.CopyFrom(op)
        return result

    def failed_operation(self, resource: str, error: ApiError) -> operations_pb2.Operation:
        """An operation that is done with ``error`` (a failure found after the call began)."""
        op = operations_pb2.Operation(name=f"{resource}/operations/{self.new_id()}", done=True)
        op.error.CopyFrom(status_pb2.Status(code=error.code.value[0], message=error.message))
        with self.lock:
            self.operations[op.name] = op
        return op

    # Background work -----------------------------------------------------------------------

    def background(self, target: Callable[[], None], *, name: str) -> threading.Thread:
        """Run ``target`` on a daemon thread; errors are logged, never raised."""

        def run() -> None:
            try:
                target()
            except Exception:
                _log.exception("background work %s failed", name)

        thread = threading.Thread(target=run, name=f"vertex-emulator-{name}", daemon=True)
        thread.start()
        return thread

    def sleep_alive(self, seconds: float, generation: int) -> bool:
        """Sleep ``seconds``; False if the state was reset meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.generation != generation:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.generation == generation

    def reset(self) -> None:
        """Forget every resource and operation; background work stops touching state."""
        with self.lock:
            self.generation += 1
            self.resources.clear()
            self.operations.clear()
            self.extra.clear()


def _pb(message: Any) -> Any:
    """The protobuf message of a proto-plus message (or the message itself)."""
    pb = getattr(type(message), "pb", None)
    if pb is not None and not hasattr(message, "SerializeToString"):
        return pb(message)
    return message


def labels_ok(labels: Iterable[tuple[str, str]], field_name: str = "labels") -> None:
    """Check labels the way Google Cloud does.

    Keys: 1-63 characters, lowercase letters, digits, ``_`` and ``-``, starting with a letter;
    values: 0-63 of the same characters; at most 64 labels.

    Raises:
        ApiError: INVALID_ARGUMENT naming the label.
    """
    items = list(labels)
    if len(items) > 64:
        raise invalid(field_name, f"At most 64 labels are allowed, got {len(items)}.")
    for key, value in items:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key):
            raise invalid(
                f"{field_name}.{key}",
                f"Label key {key!r} must start with a lowercase letter and have at most 63 "
                "lowercase letters, digits, '_' or '-'.",
            )
        if not re.fullmatch(r"[a-z0-9_-]{0,63}", value):
            raise invalid(
                f"{field_name}.{key}",
                f"Label value {value!r} may have at most 63 lowercase letters, digits, '_' or '-'.",
            )
