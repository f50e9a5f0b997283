"""Moving artifacts between stores: ``copy(src_uri, dst_uri)`` across providers, and ``file://``.

``copy`` streams with constant memory and verifies the sha256 of every object at the destination.
Pass the stores of the connections involved (``ml.storage``); ``file://`` URIs and local paths are
served by :class:`LocalFiles` without a connection::

    mlport.storage.copy("file:///models/churn", "s3://acme-ml/churn", dest=aws.storage)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from mlport.errors import InvalidSpecError, NotFoundError
from mlport.services.base import Provider
from mlport.services.storage import CHUNK, StorageService, copy_object

__all__ = ["LocalFiles", "copy", "local_files"]


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file://")) if uri.startswith("file://") else Path(uri)


class LocalFiles(StorageService):
    """``file://`` URIs on this machine. Writes are atomic: a half-written file is never seen."""

    schemes: ClassVar[tuple[str, ...]] = ("file",)

    def handles(self, uri: str) -> bool:
        """``file://`` URIs and plain absolute paths."""
        return uri.startswith("file://") or "://" not in uri

    def _read(self, uri: str) -> Iterator[bytes]:
        path = _path(uri)
        if not path.is_file():
            raise NotFoundError(f"no file at {uri}", resource=uri)
        return self._chunks(path)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def _write(self, uri: str, chunks: Iterator[bytes]) -> None:
        path = _path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self, uri: str) -> bool:
        return _path(uri).is_file()

    def _list(self, prefix: str) -> Iterator[str]:
        root = _path(prefix)
        if root.is_dir():
            for item in sorted(root.rglob("*")):
                if item.is_file():
                    yield f"file://{item}" if prefix.startswith("file://") else str(item)

    def _delete(self, uri: str) -> None:
        path = _path(uri)
        if not path.exists():
            raise NotFoundError(f"no file at {uri}", resource=uri)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


_local: LocalFiles | None = None


def local_files() -> LocalFiles:
    """The ``file://`` store (no connection needed)."""
    global _local
    if _local is None:
        from mlport.providers import ProviderConfig, ProviderSpec

        spec = ProviderSpec(
            name="file",
            config_model=ProviderConfig,
            implementation="mlport.storage:LocalFiles",
            distribution="mlport",
        )
        _local = LocalFiles(Provider(spec, ProviderConfig(provider="file")))
    return _local


def copy(
    src_uri: str,
    dst_uri: str,
    *,
    source: StorageService | None = None,
    dest: StorageService | None = None,
) -> list[str]:
    """Copy an object, or every object under a prefix, from one store to another; verified.

    Args:
        src_uri: Source object or prefix.
        dst_uri: Destination object or prefix.
        source: The store serving ``src_uri`` (default: local files).
        dest: The store serving ``dst_uri`` (default: local files).

    Returns:
        The destination URIs written.

    Raises:
        NotFoundError: nothing at ``src_uri``.
        InvalidSpecError: a URI the given store does not serve.
        IntegrityError: an object arrived corrupt.
    """
    source = source or local_files()
    dest = dest or local_files()
    for store, uri in ((source, src_uri), (dest, dst_uri)):
        if not store.handles(uri):
            raise InvalidSpecError(
                f"{uri!r} is not served by the {store.provider.name} store; pass the right "
                "store as source=/dest= (e.g. ml.storage)"
            )
    if source._call("exists", source._exists, src_uri):
        copy_object(source, src_uri, dest, dst_uri)
        return [dst_uri]
    base = src_uri.rstrip("/") + "/"
    objects = list(source._call("list", lambda: list(source._list(base))))
    if not objects:
        raise NotFoundError(f"nothing at {src_uri}", resource=src_uri)
    written = []
    for item in objects:
        target = dst_uri.rstrip("/") + "/" + item[len(base) :]
        copy_object(source, item, dest, target)
        written.append(target)
    return written
