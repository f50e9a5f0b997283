from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlport.errors import InvalidSpecError, MlportError, WaitTimeoutError
from mlport.processes import (
    ProcessExitedError,
    ProcessRecord,
    ProcessTable,
    is_running,
    process_start_time,
    spawn,
    stop,
    wait_for_ready_file,
    write_ready_file,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def _alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (orphans may stay zombies under a lazy init)."""
    return process_start_time(pid) is not None


def _wait_until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Started:
    """spawn(), remembering each process so teardown stops it whatever the test did.

    Holding the Popen until then also keeps Python from warning that a child it lost track of
    is still running.
    """

    def __init__(self) -> None:
        self.processes: list[tuple[subprocess.Popen[bytes], ProcessRecord]] = []

    def __call__(
        self, argv: list[str], *, name: str, log_dir: Path, **kwargs: Any
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        popen, record = spawn(argv, name=name, log_dir=log_dir, **kwargs)
        self.processes.append((popen, record))
        return popen, record


@pytest.fixture
def started() -> Iterator[Started]:
    tracker = Started()
    yield tracker
    for popen, record in tracker.processes:
        stop(record, grace=0.5)
        popen.wait(timeout=5)


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


SLEEPER = """
import sys, time
print("hello on stdout", flush=True)
print("hello on stderr", file=sys.stderr, flush=True)
time.sleep(60)
"""


def test_spawn_writes_output_to_files_not_to_our_stdout(
    tmp_path: Path, started: Started, capfd: pytest.CaptureFixture[str]
) -> None:
    popen, record = started(_python(SLEEPER), name="sleeper", log_dir=tmp_path / "logs")

    out = Path(record.stdout_path)
    err = Path(record.stderr_path)
    assert out == tmp_path / "logs" / "sleeper.out"
    assert err == tmp_path / "logs" / "sleeper.err"
    _wait_until(lambda: "hello on stderr" in err.read_text())
    assert out.read_text() == "hello on stdout\n"
    captured = capfd.readouterr()
    assert "hello" not in captured.out
    assert "hello" not in captured.err

    assert record.pid == popen.pid
    assert record.pgid == popen.pid  # leads its own group
    assert os.getsid(popen.pid) == popen.pid  # and its own session
    assert record.start_time
    assert record.argv[0] == sys.executable
    assert is_running(record)


def test_spawn_appends_to_existing_logs_and_adds_env(tmp_path: Path, started: Started) -> None:
    (tmp_path / "job.out").write_text("earlier run\n")
    popen, record = started(
        _python("import os; print(os.environ['EXTRA'], os.environ['HOME'] != '')"),
        name="job",
        log_dir=tmp_path,
        env={"EXTRA": "extra-value"},
    )
    assert popen.wait(timeout=10) == 0
    assert Path(record.stdout_path).read_text() == "earlier run\nextra-value True\n"
    assert not is_running(record)


def test_spawn_stdin_is_empty(tmp_path: Path, started: Started) -> None:
    popen, record = started(
        _python("import sys; print(repr(sys.stdin.read()))"), name="reader", log_dir=tmp_path
    )
    assert popen.wait(timeout=10) == 0
    assert Path(record.stdout_path).read_text() == "''\n"


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_spawn_rejects_names_that_are_not_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidSpecError):
        spawn(["true"], name=name, log_dir=tmp_path)


def test_stop_kills_the_whole_group_including_a_grandchild(
    tmp_path: Path, started: Started
) -> None:
    code = """
    import subprocess, sys, time
    child = subprocess.Popen(["sleep", "60"])
    print(child.pid, flush=True)
    time.sleep(60)
    """
    popen, record = started(_python(code), name="parent", log_dir=tmp_path)
    out = Path(record.stdout_path)
    _wait_until(lambda: out.read_text().strip() != "")
    grandchild = int(out.read_text())
    assert _alive(grandchild)

    assert stop(record, grace=5.0) is True

    assert not is_running(record)
    assert not _alive(grandchild)
    assert popen.returncode == -signal.SIGTERM  # reaped through the Popen: real status kept
    assert stop(record) is False  # idempotent


def test_stop_uses_sigkill_after_the_grace_period(tmp_path: Path, started: Started) -> None:
    code = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(60)
    """
    popen, record = started(_python(code), name="stubborn", log_dir=tmp_path)
    _wait_until(lambda: Path(record.stdout_path).read_text() == "ready\n")

    began = time.monotonic()
    assert stop(record, grace=0.3) is True
    assert time.monotonic() - began >= 0.3
    assert popen.returncode == -signal.SIGKILL


def test_stop_finds_what_a_leader_left_behind(tmp_path: Path, started: Started) -> None:
    # The leader exits at once; the sleep it started stays in the group.
    popen, record = started(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], name="wrapper", log_dir=tmp_path
    )
    popen.wait(timeout=10)
    orphan = int(Path(record.stdout_path).read_text())
    assert _alive(orphan)
    assert not is_running(record)

    assert stop(record, grace=2.0) is True
    assert not _alive(orphan)


def test_a_record_with_another_start_time_is_not_running_and_not_killed(
    tmp_path: Path, started: Started
) -> None:
    popen, record = started(["sleep", "60"], name="victim", log_dir=tmp_path)
    recycled = dataclasses.replace(record, start_time="1")

    assert not is_running(recycled)
    assert stop(recycled, grace=0.1) is False
    assert popen.poll() is None
    assert is_running(record)


