"""``gs://`` for the emulator: the gcp-storage-emulator as a child process, and a client for it.

The storage emulator is a third-party server that cannot report a port it picked, so it gets a
port that was free a moment ago (:func:`mlport.processes.free_port`) and is retried on another
if it cannot bind it.
"""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlport.errors import MlportError
from mlport.processes import ProcessRecord, free_port, spawn, stop

__all__ = ["Gcs", "StorageEmulator", "split_gs"]

_START_TIMEOUT = 30.0


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/path`` -> ``("bucket", "path")``.

    Raises:
        ValueError: ``uri`` is not a ``gs://`` URI with a bucket.
    """
    if not uri.startswith("gs://") or len(uri) <= 5:
        raise ValueError(f"{uri!r} is not a gs:// URI")
    bucket, _, path = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket")
    return bucket, path


class StorageEmulator:
    """The gcp-storage-emulator, in memory, on 127.0.0.1, as a child process.

    Blocks in ``__init__`` until it answers (a second or two). Its output goes to
    ``<log_dir>/gcs.out`` and ``gcs.err``.

    Args:
        log_dir: Directory for its log files.

    Raises:
        MlportError: It did not start.
    """

    def __init__(self, log_dir: Path) -> None:
        self.record: ProcessRecord | None = None
        last_error = ""
        for _attempt in range(3):
            port = free_port()
            _popen, record = spawn(
                [
                    sys.executable,
                    "-m",
                    "gcp_storage_emulator",
                    "start",
                    "--host=127.0.0.1",
                    f"--port={port}",
                    "--in-memory",
                    "--quiet",
                ],
                name="gcs",
                log_dir=log_dir,
                detach=False,
            )
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready(_popen.poll):
                self.record = record
                return
            stop(record, grace=1.0)
            last_error = Path(record.stderr_path).read_text(errors="replace")[-2000:]
        raise MlportError(f"the gcp-storage-emulator did not start: {last_error}")

    def _wait_ready(self, poll: Any) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def wipe(self) -> None:
        """Delete every bucket and object."""
        with urllib.request.urlopen(self.url + "/wipe", timeout=10) as answer:
            answer.read()

    def close(self) -> None:
        """Stop the process. Idempotent."""
        if self.record is not None:
            stop(self.record, grace=2.0)
            self.record = None


class Gcs:
    """A google-cloud-storage client for the storage emulator, with the copies the emulator needs.

    Args:
        url: The storage emulator's URL (``http://127.0.0.1:N``).
        project: The project that owns buckets it creates.
    """

    def __init__(self, url: str, project: str) -> None:
        self.url = url
        self.project = project
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``google.cloud.storage.Client`` (made on first use)."""
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage  # type: ignore[attr-defined, unused-ignore]

            self._client = storage.Client(
                project=self.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.url},
            )
        return self._client

    def ensure_bucket(self, name: str) -> None:
        """Create the bucket ``name`` if it does not exist."""
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.Conflict):
            self.client.create_bucket(name)

    def bucket_exists(self, name: str) -> bool:
        """Whether the bucket ``name`` exists."""
        return self.client.lookup_bucket(name) is not None

    def blobs(self, uri: str) -> Iterator[Any]:
        """Every object under the ``gs://`` prefix ``uri`` (or the object itself)."""
        bucket, path = split_gs(uri)
        yield from self.client.list_blobs(bucket, prefix=path)

    def exists(self, uri: str) -> bool:
        """Whether any object is at or under ``uri``."""
        return next(iter(self.blobs(uri)), None) is not None

    def download(self, uri: str, target: Path) -> list[Path]:
        """Copy the object or every object under ``uri`` into ``target`` (a directory).

        An object ``uri`` itself lands as ``target/<basename>``; objects under a prefix keep
        their path relative to it. Returns the files written.

        Raises:
            google.api_core.exceptions.NotFound: The bucket does not exist.
        """
        bucket, path = split_gs(uri)
        written = []
        target.mkdir(parents=True, exist_ok=True)
        prefix = path.rstrip("/") + "/" if path else ""
        for blob in self.client.list_blobs(bucket, prefix=path):
            if blob.name == path:
                relative = Path(path).name
            elif blob.name.startswith(prefix):
                relative = blob.name[len(prefix) :]
            else:
                continue  # a sibling that only shares the prefix (model vs model2)
            if not relative or relative.endswith("/"):
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(destination))
            written.append(destination)
        return written

    def write(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write one object.

        Raises:
            google.api_core.exceptions.NotFound: The bucket does not exist.
        """
        bucket_name, path = split_gs(uri)
        self.client.bucket(bucket_name).blob(path).upload_from_string(
            data, content_type=content_type
        )

    def read(self, uri: str) -> bytes:
        """Read one object.

        Raises:
            google.api_core.exceptions.NotFound: No such object.
        """
        bucket_name, path = split_gs(uri)
        data: bytes = self.client.bucket(bucket_name).blob(path).download_as_bytes()
        return data
