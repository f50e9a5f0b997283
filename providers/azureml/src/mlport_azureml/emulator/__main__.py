"""``python -m mlport_azureml.emulator --host 127.0.0.1 --port 0``: run the emulator until stopped.

Prints one line of JSON with the address and the settings MLClient needs, then serves until
SIGINT or SIGTERM, and stops Azurite, jobs and model servers on the way out.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, start the emulator and block until a signal arrives."""
    parser = argparse.ArgumentParser(
        prog="python -m mlport_azureml.emulator",
        description="Run a local Azure ML workspace (HTTPS) with Azurite for its blob storage.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument("--subscription-id", default=None, help="the workspace's subscription id")
    parser.add_argument("--resource-group", default=None, help="the workspace's resource group")
    parser.add_argument("--workspace", default=None, help="the workspace's name")
    parser.add_argument("--azurite", default=None, help="path of azurite-blob")
    parser.add_argument("--work-dir", default=None, help="folder for jobs, servers and logs")
    parser.add_argument(
        "--job-step-seconds", type=float, default=0.0, help="pause between job states"
    )
    parser.add_argument(
        "--provisioning-seconds",
        type=float,
        default=0.0,
        help="extra time every long-running operation takes",
    )
    args = parser.parse_args(argv)

    from mlport.errors import MlportError
    from mlport_azureml.emulator import AzureMLEmulator, Settings

    settings = Settings(
        job_step_seconds=args.job_step_seconds, provisioning_seconds=args.provisioning_seconds
    )
    if args.subscription_id:
        settings.subscription_id = args.subscription_id
    if args.resource_group:
        settings.resource_group = args.resource_group
    if args.workspace:
        settings.workspace_name = args.workspace
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator = AzureMLEmulator(
            host=args.host,
            port=args.port,
            settings=settings,
            work_dir=args.work_dir,
            azurite=args.azurite,
        )
    except MlportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with emulator:
        kwargs = emulator.client_kwargs
        line = {
            "url": emulator.base_url,
            "subscription_id": emulator.subscription_id,
            "resource_group": emulator.resource_group,
            "workspace_name": emulator.workspace_name,
            "cloud": kwargs["cloud"],
            "cloud_metadata": kwargs["cloud_metadata"],
            "connection_verify": kwargs["connection_verify"],
            "azurite": emulator.azurite.account_url,
            "control": f"{emulator.base_url}/mlport-emulator",
        }
        print(json.dumps(line), flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
