"""``python -m mlport_vertex.emulator``: run the local Vertex AI until SIGINT or SIGTERM.

Prints one line of JSON once it listens: ``api_endpoint``, ``storage_host``, ``ca_file``,
``project``, ``location``, ``staging_bucket`` and ``env`` (the variables to set for the SDKs).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve until stopped. Blocks."""
    parser = argparse.ArgumentParser(
        prog="python -m mlport_vertex.emulator",
        description="A local Vertex AI (gRPC over TLS) with a gcp-storage-emulator for gs://.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--project", default="mlport-local", help="the project id to play")
    parser.add_argument("--project-number", default="123456789012", help="its number")
    parser.add_argument("--location", default="us-central1", help="the default location")
    parser.add_argument("--work-dir", help="downloads, job runs and logs (default: temporary)")
    parser.add_argument("--state-delay", type=float, default=0.0, help="seconds per job state")
    parser.add_argument(
        "--operation-delay", type=float, default=0.0, help="seconds before an LRO is done"
    )
    parser.add_argument("--serving-image", help="the mlport serving image URI")
    parser.add_argument("--ready-file", help="also write the JSON line to this file")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the emulator's log on stderr: every refused call is logged at info",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from mlport.errors import MlportError
    from mlport.processes import write_ready_file
    from mlport_vertex.emulator.server import VertexEmulator
    from mlport_vertex.emulator.state import Delays

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator = VertexEmulator(
            host=args.host,
            port=args.port,
            project=args.project,
            project_number=args.project_number,
            location=args.location,
            delays=Delays(state=args.state_delay, operation=args.operation_delay),
            work_dir=args.work_dir,
            serving_image=args.serving_image,
        )
    except MlportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with emulator:
        line = json.dumps(
            {
                "api_endpoint": emulator.api_endpoint,
                "storage_host": emulator.storage_host,
                "ca_file": emulator.ca_file,
                "project": emulator.project,
                "location": emulator.location,
                "staging_bucket": emulator.staging_bucket,
                "env": dict(emulator.env),
            }
        )
        print(line, flush=True)
        if args.ready_file:
            write_ready_file(args.ready_file, line)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
