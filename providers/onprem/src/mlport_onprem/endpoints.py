"""On-prem endpoints: the portable model server as a detached process per endpoint.

Each endpoint is a folder under ``<root>/endpoints/<name>/``: ``config.json`` (the server's
:class:`~mlport.serving.config.ServerConfig`), ``token`` (mode 0600), ``models/<version>/`` (each
served version, downloaded from the registry and verified), the server's ready and status files,
its logs and captured data. Updates rewrite ``variants`` and send SIGHUP: the server loads the new
version while the old one keeps serving, and keeps the old one if loading fails — then the
config is restored and ``deploy`` raises ``DeploymentFailedError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport._redact import register_secret
from mlport.errors import (
    AlreadyExistsError,
    DeploymentFailedError,
    InvalidSpecError,
    NotFoundError,
    TransientError,
)
from mlport.handles import Endpoint
from mlport.processes import ProcessRecord, is_running, spawn, stop
from mlport.services import DeployRequest, EndpointService, Page
from mlport.status import EndpointStatus
from mlport_onprem._common import now, read_json, tail, write_json
from mlport_onprem.batch import BatchJobs

if TYPE_CHECKING:
    from mlport_onprem.root import OnPremProvider

__all__ = ["OnPremEndpoints"]

TABLE = "endpoints"
PAGE_SIZE = 50
RELOAD_TIMEOUT = 300.0


class OnPremEndpoints(BatchJobs, EndpointService):
    """Endpoints served by ``python -m mlport.serving`` processes under the root; batch jobs
    (:mod:`mlport_onprem.batch`)."""

    provider: OnPremProvider

    def _folder(self, name: str) -> Path:
        return self.provider.root / "endpoints" / name

    def _doc(self, name: str) -> dict[str, Any]:
        doc = self.provider.state.get(TABLE, name)
        if doc is None:
            raise NotFoundError(
                f"endpoint {name!r} not found under {self.provider.root}",
                provider="onprem",
                resource=name,
            )
        return doc

    def _stage_version(self, name: str, request: DeployRequest) -> dict[str, Any]:
        version = request.version
        if version.provider not in ("", "onprem"):
            raise InvalidSpecError(
                f"version {version.name}:{version.version} is registered on {version.provider!r}; "
                "on-prem endpoints serve versions of the on-prem registry",
                provider="onprem",
                resource=name,
            )
        target = self._folder(name) / "models" / version.version
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            self.provider.service("registry").download(version, partial)  # type: ignore[attr-defined]
            partial.replace(target)
        return {"path": str(target), "manifest_sha256": version.package_sha256}

    def _config(
        self, name: str, request: DeployRequest, variants: dict[str, Any]
    ) -> dict[str, Any]:
        folder = self._folder(name)
        options = request.options
        return {
            "endpoint": name,
            "host": "127.0.0.1",
            "port": 0,
            "token_file": str(folder / "token"),
            "workers": max(1, options.min_replicas),
            "variants": variants,
            "capture": {"percent": options.capture_percent, "dir": str(folder / "capture")}
            if options.capture_percent
            else {"percent": 0},
            "status_file": str(folder / "status.json"),
            "ready_file": str(folder / "ready.json"),
            "graceful_seconds": self.provider.config.cancel_grace,
        }

    def _deploy(self, request: DeployRequest) -> Endpoint:
        name = request.name
        folder = self._folder(name)
        doc = self.provider.state.get(TABLE, name)
        if doc is None:
            folder.mkdir(parents=True, exist_ok=True)
            staged = self._stage_version(name, request)
            variants = {request.version.version: {**staged, "weight": 100.0}}
            token = folder / "token"
            if not token.exists():
                fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
            write_json(folder / "config.json", self._config(name, request, variants))
            inserted = self.provider.state.insert(
                TABLE,
                name,
                {
                    "name": name,
                    "status": "CREATING",
                    "created_at": now(),
                    "model": request.version.name,
                },
            )
            if not inserted:
                raise AlreadyExistsError(
                    f"endpoint {name!r} exists", provider="onprem", resource=name
                )
            try:
                _, record = spawn(
                    [
                        sys.executable,
                        "-m",
                        "mlport.serving",
                        "--config",
                        str(folder / "config.json"),
                    ],
                    name="server",
                    log_dir=folder,
                    cwd=folder,
                )
            except BaseException:
                self.provider.state.delete(TABLE, name)
                raise
            self.provider.processes.add(record)
            self.provider.state.update(TABLE, name, server=record.to_json())
            return self._view(self._doc(name))
        return self._update(request, doc)

    def _update(self, request: DeployRequest, doc: dict[str, Any]) -> Endpoint:
        name = request.name
        folder = self._folder(name)
        config_path = folder / "config.json"
        previous = read_json(config_path) or {}
        staged = self._stage_version(name, request)
        current: dict[str, Any] = dict(previous.get("variants", {}))
        version = request.version.version
        share = request.options.traffic_percent
        if share is None:
            variants = {version: {**staged, "weight": 100.0}}
        else:
            others = {k: v for k, v in current.items() if k != version}
            total = sum(float(v["weight"]) for v in others.values()) or 1.0
            variants = {
                **{
                    k: {**v, "weight": float(v["weight"]) * (100.0 - share) / total}
                    for k, v in others.items()
                },
                version: {**staged, "weight": float(share)},
            }
        # An update changes the served versions only: the running server keeps its workers,
        # capture and the rest (the server applies changes to those only on a restart).
        config = (
            {**previous, "variants": variants}
            if previous
            else self._config(name, request, variants)
        )
        try:
            self._reload(name, config, previous)
        except DeploymentFailedError:
            if version not in current:
                # A copy that did not load (e.g. damaged) is fetched afresh by the next deploy.
                shutil.rmtree(staged["path"], ignore_errors=True)
            raise
        self.provider.state.update(TABLE, name, status="READY", model=request.version.name)
        return self._view(self._doc(name))

    def _reload(self, name: str, config: dict[str, Any], previous: dict[str, Any]) -> None:
        """Apply ``config`` with SIGHUP; on failure restore ``previous`` and raise."""
        folder = self._folder(name)
        record = self._server(name)
        if record is None or not is_running(record):
            raise DeploymentFailedError(
                f"endpoint {name!r} has no running server; delete it and deploy again",
                provider="onprem",
                resource=name,
            )
        before = read_json(folder / "status.json") or {}
        write_json(folder / "config.json", config)
        self.provider.state.update(TABLE, name, status="UPDATING")
        try:
            self._await_reload(name, record, config, previous, before)
        finally:
            # Whatever the outcome the server keeps serving one configuration (a dead server is
            # found FAILED by the next get).
            self.provider.state.update(TABLE, name, status="READY")

    def _await_reload(
        self,
        name: str,
        record: ProcessRecord,
        config: dict[str, Any],
        previous: dict[str, Any],
        before: dict[str, Any],
    ) -> None:
        folder = self._folder(name)
        os.kill(record.pid, signal.SIGHUP)
        wanted = {version: float(v["weight"]) for version, v in config["variants"].items()}
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            status = read_json(folder / "status.json") or {}
            if status.get("last_reload_at") != before.get("last_reload_at"):
                if status.get("last_reload_error"):
                    write_json(folder / "config.json", previous)
                    raise DeploymentFailedError(
                        f"endpoint {name!r}: the new version did not load, the previous one keeps "
                        f"serving: {status['last_reload_error']}",
                        provider="onprem",
                        resource=name,
                    )
                served = status.get("variants") or {}
                if not isinstance(served, dict):
                    served = {v.get("version"): v for v in served}
                # Versions and weights: a change of weights alone keeps the versions, and the
                # status lists the old ones until every worker has swapped.
                serving = {version: float(v.get("weight", 0)) for version, v in served.items()}
                if serving == wanted and all(
                    w.get("generation") == status.get("generation")
                    for w in status.get("workers", [])
                ):
                    return
            time.sleep(0.05)
        write_json(folder / "config.json", previous)
        raise DeploymentFailedError(
            f"endpoint {name!r}: the update did not complete in {RELOAD_TIMEOUT:g}s",
            provider="onprem",
            resource=name,
        )

    def _server(self, name: str) -> ProcessRecord | None:
        text = self._doc(name).get("server")
        return ProcessRecord.from_json(text) if text else None

    def _reconcile(self, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["name"]
        folder = self._folder(name)
        record = ProcessRecord.from_json(doc["server"]) if doc.get("server") else None
        alive = record is not None and is_running(record)
        if doc["status"] == "CREATING":
            ready = read_json(folder / "ready.json")
            if alive and ready:
                return (
                    self.provider.state.update(TABLE, name, status="READY", port=ready["port"])
                    or doc
                )
            if record is not None and not alive:
                log = tail(folder / "server.err", 10) or "(no log)"
                return (
                    self.provider.state.update(
                        TABLE, name, status="FAILED", failure_reason=f"the server exited: {log}"
                    )
                    or doc
                )
        elif doc["status"] == "READY" and not alive:
            log = tail(folder / "server.err", 10) or "(no log)"
            return (
                self.provider.state.update(
                    TABLE,
                    name,
                    status="FAILED",
                    failure_reason=f"the server is not running: {log}",
                )
                or doc
            )
        return doc

    def _view(self, doc: dict[str, Any]) -> Endpoint:
        folder = self._folder(doc["name"])
        config = read_json(folder / "config.json") or {}
        variants = {k: float(v.get("weight", 0)) for k, v in config.get("variants", {}).items()}
        total = sum(variants.values()) or 1.0
        port = doc.get("port")
        return Endpoint(
            name=doc["name"],
            status=EndpointStatus(doc["status"]),
            url=f"http://127.0.0.1:{port}" if port else None,
            variants={k: round(100.0 * v / total, 6) for k, v in variants.items()},
            model=doc.get("model"),
            capture_percent=float(config.get("capture", {}).get("percent", 0)),
            failure_reason=doc.get("failure_reason"),
            provider_id=str(folder),
            created_at=datetime.fromisoformat(doc["created_at"]) if doc.get("created_at") else None,
        )

    def _get(self, name: str) -> Endpoint:
        return self._view(self._reconcile(self._doc(name)))

    def _list(self, page_token: str | None) -> Page[Endpoint]:
        offset = int(page_token or 0)
        docs = self.provider.state.page(TABLE, offset, PAGE_SIZE + 1)
        items = [self._view(self._reconcile(d)) for d in docs[:PAGE_SIZE]]
        return Page(items, str(offset + PAGE_SIZE) if len(docs) > PAGE_SIZE else None)

    def _delete(self, name: str) -> None:
        doc = self._doc(name)
        if self.provider.state.get("monitors", name) is not None:
            # Its monitor goes with it (past reports are kept under monitors/).
            self.provider.service("monitoring").disable(name)  # type: ignore[attr-defined]
        if doc.get("server"):
            record = ProcessRecord.from_json(doc["server"])
            stop(record, grace=self.provider.config.cancel_grace)
            self.provider.processes.remove(record)
        shutil.rmtree(self._folder(name), ignore_errors=True)
        self.provider.state.delete(TABLE, name)

    def _predict(self, name: str, rows: list[Any], variant: str | None) -> list[Any]:
        doc = self._reconcile(self._doc(name))
        if doc["status"] not in ("READY", "UPDATING") or not doc.get("port"):
            raise TransientError(
                f"endpoint {name!r} is {doc['status']}; wait() for it first",
                provider="onprem",
                resource=name,
            )
        token = (self._folder(name) / "token").read_text().strip()
        register_secret(token)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        if variant is not None:
            headers["X-Mlport-Variant"] = variant
        request = urllib.request.Request(
            f"http://127.0.0.1:{doc['port']}/invocations",
            data=json.dumps({"instances": rows}).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return list(json.loads(answer.read())["predictions"])
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("error", detail)
            if exc.code == 404:
                raise NotFoundError(
                    f"endpoint {name!r}: {detail}", provider="onprem", resource=name
                ) from None
            if 400 <= exc.code < 500:
                raise InvalidSpecError(
                    f"endpoint {name!r}: {detail}", provider="onprem", resource=name
                ) from None
            raise TransientError(
                f"endpoint {name!r}: HTTP {exc.code}: {detail}", provider="onprem"
            ) from None
        except (urllib.error.URLError, ConnectionError) as exc:
            raise TransientError(
                f"endpoint {name!r} did not answer: {exc}", provider="onprem"
            ) from None

    def _set_traffic(self, name: str, split: dict[str, float]) -> Endpoint:
        folder = self._folder(name)
        previous = read_json(folder / "config.json") or {}
        config = dict(previous)
        config["variants"] = {
            k: {**v, "weight": float(split.get(k, 0.0))}
            for k, v in previous.get("variants", {}).items()
        }
        self._reload(name, config, previous)
        return self._view(self._doc(name))

    def _endpoint_logs(self, name: str) -> list[str]:
        self._doc(name)
        path = self._folder(name) / "server.err"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
