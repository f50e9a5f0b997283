"""Start, find and stop the background processes mlport and its tests run.

Servers, emulators and on-prem training jobs all run as child processes. Each one:

- writes stdout and stderr to files (``<log_dir>/<name>.out`` and ``.err``), never to the parent's
  stdout, which would hold a CI runner's pipe open after the parent exits;
- runs in its own session and process group, so it can outlive its parent and be stopped as a
  group together with everything it started;
- is described by a :class:`ProcessRecord` holding its PID *and* the kernel's start time, so a PID
  recycled by the OS is never mistaken for it (nor killed in its place);
- is stopped with SIGTERM to the group, then SIGKILL after a grace period.

Servers bind port 0 and report the port they got through a ready file written atomically
(:func:`write_ready_file`), which the parent waits for with :func:`wait_for_ready_file`.
:class:`ProcessTable` keeps records in a file so another process (``mlport down``, a test fixture)
can find and stop them later.

Linux and macOS only. On Linux process facts come from ``/proc``; elsewhere from ``ps``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlport._files import locked, write_atomic
from mlport.errors import InvalidSpecError, MlportError, WaitTimeoutError

__all__ = [
    "ProcessExitedError",
    "ProcessRecord",
    "ProcessTable",
    "is_running",
    "process_start_time",
    "spawn",
    "stop",
    "wait_for_ready_file",
    "write_ready_file",
]

_IS_LINUX = sys.platform.startswith("linux")
_POLL_INTERVAL = 0.02
# After SIGKILL the kernel needs a moment to tear the processes down; we wait this long at most.
_KILL_WAIT = 2.0
_ATEXIT_GRACE = 2.0
_STDERR_TAIL_LINES = 20
_STDERR_TAIL_BYTES = 8192


class ProcessExitedError(MlportError, RuntimeError):
    """A process ended while something was waiting for it to become ready.

    Attributes:
        returncode: Its exit status if known (negative: killed by that signal), else None.
        stderr_tail: The last lines of its stderr file, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        stderr_tail: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a started process and where its output goes.

    Attributes:
        pid: Process id.
        pgid: Process group id (equal to ``pid`` for processes made by :func:`spawn`).
        start_time: The kernel's start time of the process: on Linux field 22 of
            ``/proc/<pid>/stat`` (clock ticks since boot), elsewhere the output of
            ``ps -o lstart=``. Together with ``pid`` it names exactly one process, ever.
            Empty if the process had already ended when it was recorded.
        argv: The command line it was started with.
        stdout_path: File its stdout is appended to.
        stderr_path: File its stderr is appended to.
        cwd: Its working directory at start.
        name: A short name chosen by whoever started it (also names the log files).
        started_at: Wall-clock start, ISO 8601 in UTC.
    """

    pid: int
    pgid: int
    start_time: str
    argv: tuple[str, ...]
    stdout_path: str
    stderr_path: str
    cwd: str
    name: str
    started_at: str

    def to_json(self) -> str:
        """Return the record as one line of JSON."""
        data = asdict(self)
        data["argv"] = list(self.argv)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessRecord:
        """Parse a record written by :meth:`to_json`.

        Raises:
            ValueError: ``text`` is not a JSON object with exactly the record's fields.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a process record must be a JSON object, got {type(data).__name__}")
        fields = set(cls.__dataclass_fields__)
        if set(data) != fields:
            missing = sorted(fields - set(data))
            extra = sorted(set(data) - fields)
            raise ValueError(f"not a process record (missing {missing}, unexpected {extra})")
        return cls(
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            start_time=str(data["start_time"]),
            argv=tuple(str(arg) for arg in data["argv"]),
            stdout_path=str(data["stdout_path"]),
            stderr_path=str(data["stderr_path"]),
            cwd=str(data["cwd"]),
            name=str(data["name"]),
            started_at=str(data["started_at"]),
        )


