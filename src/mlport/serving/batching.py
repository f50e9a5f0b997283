"""Adaptive micro-batching: rows of concurrent requests predicted in one call.

Each worker predicts one batch at a time. A request's validated rows join a queue; a batch is
taken from it as soon as the predictor is free and either the queue holds ``max_batch_size``
rows or no other request is still being read (or ``max_wait_ms`` has passed since the oldest
queued request), so an idle server adds no wait and a busy one fills its batches with what
queued during the previous call. A batch holds rows of one variant, joined with
:meth:`~mlport.serving.model.ServedModel.concat`, and never splits a request; a model with
``batching = False`` is called once per request.

``predict`` runs in one thread per worker, or on the event loop itself while a model's calls
are fast, where handing work to a thread costs more than the call (measured with a
LogisticRegression: 1,700 against 1,200 requests/s at concurrency 1; a 50-tree forest does
better in the thread). With ``predict_in="auto"`` a model starts in the thread; once its calls'
CPU time there averages under 1 ms it is tried on the loop, and stays there while its calls
block the loop for less than 1 ms on average (wall time, so a model that waits on threads of
its own shows it), else it goes back to the thread for good. The thread measures CPU time, not
wall time, because there a call also waits for the interpreter lock that the busy loop holds.

If a batch of several requests fails, each request is predicted alone, so one bad request
cannot fail the others.

A call in the thread that runs past ``timeout`` seconds fails its requests with
:class:`PredictTimeout` (every request of the batch: which one hangs the model cannot be told).
The thread cannot be stopped: it is abandoned (it ends when the call returns, if ever), a new
one takes the next batches, and ``on_timeout`` is called so the server can replace the process.
A call on the event loop cannot be timed out from the loop it blocks; the server's supervisor
watches for that (see :mod:`mlport.serving.server`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from mlport.serving.config import BatchingConfig
from mlport.serving.metrics import Metrics
from mlport.serving.model import ServedModel
from mlport.serving.variants import Variant

__all__ = ["INLINE_MAX_SECONDS", "Batcher", "PredictTimeout"]

INLINE_MAX_SECONDS = 0.001
"""With ``predict_in="auto"``, models whose calls average less than this run on the event loop."""

_AVERAGE_WEIGHT = 0.2

_log = logging.getLogger("mlport.serving")


class PredictTimeout(Exception):
    """A predict call ran past the server's limit; the request was answered without a result.

    Attributes:
        seconds: The limit.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the model did not answer within {seconds:g} s")
        self.seconds = seconds


class _Item:
    __slots__ = ("future", "inputs", "queued_at", "rows", "solo", "variant")

    def __init__(
        self, variant: Variant, inputs: Any, rows: int, future: asyncio.Future[list[Any]], at: float
    ) -> None:
        self.variant = variant
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.queued_at = at
        self.solo = False


class _Call:
    """A batch handed to the predict thread."""

    __slots__ = ("batch", "future", "timed_out", "timer")

    def __init__(self, batch: list[_Item]) -> None:
        self.batch = batch
        self.future: concurrent.futures.Future[tuple[list[Any] | Exception, float]] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False


def _run(
    model: ServedModel, parts: Sequence[Any], clock: Callable[[], float]
) -> tuple[list[Any] | Exception, float]:
    start = clock()
    try:
        inputs = parts[0] if len(parts) == 1 else model.concat(parts)
        outputs = model.predict(inputs)
        result: list[Any] | Exception = outputs if isinstance(outputs, list) else list(outputs)
    except Exception as exc:
        result = exc
    return result, clock() - start


def _average(average: float | None, seconds: float) -> float:
    return seconds if average is None else average + _AVERAGE_WEIGHT * (seconds - average)


