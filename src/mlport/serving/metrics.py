"""Prometheus metrics of the model server, cheap enough to update on every request.

Each worker process counts in plain dictionaries (the event loop is its only writer, so no lock)
and writes a snapshot of its counts to ``<metrics_dir>/worker-<n>.json`` once a second and when
it stops. ``GET /metrics`` on any worker answers the sum of its own live counts and the other
workers' latest snapshots (at most a second old), so one scrape sees the whole server. A
restarted worker starts from its predecessor's snapshot, so counters never go backwards.

Exposed (text format 0.0.4):

- ``mlport_requests_total{route, variant, code}`` requests answered
- ``mlport_request_errors_total{route, variant, code}`` the 4xx and 5xx among them
- ``mlport_request_duration_seconds{variant}`` latency of prediction requests (histogram)
- ``mlport_batch_size{variant}`` rows per predict call (histogram)
- ``mlport_predict_timeouts_total{variant}`` predict calls that ran past the timeout
- ``mlport_capture_records_total``, ``mlport_capture_dropped_total`` data capture
- ``mlport_model_generation`` and ``mlport_variant_weight{variant}`` (gauges, this worker's)
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlport.processes import write_ready_file

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "Histogram", "Metrics"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the latency histogram's buckets; +Inf is implied."""

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
"""Upper bounds of the batch-size histogram's buckets; +Inf is implied."""


