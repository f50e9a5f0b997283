"""S3, the SageMaker provider's store (``s3://bucket/key``).

Writes stream with constant memory: objects up to one part are a single PutObject, larger ones a
multipart upload that is aborted if the stream fails, so a half-written object is never visible.
"""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlport.errors import InvalidSpecError, NotFoundError
from mlport.services.storage import CHUNK, StorageService

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["S3Storage", "make_tarball", "split_uri"]

_PART = 8 * 1024 * 1024
_PAGE = 1000


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``.

    Raises:
        InvalidSpecError: not an s3:// URI with a bucket.
    """
    if not uri.startswith("s3://"):
        raise InvalidSpecError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidSpecError(f"{uri!r} names no bucket")
    return bucket, key


def make_tarball(source: Path, target: Path, *, arcnames: dict[Path, str] | None = None) -> Path:
    """Write ``source``'s files (or the given files with their names) into a gzipped tarball.

    Entries carry no owner names and a fixed mode, so the archive does not leak local user names.
    """

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        if arcnames is None:
            for item in sorted(source.rglob("*")):
                if item.is_file():
                    archive.add(item, item.relative_to(source).as_posix(), filter=clean)
        else:
            for item, name in arcnames.items():
                archive.add(item, name, filter=clean)
    return target


def extract_tarball(archive: Path, target: Path) -> None:
    """Unpack a tarball into ``target``, refusing links and paths that leave it.

    Raises:
        InvalidSpecError: the archive holds an unsafe entry.
    """
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as handle:
        members = handle.getmembers()
        for member in members:
            path = Path(member.name)
            if path.is_absolute() or ".." in path.parts or member.issym() or member.islnk():
                raise InvalidSpecError(f"{archive.name}: unsafe entry {member.name!r}")
        handle.extractall(target, members=members, filter="data")


class S3Storage(StorageService):
    """Objects in S3."""

    provider: SageMakerProvider
    schemes: ClassVar[tuple[str, ...]] = ("s3",)

    @property
    def prefix(self) -> str:
        """``s3://<bucket>/<prefix>/storage``."""
        return self.provider.s3_uri("storage")

    @property
    def _s3(self) -> Any:
        return self.provider.client("s3")

    def _read(self, uri: str) -> Iterator[bytes]:
        bucket, key = split_uri(uri)
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            if _missing(exc):
                raise NotFoundError(f"no object at {uri}", resource=uri) from exc
            raise
        return self._chunks(body)

    @staticmethod
    def _chunks(body: Any) -> Iterator[bytes]:
        with contextlib.closing(body):
            while chunk := body.read(CHUNK):
                yield chunk

    def _write(self, uri: str, chunks: Iterator[bytes]) -> None:
        bucket, key = split_uri(uri)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                buffer += chunk
                while len(buffer) >= _PART:
                    if upload_id is None:
                        upload_id = self._s3.create_multipart_upload(Bucket=bucket, Key=key)[
                            "UploadId"
                        ]
                    part, buffer = bytes(buffer[:_PART]), buffer[_PART:]
                    parts.append(self._upload_part(bucket, key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                self._s3.put_object(Bucket=bucket, Key=key, Body=bytes(buffer))
                return
            if buffer:
                parts.append(
                    self._upload_part(bucket, key, upload_id, len(parts) + 1, bytes(buffer))
                )
            self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def _upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        answer = self._s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _exists(self, uri: str) -> bool:
        bucket, key = split_uri(uri)
        if not key or key.endswith("/"):
            return False
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        bucket, key = split_uri(prefix)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key, "MaxKeys": _PAGE}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._s3.list_objects_v2(**kwargs)
            for item in page.get("Contents", []):
                yield f"s3://{bucket}/{item['Key']}"
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _delete(self, uri: str) -> None:
        bucket, key = split_uri(uri)
        if not self._exists(uri):
            raise NotFoundError(f"no object at {uri}", resource=uri)
        self._s3.delete_object(Bucket=bucket, Key=key)

    # --- helpers the other services use ------------------------------------------------------

    def put_text(self, text: str, uri: str) -> str:
        """Store a small text object at ``uri``."""
        bucket, key = split_uri(uri)
        self._call("write", self._s3.put_object, Bucket=bucket, Key=key, Body=text.encode())
        return uri

    def get_text(self, uri: str) -> str:
        """Read a small text object.

        Raises:
            NotFoundError: nothing at ``uri``.
        """
        return b"".join(self._call("read", lambda: list(self._read(uri)))).decode("utf-8")

    def put_tarball(self, source: Path, uri: str) -> str:
        """Tar and gzip the directory ``source`` and upload it to ``uri``."""
        with tempfile.TemporaryDirectory(prefix="mlport-tar-") as scratch:
            archive = make_tarball(source, Path(scratch) / "archive.tar.gz")
            return self.upload(archive, uri)

    def get_tarball(self, uri: str, target: Path) -> Path:
        """Download a tarball from ``uri`` and unpack it into ``target``.

        Raises:
            NotFoundError: nothing at ``uri``.
            InvalidSpecError: the archive holds an unsafe entry.
        """
        with tempfile.TemporaryDirectory(prefix="mlport-tar-") as scratch:
            archive = Path(scratch) / "archive.tar.gz"
            self.download(uri, archive)
            extract_tarball(archive, target)
        return target


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"} or status == 404