def test_is_running_is_false_for_an_unreaped_zombie(tmp_path: Path, started: Started) -> None:
    _popen, record = started(["true"], name="quick", log_dir=tmp_path)
    # Not waited for: the child stays a zombie, which still has the same PID and start time.
    _wait_until(lambda: not is_running(record))
    assert Path(f"/proc/{record.pid}").exists() or sys.platform != "linux"


def test_record_json_round_trip(tmp_path: Path, started: Started) -> None:
    _popen, record = started(["sleep", "60"], name="json", log_dir=tmp_path)
    text = record.to_json()
    assert "\n" not in text
    assert ProcessRecord.from_json(text) == record
    with pytest.raises(ValueError, match="missing"):
        ProcessRecord.from_json(json.dumps({"pid": 1}))


HTTP_SERVER = """
import http.server, sys
from mlport.processes import write_ready_file

server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
write_ready_file(sys.argv[1], str(server.server_port))
server.serve_forever()
"""


def test_wait_for_ready_file_from_a_real_server(tmp_path: Path, started: Started) -> None:
    ready = tmp_path / "server.ready"
    (tmp_path / "hello.txt").write_text("served")
    popen, record = started(
        _python(HTTP_SERVER, str(ready)), name="http", log_dir=tmp_path / "logs", cwd=tmp_path
    )

    port = int(wait_for_ready_file(ready, timeout=10, process=popen))

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/hello.txt")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b"served"
    finally:
        connection.close()
    assert stop(record, grace=2.0) is True


@pytest.mark.parametrize("pass_record", [False, True], ids=["popen", "record"])
def test_wait_for_ready_file_fails_fast_with_stderr_when_the_process_dies(
    tmp_path: Path, started: Started, pass_record: bool
) -> None:
    code = """
    import sys
    print("starting", file=sys.stderr)
    print("cannot bind: address already in use", file=sys.stderr)
    sys.exit(3)
    """
    popen, record = started(_python(code), name="broken", log_dir=tmp_path)

    began = time.monotonic()
    with pytest.raises(ProcessExitedError) as caught:
        wait_for_ready_file(
            tmp_path / "never.ready", timeout=30, process=record if pass_record else popen
        )
    assert time.monotonic() - began < 5
    assert "cannot bind: address already in use" in str(caught.value)
    assert "'broken'" in str(caught.value)
    assert "cannot bind" in caught.value.stderr_tail
    if not pass_record:
        assert caught.value.returncode == 3
    assert isinstance(caught.value, MlportError)
    popen.wait(timeout=5)


def test_wait_for_ready_file_times_out(tmp_path: Path, started: Started) -> None:
    popen, _record = started(["sleep", "60"], name="silent", log_dir=tmp_path)
    with pytest.raises(WaitTimeoutError, match=r"within 0\.2s"):
        wait_for_ready_file(tmp_path / "never.ready", timeout=0.2, process=popen)
    assert popen.poll() is None


def test_write_ready_file_replaces_atomically(tmp_path: Path) -> None:
    ready = tmp_path / "x.ready"
    write_ready_file(ready, "1")
    write_ready_file(ready, "2")
    assert wait_for_ready_file(ready, timeout=1) == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["x.ready"]  # no temporary left behind


def test_process_table_round_trip_across_instances(tmp_path: Path, started: Started) -> None:
    path = tmp_path / "state" / "processes.jsonl"
    _a, first = started(["sleep", "60"], name="a", log_dir=tmp_path)
    _b, second = started(["sleep", "60"], name="b", log_dir=tmp_path)
    _c, finished = started(["true"], name="c", log_dir=tmp_path)
    _c.wait(timeout=5)

    writer = ProcessTable(path)
    for record in (first, second, finished):
        writer.add(record)
    writer.add(first)  # no duplicate

    reader = ProcessTable(path)
    assert reader.records() == [second, finished, first]
    assert reader.running() == [second, first]
    assert reader.remove(second) is True
    assert reader.remove(second) is False
    assert writer.records() == [finished, first]

    assert writer.stop_all(grace=2.0) == [first]
    assert not is_running(first)
    assert reader.records() == []
    assert stop(second, grace=2.0) is True


def test_process_table_names_a_corrupt_line(tmp_path: Path) -> None:
    path = tmp_path / "processes.jsonl"
    path.write_text("not json\n")
    with pytest.raises(MlportError, match=r"processes\.jsonl:1"):
        ProcessTable(path).records()


def test_attached_processes_stop_when_the_interpreter_exits(tmp_path: Path) -> None:
    code = """
    import sys
    from mlport.processes import spawn
    _popen, record = spawn(["sleep", "60"], name="attached", log_dir=sys.argv[1], detach=False)
    _popen, kept = spawn(["sleep", "60"], name="detached", log_dir=sys.argv[1])
    print(record.to_json())
    print(kept.to_json())
    """
    result = subprocess.run(
        _python(code, str(tmp_path)), capture_output=True, text=True, timeout=30, check=True
    )
    attached, detached = (ProcessRecord.from_json(line) for line in result.stdout.splitlines())
    try:
        assert not is_running(attached)
        assert is_running(detached)
    finally:
        stop(attached, grace=0.5)
        stop(detached, grace=0.5)
