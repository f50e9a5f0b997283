"""The service ABCs every provider implements. Import them from here."""

from mlport.services.base import Page, Provider, Service
from mlport.services.endpoints import BatchRequest, DeployRequest, EndpointService
from mlport.services.monitoring import MonitoringService
from mlport.services.notebooks import NotebookService
from mlport.services.registry import RegisterRequest, RegistryService
from mlport.services.storage import StorageService
from mlport.services.training import LogChunk, SubmitRequest, TrainingService

__all__ = [
    "BatchRequest",
    "DeployRequest",
    "EndpointService",
    "LogChunk",
    "MonitoringService",
    "NotebookService",
    "Page",
    "Provider",
    "RegisterRequest",
    "RegistryService",
    "Service",
    "StorageService",
    "SubmitRequest",
    "TrainingService",
]