# Records of spawned processes, so wait_for_ready_file(popen) can find the stderr file and
# stop() can reap through the Popen (which then keeps the real exit status).
_records_by_popen: weakref.WeakKeyDictionary[subprocess.Popen[bytes], ProcessRecord] = (
    weakref.WeakKeyDictionary()
)
_popens_by_pid: weakref.WeakValueDictionary[int, subprocess.Popen[bytes]] = (
    weakref.WeakValueDictionary()
)
# Processes spawned with detach=False, stopped when this interpreter exits.
_attached: dict[tuple[int, str], ProcessRecord] = {}
_attached_lock = threading.Lock()
_attached_owner: int | None = None


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    name: str,
    log_dir: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    detach: bool = True,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start a background process with its output in files, in its own session.

    Does not block beyond starting the process. stdin is ``/dev/null``; stdout and stderr are
    appended to ``<log_dir>/<name>.out`` and ``<log_dir>/<name>.err`` (``log_dir`` is created if
    needed); file descriptors other than 0-2 are closed in the child. The process leads a new
    session and process group, so :func:`stop` reaches everything it starts.

    Args:
        argv: Program and arguments. Not run through a shell.
        name: Short name for the process; names its log files, so no path separators.
        log_dir: Directory for the log files.
        cwd: Working directory for the process (default: the current one).
        env: Variables added to (or replacing values in) this process's environment. The rest of
            the environment is inherited, so markers such as the test session's are kept.
        detach: If True the process outlives this interpreter until someone calls :func:`stop`
            (keep the record, e.g. in a :class:`ProcessTable`). If False it is stopped when this
            interpreter exits normally (not when it is killed with SIGKILL).

    Returns:
        The ``Popen`` (for waiting and the exit status) and the process's record.

    Raises:
        InvalidSpecError: ``argv`` is empty or ``name`` is not a plain file name.
        OSError: The program could not be started (e.g. ``FileNotFoundError``).
    """
    args = tuple(os.fspath(arg) for arg in argv)
    if not args:
        raise InvalidSpecError("spawn() needs a program to run; argv is empty")
    if not name or name in {".", ".."} or "/" in name or "\0" in name:
        raise InvalidSpecError(f"process name {name!r} must be a plain file name")
    logs = Path(log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    stdout_path = (logs / f"{name}.out").resolve()
    stderr_path = (logs / f"{name}.err").resolve()
    workdir = str(Path(cwd).resolve()) if cwd is not None else str(Path.cwd())
    child_env = {**os.environ, **env} if env is not None else None

    with (
        stdout_path.open("ab") as out,
        stderr_path.open("ab") as err,
    ):
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=child_env,
            close_fds=True,
            start_new_session=True,
        )
    try:
        pgid = os.getpgid(popen.pid)
    except ProcessLookupError:
        pgid = popen.pid
    record = ProcessRecord(
        pid=popen.pid,
        pgid=pgid,
        # Popen returns only after exec succeeded, and the child cannot be reaped before we
        # wait for it, so /proc (or ps) still knows it here even if it has already exited.
        start_time=_start_time_of_any(popen.pid) or "",
        argv=args,
        stdout_path=str(stdout_path),
        stderr_path=str(stderr_path),
        cwd=workdir,
        name=name,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    )
    _records_by_popen[popen] = record
    _popens_by_pid[popen.pid] = popen
    if not detach:
        _stop_at_exit(record)
    return popen, record


def process_start_time(pid: int) -> str | None:
    """Return the kernel's start time of a live process, in the format of ``ProcessRecord``.

    Does not block (on macOS it runs ``ps`` and waits for it).

    Args:
        pid: Process id.

    Returns:
        The start time, or None if no such process is running (a zombie counts as ended).
    """
    info = _process_info(pid)
    if info is None or info.zombie:
        return None
    return info.start_time


def is_running(record: ProcessRecord) -> bool:
    """Tell whether the process a record describes is still running.

    Does not block. False if the PID is gone, has been reused by another process (different
    start time), or is a zombie waiting to be reaped.
    """
    return bool(record.start_time) and process_start_time(record.pid) == record.start_time


def stop(record: ProcessRecord, *, grace: float = 5.0) -> bool:
    """Stop a process and its whole process group.

    Blocks for up to ``grace`` seconds (plus a moment after SIGKILL). Sends SIGTERM to the process
    group, waits up to ``grace`` seconds for every member to exit, then sends SIGKILL to the group.
    Reaps the process if it is a child of this interpreter. Idempotent.

    Never signals a PID that now belongs to another process: if the record's PID is alive with a
    different start time, nothing is sent. If the group leader has already exited but members it
    left behind are still in the group, they are stopped too.

    Args:
        record: The process to stop.
        grace: Seconds between SIGTERM and SIGKILL.

    Returns:
        True if any process was still running and has been stopped, False if there was nothing to
        stop.

    Raises:
        PermissionError: The group belongs to a user we may not signal.
    """
    return _stop_many([record], grace=grace)[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for third-party servers that cannot bind port 0 and
    report the port they got (MLflow's tracking server, benchmark anchors). Racy by nature:
    another process may take it before the server binds it, so servers of our own bind port 0.
    """
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_ready_file(path: str | os.PathLike[str], content: str) -> None:
    """Write a ready file atomically, so a reader never sees it half-written.

    Servers call this once they listen, with the port they got. Does not block. The file is
    written next to its final name and renamed into place.

    Raises:
        OSError: The directory does not exist or is not writable.
    """
    write_atomic(Path(path), content)


