"""The compute catalog: data quality, cheapest-match resolution, clear errors."""

from __future__ import annotations

import json

import pytest

from mlport import Compute, InvalidSpecError
from mlport.compute import CLOUD_CATALOGS, catalog, data_file, local_machine, resolve

GPU_FAMILIES = {
    "sagemaker": {"T4", "L4", "A10G", "A100", "H100"},
    "vertex": {"T4", "L4", "A100", "H100"},
    "azureml": {"T4", "A10", "A100", "H100"},
}


@pytest.mark.parametrize("provider", CLOUD_CATALOGS)
def test_catalog_data_is_complete_and_honest(provider: str) -> None:
    raw = json.loads(data_file(provider).read_text())
    assert raw["region"] and raw["currency"] == "USD" and raw["prices_as_of"]
    table = catalog(provider)
    assert len(table.types) >= 25
    assert {"general", "compute", "memory", "gpu"} <= {t.family for t in table.types}
    gpu_types = {(t.gpu_type or "").split("-")[0] for t in table.types if t.gpus}
    assert GPU_FAMILIES[provider] <= gpu_types
    keys = [t.key for t in table.types]
    assert len(keys) == len(set(keys))
    for row in table.types:
        assert row.vcpus > 0 and row.memory_gib > 0
        assert (row.gpus == 0) == (row.gpu_type is None)
        # A price always names its source; no source, no price.
        assert (row.price_per_hour is None) == (row.price_source is None)
        if row.price_source:
            assert row.price_source.startswith("https://")


def test_cheapest_match_wins() -> None:
    resolved = resolve(Compute(cpus=8, memory_gb=32), "azureml")
    assert resolved.row is not None
    rows = [t for t in catalog("azureml").types if t.satisfies(Compute(cpus=8, memory_gb=32))]
    priced = [t.price_per_hour for t in rows if t.price_per_hour is not None]
    assert resolved.row.price_per_hour == min(priced)


def test_gpu_requests_match_the_gpu_type() -> None:
    for provider in CLOUD_CATALOGS:
        row = resolve(Compute(gpus=1, gpu_type="T4"), provider).row
        assert row is not None and row.gpu_type == "T4" and row.gpus >= 1
    vertex = resolve(Compute(gpu_type="T4"), "vertex")
    assert vertex.accelerator_type == "NVIDIA_TESLA_T4" and vertex.accelerator_count >= 1
    a100 = resolve(Compute(gpu_type="A100"), "sagemaker").row
    assert a100 is not None and a100.gpu_type is not None and a100.gpu_type.startswith("A100")


def test_native_type_passes_through() -> None:
    resolved = resolve(Compute(instance_type="ml.m5.xlarge", cpus=64), "sagemaker")
    assert resolved.instance_type == "ml.m5.xlarge"
    unknown = resolve(Compute(instance_type="ml.brand.new"), "sagemaker")
    assert unknown.instance_type == "ml.brand.new" and unknown.row is None


def test_native_type_of_another_cloud_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="sagemaker type.*portable"):
        resolve(Compute(instance_type="ml.m5.xlarge"), "vertex")


def test_unsatisfiable_request_names_nearest_options() -> None:
    with pytest.raises(InvalidSpecError) as info:
        resolve(Compute(cpus=4, gpu_type="B9000"), "sagemaker")
    message = str(info.value)
    assert "B9000" in message and "nearest" in message and "GPU types available" in message


def test_local_machine_is_detected() -> None:
    import os

    machine = local_machine()
    assert machine.vcpus == len(os.sched_getaffinity(0))
    assert machine.memory_gib > 0
    with pytest.raises(InvalidSpecError, match="this machine"):
        resolve(Compute(cpus=machine.vcpus + 1), "onprem")
    assert resolve(Compute(cpus=1), "onprem").row == machine
