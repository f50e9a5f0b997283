"""``python -m mlport_azureml.emulator._batch_runner MODEL INPUT OUTPUT [BATCH_SIZE]``.

What a batch deployment's job runs: loads the model folder with mlport's loaders and predicts
every row of the input file or folder into the output folder with
:func:`mlport.serving.batch.predict_files`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Predict, print a summary line, return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4):
        print("usage: _batch_runner MODEL INPUT OUTPUT [BATCH_SIZE]", file=sys.stderr)
        return 2
    from mlport.serving.batch import predict_files
    from mlport.serving.loaders import load

    model = load(args[0], trust=True)
    size = int(args[3]) if len(args) == 4 else 1000
    summary = predict_files(model, args[1], args[2], batch_size=size)
    print(f"predicted {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
