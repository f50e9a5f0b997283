"""The control API: faults, latency, forced job failures and reset, over the emulator's own port.

A gRPC service ``mlport.vertex.emulator.v1.Control`` whose methods take and return JSON (UTF-8
bytes), so any gRPC client can drive it; :class:`ControlClient` is the Python one:

==============  =============================================  ===============================
method          request                                        effect
==============  =============================================  ===============================
``Inject``      ``{"method": "CreateCustomJob",                the next ``times`` calls of the
                "error": "UNAVAILABLE", "times": 2}``          method fail (see README)
``SetLatency``  ``{"method": "Predict", "seconds": 0.5}``      every call waits first
                (``"*"``: every method; 0 removes it)
``FailJob``     ``{"name": "projects/.../customJobs/1",        the job ends FAILED with this
                "message": "..."}``                            message
``Reset``       ``{}``                                         every resource, fault, latency
                                                               and process is gone
==============  =============================================  ===============================

Errors: INVALID_ARGUMENT for a request that is not what the table says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from mlport.errors import MlportError

__all__ = ["CONTROL_SERVICE", "ControlClient", "control_handler"]

CONTROL_SERVICE = "mlport.vertex.emulator.v1.Control"


def _identity(data: bytes) -> bytes:
    return data


def control_handler(actions: dict[str, Callable[[dict[str, Any]], Any]]) -> grpc.GenericRpcHandler:
    """A handler that decodes JSON, calls ``actions[method](body)`` and answers its result."""

    def wrap(action: Callable[[dict[str, Any]], Any]) -> grpc.RpcMethodHandler:
        def serve(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                body = json.loads(request or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the request must be a JSON object")
                result = action(body)
            except (ValueError, KeyError, TypeError, MlportError) as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return json.dumps(result if result is not None else {}).encode()

        return grpc.unary_unary_rpc_method_handler(
            serve, request_deserializer=_identity, response_serializer=_identity
        )

    return grpc.method_handlers_generic_handler(
        CONTROL_SERVICE, {name: wrap(action) for name, action in actions.items()}
    )


class ControlClient:
    """Drives a running emulator's control API (e.g. one started with ``python -m``).

    Args:
        api_endpoint: The emulator's ``host:port``.
        ca_file: The CA certificate that signed its TLS certificate.
    """

    def __init__(self, api_endpoint: str, ca_file: str) -> None:
        credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())
        self._channel = grpc.secure_channel(api_endpoint, credentials)

    def _call(self, method: str, body: dict[str, Any]) -> Any:
        stub = self._channel.unary_unary(
            f"/{CONTROL_SERVICE}/{method}",
            request_serializer=_identity,
            response_deserializer=_identity,
        )
        return json.loads(stub(json.dumps(body).encode(), timeout=60))

    def inject(self, method: str, error: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``. Blocks briefly."""
        self._call("Inject", {"method": method, "error": error, "times": times})

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every call of ``method`` (``"*"``: all) by ``seconds``."""
        self._call("SetLatency", {"method": method, "seconds": seconds})

    def fail_job(self, name: str, message: str = "") -> None:
        """End the job ``name`` FAILED."""
        self._call("FailJob", {"name": name, "message": message})

    def reset(self) -> None:
        """Forget every resource, fault and latency. Blocks until done."""
        self._call("Reset", {})

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
