"""Reading and writing the emulator's own S3 from its components (never faulted)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

from mlport_sagemaker.emulator._aws import AwsError

__all__ = ["Storage", "split_uri"]


def split_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Raises:
        AwsError: ValidationException if ``uri`` is not an S3 URI.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise AwsError("ValidationException", f"{uri!r} is not an S3 URI (s3://bucket/key)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise AwsError("ValidationException", f"{uri!r} names no bucket")
    return bucket, key


def join(uri: str, *parts: str) -> str:
    """Join an S3 URI and path parts with single slashes."""
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


class Storage:
    """S3 operations on a boto3 client of the emulator."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def keys(self, uri: str) -> list[str]:
        """Every key under the prefix of ``uri``."""
        bucket, prefix = split_uri(uri)
        found: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found

    def download_prefix(self, uri: str, target: Path) -> int:
        """Download every object under ``uri`` into ``target``, keeping paths below the prefix.

        An object whose key equals the prefix lands as ``target/<its basename>``.

        Returns:
            How many files were written.

        Raises:
            AwsError: The bucket does not exist.
        """
        bucket, prefix = split_uri(uri)
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        try:
            keys = self.keys(uri)
        except self._s3.exceptions.NoSuchBucket:
            raise AwsError("ValidationException", f"bucket {bucket!r} does not exist") from None
        for key in keys:
            if key.endswith("/"):
                continue
            rest = key[len(prefix) :]
            if not rest:
                relative = key.rsplit("/", 1)[-1]
            elif rest.startswith("/") or prefix.endswith("/") or not prefix:
                relative = rest.lstrip("/")
            else:
                # s3://b/data/tr also matches data/train.csv: keep the name past the last '/'.
                relative = (
                    key[len(prefix.rsplit("/", 1)[0]) :].lstrip("/") if "/" in prefix else key
                )
            destination = (target / relative).resolve()
            if not destination.is_relative_to(target.resolve()):
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            self._s3.download_file(bucket, key, str(destination))
            count += 1
        return count

    def read(self, uri: str) -> bytes:
        """Return the object's bytes.

        Raises:
            AwsError: ValidationException if there is no such object.
        """
        bucket, key = split_uri(uri)
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except (self._s3.exceptions.NoSuchKey, self._s3.exceptions.NoSuchBucket):
            raise AwsError("ValidationException", f"no object at {uri}") from None

    def write(self, uri: str, data: bytes) -> None:
        """Store ``data`` at ``uri``."""
        bucket, key = split_uri(uri)
        self._s3.put_object(Bucket=bucket, Key=key, Body=data)

    def upload_file(self, path: Path, uri: str) -> None:
        """Upload one file."""
        bucket, key = split_uri(uri)
        self._s3.upload_file(str(path), bucket, key)

    def upload_dir(self, directory: Path, uri: str) -> int:
        """Upload every file below ``directory`` under the prefix ``uri``; return the count."""
        count = 0
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                self.upload_file(path, join(uri, path.relative_to(directory).as_posix()))
                count += 1
        return count


def make_tar(directory: Path, archive: Path) -> None:
    """Write ``directory``'s contents (not the folder itself) to a gzipped tar."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)


def extract_tar(archive: Path, target: Path) -> None:
    """Extract a (gzipped) tar safely: no absolute paths, links out or devices.

    Raises:
        tarfile.TarError: The archive is damaged or holds something unsafe.
    """
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(target, filter="data")
