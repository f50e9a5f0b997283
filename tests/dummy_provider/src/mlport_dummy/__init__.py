"""An in-memory provider for mlport's own tests, installed as a real distribution.

Three entry points: ``dummy`` (everything but multi-node training), ``dummy-limited`` (a provider
that lacks several features, to test NotSupportedError and the conformance suite's skips) and
``dummy-nosdk`` (needs an SDK that is not installed, to test MissingDependencyError).
Importing this module imports nothing but mlport's light metadata.
"""

from __future__ import annotations

from mlport.names import NameRule
from mlport.providers import ProviderConfig, ProviderSpec


class DummyConfig(ProviderConfig):
    """Profile keys of the dummy provider."""

    world: str = "default"
    """Providers with the same world share state, like two clients of one cloud."""
    steps: int = 1
    """Polls a job, endpoint or notebook spends in each intermediate state."""


_RULE = NameRule(
    "dummy-name", r"[a-z0-9](-?[a-z0-9]){0,39}", "1-40 lowercase letters, digits and single hyphens"
)

provider = ProviderSpec(
    name="dummy",
    config_model=DummyConfig,
    implementation="mlport_dummy.cloud:DummyProvider",
    distribution="mlport-dummy",
    description="in-memory provider for tests",
    unsupported={
        "training.distributed": "the dummy runs a single node",
        "registry.baseline": "the dummy keeps no drift profiles",
    },
    name_rules=dict.fromkeys(("job", "model", "endpoint", "notebook", "monitor"), _RULE),
    catalog="sagemaker",
)

limited = ProviderSpec(
    name="dummy-limited",
    config_model=DummyConfig,
    implementation="mlport_dummy.cloud:DummyProvider",
    distribution="mlport-dummy",
    description="in-memory provider lacking several features",
    unsupported={
        "training.delete": "jobs are kept for ever",
        "training.spot": "no spot capacity",
        "training.distributed": "single node",
        "registry.baseline": "no drift profiles",
        "endpoints.canary": "one version per endpoint",
        "notebooks": "no notebook service",
        "monitoring": "no monitoring",
    },
    catalog="vertex",
)

needs_sdk = ProviderSpec(
    name="dummy-nosdk",
    config_model=DummyConfig,
    implementation="mlport_dummy.cloud:DummyProvider",
    distribution="mlport-dummy",
    requires=("mlport_dummy_missing_sdk",),
    extras="sdk",
    description="needs an SDK that is never installed",
)
