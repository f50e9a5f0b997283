"""Waiting for a resource to settle: polls with exponential backoff and jitter, shows progress.

Progress goes to stderr: a live rich status line when stderr is a terminal, plain lines (one per
change of state) otherwise, so CI logs stay readable. Streamed job logs go to stdout.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from mlport.errors import WaitTimeoutError
from mlport.specs import format_duration

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

__all__ = ["PollPolicy", "Progress", "wait_until"]


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll: ``initial`` seconds, growing by ``factor`` up to ``maximum``, +-``jitter``.

    Set per profile with the ``poll_interval`` and ``max_poll_interval`` keys (tests against
    local emulators turn them down to a few milliseconds).
    """

    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 1.5
    jitter: float = 0.25

    def delays(self) -> Iterator[float]:
        """Endless delays: exponential backoff, each scaled by a random factor in 1 +- jitter."""
        delay = self.initial
        while True:
            yield max(0.0, delay * (1 + random.uniform(-self.jitter, self.jitter)))
            delay = min(self.maximum, delay * self.factor)


class Progress:
    """Shows what a wait is doing. Use as a context manager; call :meth:`update` on every poll."""

    def __init__(self, what: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.what = what
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self._last: tuple[str, str] | None = None
        self._console: Console | None = None
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if self.enabled and _isatty(self.stream):
            from rich.console import Console

            self._console = Console(file=self.stream)
            self._status = self._console.status(f"{self.what}: waiting")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def update(self, state: str, message: str = "") -> None:
        """Record the current state; prints a line when it changed (or refreshes the live line)."""
        if not self.enabled:
            return
        elapsed = format_duration(max(1, round(time.monotonic() - self.started)))
        text = f"{self.what}: {state}" + (f" - {message}" if message else "")
        if self._status is not None:
            self._status.update(f"{text} ({elapsed})")
        elif (state, message) != self._last:
            print(f"[mlport] {text} ({elapsed})", file=self.stream, flush=True)
        self._last = (state, message)

    def log_lines(self, lines: list[str]) -> None:
        """Print streamed log lines above the live status (or plainly) on stdout."""
        if not lines:
            return
        if self._console is not None:
            from rich.console import Console

            out = Console(file=sys.stdout, highlight=False, markup=False, soft_wrap=True)
            for line in lines:
                out.print(line)
        else:
            sys.stdout.write(
                "".join(line if line.endswith("\n") else line + "\n" for line in lines)
            )
            sys.stdout.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def wait_until(
    poll: Callable[[], tuple[bool, str, str]],
    *,
    what: str,
    timeout: float | None,
    policy: PollPolicy,
    read_logs: Callable[[], list[str]] | None = None,
    progress: bool = True,
    sleep: Callable[[float], Any] = time.sleep,
) -> None:
    """Poll until ``poll()`` says done.

    Args:
        poll: Returns ``(done, state, message)``; may raise to end the wait.
        what: Words naming the resource, for progress and errors ("training job churn").
        timeout: Seconds before giving up; None waits forever.
        policy: Poll intervals.
        read_logs: Returns new log lines since the last call; printed as they come.
        progress: Show progress on stderr.
        sleep: Injectable for tests of the policy.

    Raises:
        WaitTimeoutError: when ``timeout`` runs out, naming the resource and its last state.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delays = policy.delays()
    with Progress(what, enabled=progress) as shown:
        while True:
            done, state, message = poll()
            if read_logs is not None:
                shown.log_lines(read_logs())
            shown.update(state, message)
            if done:
                if read_logs is not None:
                    shown.log_lines(read_logs())
                return
            delay = next(delays)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"{what} is still {state} after {timeout:g}s; wait again with a longer "
                        "timeout, or check it with .refresh()"
                    )
                delay = min(delay, remaining)
            sleep(delay)
