"""The model server's processes: a supervisor and the workers it forks.

The supervisor (the process started by ``mlport serve`` or ``python -m mlport.serving``) binds
the listening socket once, loads the variants, and forks ``workers`` processes that inherit both
(the models' memory is shared copy-on-write). Start-up runs without the cyclic garbage
collector and imports what the workers run before forking them, so the first answer comes as
soon as the framework is imported and the model read. Each worker runs uvicorn (httptools and
uvloop when installed) on the shared socket; until one does, connections wait in the socket's
queue. The supervisor then only watches:

- when every worker listens it writes the ready file ``{"port": ..., "pid": ...}`` and the
  status file;
- a worker that dies is forked again (after a pause that grows while it keeps dying);
- **a prediction past** ``predict_timeout_seconds``: a predict call in a worker's predict thread
  cannot be stopped, so its requests are answered 504, a new thread takes the next batches, and
  the worker stops taking connections, answers the requests it holds and exits; the supervisor
  forks a fresh one at once (with one worker, new connections wait in the socket's queue
  meanwhile). A call that blocks a worker's event loop (a model predicting on the loop, or one
  that holds the interpreter lock) stops its once-a-second heartbeat: after
  ``predict_timeout_seconds`` plus 5 s without one, the supervisor kills the worker (its open
  requests get no answer) and forks another;
- **SIGHUP** re-reads the configuration file: the supervisor loads the new variants (reusing
  unchanged models) and, if that works, sends SIGHUP to every worker, which does the same in a
  background thread while its old variants keep serving, then swaps them in at once. If loading
  fails, everything keeps the old variants and the status file's ``last_reload_error`` says why
  (``generation`` is unchanged);
- **SIGTERM** or **SIGINT** stops it gracefully: the socket is closed, the workers finish the
  requests they hold (up to ``graceful_seconds``), flush captured data and exit, and the
  supervisor exits 0.

Workers report to the supervisor on a pipe, one JSON line per event. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import importlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mlport._redact import redact, register_secret
from mlport.errors import ConfigError
from mlport.processes import write_ready_file
from mlport.serving import hosting as hosting_module
from mlport.serving.config import ServerConfig, load_config
from mlport.serving.hosting import Hosting
from mlport.serving.variants import VariantSet, load_variants

__all__ = ["configure_logging", "read_token", "serve"]

_log = logging.getLogger("mlport.serving")

_BACKLOG = 2048
_TICK = 1.0
_KILL_MARGIN = 5.0
_QUICK_DEATH = 5.0
_MAX_PAUSE = 30.0
_MIN_TOKEN = 8
_REFREEZE_DELAY = 2.0
_HEARTBEAT = 1.0
_STALL_GRACE = 5.0
_RETIRED = 3  # a worker's exit status after a prediction timeout: replace it at once


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "info") -> None:
    """Send the server's logs (and uvicorn's) to stderr, with credentials masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def read_token(path: str | os.PathLike[str]) -> str:
    """Read a bearer token file and register the token as a secret (masked in every log).

    Raises:
        ConfigError: The file is missing, readable by group or others, or holds no usable token.
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
        token = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"token file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"token file {file} cannot be read: {exc}") from None
    if mode & 0o077:
        raise ConfigError(
            f"token file {file} is readable by others (mode {mode & 0o777:o}); "
            f"run: chmod 600 {file}"
        )
    if len(token) < _MIN_TOKEN or any(c.isspace() for c in token):
        raise ConfigError(
            f"token file {file} must hold one token of at least {_MIN_TOKEN} characters"
        )
    register_secret(token)
    return token


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    notes = getattr(exc, "__notes__", None)
    if notes:
        text += " (" + "; ".join(str(note) for note in notes) + ")"
    return redact(text)


_RESTART_FIELDS = (
    "host",
    "port",
    "token_file",
    "no_auth",
    "workers",
    "batching",
    "capture",
    "max_body_bytes",
    "predict_timeout_seconds",
    "status_file",
    "ready_file",
    "hosting",
    "endpoint",
)


def _ignored_changes(old: ServerConfig, new: ServerConfig) -> list[str]:
    return [name for name in _RESTART_FIELDS if getattr(old, name) != getattr(new, name)]


@dataclass
class _WorkerState:
    index: int
    pid: int
    fd: int
    started: float
    ready: bool = False
    seen: float = 0.0  # when it last reported
    watched: bool = False  # its heartbeat is checked (once it has been ready)
    stalled: bool = False  # killed for want of a heartbeat
    generation: int = 0
    variants: dict[str, Any] = field(default_factory=dict)
    buffer: bytes = b""


@dataclass
class _Settings:
    config: ServerConfig
    config_path: Path | None
    hosting: Hosting | None
    token: str | None
    host: str
    port: int
    metrics_dir: str | None


# --- the supervisor ------------------------------------------------------------------------------


class _Supervisor:
    def __init__(
        self,
        settings: _Settings,
        sock: socket.socket,
        variants: VariantSet,
        on_ready: Callable[[str], None] | None,
    ) -> None:
        self.settings = settings
        self.sock = sock
        self.variants = variants
        self.on_ready = on_ready
        self.workers: dict[int, _WorkerState] = {}
        self.pending: dict[int, float] = {}
        self.deaths: dict[int, int] = {}
        self.restarts = 0
        self.ready_written = False
        self.last_reload_error: str | None = None
        self.last_reload_at: str | None = None
        self.stop_signal: int | None = None
        self.reload_requested = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    # signals only set flags; the loop acts on them
    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        pass

    def run(self) -> int:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, self._on_child)
        code = 1
        try:
            for index in range(self.settings.config.workers):
                self._fork(index)
            code = self._watch()
        finally:
            self._shutdown()
            signal.set_wakeup_fd(-1)
            os.close(self.wake_r)
            os.close(self.wake_w)
        return code

    def _fork(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        # Signals wait until the child has its own handlers (the parent's would only set flags
        # in the child's copy of this object).
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read_fd)
                os.close(self.wake_r)
                os.close(self.wake_w)
                for other in self.workers.values():
                    os.close(other.fd)
                signal.set_wakeup_fd(-1)
                worker = _WorkerProcess(self.settings, index, self.sock, write_fd, self.variants)
                code = worker.run(unblock=blocked)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        self.workers[pid] = _WorkerState(
            index=index,
            pid=pid,
            fd=read_fd,
            started=now,
            seen=now,
            generation=self.variants.generation,
        )
        _log.debug("worker %d started (pid %d)", index, pid)

    def _watch(self) -> int:
        while self.stop_signal is None:
            fds = [self.wake_r, *(w.fd for w in self.workers.values())]
            timeout = _TICK
            if self.pending:
                timeout = max(0.0, min(min(self.pending.values()) - time.monotonic(), _TICK))
            try:
                readable, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                readable = []
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
            for worker in list(self.workers.values()):
                if worker.fd in readable:
                    self._read_messages(worker)
            self._check_heartbeats()
            if self._reap() and not self.ready_written:
                _log.error("a worker exited before the server was ready; stopping")
                return 1
            now = time.monotonic()
            for index, when in list(self.pending.items()):
                if when <= now and self.stop_signal is None:
                    del self.pending[index]
                    self._fork(index)
            if self.reload_requested and self.stop_signal is None:
                self.reload_requested = False
                self._reload()
        return 0

    def _read_messages(self, worker: _WorkerState) -> None:
        try:
            data = os.read(worker.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self._handle(worker, message)

    def _handle(self, worker: _WorkerState, message: dict[str, Any]) -> None:
        event = message.get("event")
        worker.seen = time.monotonic()
        if event == "alive":
            return
        if "generation" in message:
            worker.generation = int(message["generation"])
        if isinstance(message.get("variants"), dict):
            worker.variants = message["variants"]
        if event == "ready":
            worker.ready = worker.watched = True
            self.deaths.pop(worker.index, None)
            if not self.ready_written and all(w.ready for w in self.workers.values()):
                self._write_ready()
                return
        elif event == "retiring":
            worker.ready = False
        elif event == "reload_failed":
            self.last_reload_error = f"worker {worker.index}: {message.get('error')}"
            self.last_reload_at = _now()
        if self.ready_written:
            self._write_status()

    def _write_ready(self) -> None:
        settings = self.settings
        self.ready_written = True
        self._write_status()  # before the ready file: whoever waits for that reads this
        if settings.config.ready_file:
            write_ready_file(
                settings.config.ready_file, json.dumps({"port": settings.port, "pid": os.getpid()})
            )
        url = _url(settings.host, settings.port)
        _log.info(
            "serving %s at %s with %d worker(s)%s",
            settings.config.endpoint,
            url,
            len(self.workers),
            f" under the {settings.hosting.name} hosting contract" if settings.hosting else "",
        )
        if self.on_ready is not None:
            self.on_ready(url)

    def _write_status(self) -> None:
        path = self.settings.config.status_file
        if not path:
            return
        live = [w for w in self.workers.values() if w.ready]
        oldest = min(live, key=lambda w: w.generation) if live else None
        status = {
            "endpoint": self.settings.config.endpoint,
            "pid": os.getpid(),
            "port": self.settings.port,
            "url": _url(self.settings.host, self.settings.port),
            "hosting": self.settings.hosting.name if self.settings.hosting else None,
            "auth": self.settings.token is not None,
            "ready": self.ready_written,
            "generation": oldest.generation if oldest else self.variants.generation,
            "variants": oldest.variants if oldest else self.variants.describe(),
            "last_reload_error": self.last_reload_error,
            "last_reload_at": self.last_reload_at,
            "workers": [
                {"index": w.index, "pid": w.pid, "ready": w.ready, "generation": w.generation}
                for w in sorted(self.workers.values(), key=lambda w: w.index)
            ],
            "restarts": self.restarts,
            "updated_at": _now(),
        }
        try:
            write_ready_file(path, json.dumps(status, indent=2))
        except OSError as exc:
            _log.warning("cannot write the status file %s: %s", path, exc)

    def _check_heartbeats(self) -> None:
        limit = self.settings.config.predict_timeout_seconds + _STALL_GRACE
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.watched and not worker.stalled and now - worker.seen > limit:
                worker.stalled = True
                _log.error(
                    "worker %d (pid %d) has not reported for %.0f s: its event loop is blocked "
                    "(a prediction running on the loop, or a model holding the interpreter "
                    "lock); killing it",
                    worker.index,
                    worker.pid,
                    now - worker.seen,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)

    def _reap(self) -> bool:
        died = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return died
            if pid == 0:
                return died
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            died = True
            os.close(worker.fd)
            if self.stop_signal is not None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if worker.stalled or code == _RETIRED:
                # Replaced on purpose (a prediction timed out): no pause.
                _log.warning(
                    "worker %d (pid %d) %s; starting another",
                    worker.index,
                    pid,
                    "was killed" if worker.stalled else "retired after a prediction timeout",
                )
                pause = 0.0
            else:
                _log.error(
                    "worker %d (pid %d) exited with status %d; starting another",
                    worker.index,
                    pid,
                    code,
                )
                quick = time.monotonic() - worker.started < _QUICK_DEATH
                deaths = self.deaths.get(worker.index, 0) + 1 if quick else 0
                self.deaths[worker.index] = deaths
                pause = min(_MAX_PAUSE, 0.5 * 2 ** (deaths - 1)) if deaths else 0.0
            self.pending[worker.index] = time.monotonic() + pause
            self.restarts += 1
            if self.ready_written:
                self._write_status()

    def _reload(self) -> None:
        path = self.settings.config_path
        if path is None:
            _log.warning("SIGHUP ignored: this server was not started from a configuration file")
            return
        _log.info("reloading %s", path)
        self.last_reload_at = _now()
        try:
            config = load_config(path)
            ignored = _ignored_changes(self.settings.config, config)
            if ignored:
                _log.warning("changes to %s need a restart; ignored", ", ".join(ignored))
            if config.variants == self.settings.config.variants:
                _log.info("the variants did not change")
                self.last_reload_error = None
                self._write_status()
                return
            variants = load_variants(
                config.variants, previous=self.variants, generation=self.variants.generation + 1
            )
        except Exception as exc:
            self.last_reload_error = _describe_error(exc)
            _log.error(
                "reload failed, still serving generation %d: %s",
                self.variants.generation,
                self.last_reload_error,
            )
            self._write_status()
            return
        self.variants = variants
        self.settings.config = self.settings.config.model_copy(update={"variants": config.variants})
        self.last_reload_error = None
        _freeze_objects()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGHUP)
        self._write_status()

    def _shutdown(self) -> int:
        with contextlib.suppress(OSError):
            self.sock.close()
        self.pending.clear()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.config.graceful_seconds + _KILL_MARGIN
        while self.workers and time.monotonic() < deadline:
            self._reap()
            for worker in list(self.workers.values()):
                self._read_messages(worker)
            if self.workers:
                time.sleep(0.02)
        for worker in self.workers.values():
            _log.error("worker %d did not stop in time; killing it", worker.index)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            killed = self.workers.pop(pid, None)
            if killed is not None:
                os.close(killed.fd)
        if self.settings.metrics_dir:
            shutil.rmtree(self.settings.metrics_dir, ignore_errors=True)
        if self.ready_written and self.settings.config.ready_file:
            with contextlib.suppress(OSError):
                Path(self.settings.config.ready_file).unlink()
        _log.info("stopped")
        return 0


def _freeze_objects() -> None:
    """Keep the cyclic garbage collector off the objects alive now (the loaded models).

    A large model makes every full collection a pause of tens of milliseconds in the middle of
    requests; frozen, it is never scanned, and forked workers do not copy its pages by touching
    them. After a reload the old models are let go first, in one collection.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


