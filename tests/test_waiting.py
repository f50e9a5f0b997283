"""Waiting: exponential backoff with jitter, timeouts that name the resource."""

from __future__ import annotations

import io

import pytest

from mlport import WaitTimeoutError
from mlport.retry import RetryPolicy, call_with_retries
from mlport.waiting import PollPolicy, Progress, wait_until


def test_poll_delays_grow_to_the_cap_with_jitter() -> None:
    delays = PollPolicy(initial=1, maximum=8, factor=2, jitter=0.25).delays()
    seen = [next(delays) for _ in range(8)]
    for got, base in zip(seen, [1, 2, 4, 8, 8, 8, 8, 8], strict=True):
        assert 0.75 * base <= got <= 1.25 * base
    assert len(set(seen)) > 1


def test_wait_until_times_out_naming_the_resource() -> None:
    with pytest.raises(WaitTimeoutError, match="training job j.*RUNNING"):
        wait_until(
            lambda: (False, "RUNNING", ""),
            what="training job j",
            timeout=0.05,
            policy=PollPolicy(initial=0.01),
            progress=False,
        )


def test_wait_until_stops_when_done() -> None:
    states = iter([(False, "PENDING", ""), (False, "RUNNING", "epoch 1"), (True, "SUCCEEDED", "")])
    slept: list[float] = []
    wait_until(
        lambda: next(states),
        what="x",
        timeout=None,
        policy=PollPolicy(initial=1, jitter=0),
        progress=False,
        sleep=slept.append,
    )
    assert slept == [1, 1.5]


def test_plain_progress_prints_changes_only() -> None:
    stream = io.StringIO()
    with Progress("endpoint e", stream=stream) as progress:
        progress.update("CREATING")
        progress.update("CREATING")
        progress.update("READY")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[mlport] endpoint e: CREATING")


def test_retry_delay_full_jitter_and_retry_after() -> None:
    policy = RetryPolicy(initial=1, maximum=4)
    assert all(0 <= policy.delay(3, None) <= 4 for _ in range(50))

    class Slow(Exception):
        retry_after = 2.5

    assert policy.delay(1, Slow()) >= 2.5


def test_call_with_retries_honours_retry_after() -> None:
    from mlport import ThrottledError

    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ThrottledError("slow", retry_after=1.5)
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(attempts=5), what="x", sleep=slept.append) == "ok"
    assert len(slept) == 2 and all(s >= 1.5 for s in slept)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_is_a_live_status_line() -> None:
    stream = _Terminal()
    with Progress("notebook dev", stream=stream) as progress:
        progress.update("PENDING")
        progress.update("RUNNING", "kernel ready")
    shown = stream.getvalue()
    assert "notebook dev" in shown
    assert "[mlport]" not in shown  # no plain log lines on a terminal
