"""The supervisor of one on-prem training job: ``python -m mlport_onprem.supervisor JOB_DIR``.

It runs detached from whoever submitted the job and owns the job until it ends: stages the
inputs, builds (or reuses) the job's Python environment, runs the script in its own process group
with the training-script contract, enforces ``max_runtime``, handles SIGTERM as a cancel, parses
metrics, turns the model folder into a model package with lineage, and records the outcome in the
root's state and in ``result.json``. If the supervisor itself is killed, the training service
notices (its PID and start time no longer match a live process) and records the job FAILED.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from mlport import package, runtime
from mlport.errors import InvalidSpecError
from mlport.processes import ProcessRecord, ProcessTable, spawn, stop
from mlport_onprem._common import locked, now, tail, write_json
from mlport_onprem.state import StateStore

__all__ = ["main"]

FRAMEWORK_PACKAGES = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "pytorch": "torch",
    "tensorflow": "tensorflow",
    "huggingface": "transformers",
}
STDERR_TAIL_LINES = 20


class Supervisor:
    """Runs one job folder to its end."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.job: dict[str, Any] = json.loads((job_dir / "job.json").read_text())
        self.name: str = self.job["name"]
        self.root = Path(self.job["root"])
        self.state = StateStore(self.root / "state.db")
        self.processes = ProcessTable(self.root / "processes.jsonl")
        self.cancelled = threading.Event()
        self.child: ProcessRecord | None = None
        self.log = (job_dir / "supervisor.log").open("a", buffering=1)

    def say(self, message: str) -> None:
        """A progress message: into the state (shown by job.wait) and the supervisor log."""
        self.log.write(f"{now()} {message}\n")
        self.state.update("jobs", self.name, message=message)

    def finish(self, status: str, **fields: Any) -> None:
        """Record the outcome in result.json (atomically) and in the state."""
        result = {"status": status, "ended_at": now(), "message": "", **fields}
        write_json(self.job_dir / "result.json", result)
        self.state.update("jobs", self.name, **result)
        self.log.write(f"{now()} {status} {fields.get('failure_reason') or ''}\n")

    def on_sigterm(self, signum: int, frame: object) -> None:
        """A cancel: stop the script; the main loop records CANCELLED."""
        self.cancelled.set()

    def run(self) -> None:
        """Stage, build, run, record. Never leaves the job without an outcome it can record."""
        signal.signal(signal.SIGTERM, self.on_sigterm)
        try:
            self.state.update("jobs", self.name, started_at=now())
            lineage: dict[str, Any] = dict(self.job.get("lineage", {}))
            self.say("staging inputs")
            lineage["inputs"] = self.stage_inputs()
            if self.cancelled.is_set():
                self.finish("CANCELLED", failure_reason="cancelled before the script started")
                return
            self.say("preparing the environment")
            python, extra_env = self.environment()
            lineage.update(self.interpreter_lineage(python))
            if self.cancelled.is_set():
                self.finish("CANCELLED", failure_reason="cancelled before the script started")
                return
            self.run_script(python, extra_env, lineage)
        except Exception as exc:
            self.log.write(traceback.format_exc())
            self.finish("FAILED", failure_reason=f"the job could not run: {exc}")
        finally:
            if self.child is not None:
                stop(self.child, grace=1)
                self.processes.remove(self.child)
            self.log.close()

    def stage_inputs(self) -> dict[str, dict[str, str]]:
        """Copy each input into input/<channel>/ (hard links where possible); sha256 of each file."""
        hashes: dict[str, dict[str, str]] = {}
        for channel, source in self.job["inputs"].items():
            target = self.job_dir / "input" / channel
            target.mkdir(parents=True, exist_ok=True)
            origin = Path(source)
            files = (
                [origin]
                if origin.is_file()
                else sorted(p for p in origin.rglob("*") if p.is_file())
            )
            hashes[channel] = {}
            for item in files:
                relative = item.name if origin.is_file() else item.relative_to(origin).as_posix()
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(item, destination)
                except OSError:
                    shutil.copy2(item, destination)
                hashes[channel][relative] = runtime.sha256_file(destination)
        return hashes

    def environment(self) -> tuple[str, dict[str, str]]:
        """The interpreter the script runs with, and variables it needs."""
        requirements = list(self.job["requirements"])
        framework, version = self.job.get("framework"), self.job.get("framework_version")
        if framework in FRAMEWORK_PACKAGES and version:
            dist = FRAMEWORK_PACKAGES[framework]
            try:
                installed = metadata.version(dist)
            except metadata.PackageNotFoundError:
                installed = None
            if installed is None or not _version_matches(installed, version):
                requirements.append(
                    f"{dist}=={version}.*" if version.count(".") < 2 else f"{dist}=={version}"
                )
        if not requirements:
            return sys.executable, {}
        env_dir = self.build_venv(requirements)
        bootstrap = self.job_dir / "bootstrap"
        (bootstrap / "mlport").mkdir(parents=True, exist_ok=True)
        (bootstrap / "mlport" / "__init__.py").write_text('"""mlport.runtime for jobs."""\n')
        shutil.copy2(runtime.__file__, bootstrap / "mlport" / "runtime.py")
        return str(env_dir / "bin" / "python"), {"PYTHONPATH": str(bootstrap)}

    def build_venv(self, requirements: list[str]) -> Path:
        """A virtualenv with ``requirements``, cached under envs/ by content hash."""
        pip_args = list(self.job.get("pip_args", []))
        key = json.dumps(
            {"python": sys.version, "requirements": sorted(requirements), "pip": pip_args}
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        envs = self.root / "envs"
        envs.mkdir(exist_ok=True)
        env_dir = envs / digest
        with locked(envs / f"{digest}.lock"):
            if (env_dir / ".complete").exists():
                self.say(f"reusing environment {digest[:12]}")
                return env_dir
            shutil.rmtree(env_dir, ignore_errors=True)
            self.say(f"building environment {digest[:12]}: {', '.join(requirements)}")
            build_log = self.job_dir / "environment.log"
            with build_log.open("a") as out:
                subprocess.run(
                    [sys.executable, "-m", "venv", str(env_dir)], check=True, stdout=out, stderr=out
                )
                result = subprocess.run(
                    [
                        str(env_dir / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        *pip_args,
                        *requirements,
                    ],
                    stdout=out,
                    stderr=out,
                    check=False,
                )
            if result.returncode != 0:
                shutil.rmtree(env_dir, ignore_errors=True)
                log = tail(build_log, 8)
                raise RuntimeError(f"pip could not install {', '.join(requirements)}:\n{log}")
            (env_dir / "requirements.json").write_text(json.dumps(sorted(requirements)))
            (env_dir / ".complete").write_text(now())
            return env_dir

    def interpreter_lineage(self, python: str) -> dict[str, Any]:
        """Interpreter and package versions of the environment the script runs in."""
        probe = (
            "import json, sys, platform\nfrom importlib import metadata\n"
            "print(json.dumps({'python': platform.python_version(), 'executable': sys.executable,"
            " 'packages': sorted(f\"{d.metadata['Name']}=={d.version}\" for d in metadata.distributions()"
            " if d.metadata['Name'])}))"
        )
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
        info: dict[str, Any] = json.loads(out.stdout)
        info["host"] = platform.node()
        return {"environment": info}

    def run_script(self, python: str, extra_env: dict[str, str], lineage: dict[str, Any]) -> None:
        """Run the script under the contract and record how it ended."""
        spec = self.job["spec"]
        dirs = {key: self.job_dir / key for key in ("model", "output", "checkpoints")}
        for path in dirs.values():
            path.mkdir(exist_ok=True)
        hyperparameters = spec.get("hyperparameters", {})
        env = {
            **spec.get("env", {}),
            **extra_env,
            "PYTHONUNBUFFERED": "1",
            runtime.MODEL_DIR_ENV: str(dirs["model"]),
            runtime.OUTPUT_DIR_ENV: str(dirs["output"]),
            runtime.CHECKPOINT_DIR_ENV: str(dirs["checkpoints"]),
            runtime.HYPERPARAMETERS_ENV: json.dumps(hyperparameters),
            runtime.HOSTS_ENV: json.dumps(["localhost"]),
            runtime.RANK_ENV: "0",
            runtime.WORLD_SIZE_ENV: "1",
            **{
                runtime.input_env_name(c): str(self.job_dir / "input" / c)
                for c in self.job["inputs"]
            },
        }
        argv = [python, spec["code"]["entry_point"], *runtime.hyperparameter_args(hyperparameters)]
        started = time.monotonic()
        popen, self.child = spawn(
            argv, name="script", log_dir=self.job_dir, cwd=self.job_dir / "code", env=env
        )
        self.processes.add(self.child)
        script_started_at = now()
        self.state.update(
            "jobs",
            self.name,
            status="RUNNING",
            child=self.child.to_json(),
            message="running " + spec["code"]["entry_point"],
        )
        deadline = started + int(spec["max_runtime"])
        reason: str | None = None
        while True:
            try:
                code = popen.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.cancelled.is_set() and reason is None:
                reason = "cancelled"
                stop(self.child, grace=float(self.job["cancel_grace"]))
            elif time.monotonic() > deadline and reason is None:
                reason = f"max_runtime exceeded ({spec['max_runtime']}s)"
                stop(self.child, grace=float(self.job["cancel_grace"]))
        self.processes.remove(self.child)
        if self.cancelled.is_set() and reason is None:
            reason = "cancelled"  # the script ended on the same SIGTERM that cancelled the job
        metrics = self.metrics()
        lineage.update(
            hyperparameters=hyperparameters,
            metrics=metrics,
            started_at=script_started_at,
            ended_at=now(),
        )
        if reason == "cancelled":
            self.finish("CANCELLED", failure_reason="cancelled", metrics=metrics, lineage=lineage)
        elif reason is not None:
            self.finish("FAILED", failure_reason=reason, metrics=metrics, lineage=lineage)
        elif code != 0:
            why = (
                f"killed by signal {signal.Signals(-code).name}"
                if code < 0
                else f"exit code {code}"
            )
            stderr = tail(self.job_dir / "script.err", STDERR_TAIL_LINES)
            self.finish(
                "FAILED",
                failure_reason=why + (f"; stderr:\n{stderr}" if stderr else ""),
                exit_code=code,
                metrics=metrics,
                lineage=lineage,
            )
        else:
            model_uri = self.package_model(dirs["model"], lineage)
            self.finish(
                "SUCCEEDED", exit_code=0, metrics=metrics, lineage=lineage, model_uri=model_uri
            )

    def metrics(self) -> dict[str, float]:
        """The last value of every metric line the script printed."""
        found: dict[str, float] = {}
        out = self.job_dir / "script.out"
        if out.exists():
            with out.open(errors="replace") as lines:
                for line in lines:
                    metric = runtime.parse_metric_line(line)
                    if metric is not None:
                        found[metric["name"]] = float(metric["value"])
        return found

    def package_model(self, model_dir: Path, lineage: dict[str, Any]) -> str | None:
        """Turn the model folder into a model package carrying the job's lineage."""
        if not any(p.is_file() for p in model_dir.rglob("*")):
            return None
        try:
            existing = (
                package.verify(model_dir) if (model_dir / runtime.MANIFEST_NAME).exists() else None
            )
        except Exception:
            existing = None
        merged = {**(existing.lineage if existing else {}), **lineage}
        try:
            package.build(model_dir, lineage=merged)
        except InvalidSpecError as exc:
            # A format mlport does not know: still a package (hashes, lineage), loaded by custom
            # code, which counts as executing code on load.
            self.log.write(f"{now()} {exc}; packaging with loader 'custom'\n")
            package.build(model_dir, loader="custom", lineage=merged)
        return f"file://{model_dir}"


def _version_matches(installed: str, wanted: str) -> bool:
    return installed == wanted or installed.startswith(wanted + ".")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m mlport_onprem.supervisor JOB_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlport_onprem.supervisor JOB_DIR", file=sys.stderr)
        return 2
    Supervisor(Path(args[0]).resolve()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
