"""Azurite, the Azure Storage emulator from npm, as the emulator's blob storage.

Found, in order: an explicit path, ``$MLPORT_AZURITE``, ``azurite-blob`` on ``PATH``, then
``node_modules/.bin/azurite-blob`` in the current directory or any of its parents (where
``npm ci`` in the project puts it). Started in memory on a free port of 127.0.0.1 with its output
in files, and stopped by its process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mlport.errors import MissingDependencyError, WaitTimeoutError
from mlport.processes import ProcessExitedError, free_port, spawn, stop

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

    from mlport.processes import ProcessRecord

__all__ = ["ACCOUNT_NAME", "AZURITE_ENV", "Azurite", "find_azurite"]

AZURITE_ENV = "MLPORT_AZURITE"
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development account key, published in Azurite's documentation; it
# protects nothing and is the same on every machine.
_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_START_TIMEOUT = 30.0


def find_azurite(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``azurite-blob`` program.

    Args:
        explicit: A path given by the caller; wins over everything else.

    Returns:
        The program's path.

    Raises:
        MissingDependencyError: Azurite is nowhere to be found (the message says how to
            install it).
    """
    candidates: list[tuple[str, Path]] = []
    if explicit is not None:
        candidates.append(("the path given", Path(explicit)))
    configured = os.environ.get(AZURITE_ENV)
    if configured:
        candidates.append((f"${AZURITE_ENV}", Path(configured)))
    for label, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise MissingDependencyError(
            f"Azurite is not at {path} ({label}); install it with "
            "`npm install azurite` and point there"
        )
    on_path = shutil.which("azurite-blob")
    if on_path:
        return Path(on_path)
    for folder in (Path.cwd(), *Path.cwd().parents):
        program = folder / "node_modules" / ".bin" / "azurite-blob"
        if program.is_file() and os.access(program, os.X_OK):
            return program
    raise MissingDependencyError(
        "the Azure ML emulator needs Azurite (the Azure Storage emulator) for blob storage, and "
        "it was not found: not in $MLPORT_AZURITE, not as azurite-blob on PATH, not in "
        "node_modules/.bin of this folder or its parents. Install it with `npm install azurite` "
        "(or `npm ci` in the mlport repository), or set MLPORT_AZURITE to the azurite-blob program"
    )


class Azurite:
    """A running Azurite blob service.

    Attributes:
        port: The port it listens on (127.0.0.1).
        account_name: The storage account (Azurite's development account).
    """

    def __init__(self, work_dir: Path, program: str | os.PathLike[str] | None = None) -> None:
        """Start Azurite on a free port. Blocks until it accepts connections.

        Raises:
            MissingDependencyError: Azurite cannot be found.
            ProcessExitedError: It exited during start-up (its stderr is quoted).
            WaitTimeoutError: It did not listen within 30 s.
        """
        executable = find_azurite(program)
        self.account_name = ACCOUNT_NAME
        self.port = free_port()
        work_dir.mkdir(parents=True, exist_ok=True)
        self._popen, self._record = spawn(
            [
                str(executable),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            name="azurite",
            log_dir=work_dir / "logs",
            cwd=work_dir,
            detach=False,
        )
        self._closed = False
        try:
            self._wait_listening()
        except BaseException:
            self.close()
            raise

    @property
    def record(self) -> ProcessRecord:
        """The Azurite process's record."""
        return self._record

    @property
    def account_url(self) -> str:
        """The blob service URL, path-style (``http://127.0.0.1:PORT/devstoreaccount1``)."""
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def account_key(self) -> str:
        """Azurite's public development account key."""
        return _ACCOUNT_KEY

    @property
    def connection_string(self) -> str:
        """A connection string for azure-storage-blob."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={_ACCOUNT_KEY};BlobEndpoint={self.account_url};"
        )

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._popen.poll() is not None:
                tail = Path(self._record.stderr_path).read_text(errors="replace")[-2000:]
                raise ProcessExitedError(
                    f"Azurite exited with status {self._popen.returncode} during start-up: {tail}",
                    returncode=self._popen.returncode,
                    stderr_tail=tail,
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"Azurite did not listen on port {self.port} in time")
            time.sleep(0.05)

    def service(self) -> BlobServiceClient:
        """A blob service client on the development account."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def container(self, name: str) -> ContainerClient:
        """A container client, creating the container if needed."""
        from azure.core.exceptions import ResourceExistsError

        client = self.service().get_container_client(name)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
        return client

    def container_sas_url(self, container: str, hours: float = 8.0) -> str:
        """A read-write SAS URL for a container, as ``startPendingUpload`` returns."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        token = generate_container_sas(
            self.account_name,
            container,
            account_key=_ACCOUNT_KEY,
            permission=ContainerSasPermissions(
                read=True, write=True, list=True, add=True, create=True, delete=True
            ),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )
        return f"{self.account_url}/{container}?{token}"

    def account_sas(self, hours: float = 8.0) -> str:
        """An account SAS token (no leading ``?``), as ``listSecrets`` may return."""
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

        return generate_account_sas(
            self.account_name,
            account_key=_ACCOUNT_KEY,
            resource_types=ResourceTypes(service=True, container=True, object=True),
            permission=AccountSasPermissions(
                read=True, write=True, list=True, add=True, create=True, delete=True
            ),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )

    def download_prefix(self, container: str, prefix: str, destination: Path) -> int:
        """Download every blob under ``prefix`` into ``destination`` (keeping the layout below
        the prefix). A prefix naming one blob downloads that file. Returns the file count."""
        client = self.container(container)
        prefix = prefix.strip("/")
        count = 0
        destination.mkdir(parents=True, exist_ok=True)
        for blob in client.list_blobs(name_starts_with=prefix):
            name = str(blob.name)
            if name == prefix:
                relative = Path(name).name
            elif name.startswith(prefix + "/") or not prefix:
                relative = name[len(prefix) :].lstrip("/")
            else:
                continue
            if not relative:
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as file:
                client.download_blob(name).readinto(file)
            count += 1
        return count

    def upload_dir(self, container: str, source: Path, prefix: str) -> int:
        """Upload every file under ``source`` to ``prefix``. Returns the file count."""
        client = self.container(container)
        count = 0
        for path in _files(source):
            name = f"{prefix.strip('/')}/{path.relative_to(source).as_posix()}"
            with path.open("rb") as file:
                client.upload_blob(name, file, overwrite=True)
            count += 1
        return count

    def upload_bytes(self, container: str, name: str, data: bytes) -> None:
        """Write one blob."""
        self.container(container).upload_blob(name, data, overwrite=True)

    def list_names(self, container: str, prefix: str) -> list[str]:
        """Names of the blobs under ``prefix``."""
        return [str(b.name) for b in self.container(container).list_blobs(name_starts_with=prefix)]

    def clear(self) -> None:
        """Delete every container. Blocks."""
        service = self.service()
        for item in service.list_containers():
            service.delete_container(item.name)

    def close(self) -> None:
        """Stop Azurite. Idempotent; blocks until it is gone."""
        if self._closed:
            return
        self._closed = True
        stop(self._record, grace=0.5)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path
