"""A pytest plugin that fails the run if the tests leave processes running.

Enable it in a ``conftest.py``::

    pytest_plugins = ["mlport.testing.pytest_plugin"]

How it works: when pytest starts, the plugin puts ``MLPORT_TEST_SESSION=<uuid>`` into
``os.environ``. Every process started afterwards (children, grandchildren, detached daemons)
inherits it, and the kernel keeps each process's initial environment in ``/proc/<pid>/environ``.
After each test the plugin lists the marked processes still running and notes which test they
first outlived; at the end of the session, once every fixture has been torn down, any marked
process still running is a leak: the plugin kills it (SIGTERM, then SIGKILL after 3 s, so CI
never hangs) and fails the run, naming each process and the test during which it started.

Servers shared by several tests (module- or session-scoped fixtures) are fine: only what is
still running at the very end fails the run. Mark tests that deliberately leave a process for a
later test with ``@pytest.mark.allow_background_processes``; the report then blames the fixture
that owns the process rather than the test.

A process that clears its environment before ``exec`` (``env -i``) escapes the check. Linux
only: elsewhere the plugin warns once and does nothing.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from mlport.processes import process_start_time

__all__ = [
    "MARKER",
    "SESSION_ENV",
    "mlport_process_attribution",
    "mlport_process_leak_check",
]

SESSION_ENV = "MLPORT_TEST_SESSION"
MARKER = "allow_background_processes"

_KILL_GRACE = 3.0
_POLL_INTERVAL = 0.02
_CMDLINE_MAX = 200


@dataclass(frozen=True)
class _Origin:
    nodeid: str
    allowed: bool


@dataclass
class _SessionState:
    needle: bytes
    previous_env: str | None
    # (pid, start time) -> the test after which the process was first seen running.
    origins: dict[tuple[int, str], _Origin] = field(default_factory=dict)
    # The test that started last; a process nobody attributed started during it or after it.
    current: str | None = None
    in_item_teardown: bool = False
    checked: bool = False


_STATE = pytest.StashKey[_SessionState]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and mark this session's processes."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}: this test may leave processes running for later tests (a module- or "
        "session-scoped server); they must still be stopped before the session ends.",
    )
    if not sys.platform.startswith("linux"):
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                "mlport.testing.pytest_plugin checks for leftover processes on Linux only; "
                f"the check is off on {sys.platform}"
            ),
            stacklevel=2,
        )
        return
    session_id = uuid.uuid4().hex
    config.stash[_STATE] = _SessionState(
        needle=f"{SESSION_ENV}={session_id}\0".encode(),
        previous_env=os.environ.get(SESSION_ENV),
    )
    os.environ[SESSION_ENV] = session_id


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the environment (a session run inside another, as with ``pytester``)."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if state.previous_env is None:
        os.environ.pop(SESSION_ENV, None)
    else:
        os.environ[SESSION_ENV] = state.previous_env


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Set our fixtures up first, so they are torn down after every other fixture."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if not isinstance(names, list):
            continue
        for position, name in enumerate(
            ("mlport_process_leak_check", "mlport_process_attribution")
        ):
            if name in names:
                names.remove(name)
                names.insert(position, name)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test, to name it if it is interrupted after starting a process."""
    state = item.config.stash.get(_STATE, None)
    if state is not None:
        state.current = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Tell the leak check whether it runs in a test's teardown, where it may fail the test."""
    state = item.config.stash.get(_STATE, None)
    if state is not None:
        state.in_item_teardown = True
    try:
        return (yield)
    finally:
        if state is not None:
            state.in_item_teardown = False


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check for leftovers if the session ended without the leak check (e.g. interrupted).

    Runs after pytest has torn down the remaining fixtures. Kills the leftovers, prints the report
    and, unless the session already failed or was interrupted, fails it.
    """
    state = session.config.stash.get(_STATE, None)
    if state is None or state.checked:
        return
    state.checked = True
    leftovers = _find(state)
    if not leftovers:
        return
    report = _report(leftovers, state)
    _kill(leftovers)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(report, red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def mlport_process_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the session if processes started during it are still running at its end.

    Runs its check after every other fixture has been torn down. Leftovers are killed (SIGTERM,
    then SIGKILL after 3 s) before the failure is raised, so the run never hangs on them.
    Blocks for at most a few seconds, and only when something leaked.
    """
    yield
    state = request.config.stash.get(_STATE, None)
    # Outside a test's teardown (an interrupted session, torn down from pytest_sessionfinish) a
    # failure here would be an internal error; pytest_sessionfinish reports instead.
    if state is None or not state.in_item_teardown:
        return
    state.checked = True
    leftovers = _find(state)
    if leftovers:
        # Command lines are gone once the processes are, so the report is written first.
        report = _report(leftovers, state)
        _kill(leftovers)
        pytest.fail(report, pytrace=False)