class Histogram:
    """Bucket counts, sum and count of observed values.

    Args:
        bounds: Upper bounds of the buckets, ascending.
    """

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def to_json(self) -> dict[str, Any]:
        """The histogram's state, for a snapshot file."""
        return {"counts": self.counts, "sum": self.total, "count": self.count}

    def add(self, state: dict[str, Any]) -> None:
        """Add a snapshot's state (same bounds) to this histogram."""
        counts = state.get("counts", [])
        if len(counts) == len(self.counts):
            self.counts = [a + int(b) for a, b in zip(self.counts, counts, strict=True)]
            self.total += float(state.get("sum", 0.0))
            self.count += int(state.get("count", 0))


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    parts = []
    for name, value in zip(names, values, strict=True):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{escaped}"')
    return ",".join(parts)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """One worker's counters, and the whole server's view of them.

    Args:
        worker: This worker's index (names its snapshot file).
        directory: Where the workers' snapshots live; None keeps the counts in this process only.
    """

    def __init__(self, *, worker: int = 0, directory: str | os.PathLike[str] | None = None) -> None:
        self.worker = worker
        self.directory = Path(directory) if directory is not None else None
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.batches: dict[str, Histogram] = {}
        self.predict_timeouts: dict[str, int] = {}
        self.capture_records = 0
        self.capture_dropped = 0
        self.generation = 0
        self.weights: dict[str, float] = {}
        if self.directory is not None:
            self._resume()

    # --- updates (event loop only) ---------------------------------------------------------------

    def request(self, route: str, variant: str, code: int, seconds: float | None) -> None:
        """Count an answered request; ``seconds`` feeds the latency histogram of its variant."""
        key = (route, variant, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            histogram = self.latency.get(variant)
            if histogram is None:
                histogram = self.latency[variant] = Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)

    def batch(self, variant: str, rows: int) -> None:
        """Count one predict call of ``rows`` rows."""
        histogram = self.batches.get(variant)
        if histogram is None:
            histogram = self.batches[variant] = Histogram(BATCH_BUCKETS)
        histogram.observe(rows)

    def predict_timeout(self, variant: str) -> None:
        """Count one predict call that ran past the timeout."""
        self.predict_timeouts[variant] = self.predict_timeouts.get(variant, 0) + 1

    # --- snapshots ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This worker's counts as JSON-able data."""
        return {
            "requests": [[*key, count] for key, count in self.requests.items()],
            "latency": {variant: h.to_json() for variant, h in self.latency.items()},
            "batches": {variant: h.to_json() for variant, h in self.batches.items()},
            "predict_timeouts": dict(self.predict_timeouts),
            "capture_records": self.capture_records,
            "capture_dropped": self.capture_dropped,
        }

    def _file(self, worker: int) -> Path:
        assert self.directory is not None
        return self.directory / f"worker-{worker}.json"

    def save(self) -> None:
        """Write this worker's snapshot (when there is a directory). Blocks briefly."""
        if self.directory is None:
            return
        with contextlib.suppress(OSError):
            write_ready_file(self._file(self.worker), json.dumps(self.snapshot()))

    def _resume(self) -> None:
        try:
            state = json.loads(self._file(self.worker).read_text())
        except (OSError, ValueError):
            return
        self._add(self, state)

    @staticmethod
    def _add(target: Metrics, state: dict[str, Any]) -> None:
        for route, variant, code, count in state.get("requests", []):
            key = (str(route), str(variant), str(code))
            target.requests[key] = target.requests.get(key, 0) + int(count)
        for name, store, bounds in (
            ("latency", target.latency, LATENCY_BUCKETS),
            ("batches", target.batches, BATCH_BUCKETS),
        ):
            for variant, histogram_state in state.get(name, {}).items():
                histogram = store.get(variant)
                if histogram is None:
                    histogram = store[variant] = Histogram(bounds)
                histogram.add(histogram_state)
        timeouts = target.predict_timeouts
        for name, count in state.get("predict_timeouts", {}).items():
            timeouts[str(name)] = timeouts.get(str(name), 0) + int(count)
        target.capture_records += int(state.get("capture_records", 0))
        target.capture_dropped += int(state.get("capture_dropped", 0))

    def _others(self) -> Iterable[dict[str, Any]]:
        if self.directory is None:
            return
        for path in sorted(self.directory.glob("worker-*.json")):
            if path.name == self._file(self.worker).name:
                continue
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue

    # --- exposition --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The whole server's metrics in Prometheus text format. Reads the other workers' files."""
        total = Metrics()
        self._add(total, self.snapshot())
        for state in self._others():
            self._add(total, state)
        lines: list[str] = []
        lines += [
            "# HELP mlport_requests_total Requests answered, by route, variant and status code.",
            "# TYPE mlport_requests_total counter",
        ]
        names = ("route", "variant", "code")
        for key, count in sorted(total.requests.items()):
            lines.append(f"mlport_requests_total{{{_labels(names, key)}}} {count}")
        lines += [
            "# HELP mlport_request_errors_total Requests answered with a 4xx or 5xx status.",
            "# TYPE mlport_request_errors_total counter",
        ]
        for key, count in sorted(total.requests.items()):
            if int(key[2]) >= 400:
                lines.append(f"mlport_request_errors_total{{{_labels(names, key)}}} {count}")
        lines += _histogram_lines(
            "mlport_request_duration_seconds",
            "Latency of prediction requests, by variant.",
            total.latency,
        )
        lines += _histogram_lines(
            "mlport_batch_size", "Rows per predict call, by variant.", total.batches
        )
        lines += [
            "# HELP mlport_predict_timeouts_total Predict calls that ran past the timeout (their "
            "requests were answered 504), by variant.",
            "# TYPE mlport_predict_timeouts_total counter",
        ]
        for variant, count in sorted(total.predict_timeouts.items()):
            lines.append(
                f"mlport_predict_timeouts_total{{{_labels(('variant',), (variant,))}}} {count}"
            )
        lines += [
            "# HELP mlport_capture_records_total Request/response pairs queued for capture.",
            "# TYPE mlport_capture_records_total counter",
            f"mlport_capture_records_total {total.capture_records}",
            "# HELP mlport_capture_dropped_total Capture records dropped: the writer was behind.",
            "# TYPE mlport_capture_dropped_total counter",
            f"mlport_capture_dropped_total {total.capture_dropped}",
            "# HELP mlport_model_generation Reloads applied by the worker that answered.",
            "# TYPE mlport_model_generation gauge",
            f"mlport_model_generation {self.generation}",
            "# HELP mlport_variant_weight Traffic weight of each variant.",
            "# TYPE mlport_variant_weight gauge",
        ]
        for variant, weight in sorted(self.weights.items()):
            lines.append(
                f"mlport_variant_weight{{{_labels(('variant',), (variant,))}}} {_number(weight)}"
            )
        return ("\n".join(lines) + "\n").encode()


def _histogram_lines(name: str, help_text: str, histograms: dict[str, Histogram]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for variant, histogram in sorted(histograms.items()):
        label = _labels(("variant",), (variant,))
        cumulative = 0
        for bound, count in zip((*histogram.bounds, None), histogram.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound is None else _number(bound)
            lines.append(f'{name}_bucket{{{label},le="{le}"}} {cumulative}')
        lines.append(f"{name}_sum{{{label}}} {histogram.total!r}")
        lines.append(f"{name}_count{{{label}}} {histogram.count}")
    return lines
