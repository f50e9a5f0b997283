"""The compute catalog: portable ``Compute`` requests resolved to each provider's instance types.

Each cloud has a dated data file (``data/<provider>.json``): vCPUs, memory, GPUs and the on-demand
USD/hour price in one named region, each price with the public page it was read from, or null
where none was found. Resolution picks the cheapest type that satisfies the request (ties: the
smallest); types without a price come after priced ones. A native ``instance_type`` passes through
unchanged. On-prem, the catalog is the local machine itself (:func:`local_machine`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mlport.errors import InvalidSpecError
from mlport.specs import Compute

__all__ = [
    "CLOUD_CATALOGS",
    "Catalog",
    "InstanceType",
    "ResolvedCompute",
    "catalog",
    "local_machine",
    "resolve",
]

CLOUD_CATALOGS = ("sagemaker", "vertex", "azureml")


@dataclass(frozen=True)
class InstanceType:
    """One row of a catalog."""

    name: str
    family: str
    vcpus: float
    memory_gib: float
    gpus: int = 0
    gpu_type: str | None = None
    gpu_memory_gib: float | None = None
    accelerator_type: str | None = None
    accelerator_count: int = 0
    price_per_hour: float | None = None
    price_source: str | None = None

    @property
    def key(self) -> str:
        """Unique within a catalog: the name, plus the accelerator for Vertex GPU rows."""
        if self.accelerator_type:
            return f"{self.name}+{self.accelerator_count}x{self.accelerator_type}"
        return self.name

    def satisfies(self, compute: Compute) -> bool:
        """True if this type has at least what ``compute`` asks for."""
        if compute.cpus is not None and self.vcpus < compute.cpus:
            return False
        if compute.memory_gb is not None and self.memory_gib < compute.memory_gb:
            return False
        if self.gpus < compute.gpus:
            return False
        return not (compute.gpu_type and not _same_gpu(self.gpu_type, compute.gpu_type))


def _same_gpu(have: str | None, want: str) -> bool:
    if have is None:
        return False
    have, want = have.upper(), want.upper()
    # "A100" accepts A100-80GB too; "A100-80GB" needs exactly that.
    return have == want or have.startswith(want + "-")


@dataclass(frozen=True)
class Catalog:
    """A provider's instance types with where and when their prices were taken."""

    provider: str
    region: str | None
    currency: str
    prices_as_of: str | None
    notes: str
    types: tuple[InstanceType, ...]

    def find(self, name: str) -> InstanceType | None:
        """The row called ``name`` (the first, for Vertex machine types with several GPU rows)."""
        for row in self.types:
            if name in (row.name, row.key):
                return row
        return None


@dataclass(frozen=True)
class ResolvedCompute:
    """What a provider receives: the chosen type (or native type), node count and spot flag."""

    instance_type: str | None
    count: int = 1
    spot: bool = False
    row: InstanceType | None = None
    requested: Compute | None = None

    @property
    def accelerator_type(self) -> str | None:
        """Vertex accelerator enum name, when the row has one."""
        return self.row.accelerator_type if self.row else None

    @property
    def accelerator_count(self) -> int:
        """Vertex accelerator count, when the row has one."""
        return self.row.accelerator_count if self.row else 0


@cache
def catalog(provider: str) -> Catalog:
    """The catalog of ``provider`` (``sagemaker``, ``vertex``, ``azureml``, or ``local``).

    Raises:
        InvalidSpecError: there is no catalog for this provider.
    """
    if provider in ("local", "onprem"):
        machine = local_machine()
        return Catalog("onprem", None, "USD", None, "this machine", (machine,))
    try:
        text = resources.files("mlport.compute").joinpath(f"data/{provider}.json").read_text()
    except FileNotFoundError:
        raise InvalidSpecError(f"no compute catalog for provider {provider!r}") from None
    data: dict[str, Any] = json.loads(text)
    fields = set(InstanceType.__dataclass_fields__)
    rows = tuple(
        InstanceType(**{k: v for k, v in row.items() if k in fields}) for row in data["types"]
    )
    return Catalog(
        provider=data["provider"],
        region=data.get("region"),
        currency=data.get("currency", "USD"),
        prices_as_of=data.get("prices_as_of"),
        notes=data.get("notes", ""),
        types=rows,
    )


def _sort_key(row: InstanceType) -> tuple[int, float, float, float, int]:
    price = row.price_per_hour
    return (price is None, price or 0.0, row.vcpus, row.memory_gib, row.gpus)


