"""Rules from the Vertex AI reference: machine types, accelerators, prebuilt containers.

Sources (each rule below names the page it comes from):

- Machine types and GPUs for custom training:
  https://cloud.google.com/vertex-ai/docs/training/configure-compute
- Machine types for prediction: https://cloud.google.com/vertex-ai/docs/predictions/configure-compute
- ``MachineSpec``: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/MachineSpec
- Prebuilt training containers: https://cloud.google.com/vertex-ai/docs/training/pre-built-containers
- Prebuilt prediction containers: https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers
"""

from __future__ import annotations

import re
from typing import Any, Literal

from mlport_vertex.emulator._rpc import invalid

__all__ = [
    "PREDICTION_MACHINE_TYPES",
    "TRAINING_MACHINE_TYPES",
    "check_machine_spec",
    "is_prebuilt_training_image",
    "prebuilt_prediction_framework",
]


def _sizes(family: str, sizes: tuple[int | str, ...]) -> set[str]:
    return {f"{family}-{size}" for size in sizes}


# configure-compute (training): the machine types a worker pool may use.
TRAINING_MACHINE_TYPES: frozenset[str] = frozenset(
    _sizes("e2-standard", (4, 8, 16, 32))
    | _sizes("e2-highmem", (2, 4, 8, 16))
    | _sizes("e2-highcpu", (16, 32))
    | _sizes("n2-standard", (4, 8, 16, 32, 48, 64, 80))
    | _sizes("n2-highmem", (2, 4, 8, 16, 32, 48, 64, 80))
    | _sizes("n2-highcpu", (16, 32, 48, 64, 80))
    | _sizes("n1-standard", (4, 8, 16, 32, 64, 96))
    | _sizes("n1-highmem", (2, 4, 8, 16, 32, 64, 96))
    | _sizes("n1-highcpu", (16, 32, 64, 96))
    | _sizes("c2-standard", (4, 8, 16, 30, 60))
    | _sizes("c2d-standard", (2, 4, 8, 16, 32, 56, 112))
    | _sizes("m1-ultramem", (40, 80, 160))
    | {"m1-megamem-96"}
    | _sizes("a2-highgpu", ("1g", "2g", "4g", "8g"))
    | {"a2-megagpu-16g"}
    | _sizes("a2-ultragpu", ("1g", "2g", "4g", "8g"))
    | {"a3-highgpu-8g", "a3-megagpu-8g"}
    | _sizes("g2-standard", (4, 8, 12, 16, 24, 32, 48, 96))
    | {"cloud-tpu"}
)

# configure-compute (prediction): smaller shapes are allowed for serving.
PREDICTION_MACHINE_TYPES: frozenset[str] = frozenset(
    TRAINING_MACHINE_TYPES - {"cloud-tpu"}
    | _sizes("n1-standard", (2,))
    | _sizes("n1-highcpu", (2, 4, 8))
    | _sizes("e2-standard", (2,))
    | _sizes("e2-highcpu", (2, 4, 8))
    | _sizes("n2-standard", (2,))
    | _sizes("n2-highcpu", (2, 4, 8))
    | _sizes("n2d-standard", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224))
)