@pytest.fixture(autouse=True)
def mlport_process_attribution(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, note which test the processes still running were started during.

    Never fails a test: processes may legitimately outlive one (a module-scoped server). The note
    names the culprit if the process is still running when the session ends. One scan of
    ``/proc`` per test, about a millisecond.
    """
    yield
    state = request.config.stash.get(_STATE, None)
    if state is None:
        return
    allowed = request.node.get_closest_marker(MARKER) is not None
    for key in _find(state):
        state.origins.setdefault(key, _Origin(request.node.nodeid, allowed))


def _find(state: _SessionState) -> list[tuple[int, str]]:
    own = os.getpid()
    found = []
    with os.scandir("/proc") as entries:
        names = [entry.name for entry in entries if entry.name.isdigit()]
    for name in names:
        if int(name) == own:
            continue
        environ = _read_proc(name, "environ")
        # The first variable has no NUL before it, hence the search for "NAME=value\0" anywhere.
        if environ is None or state.needle not in environ:
            continue
        start = process_start_time(int(name))
        if start is not None:
            found.append((int(name), start))
    return found


def _read_proc(pid: str, entry: str) -> bytes | None:
    # os.open/os.read: this runs once per process per test, and pathlib doubles its cost.
    try:
        fd = os.open(f"/proc/{pid}/{entry}", os.O_RDONLY)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _kill(leftovers: list[tuple[int, str]]) -> None:
    _signal(leftovers, signal.SIGTERM)
    remaining = _wait_until_gone(leftovers, time.monotonic() + _KILL_GRACE)
    if remaining:
        _signal(remaining, signal.SIGKILL)
        _wait_until_gone(remaining, time.monotonic() + 1.0)


def _signal(processes: list[tuple[int, str]], signum: signal.Signals) -> None:
    for pid, start in processes:
        # Checked right before signalling: the PID may have been reused meanwhile.
        if process_start_time(pid) != start:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # A leader's group also holds any descendants that dropped the session marker.
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)


def _wait_until_gone(processes: list[tuple[int, str]], deadline: float) -> list[tuple[int, str]]:
    remaining = processes
    while True:
        for pid, _ in remaining:
            # Our own children would otherwise stay as zombies until pytest exits.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        remaining = [(pid, start) for pid, start in remaining if process_start_time(pid) == start]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(_POLL_INTERVAL)


def _report(leftovers: list[tuple[int, str]], state: _SessionState) -> str:
    count = len(leftovers)
    lines = [
        f"{count} process{'es' if count != 1 else ''} started during this test session "
        f"{'were' if count != 1 else 'was'} still running at its end (now killed):"
    ]
    for key in sorted(leftovers):
        pid = key[0]
        origin = state.origins.get(key)
        if origin is None and state.current is not None:
            where = f"started during {state.current} (the last test to run) or after it"
        elif origin is None:
            where = "started before the first test"
        elif origin.allowed:
            where = (
                f"started during {origin.nodeid}, which allows background processes: "
                "the fixture that owns it never stopped it"
            )
        else:
            where = f"started during {origin.nodeid}"
        lines.append(f"  pid {pid}: {_cmdline(pid)}  ({where})")
    lines.append(
        "Stop every process a test or fixture starts (mlport.processes.stop, Popen.terminate "
        "and wait) before the session ends."
    )
    return "\n".join(lines)


def _cmdline(pid: int) -> str:
    raw = _read_proc(str(pid), "cmdline")
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a] if raw else []
    if not args:
        comm = _read_proc(str(pid), "comm")
        return f"[{comm.decode(errors='replace').strip()}]" if comm else "?"
    text = shlex.join(args)
    return text if len(text) <= _CMDLINE_MAX else text[: _CMDLINE_MAX - 3] + "..."