def resolve(compute: Compute, provider: str) -> ResolvedCompute:
    """Resolve ``compute`` on ``provider``: a native type passes through, else the cheapest match.

    Raises:
        InvalidSpecError: nothing in the catalog satisfies the request (naming the nearest
            options), or a native type that belongs to another provider.
    """
    if compute.instance_type:
        _check_native(compute.instance_type, provider)
        table = catalog(provider) if provider in (*CLOUD_CATALOGS, "onprem", "local") else None
        row = table.find(compute.instance_type) if table else None
        return ResolvedCompute(compute.instance_type, compute.count, compute.spot, row, compute)
    if compute.cpus is None and compute.memory_gb is None and compute.gpus == 0:
        if provider in ("onprem", "local"):
            return ResolvedCompute(None, compute.count, compute.spot, None, compute)
        # No request at all: the provider's default, the cheapest general-purpose type.
        compute = compute.model_copy(update={"cpus": 2})
    table = catalog(provider)
    matches = sorted((row for row in table.types if row.satisfies(compute)), key=_sort_key)
    if not matches:
        raise InvalidSpecError(_unsatisfiable(compute, table))
    row = matches[0]
    return ResolvedCompute(row.name, compute.count, compute.spot, row, compute)


def _describe(compute: Compute) -> str:
    parts = []
    if compute.cpus is not None:
        parts.append(f"cpus={compute.cpus:g}")
    if compute.memory_gb is not None:
        parts.append(f"memory_gb={compute.memory_gb:g}")
    if compute.gpus:
        parts.append(f"gpus={compute.gpus}")
    if compute.gpu_type:
        parts.append(f"gpu_type={compute.gpu_type!r}")
    return "Compute(" + ", ".join(parts) + ")"


def _unsatisfiable(compute: Compute, table: Catalog) -> str:
    def shortfall(row: InstanceType) -> float:
        gap = 0.0
        if compute.cpus:
            gap += max(0.0, compute.cpus - row.vcpus) / compute.cpus
        if compute.memory_gb:
            gap += max(0.0, compute.memory_gb - row.memory_gib) / compute.memory_gb
        if compute.gpus:
            gap += max(0, compute.gpus - row.gpus) / compute.gpus
        if compute.gpu_type and not _same_gpu(row.gpu_type, compute.gpu_type):
            gap += 1
        return gap

    nearest = sorted(table.types, key=lambda r: (shortfall(r), *_sort_key(r)))[:3]
    options = "; ".join(
        f"{r.key} ({r.vcpus:g} vCPU, {r.memory_gib:g} GiB"
        + (f", {r.gpus}x {r.gpu_type}" if r.gpus else "")
        + ")"
        for r in nearest
    )
    where = "this machine" if table.provider == "onprem" else f"provider {table.provider!r}"
    gpu_types = sorted({r.gpu_type for r in table.types if r.gpu_type})
    extra = (
        f" GPU types available: {', '.join(gpu_types)}." if compute.gpu_type and gpu_types else ""
    )
    return f"no instance type on {where} satisfies {_describe(compute)}; nearest: {options}.{extra}"


def _check_native(instance_type: str, provider: str) -> None:
    if provider not in CLOUD_CATALOGS:
        return
    if catalog(provider).find(instance_type):
        return
    for other in CLOUD_CATALOGS:
        if other != provider and catalog(other).find(instance_type):
            raise InvalidSpecError(
                f"instance_type {instance_type!r} is a {other} type, not a {provider} one; use "
                "portable Compute(cpus=..., memory_gb=..., gpus=...) to run on any provider"
            )


def _memory_gib() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def _gpus() -> tuple[int, str | None, float | None]:
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, None, None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0, None, None
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    if not rows:
        return 0, None, None
    name = rows[0][0].strip().upper().replace("NVIDIA ", "").replace("TESLA ", "")
    gpu_type = next(
        (g for g in ("H100", "A100", "A10G", "A10", "L40S", "L4", "T4", "V100") if g in name), name
    )
    memory = float(rows[0][1]) / 1024 if len(rows[0]) > 1 else None
    return len(rows), gpu_type, memory


@cache
def local_machine() -> InstanceType:
    """This machine as an instance type: its usable cores, memory and NVIDIA GPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    gpus, gpu_type, gpu_memory = _gpus()
    return InstanceType(
        name="local",
        family="gpu" if gpus else "general",
        vcpus=cpus,
        memory_gib=_memory_gib(),
        gpus=gpus,
        gpu_type=gpu_type,
        gpu_memory_gib=gpu_memory,
    )


def data_file(provider: str) -> Path:
    """Path of a cloud's catalog data file."""
    return Path(str(resources.files("mlport.compute").joinpath(f"data/{provider}.json")))
