"""On-prem notebooks against real JupyterLab servers on 127.0.0.1 (no mocks).

Each server takes about two seconds to start, so the tests that only look at a running server
share one (``shared``); tests that stop, kill or time out a server start their own.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport._redact import redact
from mlport.errors import NotFoundError, NotSupportedError
from mlport.handles import Notebook
from mlport.processes import ProcessRecord, ProcessTable, is_running
from mlport.status import NotebookStatus
from mlport.testing import conformance

WAIT = 60.0


class TestNotebookConformance(conformance.Fixtures, conformance.NotebookTests):
    pass


@dataclass
class Shared:
    ml: mlport.Connection
    root: Path
    name: str

    def notebook(self) -> Notebook:
        return self.ml.notebooks.get(self.name)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One running notebook on its own root, for the tests that only need it to be running."""
    root = tmp_path_factory.mktemp("shared") / "root"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLPORT_CONFIG", raising=False)
        patch.delenv("MLPORT_PROFILE", raising=False)
        ml = _connect(root)
        try:
            ml.notebooks.create("shared").wait(WAIT, progress=False)
            yield Shared(ml, root, "shared")
        finally:
            ml.down()
            ml.close()


def _connect(root: Path) -> mlport.Connection:
    return mlport.connect(
        "onprem", root=str(root), poll_interval=0.05, max_poll_interval=0.25, cancel_grace=3
    )