# configure-compute, "GPUs": the N1 family takes these GPUs in these counts.
_N1_GPUS: dict[str, tuple[int, ...]] = {
    "NVIDIA_TESLA_T4": (1, 2, 4),
    "NVIDIA_TESLA_P4": (1, 2, 4),
    "NVIDIA_TESLA_P100": (1, 2, 4),
    "NVIDIA_TESLA_V100": (1, 2, 4, 8),
}
# Machine types with GPUs built in: exactly this accelerator, exactly this many.
_ATTACHED: dict[str, tuple[str, int]] = {
    **{f"a2-highgpu-{n}g": ("NVIDIA_TESLA_A100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("NVIDIA_TESLA_A100", 16),
    **{f"a2-ultragpu-{n}g": ("NVIDIA_A100_80GB", n) for n in (1, 2, 4, 8)},
    "a3-highgpu-8g": ("NVIDIA_H100_80GB", 8),
    "a3-megagpu-8g": ("NVIDIA_H100_MEGA_80GB", 8),
    **{f"g2-standard-{n}": ("NVIDIA_L4", 1) for n in (4, 8, 12, 16, 32)},
    "g2-standard-24": ("NVIDIA_L4", 2),
    "g2-standard-48": ("NVIDIA_L4", 4),
    "g2-standard-96": ("NVIDIA_L4", 8),
}


def check_machine_spec(
    spec: Any, field: str, *, purpose: Literal["training", "prediction"], required: bool = True
) -> None:
    """Check a ``MachineSpec``: a known machine type and a valid accelerator for it.

    Raises:
        ApiError: INVALID_ARGUMENT naming ``field.machine_type`` or
            ``field.accelerator_type`` / ``field.accelerator_count``.
    """
    machine = spec.machine_type
    known = TRAINING_MACHINE_TYPES if purpose == "training" else PREDICTION_MACHINE_TYPES
    if not machine:
        if required:
            raise invalid(f"{field}.machine_type", "Machine type must be specified.")
        return
    if machine not in known:
        raise invalid(
            f"{field}.machine_type",
            f'Machine type "{machine}" is not supported for {purpose}.',
        )
    accelerator = spec.accelerator_type.name
    count = spec.accelerator_count
    if accelerator == "ACCELERATOR_TYPE_UNSPECIFIED":
        if count:
            raise invalid(
                f"{field}.accelerator_type",
                f"accelerator_count is {count} but no accelerator_type is given.",
            )
        if machine in _ATTACHED:
            want, n = _ATTACHED[machine]
            raise invalid(
                f"{field}.accelerator_type",
                f'Machine type "{machine}" requires {n} {want} accelerator(s).',
            )
        return
    if count < 1:
        raise invalid(
            f"{field}.accelerator_count",
            f"accelerator_count must be positive when accelerator_type is {accelerator}.",
        )
    if machine in _ATTACHED:
        want, n = _ATTACHED[machine]
        if accelerator != want or count != n:
            raise invalid(
                f"{field}.accelerator_type",
                f'Machine type "{machine}" comes with exactly {n} {want}; got {count} '
                f"{accelerator}.",
            )
        return
    if machine.startswith("n1-"):
        counts = _N1_GPUS.get(accelerator)
        if counts is None:
            raise invalid(
                f"{field}.accelerator_type",
                f'Accelerator "{accelerator}" is not supported with machine type "{machine}".',
            )
        if count not in counts:
            raise invalid(
                f"{field}.accelerator_count",
                f'{accelerator} on "{machine}" takes {", ".join(map(str, counts))} '
                f"accelerators, not {count}.",
            )
        return
    raise invalid(
        f"{field}.accelerator_type",
        f'Machine type "{machine}" does not support accelerators; got {accelerator}.',
    )


_REGISTRY = r"(?:(?:[a-z0-9-]+-)?docker\.pkg\.dev/vertex-ai|(?:[a-z]+\.)?gcr\.io/cloud-aiplatform)"
_TRAINING_RE = re.compile(rf"^{_REGISTRY}/training/[a-z0-9.-]+(?:\.py3\d+)?(?::[\w.-]+)?$")
_PREDICTION_RE = re.compile(
    rf"^{_REGISTRY}/prediction/(?P<framework>sklearn|xgboost|tf2?|pytorch)-(?:cpu|gpu)"
    r"[\w.-]*(?::[\w.-]+)?$"
)


def is_prebuilt_training_image(uri: str) -> bool:
    """Whether ``uri`` is one of Vertex AI's prebuilt training containers."""
    return bool(_TRAINING_RE.match(uri))


def prebuilt_prediction_framework(uri: str) -> str | None:
    """The framework of a prebuilt prediction container (``sklearn``, ``xgboost``...), or None."""
    match = _PREDICTION_RE.match(uri)
    return match.group("framework") if match else None


def is_mlport_serving_image(uri: str, configured: str | None) -> bool:
    """Whether ``uri`` is the mlport serving image: the configured one, or any image whose
    repository is named ``mlport-serving``."""
    if configured and uri == configured:
        return True
    repository = uri.split("@", 1)[0].rsplit(":", 1)[0] if "/" in uri else uri
    return repository.rsplit("/", 1)[-1] == "mlport-serving"
