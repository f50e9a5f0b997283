"""The one retry policy: throttling and transient errors, exponential backoff with full jitter.

Providers raise :class:`~mlport.errors.ThrottledError` / :class:`~mlport.errors.TransientError`
(through their ``_errors.py`` table) and never retry on their own; the SDKs' own retries are turned
off, so retries do not multiply and injected faults reach this policy. A ``retry_after`` on the
error (from a ``Retry-After`` header or the service's hint) is honoured as the minimum wait.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mlport.errors import RETRYABLE, MlportError

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["RetryPolicy", "call_with_retries"]

log = logging.getLogger("mlport.retry")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop.

    Args:
        attempts: Total tries, the first included.
        max_time: Seconds after which no new attempt starts.
        initial: Base delay of the first retry.
        maximum: Cap of the exponential delay.
    """

    attempts: int = 6
    max_time: float = 120.0
    initial: float = 0.5
    maximum: float = 20.0

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Full jitter: uniform in [0, min(maximum, initial * 2**(attempt-1))], at least retry_after."""
        ceiling = min(self.maximum, self.initial * 2 ** max(0, attempt - 1))
        delay = random.uniform(0, ceiling)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        return delay


NO_RETRIES = RetryPolicy(attempts=1)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], Any] | None = None,
) -> T:
    """Call ``fn``, retrying :data:`~mlport.errors.RETRYABLE` errors under ``policy``.

    Args:
        fn: The call; it raises mlport errors (providers map SDK errors before this).
        policy: Bounds of the loop.
        what: Words for the DEBUG log line of each retry ("sagemaker CreateTrainingJob").
        sleep: Injectable sleep (tests).

    Raises:
        Whatever ``fn`` raised last, once attempts or time run out, or at once if not retryable.
    """
    if policy.attempts <= 1:
        return fn()
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number, error)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.debug(
            "retrying %s after %s (attempt %d of %d, waiting %.2fs)",
            what,
            type(error).__name__ if isinstance(error, MlportError) else error,
            state.attempt_number,
            policy.attempts,
            delay,
        )

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = Retrying(
        retry=retry_if_exception_type(RETRYABLE),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_time),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )
    return retrying(fn)
