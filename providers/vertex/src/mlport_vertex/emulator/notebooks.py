"""``google.cloud.notebooks.v2.NotebookService``: Vertex AI Workbench instances.

Lifecycle and rules from https://cloud.google.com/vertex-ai/docs/workbench/reference/rest/v2/projects.locations.instances:
instances live in a zone (``projects/{p}/locations/{zone}/instances/{id}``); ``instance_id``
is required, 1-63 characters ``[a-z]([-a-z0-9]*[a-z0-9])?``; create goes PROVISIONING -> ACTIVE,
stop STOPPING -> STOPPED, start STARTING -> ACTIVE, each an LRO done when the instance reaches its
end state; starting an ACTIVE instance or stopping a STOPPED one is FAILED_PRECONDITION.

The emulator keeps the instance's state and answers like the service; no notebook server runs
(``proxy_uri`` is set as Vertex AI sets it, but nothing answers there).
"""

from __future__ import annotations

import re
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.cloud.notebooks_v2.types import instance as nb
from google.cloud.notebooks_v2.types import service as nbs
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import ApiError, RpcRouter, invalid, proto_plus
from mlport_vertex.emulator.state import EmulatorState, PageToken, labels_ok, now
from mlport_vertex.emulator.validation import PREDICTION_MACHINE_TYPES

__all__ = ["NotebookService"]

SERVICE = "google.cloud.notebooks.v2.NotebookService"
KIND = "instances"

_ID_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
S: Any = nb.State


def _copy(instance: nb.Instance) -> nb.Instance:
    copy: nb.Instance = nb.Instance.deserialize(nb.Instance.serialize(instance))
    return copy


class NotebookService:
    """CreateInstance, GetInstance, ListInstances, StartInstance, StopInstance, DeleteInstance."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        lro = operations_pb2.Operation
        return router.service(
            SERVICE,
            {
                "CreateInstance": proto_plus(nbs.CreateInstanceRequest, lro, self.create),
                "GetInstance": proto_plus(nbs.GetInstanceRequest, nb.Instance, self.get),
                "ListInstances": proto_plus(
                    nbs.ListInstancesRequest, nbs.ListInstancesResponse, self.list_
                ),
                "StartInstance": proto_plus(nbs.StartInstanceRequest, lro, self.start),
                "StopInstance": proto_plus(nbs.StopInstanceRequest, lro, self.stop),
                "DeleteInstance": proto_plus(nbs.DeleteInstanceRequest, lro, self.delete),
            },
        )

    def _find(self, name: str) -> nb.Instance:
        full = self.state.resource_name(name, "instances")
        found: nb.Instance = self.state.get(KIND, full)
        return found

    def _metadata(self, target: str, verb: str) -> nbs.OperationMetadata:
        return nbs.OperationMetadata(create_time=now(), target=target, verb=verb, api_version="v2")

    def _transition(
        self, name: str, during: Any, final: Any, verb: str
    ) -> operations_pb2.Operation:
        """Move the instance to ``during`` now and to ``final`` (None: gone) after the state
        delay; the operation is done then, with the instance as its response."""
        location = name.rsplit("/instances/", 1)[0]
        delay = max(self.state.delays.state, self.state.delays.operation)
        with self.state.lock:
            instance = self.state.table(KIND)[name]
            instance.state = during if delay > 0 else (final or S.DELETED)
            instance.update_time = now()
            generation = self.state.generation
        if delay > 0:

            def finish() -> None:
                if not self.state.sleep_alive(delay, generation):
                    return
                with self.state.lock:
                    current = self.state.table(KIND).get(name)
                    if current is None:
                        return
                    if final is None:
                        del self.state.table(KIND)[name]
                    else:
                        current.state = final
                        current.update_time = now()

            self.state.background(finish, name=f"notebook-{verb}")
        elif final is None:
            with self.state.lock:
                del self.state.table(KIND)[name]
        with self.state.lock:
            snapshot = _copy(instance)
        snapshot.state = final or S.DELETED
        return self.state.operation(
            location,
            lambda: nb.Instance(snapshot) if final is not None else None,
            metadata=self._metadata(name, verb),
            delay=delay,
        )

    def create(self, request: nbs.CreateInstanceRequest) -> operations_pb2.Operation:
        """Create an instance (PROVISIONING, then ACTIVE)."""
        parent = self.state.parent(request.parent)
        if not request.instance_id:
            raise invalid("instance_id", "instance_id is required.")
        if not _ID_RE.match(request.instance_id):
            raise invalid(
                "instance_id",
                "instance_id must be 1-63 characters: a lowercase letter, then lowercase "
                "letters, digits or '-', not ending with '-'.",
            )
        spec = request.instance
        labels_ok(spec.labels.items(), "instance.labels")
        machine = spec.gce_setup.machine_type
        if machine and machine not in PREDICTION_MACHINE_TYPES:
            raise invalid(
                "instance.gce_setup.machine_type", f'Machine type "{machine}" is not supported.'
            )
        name = f"{parent}/instances/{request.instance_id}"
        with self.state.lock:
            table = self.state.table(KIND)
            if name in table:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Instance {name} already exists.")
            instance = _copy(spec)
            instance.name = name
            instance.id = self.state.new_id()
            if not instance.gce_setup.machine_type:
                instance.gce_setup.machine_type = "e2-standard-4"
            instance.creator = "emulator@mlport.local"
            stamp = now()
            instance.create_time = stamp
            instance.update_time = stamp
            instance.proxy_uri = (
                f"{instance.id[-12:]}-dot-{parent.rsplit('/', 1)[-1].rsplit('-', 1)[0]}"
                ".notebooks.googleusercontent.com"
            )
            instance.health_state = nb.HealthState.HEALTHY  # type: ignore[assignment]
            table[name] = instance
        return self._transition(name, S.PROVISIONING, S.ACTIVE, "create")

    def get(self, request: nbs.GetInstanceRequest) -> nb.Instance:
        """One instance."""
        with self.state.lock:
            return _copy(self._find(request.name))

    def list_(self, request: nbs.ListInstancesRequest) -> nbs.ListInstancesResponse:
        """The instances of a zone."""
        parent = self.state.parent(request.parent)
        items = [_copy(i) for i in self.state.listed(KIND, parent)]
        page, token = PageToken.page(items, request.page_size, request.page_token)
        return nbs.ListInstancesResponse(instances=page, next_page_token=token)

    def start(self, request: nbs.StartInstanceRequest) -> operations_pb2.Operation:
        """STOPPED -> STARTING -> ACTIVE."""
        with self.state.lock:
            instance = self._find(request.name)
            if instance.state != S.STOPPED:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Instance {instance.name} is {instance.state.name}; only a STOPPED "
                    "instance can be started.",
                )
        return self._transition(instance.name, S.STARTING, S.ACTIVE, "start")

    def stop(self, request: nbs.StopInstanceRequest) -> operations_pb2.Operation:
        """ACTIVE -> STOPPING -> STOPPED."""
        with self.state.lock:
            instance = self._find(request.name)
            if instance.state != S.ACTIVE:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Instance {instance.name} is {instance.state.name}; only an ACTIVE "
                    "instance can be stopped.",
                )
        return self._transition(instance.name, S.STOPPING, S.STOPPED, "stop")

    def delete(self, request: nbs.DeleteInstanceRequest) -> operations_pb2.Operation:
        """Delete an instance in any state."""
        with self.state.lock:
            instance = self._find(request.name)
        return self._transition(instance.name, S.STOPPING, None, "delete")
