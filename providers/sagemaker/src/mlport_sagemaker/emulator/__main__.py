"""``python -m mlport_sagemaker.emulator``: run the local SageMaker endpoint until stopped.

Prints one line with its address, then serves until SIGTERM or SIGINT, and stops every process
it started before exiting.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mlport_sagemaker.emulator",
        description="A local SageMaker endpoint (moto, extended): SageMaker, sagemaker-runtime, "
        "S3, CloudWatch Logs and Application Auto Scaling on one address.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--region", default="us-east-1", help="default region (us-east-1)")
    parser.add_argument("--bucket", default="mlport-emulator", help="bucket to create")
    parser.add_argument("--workdir", default=None, help="folder for jobs and endpoints")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds each intermediate state lasts"
    )
    args = parser.parse_args(argv)

    from mlport_sagemaker.emulator.server import SageMakerEmulator

    done = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    emulator = SageMakerEmulator(
        args.region,
        host=args.host,
        port=args.port,
        bucket=args.bucket,
        workdir=args.workdir,
        delay=args.delay,
    )
    try:
        print(
            f"mlport SageMaker emulator on {emulator.endpoint_url} region={emulator.region} "
            f"bucket={emulator.bucket}",
            flush=True,
        )
        while not done.wait(1.0):
            pass
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
