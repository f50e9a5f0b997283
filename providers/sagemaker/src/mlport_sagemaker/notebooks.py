"""SageMaker notebook instances.

``idle_timeout`` attaches a lifecycle configuration whose on-start script installs a cron job: every
five minutes it asks the instance's Jupyter server when a kernel or terminal was last active and
stops the instance (StopNotebookInstance, with the instance's own role) once that is longer ago
than the timeout. ``url`` is a presigned URL (CreatePresignedNotebookInstanceUrl), valid for five
minutes; it is made only while the instance is InService. Deleting stops the instance first, as
SageMaker requires, and removes its lifecycle configuration.
"""

from __future__ import annotations

import base64
import contextlib
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlport.compute import ResolvedCompute
from mlport.errors import NotFoundError
from mlport.handles import Notebook
from mlport.services import Page
from mlport.services.notebooks import SPEC_HASH_TAG, NotebookService
from mlport.specs import NotebookOptions
from mlport.status import NotebookStatus
from mlport_sagemaker._status import NOTEBOOK_STATES
from mlport_sagemaker.training import merge_options

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["SageMakerNotebooks", "idle_stop_script"]

HASH_TAG = "mlport:spec-hash"
IDLE_TAG = "mlport:idle-timeout"
DEFAULT_INSTANCE = "ml.t3.medium"
_PRESIGNED_SECONDS = 300

_IDLE_SCRIPT = """#!/bin/bash
# Installed by mlport: stop this notebook instance after {seconds} s without Jupyter activity.
set -euo pipefail
cat > /usr/local/bin/mlport-idle-stop <<'PY'
import datetime, json, subprocess, sys, urllib.request
limit = {seconds}
try:
    with urllib.request.urlopen("http://127.0.0.1:8443/api/status", timeout=10) as answer:
        status = json.load(answer)
except Exception:
    sys.exit(0)
last = datetime.datetime.fromisoformat(status["last_activity"].replace("Z", "+00:00"))
idle = (datetime.datetime.now(datetime.timezone.utc) - last).total_seconds()
if idle > limit:
    name = json.load(open("/opt/ml/metadata/resource-metadata.json"))["ResourceName"]
    subprocess.run(["aws", "sagemaker", "stop-notebook-instance",
                    "--notebook-instance-name", name], check=False)
PY
echo "*/5 * * * * root /usr/bin/python3 /usr/local/bin/mlport-idle-stop" > /etc/cron.d/mlport-idle
"""


def idle_stop_script(seconds: int) -> str:
    """The on-start script that stops an instance idle for more than ``seconds``."""
    return _IDLE_SCRIPT.format(seconds=int(seconds))


def _config_name(name: str) -> str:
    return f"mlport-idle-{name}"[:63].rstrip("-")


