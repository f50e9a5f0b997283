"""``google.longrunning.Operations``: what clients poll for every long-running call.

Served once for Vertex AI and Workbench (both SDKs call ``GetOperation`` on the same channel).
"""

from __future__ import annotations

import time

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import empty_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import RpcRouter, not_found, raw_pb
from mlport_vertex.emulator.state import EmulatorState, PageToken

__all__ = ["OperationsService"]

SERVICE = "google.longrunning.Operations"


class OperationsService:
    """GetOperation, ListOperations, WaitOperation, CancelOperation, DeleteOperation."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        return router.service(
            SERVICE,
            {
                "GetOperation": raw_pb(operations_pb2.GetOperationRequest, self.get),
                "ListOperations": raw_pb(operations_pb2.ListOperationsRequest, self.list_),
                "WaitOperation": raw_pb(operations_pb2.WaitOperationRequest, self.wait),
                "CancelOperation": raw_pb(operations_pb2.CancelOperationRequest, self.cancel),
                "DeleteOperation": raw_pb(operations_pb2.DeleteOperationRequest, self.delete),
            },
        )

    def _find(self, name: str) -> operations_pb2.Operation:
        with self.state.lock:
            op = self.state.operations.get(name)
            if op is None:
                raise not_found(name)
            copy = operations_pb2.Operation()
            copy.CopyFrom(op)
        return copy

    def get(self, request: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
        """The operation's current state."""
        return self._find(request.name)

    def list_(
        self, request: operations_pb2.ListOperationsRequest
    ) -> operations_pb2.ListOperationsResponse:
        """Operations whose name starts with ``name`` (a resource or a location)."""
        prefix = request.name.rstrip("/") + "/"
        with self.state.lock:
            names = sorted(n for n in self.state.operations if n.startswith(prefix))
        page, token = PageToken.page(names, request.page_size, request.page_token)
        return operations_pb2.ListOperationsResponse(
            operations=[self._find(n) for n in page], next_page_token=token
        )

    def wait(self, request: operations_pb2.WaitOperationRequest) -> operations_pb2.Operation:
        """Block until the operation is done or the timeout (default 60 s) passes."""
        limit = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else 60
        deadline = time.monotonic() + limit
        while True:
            op = self._find(request.name)
            if op.done or time.monotonic() >= deadline:
                return op
            time.sleep(0.05)

    def cancel(self, request: operations_pb2.CancelOperationRequest) -> empty_pb2.Empty:
        """Cancel: a done operation is left as it is (as the API reference says)."""
        with self.state.lock:
            op = self.state.operations.get(request.name)
            if op is None:
                raise not_found(request.name)
            if not op.done:
                op.done = True
                op.error.code = grpc.StatusCode.CANCELLED.value[0]
                op.error.message = "Operation was cancelled."
        return empty_pb2.Empty()

    def delete(self, request: operations_pb2.DeleteOperationRequest) -> empty_pb2.Empty:
        """Forget the operation."""
        with self.state.lock:
            if self.state.operations.pop(request.name, None) is None:
                raise not_found(request.name)
        return empty_pb2.Empty()
