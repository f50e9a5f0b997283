"""Every resource family, registered on a :class:`~._service.Service`."""

from __future__ import annotations

from mlport_azureml.emulator._service import Service

__all__ = ["register_all"]


def register_all(service: Service) -> None:
    """Register every family's routes and lifecycle hooks on ``service``."""
    from mlport_azureml.emulator.assets import Assets
    from mlport_azureml.emulator.batch import BatchEndpoints
    from mlport_azureml.emulator.compute import Computes
    from mlport_azureml.emulator.jobs import Jobs
    from mlport_azureml.emulator.online import OnlineEndpoints
    from mlport_azureml.emulator.schedules import Schedules
    from mlport_azureml.emulator.workspace import Workspaces

    Workspaces(service)
    Computes(service)
    Assets(service)
    Jobs(service)
    OnlineEndpoints(service)
    BatchEndpoints(service)
    Schedules(service)