class SageMakerNotebooks(NotebookService):
    """Notebook instances."""

    provider: SageMakerProvider

    @property
    def _sm(self) -> Any:
        return self.provider.sagemaker

    def _create(
        self, name: str, options: NotebookOptions, compute: ResolvedCompute, spec_hash: str
    ) -> Notebook:
        tags = [{"Key": HASH_TAG, "Value": spec_hash}]
        body: dict[str, Any] = {
            "NotebookInstanceName": name,
            "InstanceType": compute.instance_type or DEFAULT_INSTANCE,
            "RoleArn": self.provider.role,
            "Tags": tags,
        }
        if options.idle_timeout is not None:
            config = _config_name(name)
            script = base64.b64encode(idle_stop_script(options.idle_timeout).encode()).decode()
            with contextlib.suppress(Exception):
                self._sm.delete_notebook_instance_lifecycle_config(
                    NotebookInstanceLifecycleConfigName=config
                )
            self._sm.create_notebook_instance_lifecycle_config(
                NotebookInstanceLifecycleConfigName=config, OnStart=[{"Content": script}]
            )
            body["LifecycleConfigName"] = config
            tags.append({"Key": IDLE_TAG, "Value": str(options.idle_timeout)})
        if options.image:
            tags.append({"Key": "mlport:image", "Value": options.image[:256]})
        if self.provider.config.kms_key_id:
            body["KmsKeyId"] = self.provider.config.kms_key_id
        body = merge_options(body, options.provider_options.get("sagemaker", {}))
        try:
            self._sm.create_notebook_instance(**body)
        except BaseException:
            if "LifecycleConfigName" in body:
                with contextlib.suppress(Exception):
                    self._sm.delete_notebook_instance_lifecycle_config(
                        NotebookInstanceLifecycleConfigName=body["LifecycleConfigName"]
                    )
            raise
        return self._get(name)

    def _describe(self, name: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = self._sm.describe_notebook_instance(NotebookInstanceName=name)
        except Exception as exc:
            if isinstance(self.provider.translate_error(exc), NotFoundError):
                raise NotFoundError(
                    f"no notebook instance {name!r} on sagemaker", resource=name
                ) from exc
            raise
        return found

    def _get(self, name: str) -> Notebook:
        found = self._describe(name)
        tags = {
            t["Key"]: t["Value"]
            for t in self._sm.list_tags(ResourceArn=found["NotebookInstanceArn"]).get("Tags", [])
        }
        status = NOTEBOOK_STATES[found.get("NotebookInstanceStatus", "")]
        url = None
        if status is NotebookStatus.RUNNING:
            url = self._sm.create_presigned_notebook_instance_url(
                NotebookInstanceName=name, SessionExpirationDurationInSeconds=1800
            ).get("AuthorizedUrl")
        created = found.get("CreationTime")
        idle = tags.get(IDLE_TAG)
        return Notebook(
            name=name,
            status=status,
            url=url,
            instance_type=found.get("InstanceType"),
            idle_timeout=int(idle) if idle else None,
            failure_reason=found.get("FailureReason") or None,
            message=found.get("NotebookInstanceStatus", ""),
            created_at=created if isinstance(created, datetime) else None,
            provider_id=found.get("NotebookInstanceArn", ""),
            tags={SPEC_HASH_TAG: tags.get(HASH_TAG, "")},
        )

    def _list(self, page_token: str | None) -> Page[Notebook]:
        kwargs: dict[str, Any] = {"MaxResults": 50}
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_notebook_instances(**kwargs)
        return Page(
            [
                Notebook(
                    name=item["NotebookInstanceName"],
                    status=NOTEBOOK_STATES[item.get("NotebookInstanceStatus", "")],
                    instance_type=item.get("InstanceType"),
                    provider_id=item.get("NotebookInstanceArn", ""),
                )
                for item in answer.get("NotebookInstances", [])
            ],
            answer.get("NextToken"),
        )

    def _start(self, name: str) -> None:
        self._sm.start_notebook_instance(NotebookInstanceName=name)

    def _stop(self, name: str) -> None:
        self._sm.stop_notebook_instance(NotebookInstanceName=name)

    def _delete(self, name: str) -> None:
        found = self._describe(name)
        delays = self.provider.poll_policy.delays()
        deadline = time.monotonic() + 900
        while found.get("NotebookInstanceStatus") not in {"Stopped", "Failed", "Deleting"}:
            if found.get("NotebookInstanceStatus") == "InService":
                self._sm.stop_notebook_instance(NotebookInstanceName=name)
            if time.monotonic() > deadline:
                break
            time.sleep(next(delays))
            found = self._describe(name)
        if found.get("NotebookInstanceStatus") != "Deleting":
            self._sm.delete_notebook_instance(NotebookInstanceName=name)
        config = found.get("NotebookInstanceLifecycleConfigName")
        if config:
            with contextlib.suppress(NotFoundError):
                self._call(
                    "delete",
                    self._sm.delete_notebook_instance_lifecycle_config,
                    NotebookInstanceLifecycleConfigName=config,
                )
