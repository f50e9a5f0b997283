"""The on-prem provider object: where a root's files, state and processes live.

Layout of a root (``.mlport`` by default)::

    state.db            jobs, batch jobs, endpoints, notebooks and monitors (SQLite, shared by
                        every process using the root)
    processes.jsonl     every process started here, with PID and start time (``mlport down``)
    mlflow.db           the MLflow registry, unless tracking_uri points elsewhere
    mlartifacts/        MLflow's artifact store for that default registry
    jobs/<name>/        a training job: job.json, code/, input/<channel>/, model/, output/,
                        checkpoints/, script.out, script.err, supervisor.*, result.json
    envs/<sha256>/      virtualenvs built from requirements, shared by jobs with the same ones
    notebooks/<name>/   a notebook's working directory (files/) and its server's logs
    endpoints/<name>/   a served endpoint: config, models, captured requests (capture/)
    monitors/<name>/    the drift monitor of endpoint <name>: baseline.json, reports/, logs
    storage/            the default location of ``ml.storage`` objects
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.services import Provider
from mlport.storage import LocalFiles
from mlport_onprem import OnPremConfig

if TYPE_CHECKING:
    from mlport.errors import MlportError
    from mlport.processes import ProcessTable
    from mlport_onprem.executors import Executor
    from mlport_onprem.state import StateStore

__all__ = ["OnPremProvider"]


class OnPremStorage(LocalFiles):
    """``file://`` objects; the root's ``storage/`` folder is the default prefix."""

    @property
    def prefix(self) -> str:
        """``file://<root>/storage``."""
        return f"file://{self.provider.root / 'storage'}"  # type: ignore[attr-defined]


class OnPremProvider(Provider):
    """Training, registry, endpoints, monitoring, notebooks and storage on this machine, rooted
    at ``config.root``."""

    config: OnPremConfig
    service_classes = {
        "training": "mlport_onprem.training:OnPremTraining",
        "registry": "mlport_onprem.registry:OnPremRegistry",
        "notebooks": "mlport_onprem.notebooks:OnPremNotebooks",
        "endpoints": "mlport_onprem.endpoints:OnPremEndpoints",
        "monitoring": "mlport_onprem.monitoring:OnPremMonitoring",
        "storage": OnPremStorage,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.root = Path(self.config.root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @cached_property
    def state(self) -> StateStore:
        """The root's SQLite state."""
        from mlport_onprem.state import StateStore

        return StateStore(self.root / "state.db")

    @cached_property
    def processes(self) -> ProcessTable:
        """Every process started under this root."""
        from mlport.processes import ProcessTable

        return ProcessTable(self.root / "processes.jsonl")

    @cached_property
    def executor(self) -> Executor:
        """Where training jobs run (``executor`` in the profile)."""
        from mlport_onprem.executors import load_executor

        return load_executor(self.config.executor, self)

    def translate_error(self, error: Exception) -> MlportError | None:
        """Map MLflow and OS errors onto the mlport hierarchy (``_errors.py``)."""
        from mlport_onprem._errors import translate

        return translate(error)

    def down(self, grace: float | None = None) -> list[str]:
        """Stop every process started under this root; returns what was stopped."""
        records = self.processes.stop_all(self.config.cancel_grace if grace is None else grace)
        return [f"{record.name} (pid {record.pid})" for record in records]

    def close(self) -> None:
        """Close the state database connection of this thread."""
        if "state" in self.__dict__:
            self.state.close()
