"""A local SageMaker endpoint to test against: moto in server mode, extended to do real work.

``SageMakerEmulator()`` starts it in this process; ``python -m mlport_sagemaker.emulator``
runs it as a server of its own. See the provider's README for what it implements.
"""

from __future__ import annotations

from mlport.testing.emulator import DROP_RESPONSE_AFTER_COMMIT
from mlport_sagemaker.emulator.server import ACCOUNT_ID, EMULATOR_ROLE, SageMakerEmulator

__all__ = ["ACCOUNT_ID", "DROP_RESPONSE_AFTER_COMMIT", "EMULATOR_ROLE", "SageMakerEmulator"]