class Batcher:
    """Queues validated rows and predicts them in batches; one per worker, on its event loop.

    Args:
        config: Batching settings.
        metrics: Where batch sizes and timeouts are counted.
        timeout: Seconds a predict call in the thread may run (None: no limit).
        on_timeout: Called (on the event loop) after a call timed out.
    """

    def __init__(
        self,
        config: BatchingConfig,
        metrics: Metrics,
        *,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self._enabled = config.enabled
        self._max_rows = config.max_batch_size if config.enabled else 1
        self._max_wait = config.max_wait_ms / 1000.0
        self._mode = config.predict_in
        self._metrics = metrics
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._announced = 0
        self._busy = False
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._running: _Call | None = None

    # --- the request side ------------------------------------------------------------------------

    def announce(self) -> None:
        """A request will soon call :meth:`predict` (batches may wait for it, briefly)."""
        self._announced += 1

    def withdraw(self) -> None:
        """An announced request will not call :meth:`predict` after all."""
        self._announced -= 1

    async def predict(self, variant: Variant, inputs: Any, rows: int) -> list[Any]:
        """Predict ``rows`` validated rows with ``variant``; one output per row.

        Call :meth:`announce` first. Returns when the batch holding the rows is predicted.

        Raises:
            PredictTimeout: The call predicting them ran past the timeout.
            Exception: What the model raised for these rows (after a failed batch is split).
        """
        self._announced -= 1
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append(_Item(variant, inputs, rows, future, loop.time()))
        self._queued_rows += rows
        self._kick()
        return await future

    def close(self) -> None:
        """Stop the predict thread after the batch it runs. Blocks until then, or at most the
        timeout; a thread abandoned after a timeout is not waited for."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.shutdown(wait=False)
        running = self._running
        if running is not None and running.future is not None:
            concurrent.futures.wait([running.future], timeout=self._timeout)

    # --- scheduling ------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._busy or self._scheduled or not self._queue:
            return
        loop = self._loop
        assert loop is not None
        if self._queued_rows >= self._max_rows or self._announced <= 0 or self._queue[0].solo:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        elif self._timer is None:
            self._timer = loop.call_at(self._queue[0].queued_at + self._max_wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._busy and not self._scheduled and self._queue:
            self._scheduled = True
            self._dispatch()

    def _take(self) -> list[_Item]:
        first = self._queue.popleft()
        batch = [first]
        rows = first.rows
        if not (
            first.solo
            or not self._enabled
            or not first.variant.model.batching
            or rows >= self._max_rows
        ):
            rest: collections.deque[_Item] = collections.deque()
            while self._queue:
                item = self._queue.popleft()
                if (
                    item.variant is first.variant
                    and not item.solo
                    and rows + item.rows <= self._max_rows
                ):
                    batch.append(item)
                    rows += item.rows
                else:
                    rest.append(item)
            self._queue = rest
        self._queued_rows -= rows
        return batch

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._queue:
            return
        batch = self._take()
        variant = batch[0].variant
        parts = [item.inputs for item in batch]
        if self._inline(variant):
            result, seconds = _run(variant.model, parts, time.perf_counter)
            variant.inline_seconds = _average(variant.inline_seconds, seconds)
            self._finish(batch, result)
            return
        self._busy = True
        executor = self._executor
        if executor is None:
            executor = self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="mlport-predict"
            )
        loop = self._loop
        assert loop is not None
        call = self._running = _Call(batch)

        def done(future: concurrent.futures.Future[tuple[list[Any] | Exception, float]]) -> None:
            # An abandoned call may return after the loop has closed.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finish_future, call, future)

        call.future = executor.submit(_run, variant.model, parts, time.thread_time)
        if self._timeout is not None:
            call.timer = loop.call_later(self._timeout, self._timed_out, call)
        call.future.add_done_callback(done)

    def _inline(self, variant: Variant) -> bool:
        if self._mode != "auto":
            return self._mode == "inline"
        if variant.inline_seconds is not None:
            return variant.inline_seconds < INLINE_MAX_SECONDS
        return variant.thread_seconds is not None and variant.thread_seconds < INLINE_MAX_SECONDS

    def _timed_out(self, call: _Call) -> None:
        """The call in the thread ran past the timeout: answer its requests, move on."""
        if call is not self._running:
            return
        call.timed_out = True
        self._running = None
        executor, self._executor = self._executor, None
        if executor is not None:
            # Its thread ends when the call returns; the next batch gets a new thread.
            executor.shutdown(wait=False)
        self._busy = False
        variant = call.batch[0].variant
        rows = sum(item.rows for item in call.batch)
        seconds = self._timeout or 0.0
        self._metrics.batch(variant.version, rows)
        self._metrics.predict_timeout(variant.version)
        _log.error(
            "variant %s: a predict call of %d row(s) did not return within %g s; its "
            "request(s) were answered without a result and the call was abandoned",
            variant.version,
            rows,
            seconds,
        )
        for item in call.batch:
            if not item.future.done():
                item.future.set_exception(PredictTimeout(seconds))
        if self._on_timeout is not None:
            self._on_timeout()
        self._kick()

    def _finish_future(
        self,
        call: _Call,
        future: concurrent.futures.Future[tuple[list[Any] | Exception, float]],
    ) -> None:
        if call.timed_out:
            return  # its requests were answered when it timed out
        if call.timer is not None:
            call.timer.cancel()
        self._running = None
        batch = call.batch
        variant = batch[0].variant
        try:
            result, seconds = future.result()
            variant.thread_seconds = _average(variant.thread_seconds, seconds)
        except Exception as exc:  # the executor itself failed (shut down under us)
            result = exc
        self._busy = False
        self._finish(batch, result)

    def _finish(self, batch: list[_Item], result: list[Any] | Exception) -> None:
        variant = batch[0].variant
        rows = sum(item.rows for item in batch)
        self._metrics.batch(variant.version, rows)
        if not isinstance(result, Exception) and len(result) != rows:
            result = RuntimeError(
                f"variant {variant.version}: the model returned {len(result)} outputs for "
                f"{rows} rows"
            )
        if isinstance(result, Exception):
            if len(batch) > 1:
                for item in reversed(batch):
                    item.solo = True
                    self._queue.appendleft(item)
                    self._queued_rows += item.rows
            else:
                item = batch[0]
                if not item.future.done():
                    item.future.set_exception(result)
        else:
            offset = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(result[offset : offset + item.rows])
                offset += item.rows
        self._kick()
