"""On-prem notebooks: each one is a JupyterLab server on 127.0.0.1 with its files under the root.

A notebook is a row of the root's state plus a folder, ``notebooks/<name>/``::

    files/          the server's root_dir and the kernels' working directory; kept until delete
    token           the server's token, mode 0600, handed over through JUPYTER_TOKEN_FILE
    jupyter/        JUPYTER_CONFIG_DIR (with the generated jupyter_server_config.json),
                    JUPYTER_DATA_DIR and JUPYTER_RUNTIME_DIR, so nothing is read from or
                    written to the user's home
    ipython/        IPYTHONDIR of the kernels
    logs/           the server's stdout and stderr
    ready.json      written by the server once it has its port
    exit.json       written by the server when it stops itself or is asked to: why

and ``notebooks/.locks/<name>.lock``, which keeps two processes from starting or stopping the
same server at once. The row holds the server's PID and start time, port and token-less URL;
the token is only in the 0600 file.

The server is this module run as ``python -P -m mlport_onprem.notebooks <folder>``: Jupyter's
own server with JupyterLab as its extension, started detached through
:func:`mlport.processes.spawn` and recorded in the root's process table, so ``mlport down``
stops it. Creating returns at once; :meth:`OnPremNotebooks._get` reconciles the row with the real
process: RUNNING once ``/api/status`` answers with the token, STOPPED when it was stopped or
stopped itself (idle culling, a signal, the Lab "Shut Down" menu), FAILED with the end of its
stderr when it died any other way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport._redact import redact, register_secret
from mlport.errors import AlreadyExistsError, InvalidSpecError, NotFoundError, NotSupportedError
from mlport.handles import Notebook
from mlport.processes import ProcessRecord, is_running, spawn, stop, write_ready_file
from mlport.services import NotebookService, Page
from mlport.services.notebooks import SPEC_HASH_TAG
from mlport.status import NotebookStatus, StatusTable
from mlport_onprem._common import locked, now, read_json

if TYPE_CHECKING:
    from mlport.compute import ResolvedCompute
    from mlport.specs import NotebookOptions
    from mlport_onprem.root import OnPremProvider

__all__ = ["NOTEBOOK_STATES", "OnPremNotebooks"]

PAGE_SIZE = 50
TABLE = "notebooks"

#: The states a notebook's row records, mapped onto the common status.
NOTEBOOK_STATES = StatusTable(
    NotebookStatus,
    {
        "starting": NotebookStatus.PENDING,
        "running": NotebookStatus.RUNNING,
        "stopping": NotebookStatus.STOPPING,
        "stopped": NotebookStatus.STOPPED,
        "failed": NotebookStatus.FAILED,
        "deleting": NotebookStatus.DELETING,
    },
)
_LIVE_STATES = ("starting", "running", "stopping")

_READY_FILE = "ready.json"
_EXIT_FILE = "exit.json"
_TOKEN_FILE = "token"
# Jupyter binds port 0, reads the port and binds it again; in the gap another process may take
# it, and the server then exits with this message. Starting again gets another port.
_PORT_TAKEN = "no available port could be found"
_START_ATTEMPTS = 3
_STATUS_TIMEOUT = 0.5
_TAIL_LINES = 15
_TAIL_BYTES = 8192
_EXIT_MESSAGES = {
    "idle": "stopped after idle_timeout",
    "signal": "stopped by a signal (mlport down, or a SIGTERM sent to it)",
    "request": "shut down from Jupyter",
}


class OnPremNotebooks(NotebookService):
    """JupyterLab servers on this machine, one per notebook, each with its own folder."""

    provider: OnPremProvider

    def _folder(self, name: str) -> Path:
        return self.provider.root / "notebooks" / name

    def _create(
        self, name: str, options: NotebookOptions, compute: ResolvedCompute, spec_hash: str
    ) -> Notebook:
        if options.image is not None:
            raise NotSupportedError(
                "on-prem notebooks run this machine's Python; a custom image is not supported",
                provider=self.provider.name,
                resource=name,
            )
        own = options.provider_options.get(self.provider.name)
        if own:
            raise InvalidSpecError(
                f"on-prem notebooks take no provider_options; got {sorted(own)}",
                provider=self.provider.name,
                resource=name,
            )
        requested = compute.requested
        doc: dict[str, Any] = {
            "name": name,
            "status": "starting",
            "spec_hash": spec_hash,
            "idle_timeout": options.idle_timeout,
            # On-prem the machine is this one: the request is kept to show what was asked for.
            "compute": requested.model_dump(mode="json", exclude_none=True) if requested else {},
            "instance_type": compute.instance_type,
            "created_at": now(),
        }
        # Locked from the insert on, so nobody reconciles the row before its server exists.
        with self._locked(name):
            if not self.provider.state.insert(TABLE, name, doc):
                raise AlreadyExistsError(
                    f"notebook {name!r} already exists", provider=self.provider.name, resource=name
                )
            return self._view(self._launch(name, attempt=1))

    def _get(self, name: str) -> Notebook:
        with self._locked(name):
            return self._view(self._reconcile(self._doc(name)))

    def _list(self, page_token: str | None) -> Page[Notebook]:
        offset = int(page_token or 0)
        docs = self.provider.state.page(TABLE, offset, PAGE_SIZE)
        items = []
        for doc in docs:
            with self._locked(doc["name"]):
                fresh = self.provider.state.get(TABLE, doc["name"])
                if fresh is not None:
                    items.append(self._view(self._reconcile(fresh)))
        next_token = str(offset + PAGE_SIZE) if len(docs) == PAGE_SIZE else None
        return Page(items, next_token)

    def _start(self, name: str) -> None:
        with self._locked(name):
            doc = self._reconcile(self._doc(name))
            if doc["status"] in _LIVE_STATES:
                return
            self._launch(name, attempt=1)

    def _stop(self, name: str) -> None:
        with self._locked(name):
            doc = self._doc(name)
            self._halt(name, doc, "stopping")
            self.provider.state.update(
                TABLE, name, status="stopped", message="stopped", stopped_at=now()
            )

    def _delete(self, name: str) -> None:
        with self._locked(name):
            doc = self._doc(name)
            self._halt(name, doc, "deleting")
            folder = self._folder(name)
            if folder.exists():
                shutil.rmtree(folder)
            self.provider.state.delete(TABLE, name)

    # -- the server process ------------------------------------------------------------------

    def _launch(self, name: str, *, attempt: int) -> dict[str, Any]:
        """Start the notebook's server; returns the updated row. Does not wait for it."""
        doc = self._doc(name)
        folder = self._folder(name)
        files = folder / "files"
        jupyter = folder / "jupyter"
        for path in (files, jupyter / "config", jupyter / "data", jupyter / "runtime"):
            path.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        register_secret(token)
        _write_private(folder / _TOKEN_FILE, token)
        _write_private(
            jupyter / "config" / "jupyter_server_config.json",
            json.dumps(_jupyter_config(files, doc.get("idle_timeout")), indent=2),
        )
        for stale in (_READY_FILE, _EXIT_FILE):
            (folder / stale).unlink(missing_ok=True)
        process_name = f"notebook-{name}"
        logs = folder / "logs"
        stderr = logs / f"{process_name}.err"
        offset = stderr.stat().st_size if stderr.exists() else 0
        env = {
            "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
            "JUPYTER_DATA_DIR": str(jupyter / "data"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "IPYTHONDIR": str(folder / "ipython"),
            "JUPYTER_TOKEN_FILE": str(folder / _TOKEN_FILE),
            # jupyter-lsp runs `npm prefix -g` to find language servers; npm would log to ~/.npm.
            "npm_config_logs_dir": str(logs / "npm"),
            # Jupyter prefers JUPYTER_TOKEN to the file; one inherited from the user's shell
            # would replace our token, so it is blanked (an empty value counts as unset).
            "JUPYTER_TOKEN": "",
        }
        try:
            # -P: the working directory holds the user's files, which must not shadow modules.
            _, record = spawn(
                [sys.executable, "-P", "-m", "mlport_onprem.notebooks", str(folder)],
                name=process_name,
                log_dir=logs,
                cwd=files,
                env=env,
            )
        except OSError as exc:
            self.provider.state.update(
                TABLE,
                name,
                status="failed",
                process=None,
                failure_reason=f"could not start the notebook server: {exc}",
            )
            raise
        self.provider.processes.add(record)
        updated = self.provider.state.update(
            TABLE,
            name,
            status="starting",
            process=json.loads(record.to_json()),
            port=None,
            attempt=attempt,
            log_offset=offset,
            started_at=record.started_at,
            stopped_at=None,
            failure_reason=None,
            message="starting JupyterLab",
        )
        if updated is None:
            # Deleted by another process while we started it: take the server down again.
            stop(record, grace=self.provider.config.cancel_grace)
            self.provider.processes.remove(record)
            raise NotFoundError(
                f"notebook {name!r} was deleted while starting",
                provider=self.provider.name,
                resource=name,
            )
        return updated

    def _halt(self, name: str, doc: dict[str, Any], state: str) -> None:
        """Stop the notebook's server if it has one, recording ``state`` while it goes."""
        record = _record(doc)
        self.provider.state.update(TABLE, name, status=state, message=state)
        if record is not None:
            stop(record, grace=self.provider.config.cancel_grace)
            self.provider.processes.remove(record)
        self.provider.state.update(TABLE, name, process=None, port=None, url=None)

    def _reconcile(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Bring a row up to date with its server process; returns the row."""
        if doc["status"] not in _LIVE_STATES:
            return doc
        name = doc["name"]
        record = _record(doc)
        if record is not None and is_running(record):
            if doc["status"] != "starting":
                return doc
            port = doc.get("port") or self._ready_port(name, record)
            if port is None:
                return doc
            if self._answers(name, port):
                url = f"http://127.0.0.1:{port}/lab"
                return self._update(name, status="running", port=port, url=url, message="")
            if doc.get("port") != port:
                return self._update(name, port=port)
            return doc
        return self._ended(doc, record)

    def _ended(self, doc: dict[str, Any], record: ProcessRecord | None) -> dict[str, Any]:
        """The server is gone: tell how it ended, and record that."""
        name = doc["name"]
        if record is not None:
            # Reaps it if it was our child, and takes down anything left in its group.
            stop(record, grace=self.provider.config.cancel_grace)
            self.provider.processes.remove(record)
        fields: dict[str, Any] = {"process": None, "port": None, "url": None, "stopped_at": now()}
        if doc["status"] == "stopping":
            return self._update(name, status="stopped", message="stopped", **fields)
        reason = self._exit_reason(name, record)
        if reason is not None:
            message = _EXIT_MESSAGES.get(reason, f"stopped ({reason})")
            return self._update(name, status="stopped", message=message, **fields)
        tail = self._stderr_tail(name, doc)
        attempt = int(doc.get("attempt", 1))
        if _PORT_TAKEN in tail and attempt < _START_ATTEMPTS:
            return self._launch(name, attempt=attempt + 1)
        where = record.stderr_path if record is not None else "its log"
        reason_text = "the notebook server exited without being stopped"
        reason_text += f"; the end of its stderr ({where}):\n{tail}" if tail else ""
        return self._update(
            name, status="failed", failure_reason=reason_text, message="failed", **fields
        )

    def _exit_reason(self, name: str, record: ProcessRecord | None) -> str | None:
        data = read_json(self._folder(name) / _EXIT_FILE)
        if data is None or record is None or data.get("pid") != record.pid:
            return None
        return str(data.get("reason", "")) or None

    def _ready_port(self, name: str, record: ProcessRecord) -> int | None:
        data = read_json(self._folder(name) / _READY_FILE)
        if data is None or data.get("pid") != record.pid:
            return None
        port = data.get("port")
        return port if isinstance(port, int) and port > 0 else None

    def _answers(self, name: str, port: int) -> bool:
        """True if the server answers ``/api/status`` with our token (a cheap, local check)."""
        token = self._token(name)
        if token is None:
            return False
        # no_track_activity: our polling must not keep an idle server from being culled.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status?no_track_activity=1",
            headers={"Authorization": f"token {token}"},
        )
        # An empty ProxyHandler: a proxy configured in the environment must not see the token.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=_STATUS_TIMEOUT) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _token(self, name: str) -> str | None:
        try:
            token = (self._folder(name) / _TOKEN_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        register_secret(token)
        return token or None

    def _stderr_tail(self, name: str, doc: dict[str, Any]) -> str:
        path = self._folder(name) / "logs" / f"notebook-{name}.err"
        try:
            with path.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                offset = int(doc.get("log_offset", 0))
                start = max(offset, size - _TAIL_BYTES)
                file.seek(start)
                data = file.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", errors="replace").strip().splitlines()
        if start > offset:
            lines = lines[1:]  # begins mid-line
        return redact("\n".join(lines[-_TAIL_LINES:]))

    # -- rows and handles --------------------------------------------------------------------

    def _doc(self, name: str) -> dict[str, Any]:
        return self._found(name, self.provider.state.get(TABLE, name))

    def _update(self, name: str, **changes: Any) -> dict[str, Any]:
        return self._found(name, self.provider.state.update(TABLE, name, **changes))

    def _found(self, name: str, doc: dict[str, Any] | None) -> dict[str, Any]:
        if doc is None:
            raise NotFoundError(
                f"notebook {name!r} not found under {self.provider.root}",
                provider=self.provider.name,
                resource=name,
            )
        return doc

    def _view(self, doc: dict[str, Any]) -> Notebook:
        name = doc["name"]
        status = NOTEBOOK_STATES[doc["status"]]
        url = None
        port = doc.get("port")
        if status is NotebookStatus.RUNNING and port:
            token = self._token(name)
            if token is not None:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
        return Notebook(
            name=name,
            status=status,
            url=url,
            provider_id=str(self._folder(name)),
            instance_type=doc.get("instance_type"),
            idle_timeout=doc.get("idle_timeout"),
            failure_reason=doc.get("failure_reason") if status is NotebookStatus.FAILED else None,
            message=doc.get("message") or "",
            created_at=datetime.fromisoformat(doc["created_at"]) if doc.get("created_at") else None,
            tags={SPEC_HASH_TAG: doc["spec_hash"]},
        )

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold the notebook's lock, so two processes never start or stop its server together.

        Lock files live apart from the notebook's folder, which delete removes.
        """
        with locked(self.provider.root / "notebooks" / ".locks" / f"{name}.lock"):
            yield


def _record(doc: dict[str, Any]) -> ProcessRecord | None:
    data = doc.get("process")
    return ProcessRecord.from_json(json.dumps(data)) if data else None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    tmp.replace(path)


def _jupyter_config(root_dir: Path, idle_timeout: int | None) -> dict[str, Any]:
    """The server's settings: local only, no browser, nothing fetched from the internet."""
    server: dict[str, Any] = {
        "ip": "127.0.0.1",
        "port": 0,
        "port_retries": 0,
        "open_browser": False,
        "allow_remote_access": False,
        "root_dir": str(root_dir),
        # Jupyter refuses to run as root unless told; where mlport itself runs as root (a
        # container), the notebook does too.
        "allow_root": os.geteuid() == 0,
    }
    config: dict[str, Any] = {
        "ServerApp": server,
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "extension_manager": "readonly",
        },
    }
    if idle_timeout:
        server["shutdown_no_activity_timeout"] = idle_timeout
        config["MappingKernelManager"] = {
            "cull_idle_timeout": idle_timeout,
            "cull_interval": max(1, min(300, idle_timeout // 3)),
            "cull_connected": True,
        }
    return config


def _record_exit(folder: Path, reason: str) -> None:
    """Tell the parent why the server is ending; the first reason given wins."""
    path = folder / _EXIT_FILE
    if not path.exists():
        write_ready_file(path, json.dumps({"pid": os.getpid(), "reason": reason}))


def _serve(folder: Path) -> None:
    """Run the notebook server of ``folder`` until it stops. Blocks; the server's process.

    Jupyter's own server, with three additions: it reports its port in ``ready.json``; when it
    ends other than by crashing or SIGKILL, it says why in ``exit.json`` (idle culling, a signal,
    or a shutdown asked for from Jupyter); and it checks for inactivity often enough that a short
    ``idle_timeout`` is kept (Jupyter checks once a minute).
    """

    def stop_while_starting(signum: int, frame: object) -> None:
        _record_exit(folder, "signal")
        sys.exit(128 + signum)

    # Until Jupyter installs its own handler, a SIGTERM (mlport down) would end the process
    # without a word, and it would look as if it had crashed.
    signal.signal(signal.SIGTERM, stop_while_starting)

    # jsonschema builds an IRI grammar at import when rfc3987_syntax is installed, which costs
    # about two seconds of every start; Jupyter's event schemas do not need IRI checks, and
    # jsonschema skips them when the import fails.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from jupyter_server.serverapp import ServerApp
    from tornado.ioloop import PeriodicCallback

    class NotebookServerApp(ServerApp):
        _checking_idle = False

        def init_shutdown_no_activity(self) -> None:
            timeout = self.shutdown_no_activity_timeout
            if timeout > 0:
                self.log.info("Will shut down after %d seconds with no kernels.", timeout)
                interval = min(60.0, max(1.0, timeout / 3))
                PeriodicCallback(self._shutdown_if_idle, interval * 1000).start()

        def _shutdown_if_idle(self) -> None:
            self._checking_idle = True
            try:
                self.shutdown_no_activity()
            finally:
                self._checking_idle = False

        def start_app(self) -> None:
            super().start_app()
            write_ready_file(
                folder / _READY_FILE, json.dumps({"pid": os.getpid(), "port": self.port})
            )

        def stop(self, from_signal: bool = False) -> None:
            if self._checking_idle:
                _record_exit(folder, "idle")
            elif from_signal:
                _record_exit(folder, "signal")
            super().stop(from_signal)

    NotebookServerApp.launch_instance(argv=[])
    # The loop ended without idle culling or a signal: /api/shutdown (Lab's File > Shut Down).
    _record_exit(folder, "request")


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
