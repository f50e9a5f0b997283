"""Notebook servers: create, start, stop, delete, and their URL.

Provider contract: ``_create(name, options, compute, spec_hash)`` starts creating and returns at
once, storing ``spec_hash`` with the notebook (returned in ``Notebook.tags["mlport.spec_hash"]``)
and raising ``AlreadyExistsError`` when the name is taken; ``_start``/``_stop`` do not block;
``_get``/``_delete`` raise ``NotFoundError`` for an unknown notebook.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from mlport.errors import AlreadyExistsError
from mlport.handles import Notebook
from mlport.services.base import Page, Service
from mlport.specs import Compute, NotebookOptions, spec_hash
from mlport.status import NotebookStatus
from mlport.waiting import wait_until

if TYPE_CHECKING:
    from mlport.compute import ResolvedCompute

__all__ = ["SPEC_HASH_TAG", "NotebookService"]

SPEC_HASH_TAG = "mlport.spec_hash"


class NotebookService(Service):
    """Notebook servers on one provider."""

    kind: ClassVar[str] = "notebooks"
    resource_kind = "notebook"

    def create(
        self,
        name: str,
        *,
        compute: Compute | None = None,
        idle_timeout: str | int | None = None,
        image: str | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
    ) -> Notebook:
        """Create notebook ``name``; returns at once (``wait()`` for RUNNING). Idempotent by name.

        Raises:
            InvalidSpecError: bad options or a name the provider refuses.
            AlreadyExistsError: ``name`` is taken by a notebook with different options.
        """
        self._require("notebooks")
        options = NotebookOptions(
            compute=compute or Compute(),
            idle_timeout=idle_timeout,  # type: ignore[arg-type]
            image=image,
            provider_options=provider_options or {},
        )
        if options.idle_timeout is not None:
            self._require("notebooks.idle_timeout")
        self._check_name(name)
        digest = spec_hash(options)
        existing = self._find(self._get, name)
        if existing is None:
            resolved = self.provider.resolve_compute(options.compute, "notebook")
            try:
                notebook = self._bind(
                    self._call("create", self._create, name, options, resolved, digest)
                )
                self._emit("created", name)
                return notebook
            except AlreadyExistsError:
                existing = self._find(self._get, name)
                if existing is None:
                    raise
        if existing.tags.get(SPEC_HASH_TAG) == digest:
            return existing
        raise AlreadyExistsError(
            f"notebook {name!r} already exists on {self.provider.name!r} with other options; "
            "delete it first or choose another name",
            provider=self.provider.name,
            resource=name,
        )

    def get(self, name: str) -> Notebook:
        """The notebook called ``name``.

        Raises:
            NotFoundError: no such notebook.
        """
        self._require("notebooks")
        return self._bind(self._call("get", self._get, name))

    def list(self) -> Iterator[Notebook]:
        """Notebooks, pages fetched lazily."""
        self._require("notebooks")
        return self._paginate(self._list)

    def start(self, name: str) -> Notebook:
        """Start a stopped notebook. Idempotent; does not block."""
        notebook = self.get(name)
        if notebook.status in (NotebookStatus.STOPPED, NotebookStatus.FAILED):
            self._call("start", self._start, name)
            self._emit("started", name)
            notebook = self.get(name)
        return notebook

    def stop(self, name: str) -> Notebook:
        """Stop a running notebook. Idempotent; does not block."""
        notebook = self.get(name)
        if notebook.status in (NotebookStatus.RUNNING, NotebookStatus.PENDING):
            self._call("stop", self._stop, name)
            self._emit("stopped", name)
            notebook = self.get(name)
        return notebook

    def delete(self, name: str) -> None:
        """Delete the notebook (stopping it first where the provider needs that). Idempotent."""
        self._delete_idempotent("notebooks", name, self._delete, name)

    def _wait_notebook(self, notebook: Notebook, *, timeout: float | None, progress: bool) -> None:
        def poll() -> tuple[bool, str, str]:
            notebook.refresh()
            return notebook.status.is_terminal, notebook.status.value, notebook.message

        wait_until(
            poll,
            what=f"notebook {notebook.name}",
            timeout=timeout,
            policy=self.provider.poll_policy,
            progress=progress,
        )

    @abc.abstractmethod
    def _create(
        self, name: str, options: NotebookOptions, compute: ResolvedCompute, spec_hash: str
    ) -> Notebook: ...

    @abc.abstractmethod
    def _get(self, name: str) -> Notebook: ...

    @abc.abstractmethod
    def _list(self, page_token: str | None) -> Page[Notebook]: ...

    @abc.abstractmethod
    def _start(self, name: str) -> None: ...

    @abc.abstractmethod
    def _stop(self, name: str) -> None: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> None: ...
