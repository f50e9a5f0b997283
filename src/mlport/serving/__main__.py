"""``python -m mlport.serving --config FILE``: run the model server from a configuration file.

This is what on-prem endpoints run. SIGHUP re-reads the file; SIGTERM stops gracefully. Exit
status: 0 after a graceful stop, 1 if the workers could not start, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve until stopped. Blocks."""
    parser = argparse.ArgumentParser(
        prog="python -m mlport.serving",
        description="Run mlport's portable model server from a JSON configuration file.",
    )
    parser.add_argument("--config", required=True, help="the server configuration (JSON)")
    parser.add_argument("--ready-file", help='write {"port": ..., "pid": ...} here once listening')
    args = parser.parse_args(argv)

    from mlport.errors import MlportError
    from mlport.serving.config import load_config
    from mlport.serving.server import configure_logging, serve

    try:
        config = load_config(args.config)
        if args.ready_file:
            config = config.model_copy(update={"ready_file": str(Path(args.ready_file).resolve())})
        configure_logging(config.log_level)
        return serve(config, config_path=args.config)
    except MlportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