# --- a worker ------------------------------------------------------------------------------------


class _WorkerProcess:
    def __init__(
        self,
        settings: _Settings,
        index: int,
        sock: socket.socket,
        report_fd: int,
        variants: VariantSet,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self.index = index
        self.sock = sock
        self.report_fd = report_fd
        self.variants = variants
        self.stop_requested = False
        self.reloading = False
        self.reload_again = False
        self.reload_pending = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.refreeze: asyncio.TimerHandle | None = None
        self.server: Any = None
        self.exit_code = 0

    def report(self, event: str, **fields: Any) -> None:
        data = json.dumps({"event": event, **fields}).encode() + b"\n"
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.report_fd, data) :]

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        # Until uvicorn takes over (and after it has finished) a stop is only noted.
        self.stop_requested = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        # Before the event loop handles SIGHUP, a reload is only noted.
        self.reload_pending = True

    def run(self, *, unblock: set[signal.Signals]) -> int:
        """Serve until told to stop; returns the exit status. Blocks."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, unblock)
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self._serve())
        return self.exit_code

    async def _serve(self) -> None:
        import uvicorn

        from mlport.serving.app import ServingApp
        from mlport.serving.capture import CaptureWriter
        from mlport.serving.metrics import Metrics

        config = self.config
        loop = asyncio.get_running_loop()
        metrics = Metrics(worker=self.index, directory=self.settings.metrics_dir)
        capture = None
        if config.capture.percent > 0 and config.capture.dir:
            capture = CaptureWriter(
                directory=config.capture.dir,
                endpoint=config.endpoint,
                worker=f"w{self.index}-{os.getpid()}",
                max_bytes=config.capture.max_bytes,
                max_seconds=config.capture.max_seconds,
                queue_size=config.capture.queue_size,
            )
            capture.start()
        self.app = ServingApp(
            endpoint=config.endpoint,
            variants=self.variants,
            token=self.settings.token,
            hosting=self.settings.hosting,
            batching=config.batching,
            max_body_bytes=config.max_body_bytes,
            metrics=metrics,
            capture=capture,
            capture_percent=config.capture.percent,
            predict_timeout=config.predict_timeout_seconds,
            on_predict_timeout=self._retire,
        )
        try:
            import httptools  # noqa: F401

            http = "httptools"
        except ImportError:
            http = "h11"
        uv_config = uvicorn.Config(
            self.app,
            http=http,
            ws="none",
            loop="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            log_level=config.log_level,
            access_log=config.access_log,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=max(1, round(config.graceful_seconds)),
            backlog=_BACKLOG,
        )
        server = _uvicorn_server_class()(uv_config, self)
        loop.add_signal_handler(signal.SIGHUP, self._start_reload)
        if self.reload_pending:
            self._start_reload()
        ticker = loop.create_task(self._tick(metrics))
        try:
            await server.serve(sockets=[self.sock])
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            await loop.run_in_executor(None, self.app.batcher.close)
            if capture is not None:
                await loop.run_in_executor(None, capture.close)
            ticker.cancel()
            metrics.save()

    def started(self, server: Any) -> None:
        self.server = server
        self.report("ready", generation=self.variants.generation, variants=self.variants.describe())
        if self.stop_requested:
            server.should_exit = True

    async def _tick(self, metrics: Any) -> None:
        # The heartbeat the supervisor watches, and the metrics snapshot.
        while True:
            await asyncio.sleep(_HEARTBEAT)
            self.report("alive")
            metrics.save()

    def _retire(self) -> None:
        """After a prediction timeout: stop taking connections, answer what is held, exit.

        The abandoned call may never return, and keeps its thread (and whatever it holds) while
        it runs; only ending the process stops it. The supervisor forks a fresh worker.
        """
        if self.exit_code == _RETIRED:
            return
        self.exit_code = _RETIRED
        _log.warning(
            "worker %d: a prediction timed out; this process stops taking connections and is "
            "replaced once the requests it holds are answered",
            self.index,
        )
        self.report("retiring", reason="predict_timeout")
        if self.server is not None:
            self.server.should_exit = True

    def _start_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reload(self) -> None:
        if self.reloading:
            self.reload_again = True
            return
        self.reloading = True
        try:
            while True:
                self.reload_again = False
                await self._reload_once()
                if not self.reload_again:
                    break
        finally:
            self.reloading = False

    async def _reload_once(self) -> None:
        path = self.settings.config_path
        if path is None:
            return
        loop = asyncio.get_running_loop()
        current = self.app.variants
        try:
            config = await loop.run_in_executor(None, load_config, path)
            if config.variants == self.config.variants:
                self.report("unchanged", generation=current.generation)
                return
            variants = await loop.run_in_executor(
                None,
                lambda: load_variants(
                    config.variants, previous=current, generation=current.generation + 1
                ),
            )
        except Exception as exc:
            message = _describe_error(exc)
            _log.error(
                "worker %d: reload failed, still serving generation %d: %s",
                self.index,
                current.generation,
                message,
            )
            self.report("reload_failed", error=message, generation=current.generation)
            return
        self.app.swap(variants)
        self.variants = variants
        self.config = self.config.model_copy(update={"variants": config.variants})
        # Requests still running on the old variants finish first. One pending collection
        # covers every reload before it: a burst of reloads must not queue one each.
        if self.refreeze is not None:
            self.refreeze.cancel()
        self.refreeze = loop.call_later(_REFREEZE_DELAY, _freeze_objects)
        _log.info(
            "worker %d: serving generation %d (%s)",
            self.index,
            variants.generation,
            ", ".join(f"{v}: {w:g}" for v, w in variants.weights().items()),
        )
        self.report("reloaded", generation=variants.generation, variants=variants.describe())


def _uvicorn_server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config, worker: _WorkerProcess) -> None:
            super().__init__(config)
            self.worker = worker

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self.worker.started(self)

    return Server


# --- entry ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Run start-up without the cyclic garbage collector, then freeze what it left alive.

    Importing a framework such as scikit-learn allocates hundreds of thousands of objects that
    live as long as the process; the collections they trigger free next to nothing and make the
    import take about 15% longer. What is alive at the end (modules, models) is frozen as
    :func:`_freeze_objects` does, but without a full collection first: that takes 60-120 ms
    and would free about 0.5 MB of import-time garbage, which stays frozen instead.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _import_worker_modules() -> None:
    """Import what every worker runs before they are forked (once, not once per worker).

    What cannot be imported here is left to the worker, which says why.
    """
    optional = ["mlport.serving.app", "uvicorn.lifespan.off", "uvloop"]
    try:
        import httptools  # noqa: F401

        optional.append("uvicorn.protocols.http.httptools_impl")
    except ImportError:
        optional.append("uvicorn.protocols.http.h11_impl")
    for name in optional:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def serve(
    config: ServerConfig,
    *,
    config_path: str | os.PathLike[str] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run the model server until SIGTERM or SIGINT. Blocks.

    Args:
        config: What to serve (relative paths already resolved, see
            :func:`~mlport.serving.config.load_config`).
        config_path: The file ``config`` came from; SIGHUP re-reads it (without one, SIGHUP is
            ignored).
        on_ready: Called with the server's URL once every worker listens.

    Returns:
        The exit status: 0 after a graceful stop, 1 if the workers could not start.

    Raises:
        ConfigError: No token and no ``no_auth`` outside a hosting contract, an unusable token
            file, or the address cannot be bound.
        Exception: What loading a variant raised (see
            :func:`~mlport.serving.variants.load_variants`).
    """
    hosting = hosting_module.detect(name=config.hosting if config.hosting != "auto" else None)
    token: str | None = None
    if hosting is not None:
        host, port = "0.0.0.0", hosting.port
    else:
        host, port = config.host, config.port
        if config.token_file is not None:
            token = read_token(config.token_file)
        elif not config.no_auth:
            raise ConfigError(
                "the server needs a token_file for its bearer token (or no_auth: true / "
                "--no-auth to serve without authentication)"
            )
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    metrics_dir: str | None = None
    try:
        with _collector_paused():
            variants = load_variants(config.variants)
            _import_worker_modules()
        # Also with one worker: a replaced worker carries on from its predecessor's counts.
        metrics_dir = tempfile.mkdtemp(prefix="mlport-metrics-")
        settings = _Settings(
            config=config,
            config_path=Path(config_path).resolve() if config_path is not None else None,
            hosting=hosting,
            token=token,
            host=host,
            port=port,
            metrics_dir=metrics_dir,
        )
        return _Supervisor(settings, sock, variants, on_ready).run()
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
