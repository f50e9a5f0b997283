"""``AzureMLEmulator``: the context manager that starts Azurite and the HTTPS server."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlport.testing.ca import ca_env, issue_server_cert
from mlport.testing.emulator import EmulatorBase, InjectedError
from mlport_azureml.emulator._http import HttpsServer
from mlport_azureml.emulator._service import Service, Settings
from mlport_azureml.emulator.azurite import Azurite

__all__ = ["AzureMLEmulator", "EmulatorCredential"]

_TOKEN_SECONDS = 3600


class _AccessToken(NamedTuple):
    token: str
    expires_on: int


class _AccessTokenInfo:
    def __init__(self, token: str, expires_on: int) -> None:
        self.token = token
        self.expires_on = expires_on
        self.token_type = "Bearer"
        self.refresh_on: int | None = None


class EmulatorCredential:
    """An azure-core ``TokenCredential`` whose tokens the emulator accepts (and nothing else).

    Implements both ``get_token`` and ``get_token_info``; never contacts an identity provider.
    """

    def __init__(self, token: str = "mlport-emulator-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> _AccessToken:
        """Return a bearer token valid for an hour."""
        return _AccessToken(self._token, int(time.time()) + _TOKEN_SECONDS)

    def get_token_info(self, *scopes: str, options: Any = None) -> _AccessTokenInfo:
        """Return the same token in azure-core's newer ``AccessTokenInfo`` shape."""
        return _AccessTokenInfo(self._token, int(time.time()) + _TOKEN_SECONDS)

    def __repr__(self) -> str:
        return "EmulatorCredential()"


