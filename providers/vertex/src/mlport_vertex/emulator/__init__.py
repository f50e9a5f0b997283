"""A local Vertex AI for offline tests: the real google-cloud-aiplatform SDK drives it unpatched.

``VertexEmulator()`` (or ``python -m mlport_vertex.emulator``) serves the aiplatform v1 gRPC
services over TLS, with ``gs://`` on a gcp-storage-emulator child process. See the distribution's
README for the settings, the control API and what each method emulates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlport_vertex.emulator._rpc import JOB_FAILED
    from mlport_vertex.emulator.control import ControlClient
    from mlport_vertex.emulator.server import VertexEmulator
    from mlport_vertex.emulator.state import Delays

__all__ = ["JOB_FAILED", "ControlClient", "Delays", "VertexEmulator"]

_EXPORTS = {
    "JOB_FAILED": "mlport_vertex.emulator._rpc",
    "ControlClient": "mlport_vertex.emulator.control",
    "Delays": "mlport_vertex.emulator.state",
    "VertexEmulator": "mlport_vertex.emulator.server",
}


def __getattr__(name: str) -> Any:
    # gRPC and the aiplatform types load only when the emulator is used.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
