"""`import mlport` against its anchor, `from pydantic import BaseModel`, side by side in one run.

Each command runs in a fresh interpreter, alternating anchor and mlport so machine noise hits both
alike; the medians and their ratio are printed. Budget: mlport at most 1.5x the anchor, and
`mlport --help` under 0.5 s.

    python benchmarks/import_time.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ANCHOR = [sys.executable, "-c", "from pydantic import BaseModel"]
MLPORT = [sys.executable, "-c", "import mlport"]
HELP = [str(Path(sys.executable).with_name("mlport")), "--help"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    for argv in (ANCHOR, MLPORT):  # warm the file cache and .pyc files
        timed(argv)
    anchor, ours, help_times = [], [], []
    for _ in range(args.runs):
        anchor.append(timed(ANCHOR))
        ours.append(timed(MLPORT))
        if shutil.which(HELP[0]):
            help_times.append(timed(HELP))
    a, m = statistics.median(anchor), statistics.median(ours)
    print(f"anchor  from pydantic import BaseModel : median {a * 1000:7.1f} ms  (n={len(anchor)})")
    print(f"mlport  import mlport                  : median {m * 1000:7.1f} ms  (n={len(ours)})")
    print(f"ratio   mlport / anchor                : {m / a:.2f}x  (budget 1.50x)")
    ok = m / a <= 1.5
    if help_times:
        h = statistics.median(help_times)
        print(
            f"mlport --help                          : median {h * 1000:7.1f} ms  (budget 500 ms)"
        )
        ok = ok and h < 0.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
