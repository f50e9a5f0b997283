"""The entry script of every SageMaker training job mlport submits (copied into the code bundle).

SageMaker's training toolkit runs it as ``sagemaker_program``. It maps SageMaker's conventions onto
the mlport training-script contract and runs the user's script:

=====================================  ==========================================================
SageMaker                              mlport
=====================================  ==========================================================
``SM_CHANNEL_<NAME>`` / SM_CHANNELS    ``MLPORT_INPUT_<NAME>`` (one per channel)
``SM_MODEL_DIR`` (/opt/ml/model)       ``MLPORT_MODEL_DIR``
``SM_OUTPUT_DATA_DIR``                 ``MLPORT_OUTPUT_DIR``
CheckpointConfig.LocalPath             ``MLPORT_CHECKPOINT_DIR``
``SM_HPS`` (JSON-decoded values)       ``MLPORT_HYPERPARAMETERS`` and ``--key=value`` arguments
``SM_HOSTS`` / ``SM_CURRENT_HOST``     ``MLPORT_HOSTS`` / ``MLPORT_RANK`` / ``MLPORT_WORLD_SIZE``
=====================================  ==========================================================

The script's exit code is the job's; on failure the last lines of its stderr go to
``<SM_OUTPUT_DIR>/failure``, which SageMaker reports as the job's FailureReason. SIGTERM (a
StopTrainingJob or MaxRuntimeInSeconds) is passed on to the script.

Standard library only, and Python 3.8 syntax: framework containers run older interpreters.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any, Deque, Dict, List, Mapping, Tuple

ENTRY_ENV = "MLPORT_ENTRY_POINT"
RUNTIME_DIR = "_mlport_runtime"
_TAIL_LINES = 30
_FAILURE_LIMIT = 1000


def _env_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name.upper())
    return "MLPORT_INPUT_" + cleaned


def _hyperparameters(config_dir: str) -> Dict[str, Any]:
    raw = os.environ.get("SM_HPS")
    if raw:
        values: Dict[str, Any] = json.loads(raw)
    else:
        path = os.path.join(config_dir, "hyperparameters.json")
        values = {}
        if os.path.isfile(path):
            with open(path) as handle:
                for key, text in json.load(handle).items():
                    try:
                        values[key] = json.loads(text)
                    except ValueError:
                        values[key] = text
    return {k: v for k, v in values.items() if not k.startswith("sagemaker_")}


def _argument(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def contract_env(environ: Mapping[str, str]) -> Tuple[Dict[str, str], Dict[str, Any]]:
    """The MLPORT_* variables for SageMaker's environment ``environ``."""
    ml_root = os.path.dirname(environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    input_dir = environ.get("SM_INPUT_DIR", os.path.join(ml_root, "input"))
    config_dir = environ.get("SM_INPUT_CONFIG_DIR", os.path.join(input_dir, "config"))
    env = {
        "MLPORT_MODEL_DIR": environ.get("SM_MODEL_DIR", os.path.join(ml_root, "model")),
        "MLPORT_OUTPUT_DIR": environ.get(
            "SM_OUTPUT_DATA_DIR", os.path.join(ml_root, "output", "data")
        ),
        "MLPORT_CHECKPOINT_DIR": environ.get("MLPORT_SM_CHECKPOINT_DIR")
        or os.path.join(ml_root, "checkpoints"),
    }
    for channel in json.loads(environ.get("SM_CHANNELS", "[]")):
        env[_env_name(channel)] = environ.get(
            "SM_CHANNEL_" + channel.upper(), os.path.join(input_dir, "data", channel)
        )
    hosts = json.loads(environ.get("SM_HOSTS", '["algo-1"]'))
    current = environ.get("SM_CURRENT_HOST", hosts[0] if hosts else "algo-1")
    env["MLPORT_HOSTS"] = json.dumps(hosts)
    env["MLPORT_RANK"] = str(hosts.index(current) if current in hosts else 0)
    env["MLPORT_WORLD_SIZE"] = str(len(hosts) or 1)
    hps = _hyperparameters(config_dir)
    env["MLPORT_HYPERPARAMETERS"] = json.dumps(hps)
    return env, hps


def _pump(stream: IO[bytes], sink: IO[bytes], tail: Deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        sink.write(raw)
        sink.flush()
        tail.append(raw.decode("utf-8", "replace").rstrip("\n"))


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    entry = os.environ.get(ENTRY_ENV, "train.py")
    env, hps = contract_env(os.environ)
    for key in ("MLPORT_MODEL_DIR", "MLPORT_OUTPUT_DIR", "MLPORT_CHECKPOINT_DIR"):
        os.makedirs(env[key], exist_ok=True)
    child_env = dict(os.environ)
    child_env.update(env)
    # The bundled copy of mlport.runtime is used only where mlport is not installed, so it never
    # hides an installed mlport from the script.
    try:
        import mlport.runtime  # noqa: F401
    except ImportError:
        extra = os.path.join(here, RUNTIME_DIR)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (child_env.get("PYTHONPATH"), extra) if p
        )
    args: List[str] = []
    for key, value in hps.items():
        args.append("--%s=%s" % (key, _argument(value)))
    process = subprocess.Popen(
        [sys.executable, os.path.join(here, entry)] + args,
        cwd=here,
        env=child_env,
        stderr=subprocess.PIPE,
    )

    def forward(signum: int, _frame: Any) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    tail: Deque[str] = collections.deque(maxlen=_TAIL_LINES)
    pump = threading.Thread(
        target=_pump, args=(process.stderr, sys.stderr.buffer, tail), daemon=True
    )
    pump.start()
    code = process.wait()
    pump.join(timeout=5)
    if code != 0:
        output_dir = os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")
        reason = "%s exited with code %d" % (entry, code)
        lines = "\n".join(line for line in tail if line.strip())
        if lines:
            reason += ": " + lines[-(_FAILURE_LIMIT - len(reason) - 2) :]
        try:
            os.makedirs(output_dir, exist_ok=True)
            with open(os.path.join(output_dir, "failure"), "w") as handle:
                handle.write(reason)
        except OSError:
            pass
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
