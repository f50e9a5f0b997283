"""The scheduler of one on-prem monitor: ``python -m mlport_onprem.monitor_scheduler FOLDER``.

Started detached by ``ml.monitoring.enable(..., schedule=...)`` and recorded in the root's
process table, so ``mlport down`` and ``disable`` stop it. It reads ``FOLDER/scheduler.json``
(the root, the endpoint, its own id) and runs the monitor whenever ``schedule`` seconds have
passed since the end of the last run's window (an on-demand run in between moves the next
scheduled one); the run lock keeps it from reading the window an on-demand run reads. A run that
fails is logged (``monitor.log``, ``scheduler.err``) and tried again one ``schedule`` later. It
exits by itself when the monitor is disabled or replaced. SIGTERM ends it at once between runs,
and after the current run during one.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from mlport_onprem.monitoring import TABLE, MonitorRun
from mlport_onprem.state import StateStore

__all__ = ["Scheduler", "main"]

#: Longest sleep between looks at the monitor's row (to notice it was disabled or replaced).
CHECK_EVERY = 5.0


class Scheduler:
    """Runs one monitor on its schedule until it is disabled, replaced or stopped."""

    def __init__(self, folder: Path) -> None:
        config = json.loads((folder / "scheduler.json").read_text())
        self.root = Path(config["root"])
        self.endpoint: str = config["endpoint"]
        self.id: str = config["id"]
        self.state = StateStore(self.root / "state.db")
        self.monitor = MonitorRun(self.root, self.endpoint, self.state)
        self.running = False
        self.stopping = False

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            raise SystemExit(0)
        self.stopping = True  # the run in progress finishes and records its window

    def loop(self) -> None:
        """Run until the monitor is gone or replaced, or SIGTERM. Blocks."""
        signal.signal(signal.SIGTERM, self._terminate)
        retry_at = 0.0
        while not self.stopping:
            doc = self.state.get(TABLE, self.endpoint)
            if doc is None or doc.get("scheduler_id") != self.id:
                print(f"{_now()} the monitor was disabled or replaced; exiting", flush=True)
                return
            due = self.monitor.due_at(doc)
            if due is None:
                return
            wait = max((due - datetime.now(UTC)).total_seconds(), retry_at - time.time())
            if wait > 0:
                time.sleep(min(wait, CHECK_EVERY))
                continue
            self.running = True
            try:
                report = self.monitor.run(only_if_due=True)
            except Exception:
                print(f"{_now()} the scheduled run failed:", file=sys.stderr, flush=True)
                traceback.print_exc()
                retry_at = time.time() + float(doc["schedule"])
            else:
                if report is not None:
                    drifted = ", ".join(report.drifted_features) or "none"
                    print(f"{_now()} ran: drifted {drifted}; {report.report_uri}", flush=True)
            finally:
                self.running = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m mlport_onprem.monitor_scheduler FOLDER``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlport_onprem.monitor_scheduler MONITOR_FOLDER", file=sys.stderr)
        return 2
    Scheduler(Path(args[0]).resolve()).loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