def _http(
    method: str, url: str, *, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """One request without proxies or redirects: status, headers, body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _base_and_token(notebook: Notebook) -> tuple[str, str]:
    assert notebook.url is not None
    parts = urllib.parse.urlsplit(notebook.url)
    assert parts.hostname == "127.0.0.1"
    assert parts.path == "/lab"
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    return f"{parts.scheme}://{parts.netloc}", token


def _server(root: Path, name: str) -> ProcessRecord:
    """The notebook's server process, as the root's process table records it."""
    found = [
        r for r in ProcessTable(root / "processes.jsonl").records() if r.name == f"notebook-{name}"
    ]
    assert len(found) == 1, found
    return found[0]


def _wait_for(notebook: Notebook, status: NotebookStatus, timeout: float) -> Notebook:
    deadline = time.monotonic() + timeout
    while notebook.refresh().status is not status:
        assert time.monotonic() < deadline, f"still {notebook.status} after {timeout}s"
        time.sleep(0.1)
    return notebook


def test_token_is_required(shared: Shared) -> None:
    base, token = _base_and_token(shared.notebook())
    status, _, _ = _http("GET", f"{base}/api/contents")
    assert status == 403
    status, _, _ = _http("GET", f"{base}/api/contents", token="not-" + token)
    assert status == 403
    status, headers, _ = _http("GET", f"{base}/lab")
    assert status == 302
    assert "/login" in headers["Location"]
    status, _, body = _http("GET", f"{base}/api/contents", token=token)
    assert status == 200
    assert json.loads(body)["type"] == "directory"
    status, _, _ = _http("GET", f"{base}/lab?token={token}")
    assert status == 200


def test_token_is_private(shared: Shared) -> None:
    notebook = shared.notebook()
    _, token = _base_and_token(notebook)
    token_file = Path(notebook.provider_id) / "token"
    assert token_file.read_text() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    server = _server(shared.root, shared.name)
    assert is_running(server)
    # What `ps` shows, and the environment another user's tools could read.
    assert token.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert token.encode() not in Path(f"/proc/{server.pid}/environ").read_bytes()
    assert token not in redact(f"open {notebook.url}")


def test_seen_from_a_second_connection(shared: Shared) -> None:
    here = shared.notebook()
    with _connect(shared.root) as other:
        there = other.notebooks.get(shared.name)
        assert there.status is NotebookStatus.RUNNING
        assert there.url == here.url
        assert there.provider_id == here.provider_id
        assert shared.name in {n.name for n in other.notebooks.list()}
    # Closing the second connection leaves the server alone.
    assert shared.notebook().status is NotebookStatus.RUNNING


def test_stop_start_keeps_files(shared: Shared) -> None:
    notebook = shared.notebook()
    base, token = _base_and_token(notebook)
    content = {"type": "file", "format": "text", "content": "kept across restarts\n"}
    status, _, _ = _http("PUT", f"{base}/api/contents/kept.txt", token=token, body=content)
    assert status == 201
    server = _server(shared.root, shared.name)

    notebook.stop()
    assert notebook.status is NotebookStatus.STOPPED
    assert notebook.url is None
    assert not is_running(server)
    files = Path(notebook.provider_id) / "files"
    assert (files / "kept.txt").read_text() == "kept across restarts\n"

    assert notebook.start().wait(WAIT, progress=False).status is NotebookStatus.RUNNING
    base, token = _base_and_token(notebook)
    status, _, body = _http("GET", f"{base}/api/contents/kept.txt?content=1", token=token)
    assert status == 200
    assert json.loads(body)["content"] == "kept across restarts\n"


def test_options_this_provider_lacks_are_refused(ml: mlport.Connection) -> None:
    with pytest.raises(NotSupportedError, match="image"):
        ml.notebooks.create("imaged", image="jupyter/scipy-notebook")
    with pytest.raises(NotFoundError):
        ml.notebooks.get("imaged")


def test_killed_server_is_failed(ml: mlport.Connection, root: Path) -> None:
    notebook = ml.notebooks.create("victim").wait(WAIT, progress=False)
    _, token = _base_and_token(notebook)
    server = _server(root, "victim")
    os.killpg(server.pgid, signal.SIGKILL)

    notebook = _wait_for(notebook, NotebookStatus.FAILED, 10)
    assert notebook.failure_reason is not None
    assert "exited without being stopped" in notebook.failure_reason
    assert "notebook-victim.err" in notebook.failure_reason
    assert "NotebookServerApp" in notebook.failure_reason  # the end of its stderr
    assert token not in notebook.failure_reason
    assert notebook.url is None
    assert ProcessTable(root / "processes.jsonl").records() == []
    # A failed notebook starts again; shut down from Jupyter itself it is STOPPED, not FAILED.
    notebook.start().wait(WAIT, progress=False)
    assert notebook.status is NotebookStatus.RUNNING
    base, token = _base_and_token(notebook)
    status, _, _ = _http("POST", f"{base}/api/shutdown", token=token)
    assert status == 200
    notebook = _wait_for(notebook, NotebookStatus.STOPPED, 10)
    assert notebook.message == "shut down from Jupyter"


def test_idle_timeout_stops_the_server(ml: mlport.Connection, root: Path) -> None:
    notebook = ml.notebooks.create("idle", idle_timeout="3s").wait(WAIT, progress=False)
    assert notebook.idle_timeout == 3
    server = _server(root, "idle")
    started = time.monotonic()

    notebook = _wait_for(notebook, NotebookStatus.STOPPED, 15)
    assert notebook.message == "stopped after idle_timeout"
    assert time.monotonic() - started < 15
    assert not is_running(server)
    assert notebook.url is None


def test_down_stops_running_and_starting_notebooks(ml: mlport.Connection, root: Path) -> None:
    first = ml.notebooks.create("first")
    second = ml.notebooks.create("second")
    first.wait(WAIT, progress=False)
    second.wait(WAIT, progress=False)
    starting = ml.notebooks.create("starting")
    servers = [_server(root, "first"), _server(root, "second"), _server(root, "starting")]
    # Stopped once it is up enough to say so; before that it is killed like any process.
    _wait_until(lambda: _catches_sigterm(servers[2].pid), 10)

    stopped = ml.down()

    assert all(any(str(s.pid) in line for line in stopped) for s in servers)
    assert not any(is_running(s) for s in servers)
    for notebook in (first, second, starting):
        assert notebook.refresh().status is NotebookStatus.STOPPED, notebook.failure_reason
        assert notebook.url is None
    assert "mlport down" in first.message


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true after {timeout}s"
        time.sleep(0.02)


def test_delete_removes_files_and_is_idempotent(ml: mlport.Connection, root: Path) -> None:
    notebook = ml.notebooks.create("gone")
    folder = Path(notebook.provider_id)
    (folder / "files" / "note.txt").write_text("bye")
    server = _server(root, "gone")

    ml.notebooks.delete("gone")
    ml.notebooks.delete("gone")

    assert not folder.exists()
    assert not is_running(server)
    with pytest.raises(NotFoundError, match="gone"):
        ml.notebooks.get("gone")
