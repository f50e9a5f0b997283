"""The provider's artifact store, addressed by URI.

Provider contract: ``schemes`` lists the URI schemes it serves; ``_read(uri)`` yields the object's
bytes in chunks (constant memory) and raises ``NotFoundError``; ``_write(uri, chunks)`` stores a
stream; ``_list(prefix)`` yields the URIs of objects under a prefix; ``_exists``; ``_delete(uri)``
removes one object and raises ``NotFoundError``; ``_sha256(uri)`` may return a stored checksum
(None makes the base class re-read the object to verify).
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from mlport.errors import IntegrityError, InvalidSpecError, NotFoundError
from mlport.services.base import Service

__all__ = ["CHUNK", "StorageService", "copy_object"]

CHUNK = 1024 * 1024


class _Hashing:
    """Passes chunks through while hashing them."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def copy_object(source: StorageService, src: str, dest: StorageService, dst: str) -> str:
    """Stream one object from ``src`` to ``dst`` and verify it arrived whole; returns its sha256.

    Raises:
        IntegrityError: what was stored differs from what was read.
    """
    stream = _Hashing(source._call("read", source._read, src))
    dest._call("write", dest._write, dst, iter(stream))
    expected = stream.digest.hexdigest()
    dest._verify(dst, expected)
    return expected


class StorageService(Service):
    """Objects in the provider's storage: upload, download, ls, exists, delete."""

    kind: ClassVar[str] = "storage"
    resource_kind = "model"
    schemes: ClassVar[tuple[str, ...]] = ()

    @property
    def prefix(self) -> str | None:
        """Where this provider keeps objects by default (a bucket, a folder), if it has a place."""
        return None

    def handles(self, uri: str) -> bool:
        """True if ``uri``'s scheme is one this store serves."""
        return uri.split("://", 1)[0] in self.schemes if "://" in uri else False

    def _check_uri(self, uri: str) -> str:
        if not self.handles(uri):
            raise InvalidSpecError(
                f"{uri!r} is not a {self.provider.name} storage URI; expected "
                + " or ".join(f"{s}://..." for s in self.schemes),
                provider=self.provider.name,
            )
        return uri

    def upload(self, local_path: str | Path, uri: str) -> str:
        """Upload a file to ``uri``, or a directory under the prefix ``uri``; verified by sha256.

        Raises:
            InvalidSpecError: the local path does not exist or the URI is not this store's.
        """
        self._require("storage")
        self._check_uri(uri)
        path = Path(local_path).expanduser()
        if path.is_file():
            files = [(path, uri)]
        elif path.is_dir():
            base = uri.rstrip("/")
            files = [
                (item, f"{base}/{item.relative_to(path).as_posix()}")
                for item in sorted(path.rglob("*"))
                if item.is_file()
            ]
        else:
            raise InvalidSpecError(f"{str(path)!r} does not exist")
        for item, target in files:
            stream = _Hashing(_read_file(item))
            self._call("write", self._write, target, iter(stream))
            self._verify(target, stream.digest.hexdigest())
        self._emit("uploaded", uri, files=len(files))
        return uri

    def download(self, uri: str, local_path: str | Path) -> Path:
        """Download an object to a file, or every object under a prefix into a directory.

        Raises:
            NotFoundError: nothing at ``uri``.
        """
        self._require("storage")
        self._check_uri(uri)
        target = Path(local_path).expanduser()
        if self._call("exists", self._exists, uri):
            self._fetch(uri, target if not target.is_dir() else target / uri.rsplit("/", 1)[-1])
            return target
        base = uri.rstrip("/") + "/"
        found = False
        for item in self._call("list", lambda: list(self._list(base))):
            found = True
            self._fetch(item, target / item[len(base) :])
        if not found:
            raise NotFoundError(f"nothing at {uri}", provider=self.provider.name, resource=uri)
        return target

    def _fetch(self, uri: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as handle:
            for chunk in self._call("read", self._read, uri):
                handle.write(chunk)
        partial.replace(target)

    def exists(self, uri: str) -> bool:
        """True if an object is at ``uri``."""
        self._require("storage")
        return bool(self._call("exists", self._exists, self._check_uri(uri)))

    def ls(self, uri: str) -> Iterator[str]:
        """URIs of the objects under the prefix ``uri``."""
        self._require("storage")
        return iter(self._call("list", lambda: list(self._list(self._check_uri(uri)))))

    def delete(self, uri: str) -> None:
        """Delete the object at ``uri``, or every object under that prefix. Idempotent."""
        self._require("storage")
        self._check_uri(uri)
        targets = [uri] if self._call("exists", self._exists, uri) else []
        targets += self._call("list", lambda: list(self._list(uri.rstrip("/") + "/")))
        for target in targets:
            try:
                self._call("delete", self._delete, target)
            except NotFoundError:
                continue
        if targets:
            self._emit("deleted", uri, objects=len(targets))

    def _verify(self, uri: str, expected: str) -> None:
        stored = self._call("checksum", self._sha256, uri)
        if stored is None:
            digest = hashlib.sha256()
            for chunk in self._call("read", self._read, uri):
                digest.update(chunk)
            stored = digest.hexdigest()
        if stored != expected:
            raise IntegrityError(
                f"{uri} was stored with sha256 {stored}, expected {expected}; the copy is corrupt",
                provider=self.provider.name,
                resource=uri,
            )

    @abc.abstractmethod
    def _read(self, uri: str) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def _write(self, uri: str, chunks: Iterator[bytes]) -> None: ...

    @abc.abstractmethod
    def _exists(self, uri: str) -> bool: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[str]: ...

    @abc.abstractmethod
    def _delete(self, uri: str) -> None: ...

    def _sha256(self, uri: str) -> str | None:
        return None
