"""The emulator's components, and the SageMaker APIs moto lacks that need no process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["install"]


def install(emulator: SageMakerEmulator) -> list[Any]:
    """Create the components and register their operations; return them (in start order)."""
    from mlport_sagemaker.emulator._hosting import Endpoints
    from mlport_sagemaker.emulator._monitoring import MonitoringSchedules
    from mlport_sagemaker.emulator._registry import Registry, Tags
    from mlport_sagemaker.emulator._training import TrainingJobs
    from mlport_sagemaker.emulator._transform import TransformJobs

    _patch_moto()
    monitoring = MonitoringSchedules(emulator)
    return [
        Registry(emulator),
        monitoring,
        Tags(emulator, monitoring.find),
        TrainingJobs(emulator),
        Endpoints(emulator),
        TransformJobs(emulator),
    ]


def _patch_moto() -> None:
    """Check instance types against botocore's current enums instead of moto's old lists."""
    from moto.sagemaker import models

    from mlport_sagemaker.emulator._training import enum_error, instance_types

    def endpoint_instance_type(self: Any, instance_type: str) -> None:
        allowed = instance_types("ProductionVariantInstanceType")
        if instance_type not in allowed:
            raise _moto_validation(enum_error(instance_type, "instanceType", allowed).message)

    def notebook_instance_type(self: Any, instance_type: str) -> None:
        allowed = instance_types("InstanceType")
        if instance_type not in allowed:
            raise _moto_validation(enum_error(instance_type, "instanceType", allowed).message)

    models.FakeEndpointConfig.validate_instance_type = endpoint_instance_type  # type: ignore[method-assign]
    models.FakeSagemakerNotebookInstance.validate_instance_type = notebook_instance_type  # type: ignore[method-assign]


def _moto_validation(message: str) -> Exception:
    from moto.sagemaker.exceptions import ValidationError

    return ValidationError(message=message)