def wait_for_ready_file(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    process: subprocess.Popen[Any] | ProcessRecord | None = None,
) -> str:
    """Wait until a server has written its ready file, and return the file's content.

    Blocks, polling every 20 ms. Remove a stale ready file before starting the server: an existing
    file is returned at once.

    Args:
        path: The ready file (written with :func:`write_ready_file`).
        timeout: Seconds to wait at most.
        process: The server. If given, its exit is noticed at once instead of at the timeout,
            and errors quote the end of its stderr file (known for a record, or for a ``Popen``
            returned by :func:`spawn`).

    Returns:
        The file's content, unchanged (for example ``"8123"``).

    Raises:
        ProcessExitedError: The process ended before writing the file.
        WaitTimeoutError: The file did not appear within ``timeout`` seconds.
    """
    target = Path(path)
    record = _record_of(process)
    deadline = time.monotonic() + timeout
    while True:
        content = _read_if_exists(target)
        if content is not None:
            return content
        if process is not None and _has_exited(process):
            # It may have written the file just before exiting.
            content = _read_if_exists(target)
            if content is not None:
                return content
            returncode = process.returncode if isinstance(process, subprocess.Popen) else None
            tail, note = _stderr_note(record)
            status = f" with status {returncode}" if returncode is not None else ""
            raise ProcessExitedError(
                f"{_describe(process)} exited{status} before writing its ready file {target}"
                + note,
                returncode=returncode,
                stderr_tail=tail,
            )
        if time.monotonic() >= deadline:
            who = f" by {_describe(process)}" if process is not None else ""
            raise WaitTimeoutError(
                f"ready file {target} was not written{who} within {timeout:g}s"
                + _stderr_note(record)[1]
            )
        time.sleep(_POLL_INTERVAL)


