"""A local Azure Machine Learning workspace that the real ``azure-ai-ml`` SDK drives.

::

    from azure.ai.ml import MLClient
    from mlport_azureml.emulator import AzureMLEmulator

    with AzureMLEmulator() as emu:
        emu.apply()          # routes the SDK's datastore uploads to Azurite (see the README)
        ml = MLClient(emu.credential, emu.subscription_id, emu.resource_group,
                      emu.workspace_name, **emu.client_kwargs)
        ml.models.create_or_update(Model(name="churn", path="model/"))

The emulator serves the ARM REST surface of one workspace over HTTPS (a certificate from the
shared local CA), stores blobs in Azurite, runs command jobs as local processes, serves online
deployments with mlport's portable model server and writes batch outputs to Azurite. See the
distribution's README for every supported operation and the control API.
"""

from __future__ import annotations

from mlport_azureml.emulator._emulator import AzureMLEmulator, EmulatorCredential
from mlport_azureml.emulator._service import JOB_FAILED, Settings

__all__ = ["JOB_FAILED", "AzureMLEmulator", "EmulatorCredential", "Settings"]