class AzureMLEmulator(EmulatorBase):
    """A local Azure ML workspace over HTTPS, with Azurite for its blob storage.

    Starting it (in ``__init__``) blocks for about a second: Azurite is started on a free port,
    a server certificate is issued by the shared local CA, and the HTTPS server starts on a
    thread of this process. Jobs, model servers and Azurite are child processes, all stopped by
    :meth:`close` (and :meth:`reset`, except Azurite, which is emptied).

    Attributes:
        subscription_id: The workspace's subscription id.
        resource_group: Its resource group.
        workspace_name: Its name.
        credential: A TokenCredential the emulator accepts.
        settings: Names and timings (delays are zero by default).
    """

    provider = "azureml"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Settings | None = None,
        work_dir: str | Path | None = None,
        azurite: str | Path | None = None,
    ) -> None:
        """Start the emulator.

        Args:
            host: Interface to bind (127.0.0.1; the certificate also names localhost).
            port: Port to bind; 0 picks a free one.
            settings: Workspace names and timings.
            work_dir: Where job folders, model servers and logs go (default: a temporary
                folder removed on close).
            azurite: Path of ``azurite-blob`` (default: ``$MLPORT_AZURITE``, ``PATH``, then
                ``node_modules/.bin`` here or above).

        Raises:
            MissingDependencyError: Azurite (or ``cryptography`` for the certificate) is missing.
        """
        self.settings = settings or Settings()
        self._own_dir = work_dir is None
        self.work_dir = (
            Path(tempfile.mkdtemp(prefix="mlport-azureml-")) if work_dir is None else Path(work_dir)
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._lock = threading.Lock()
        self._azurite: Azurite | None = None
        self._server: HttpsServer | None = None
        self._service: Service | None = None
        try:
            self._azurite = Azurite(self.work_dir / "azurite", azurite)
            cert = issue_server_cert(self.work_dir / "tls", hosts=("127.0.0.1", "localhost", "::1"))
            self._ca_env = ca_env(cert.ca_file)
            self._service = Service(self.settings, self.work_dir, self._azurite)
            from mlport_azureml.emulator import families

            families.register_all(self._service)
            self._server = HttpsServer(
                host,
                port,
                cert_file=str(cert.bundle_file),
                key_file=str(cert.key_file),
                dispatch=self._service.dispatch,
            )
            self.host = host
            self.port = int(self._server.server_address[1])
            self._service.base_url = self.base_url
            self._service.create_containers()
            self._server.start()
        except BaseException:
            self.close()
            raise
        self.credential = EmulatorCredential()
        self.cloud_name = f"MlportAzureMLEmulator{self.port}"

    # --- what clients need -------------------------------------------------------------------

    @property
    def subscription_id(self) -> str:
        """The subscription id."""
        return self.settings.subscription_id

    @property
    def resource_group(self) -> str:
        """The resource group."""
        return self.settings.resource_group

    @property
    def workspace_name(self) -> str:
        """The workspace name."""
        return self.settings.workspace_name

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``: ARM, operation status and scoring all live here."""
        return f"https://{self.host}:{self.port}"

    @property
    def ca_bundle(self) -> str:
        """A PEM bundle trusting the local CA (and the system's CAs)."""
        return self._ca_env["REQUESTS_CA_BUNDLE"]

    @property
    def cloud_metadata(self) -> dict[str, str]:
        """The ``cloud_metadata`` MLClient takes: every key it reads, pointing here."""
        return {
            "azure_portal": self.base_url + "/",
            "resource_manager": self.base_url + "/",
            "active_directory": self.base_url + "/",
            "aml_resource_id": self.base_url + "/",
            "storage_endpoint": "localhost",
            "registry_discovery_endpoint": self.base_url + "/",
        }

    @property
    def client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that route ``MLClient`` here.

        ``cloud`` (a name unique to this emulator) with its ``cloud_metadata``,
        ``connection_verify`` (the CA bundle), and ``enable_telemetry=False``,
        ``show_progress=False``.
        """
        return {
            "cloud": self.cloud_name,
            "cloud_metadata": self.cloud_metadata,
            "connection_verify": self.ca_bundle,
            "enable_telemetry": False,
            "show_progress": False,
        }

    @property
    def env(self) -> Mapping[str, str]:
        """Environment for clients: ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` and
        ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, each a bundle trusting the local CA, and
        ``AZUREML_RUN_POLLING_INTERVAL_MIN=0`` (``jobs.stream`` polls without its 2 s floor; the
        emulator holds each poll up to a second instead). Set them before ``azure.ai.ml`` is
        imported.

        azure-ai-ml needs nothing else from the environment: telemetry is off through
        ``enable_telemetry=False`` in :attr:`client_kwargs` (and only ever on in notebooks).
        """
        return {**self._ca_env, "AZUREML_RUN_POLLING_INTERVAL_MIN": "0"}

    @property
    def connect_kwargs(self) -> Mapping[str, Any]:
        """What ``mlport.connect("azureml", **connect_kwargs)`` will take.

        The workspace triple plus the routing: ``credential`` (a runtime object, never
        persisted), ``cloud``, ``cloud_metadata`` and ``connection_verify``.
        """
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace_name,
            "credential": self.credential,
            "cloud": self.cloud_name,
            "cloud_metadata": self.cloud_metadata,
            "connection_verify": self.ca_bundle,
        }

    @property
    def azurite(self) -> Azurite:
        """The Azurite process holding the workspace's blobs."""
        if self._azurite is None:
            raise RuntimeError("the emulator is closed")
        return self._azurite

    @property
    def service(self) -> Service:
        """The emulated workspace (state, faults, timings)."""
        if self._service is None:
            raise RuntimeError("the emulator is closed")
        return self._service

    def apply(self) -> None:
        """Route azure-ai-ml's datastore uploads and downloads to Azurite, in this process.

        azure-ai-ml builds a datastore's blob URL as ``https://{account}.blob.{storage suffix}``
        (``azure.ai.ml.constants._common.STORAGE_ACCOUNT_URLS``), a host name that cannot point
        at a local Azurite. This replaces the ``AzureBlob`` entry of that dict (in place, so
        every module that imported it sees the change) with Azurite's path-style URL. Needed
        for model uploads from local files and for ``jobs.download``; code uploads use the SAS
        URI the emulator hands out and need nothing. Idempotent; the last emulator applied wins.
        """
        from azure.ai.ml.constants import _common

        _common.STORAGE_ACCOUNT_URLS["AzureBlob"] = f"http://127.0.0.1:{self.azurite.port}/" + "{}"

    # --- control -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every resource and pending fault; stop jobs and model servers. Blocks."""
        self.service.reset()

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Make the next ``times`` calls of an operation fail.

        Args:
            method: The REST reference's operation id (``"Jobs_CreateOrUpdate"``,
                ``"OnlineEndpoints_CreateOrUpdate"``, ``"ModelVersions_Get"``...), or
                ``"Jobs_Execute"`` for a job's run.
            error: ``"429"``/``"TooManyRequests"`` (with ``Retry-After: 0``), ``"500"``,
                ``"503"``/``"ServiceUnavailable"``, ``"400"``, ``"404"``, ``"409"``, an
                exception (answered 500), ``"drop_response_after_commit"`` (the call takes
                effect, the connection is dropped before the answer), or ``"JobFailed"`` with
                ``"Jobs_Execute"`` (the next job ends Failed).
            times: How many calls fail.

        Raises:
            InvalidSpecError: Unknown operation or error, or ``times`` < 1.
        """
        self.service.inject(method, error, times)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every call of an operation by ``seconds`` (0 removes the delay)."""
        self.service.set_latency(method, seconds)

    def close(self) -> None:
        """Stop the server, jobs, model servers and Azurite. Idempotent; blocks."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._server is not None:
            self._server.stop()
        if self._service is not None:
            self._service.close()
        if self._azurite is not None:
            self._azurite.close()
        if self._own_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.base_url
        return f"AzureMLEmulator({state}, workspace={self.settings.workspace_name!r})"