class ProcessTable:
    """A file of :class:`ProcessRecord` s shared between processes.

    One JSON record per line. Every change takes an exclusive ``fcntl`` lock on ``<path>.lock``
    and rewrites the file atomically, so concurrent writers never lose each other's records and
    readers never see a partial file. Methods block only while another process holds the lock.

    Args:
        path: The table file; created (with its directory) on the first :meth:`add`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"ProcessTable({str(self.path)!r})"

    def add(self, record: ProcessRecord) -> None:
        """Add a record, replacing any with the same PID and start time."""
        with self._locked():
            records = [r for r in self._read() if not _same_process(r, record)]
            records.append(record)
            self._write(records)

    def remove(self, record: ProcessRecord) -> bool:
        """Remove a record (matched by PID and start time). Returns whether it was there."""
        with self._locked():
            records = self._read()
            kept = [r for r in records if not _same_process(r, record)]
            if len(kept) == len(records):
                return False
            self._write(kept)
            return True

    def records(self) -> list[ProcessRecord]:
        """Return every record, running or not, in the order they were added.

        Raises:
            MlportError: A line of the file is not a process record.
        """
        return self._read()

    def running(self) -> list[ProcessRecord]:
        """Return the records whose process is still running."""
        return [r for r in self._read() if is_running(r)]

    def stop_all(self, grace: float = 5.0) -> list[ProcessRecord]:
        """Stop every process in the table and remove the records.

        Blocks for up to ``grace`` seconds (plus a moment after SIGKILL): every group gets SIGTERM
        at once, and SIGKILL when ``grace`` has passed. Records whose process had already ended
        are removed too.

        Returns:
            The records of the processes that were still running and have been stopped.

        Raises:
            PermissionError: A group belongs to a user we may not signal.
        """
        records = self._read()
        stopped = _stop_many(records, grace=grace)
        with self._locked():
            current = self._read()
            self._write([r for r in current if not any(_same_process(r, s) for s in records)])
        return [r for r, was_running in zip(records, stopped, strict=True) if was_running]

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self._lock_path, mode=0o644)

    def _read(self) -> list[ProcessRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(ProcessRecord.from_json(line))
            except ValueError as exc:
                raise MlportError(f"{self.path}:{lineno}: not a process record: {exc}") from exc
        return records

    def _write(self, records: Iterable[ProcessRecord]) -> None:
        write_atomic(self.path, "".join(r.to_json() + "\n" for r in records))


@dataclass(frozen=True)
class _Info:
    zombie: bool
    pgid: int
    start_time: str


def _process_info(pid: int) -> _Info | None:
    if pid <= 0:
        return None
    if _IS_LINUX:
        try:
            data = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return None
        # The command name (field 2) may itself contain spaces and parentheses.
        fields = data[data.rindex(b")") + 2 :].split()
        state = fields[0].decode()
        return _Info(
            zombie=state in {"Z", "X"}, pgid=int(fields[2]), start_time=fields[19].decode()
        )
    result = subprocess.run(
        ["ps", "-o", "stat=", "-o", "pgid=", "-o", "lstart=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    parts = result.stdout.strip().split(None, 2)
    if result.returncode != 0 or len(parts) != 3:
        return None
    state, pgid, lstart = parts
    return _Info(zombie=state.startswith("Z"), pgid=int(pgid), start_time=" ".join(lstart.split()))


def _start_time_of_any(pid: int) -> str | None:
    info = _process_info(pid)
    return info.start_time if info is not None else None


def _group_has_live_members(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The group exists, but zombies (an unreaped leader, orphans under an init that does not
    # reap) keep it existing without anything left to stop.
    if _IS_LINUX:
        with os.scandir("/proc") as entries:
            for entry in entries:
                if entry.name.isdigit():
                    info = _process_info(int(entry.name))
                    if info is not None and info.pgid == pgid and not info.zombie:
                        return True
        return False
    result = subprocess.run(
        ["ps", "-A", "-o", "pgid=", "-o", "stat="],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == str(pgid) and not parts[1].startswith("Z"):
            return True
    return False


def _owns_group(record: ProcessRecord) -> bool:
    info = _process_info(record.pid)
    if info is None:
        # The leader is gone, but what it started may remain in its group. The kernel does not
        # hand out a PID that is still in use as a group id, so a group with this id is ours.
        return bool(record.start_time)
    return info.start_time == record.start_time


def _reap(record: ProcessRecord) -> None:
    popen = _popens_by_pid.get(record.pid)
    if popen is not None and _records_by_popen.get(popen) == record:
        popen.poll()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)


def _stop_many(records: Sequence[ProcessRecord], *, grace: float) -> list[bool]:
    targets: list[ProcessRecord] = []
    result: list[bool] = []
    for record in records:
        ours = _owns_group(record)
        if ours:
            _reap(record)
        live = ours and _group_has_live_members(record.pgid)
        if live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pgid, signal.SIGTERM)
            targets.append(record)
        result.append(live)
        _forget_attached(record)

    remaining = _wait_for_groups(targets, time.monotonic() + grace)
    for record in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pgid, signal.SIGKILL)
    _wait_for_groups(remaining, time.monotonic() + _KILL_WAIT)
    # A leader that died during the last poll is a zombie now; reap it while it is certainly ours.
    for record in targets:
        _reap(record)
    return result


def _wait_for_groups(records: list[ProcessRecord], deadline: float) -> list[ProcessRecord]:
    remaining = list(records)
    while remaining:
        for record in remaining:
            _reap(record)
        remaining = [r for r in remaining if _group_has_live_members(r.pgid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    return remaining


def _same_process(a: ProcessRecord, b: ProcessRecord) -> bool:
    return a.pid == b.pid and a.start_time == b.start_time


def _stop_at_exit(record: ProcessRecord) -> None:
    global _attached_owner
    with _attached_lock:
        if _attached_owner != os.getpid():
            # First use in this process (or in a forked child): the parent's list is not ours.
            _attached.clear()
            _attached_owner = os.getpid()
            atexit.register(_stop_attached)
        _attached[(record.pid, record.start_time)] = record


def _forget_attached(record: ProcessRecord) -> None:
    with _attached_lock:
        _attached.pop((record.pid, record.start_time), None)


def _stop_attached() -> None:
    with _attached_lock:
        if _attached_owner != os.getpid():
            return
        records = list(_attached.values())
    _stop_many(records, grace=_ATEXIT_GRACE)


def _record_of(process: subprocess.Popen[Any] | ProcessRecord | None) -> ProcessRecord | None:
    if isinstance(process, ProcessRecord):
        return process
    if process is not None:
        return _records_by_popen.get(process)
    return None


def _has_exited(process: subprocess.Popen[Any] | ProcessRecord) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is not None
    return not is_running(process)


def _describe(process: subprocess.Popen[Any] | ProcessRecord) -> str:
    record = _record_of(process)
    if record is not None:
        return f"process {record.name!r} (pid {record.pid})"
    return f"process {process.pid}"


def _read_if_exists(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _stderr_note(record: ProcessRecord | None) -> tuple[str, str]:
    if record is None:
        return "", ""
    tail = _tail(record.stderr_path)
    if not tail:
        return "", f" (its stderr, {record.stderr_path}, is empty)"
    return tail, f"; the end of its stderr ({record.stderr_path}):\n{tail}"


def _tail(path: str) -> str:
    try:
        with Path(path).open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - _STDERR_TAIL_BYTES))
            data = file.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_STDERR_TAIL_LINES:])
