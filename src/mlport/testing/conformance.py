"""The conformance suite: provider-agnostic tests every provider runs with its own fixtures.

A provider's test module subclasses the test classes and supplies fixtures; nothing else::

    from mlport.testing import conformance

    class MyFixtures(conformance.Fixtures):
        @pytest.fixture
        def ml(self, my_emulator):
            return mlport.connect("mycloud", **my_emulator.connect_kwargs)

        @pytest.fixture
        def job_spec(self, tmp_path):
            ...

    class TestTraining(MyFixtures, conformance.TrainingTests): ...
    class TestRegistry(MyFixtures, conformance.RegistryTests): ...

A test that needs a feature the provider's capability table says it lacks checks that the
feature raises ``NotSupportedError`` instead; nothing else may be skipped, except tests whose
optional fixture (``slow_job_spec``, ``faults``, ...) the provider does not supply.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlport.connection import Connection
from mlport.errors import (
    AlreadyExistsError,
    InvalidSpecError,
    JobFailedError,
    NotFoundError,
    NotSupportedError,
    WaitTimeoutError,
)
from mlport.handles import ModelVersion
from mlport.specs import TrainingJob
from mlport.status import EndpointStatus, JobStatus, NotebookStatus

__all__ = [
    "EndpointTests",
    "Fixtures",
    "MonitoringTests",
    "NotebookTests",
    "RegistryTests",
    "StorageTests",
    "TrainingTests",
]

_counter = itertools.count(1)

JOB_ORDER = [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED]


def _lacks(ml_service: Any, feature: str) -> bool:
    return not ml_service.supports(feature)


class Fixtures:
    """Fixtures the suite needs, with defaults where one makes sense.

    Three have no default; supply them in your class or in a ``conftest.py`` (a default here
    would hide a conftest's):

    - ``ml``: a connection to the provider under test;
    - ``job_spec``: ``job_spec(name)`` -> a TrainingJob that SUCCEEDS quickly and makes a model;
    - ``model_source``: a path or URI that ``registry.register`` accepts on this provider.
    """

    @pytest.fixture
    def failing_job_spec(self) -> Callable[[str], TrainingJob] | None:
        """``failing_job_spec(name)`` -> a TrainingJob that FAILS; None to skip."""
        return None

    @pytest.fixture
    def slow_job_spec(self) -> Callable[[str], TrainingJob] | None:
        """``slow_job_spec(name)`` -> a TrainingJob that runs for a while; None to skip."""
        return None

    @pytest.fixture
    def rows(self) -> list[Any]:
        """Rows the model from ``model_source`` can predict."""
        return [[1.0, 2.0], [3.0, 4.0]]

    @pytest.fixture
    def refused_name(self) -> str | None:
        """A portable name this provider refuses (for jobs and endpoints); None to skip."""
        return None

    @pytest.fixture
    def storage_prefix(self) -> str | None:
        """A URI prefix in the provider's store for the storage tests; None to skip them."""
        return None

    @pytest.fixture
    def baseline(self, tmp_path: Path) -> str:
        """A baseline dataset path or URI for the monitoring tests."""
        path = tmp_path / "baseline.csv"
        path.write_text("f0,f1\n1,2\n3,4\n")
        return str(path)

    @pytest.fixture
    def faults(self) -> Any:
        """An object with ``inject(method, error, times)`` (an Emulator); None to skip."""
        return None

    @pytest.fixture
    def fault_methods(self) -> dict[str, str]:
        """Generic operation -> the method name ``faults.inject`` takes for it.

        Keys used: ``training.submit``, ``registry.register``.
        """
        return {}

    @pytest.fixture
    def wait_timeout(self) -> float:
        """Seconds a test waits for a job, endpoint or notebook to settle."""
        return 120.0

    @pytest.fixture
    def unique(self) -> Callable[[str], str]:
        """``unique(prefix)`` -> a name no other test uses; lowercase, digits and hyphens."""
        run = uuid.uuid4().hex[:6]
        return lambda prefix: f"{prefix}-{run}-{next(_counter)}"


class _ServiceTests:
    """Skips a whole class when the provider's capability table says it lacks the service, after
    checking that using it raises NotSupportedError."""

    service: ClassVar[str]

    @pytest.fixture(autouse=True)
    def _service_offered(self, ml: Connection) -> None:
        service = getattr(ml, self.service)
        if not service.supports(self.service):
            with pytest.raises(NotSupportedError):
                list(service.list())
            pytest.skip(f"provider lacks {self.service} (NotSupportedError checked)")


class TrainingTests(_ServiceTests):
    """submit / get / list / wait / cancel / logs / delete on training jobs."""

    service = "training"

    def test_submit_get_wait(
        self, ml: Connection, job_spec: Any, unique: Any, wait_timeout: float
    ) -> None:
        name = unique("train")
        job = ml.training.submit(job_spec(name))
        assert job.name == name
        assert job.provider_id
        assert job.status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED)
        seen = [job.status]
        job.wait(wait_timeout, progress=False)
        seen.append(job.status)
        assert job.status is JobStatus.SUCCEEDED
        assert [JOB_ORDER.index(s) for s in seen] == sorted(JOB_ORDER.index(s) for s in seen)
        fetched = ml.training.get(name)
        assert fetched.status is JobStatus.SUCCEEDED
        assert fetched.model_uri

    def test_same_spec_is_idempotent(self, ml: Connection, job_spec: Any, unique: Any) -> None:
        spec = job_spec(unique("idem"))
        first = ml.training.submit(spec)
        again = ml.training.submit(spec)
        assert again.provider_id == first.provider_id

    def test_edited_code_is_a_different_spec(
        self, ml: Connection, job_spec: Any, unique: Any
    ) -> None:
        spec = job_spec(unique("edited"))
        ml.training.submit(spec)
        entry = Path(spec.code.source_dir) / spec.code.entry_point
        original = entry.read_bytes()
        try:
            entry.write_bytes(original + b"\n# edited\n")
            with pytest.raises(AlreadyExistsError, match=spec.name or ""):
                ml.training.submit(spec)
        finally:
            entry.write_bytes(original)

    def test_different_spec_same_name_conflicts(
        self, ml: Connection, job_spec: Any, unique: Any
    ) -> None:
        spec = job_spec(unique("clash"))
        ml.training.submit(spec)
        changed = spec.model_copy(update={"hyperparameters": {**spec.hyperparameters, "x": 1}})
        with pytest.raises(AlreadyExistsError, match=spec.name or ""):
            ml.training.submit(changed)

    def test_get_missing_names_it(self, ml: Connection, unique: Any) -> None:
        name = unique("missing")
        with pytest.raises(NotFoundError, match=name):
            ml.training.get(name)

    def test_list_is_lazy_and_finds_the_job(
        self, ml: Connection, job_spec: Any, unique: Any
    ) -> None:
        names = [unique("list") for _ in range(3)]
        for name in names:
            ml.training.submit(job_spec(name))
        listing = ml.training.list()
        assert isinstance(listing, Iterator)
        assert set(names) <= {job.name for job in listing}

    def test_refused_name_names_rule_and_provider(
        self, ml: Connection, job_spec: Any, refused_name: str | None
    ) -> None:
        if refused_name is None:
            pytest.skip("the provider supplies no refused_name")
        with pytest.raises(InvalidSpecError, match=ml.training.provider_name):
            ml.training.submit(job_spec(refused_name))

    def test_failed_job_raises_with_reason(
        self, ml: Connection, failing_job_spec: Any, unique: Any, wait_timeout: float
    ) -> None:
        if failing_job_spec is None:
            pytest.skip("the provider supplies no failing_job_spec")
        job = ml.training.submit(failing_job_spec(unique("fail")))
        with pytest.raises(JobFailedError) as info:
            job.wait(wait_timeout, progress=False)
        assert job.status is JobStatus.FAILED
        assert job.failure_reason
        assert job.failure_reason in str(info.value)

    def test_wait_timeout(self, ml: Connection, slow_job_spec: Any, unique: Any) -> None:
        if slow_job_spec is None:
            pytest.skip("the provider supplies no slow_job_spec")
        job = ml.training.submit(slow_job_spec(unique("slow")))
        try:
            with pytest.raises(WaitTimeoutError, match=job.name):
                job.wait(0.05, progress=False)
        finally:
            if ml.training.supports("training.cancel"):
                ml.training.cancel(job.name)

    def test_cancel(
        self, ml: Connection, slow_job_spec: Any, unique: Any, wait_timeout: float
    ) -> None:
        if _lacks(ml.training, "training.cancel"):
            with pytest.raises(NotSupportedError):
                ml.training.cancel(unique("x"))
            return
        if slow_job_spec is None:
            pytest.skip("the provider supplies no slow_job_spec")
        job = ml.training.submit(slow_job_spec(unique("cancel")))
        job.cancel()
        with pytest.raises(JobFailedError):
            job.wait(wait_timeout, progress=False)
        assert job.status is JobStatus.CANCELLED
        assert ml.training.cancel(job.name).status is JobStatus.CANCELLED  # idempotent

    def test_logs(self, ml: Connection, job_spec: Any, unique: Any, wait_timeout: float) -> None:
        if _lacks(ml.training, "training.logs"):
            with pytest.raises(NotSupportedError):
                list(ml.training.logs(unique("x")))
            return
        job = ml.training.submit(job_spec(unique("logs")))
        lines = list(job.logs(follow=True))
        assert lines, "a finished job has log lines"
        assert ml.training.get(job.name).status.is_terminal

    def test_delete_is_idempotent(
        self, ml: Connection, job_spec: Any, unique: Any, wait_timeout: float
    ) -> None:
        name = unique("delete")
        if _lacks(ml.training, "training.delete"):
            with pytest.raises(NotSupportedError):
                ml.training.delete(name)
            return
        ml.training.submit(job_spec(name)).wait(wait_timeout, progress=False)
        ml.training.delete(name)
        ml.training.delete(name)
        with pytest.raises(NotFoundError):
            ml.training.get(name)

    def test_submit_survives_lost_answer(
        self, ml: Connection, job_spec: Any, unique: Any, faults: Any, fault_methods: dict[str, str]
    ) -> None:
        if faults is None or "training.submit" not in fault_methods:
            pytest.skip("the provider supplies no fault injection for training.submit")
        faults.inject(fault_methods["training.submit"], "drop_response_after_commit")
        name = unique("lost")
        job = ml.training.submit(job_spec(name))
        assert job.name == name
        assert [j.name for j in ml.training.list()].count(name) == 1


class RegistryTests(_ServiceTests):
    """register / get / versions / stages / delete on the model registry."""

    service = "registry"

    def test_register_versions_and_latest(
        self, ml: Connection, model_source: str, unique: Any
    ) -> None:
        name = unique("model")
        first = ml.registry.register(name, model_source)
        second = ml.registry.register(name, model_source)
        assert isinstance(first, ModelVersion)
        assert int(second.version) > int(first.version)
        assert ml.registry.get(name).version == second.version
        assert ml.registry.get(name, first.version).version == first.version
        versions = ml.registry.versions(name)
        assert isinstance(versions, Iterator)
        assert {v.version for v in versions} >= {first.version, second.version}
        assert name in {v.name for v in ml.registry.list()}

    def test_register_from_job_keeps_lineage(
        self, ml: Connection, job_spec: Any, unique: Any, wait_timeout: float
    ) -> None:
        job = ml.training.submit(job_spec(unique("lineage"))).wait(wait_timeout, progress=False)
        version = ml.registry.register(unique("model"), job)
        assert version.lineage.get("job") == job.name

    def test_register_unfinished_job_is_refused(
        self, ml: Connection, slow_job_spec: Any, unique: Any
    ) -> None:
        if slow_job_spec is None:
            pytest.skip("the provider supplies no slow_job_spec")
        job = ml.training.submit(slow_job_spec(unique("early")))
        try:
            with pytest.raises(InvalidSpecError, match=job.name):
                ml.registry.register(unique("model"), job)
        finally:
            if ml.training.supports("training.cancel"):
                ml.training.cancel(job.name)

    def test_stages(self, ml: Connection, model_source: str, unique: Any) -> None:
        name = unique("staged")
        v1 = ml.registry.register(name, model_source)
        if _lacks(ml.registry, "registry.stages"):
            with pytest.raises(NotSupportedError):
                ml.registry.set_stage(name, v1.version, "production")
            return
        v2 = ml.registry.register(name, model_source)
        ml.registry.set_stage(name, v1.version, "production")
        assert ml.registry.get(name, "production").version == v1.version
        ml.registry.set_stage(name, v2.version, "production")
        assert ml.registry.get(name, "production").version == v2.version
        with pytest.raises(InvalidSpecError, match="Prod!"):
            ml.registry.set_stage(name, v2.version, "Prod!")

    def test_missing_model_and_version(
        self, ml: Connection, model_source: str, unique: Any
    ) -> None:
        name = unique("absent")
        with pytest.raises(NotFoundError, match=name):
            ml.registry.get(name)
        ml.registry.register(name, model_source)
        with pytest.raises(NotFoundError):
            ml.registry.get(name, "999")
        with pytest.raises(NotFoundError):
            ml.registry.get(name, "no-such-alias")

    def test_delete_is_idempotent(self, ml: Connection, model_source: str, unique: Any) -> None:
        name = unique("gone")
        if _lacks(ml.registry, "registry.delete"):
            with pytest.raises(NotSupportedError):
                ml.registry.delete(name)
            return
        v1 = ml.registry.register(name, model_source)
        ml.registry.register(name, model_source)
        ml.registry.delete(name, v1.version)
        ml.registry.delete(name, v1.version)
        with pytest.raises(NotFoundError):
            ml.registry.get(name, v1.version)
        ml.registry.delete(name)
        ml.registry.delete(name)
        with pytest.raises(NotFoundError):
            ml.registry.get(name)

    def test_register_never_makes_two_versions_on_lost_answer(
        self,
        ml: Connection,
        model_source: str,
        unique: Any,
        faults: Any,
        fault_methods: dict[str, str],
    ) -> None:
        if faults is None or "registry.register" not in fault_methods:
            pytest.skip("the provider supplies no fault injection for registry.register")
        name = unique("once")
        faults.inject(fault_methods["registry.register"], "drop_response_after_commit")
        ml.registry.register(name, model_source)
        assert len(list(ml.registry.versions(name))) == 1


class EndpointTests(_ServiceTests):
    """deploy / predict / canary / traffic / delete on endpoints."""

    service = "endpoints"

    @pytest.fixture
    def version(self, ml: Connection, model_source: str, unique: Any) -> ModelVersion:
        return ml.registry.register(unique("served"), model_source)

    def test_deploy_predict_delete(
        self,
        ml: Connection,
        version: ModelVersion,
        rows: list[Any],
        unique: Any,
        wait_timeout: float,
    ) -> None:
        name = unique("ep")
        endpoint = ml.endpoints.deploy(name, version, timeout=wait_timeout)
        assert endpoint.status is EndpointStatus.READY
        assert endpoint.variants == {version.version: 100}
        assert len(endpoint.predict(rows)) == len(rows)
        assert name in {e.name for e in ml.endpoints.list()}
        ml.endpoints.delete(name)
        ml.endpoints.delete(name)
        with pytest.raises(NotFoundError, match=name):
            ml.endpoints.get(name)

    def test_canary_and_traffic(
        self,
        ml: Connection,
        version: ModelVersion,
        model_source: str,
        unique: Any,
        wait_timeout: float,
    ) -> None:
        name = unique("canary")
        ml.endpoints.deploy(name, version, timeout=wait_timeout)
        second = ml.registry.register(version.name, model_source)
        try:
            if _lacks(ml.endpoints, "endpoints.canary"):
                with pytest.raises(NotSupportedError):
                    ml.endpoints.deploy(name, second, traffic_percent=10, timeout=wait_timeout)
                return
            endpoint = ml.endpoints.deploy(name, second, traffic_percent=10, timeout=wait_timeout)
            assert endpoint.variants == {version.version: 90, second.version: 10}
            with pytest.raises(InvalidSpecError, match="sum to 100"):
                ml.endpoints.set_traffic(name, {version.version: 50, second.version: 10})
            with pytest.raises(InvalidSpecError, match="no version 77"):
                ml.endpoints.set_traffic(name, {"77": 100})
            endpoint = ml.endpoints.set_traffic(name, {version.version: 0, second.version: 100})
            assert endpoint.variants.get(second.version) == 100
        finally:
            ml.endpoints.delete(name)

    def test_canary_needs_an_endpoint(
        self, ml: Connection, version: ModelVersion, unique: Any
    ) -> None:
        if _lacks(ml.endpoints, "endpoints.canary"):
            pytest.skip("the provider has no canaries (checked in test_canary_and_traffic)")
        name = unique("nocanary")
        with pytest.raises(InvalidSpecError, match=name):
            ml.endpoints.deploy(name, version, traffic_percent=10)

    def test_predict_rejects_a_bare_row(
        self, ml: Connection, version: ModelVersion, unique: Any
    ) -> None:
        with pytest.raises(InvalidSpecError, match="wrap a single row"):
            ml.endpoints.predict(unique("any"), [1.0, 2.0])

    def test_refused_name(
        self, ml: Connection, version: ModelVersion, refused_name: str | None
    ) -> None:
        if refused_name is None:
            pytest.skip("the provider supplies no refused_name")
        with pytest.raises(InvalidSpecError, match=ml.endpoints.provider_name):
            ml.endpoints.deploy(refused_name, version)

    def test_batch_predict(
        self,
        ml: Connection,
        version: ModelVersion,
        rows: list[Any],
        tmp_path: Path,
        wait_timeout: float,
    ) -> None:
        source = tmp_path / "batch-in" / "rows.jsonl"
        source.parent.mkdir()
        source.write_text("".join(json.dumps(row) + "\n" for row in rows * 3))
        if _lacks(ml.endpoints, "endpoints.batch"):
            with pytest.raises(NotSupportedError):
                ml.endpoints.batch_predict(version, input=source, output=tmp_path / "out")
            return
        job = ml.endpoints.batch_predict(
            version, input=source, output=tmp_path / "batch-out", batch_size=2
        )
        assert job.kind == "batch"
        job.wait(wait_timeout)
        assert job.status is JobStatus.SUCCEEDED
        assert job.name in {j.name for j in ml.endpoints.list_batch()}
        assert job.output_uri
        if job.output_uri.startswith("file://"):
            written = (tmp_path / "batch-out" / "rows.predictions.jsonl").read_text().splitlines()
            assert [json.loads(line)["row_id"] for line in written] == list(range(len(rows) * 3))


class MonitoringTests(_ServiceTests):
    """enable / get / list / run / reports / disable on monitors."""

    service = "monitoring"

    def test_lifecycle(
        self,
        ml: Connection,
        model_source: str,
        baseline: str,
        unique: Any,
        wait_timeout: float,
    ) -> None:
        version = ml.registry.register(unique("monitored"), model_source)
        name = unique("mon")
        ml.endpoints.deploy(name, version, capture_percent=100, timeout=wait_timeout)
        try:
            monitor = ml.monitoring.enable(name, baseline=baseline, schedule="1h")
            assert monitor.endpoint == name
            assert monitor.schedule == 3600
            assert ml.monitoring.get(name).endpoint == name
            assert name in {m.endpoint for m in ml.monitoring.list()}
            report = ml.monitoring.run(name)
            assert report.endpoint == name
            assert next(iter(ml.monitoring.reports(name))).created_at == report.created_at
            ml.monitoring.disable(name)
            ml.monitoring.disable(name)
            with pytest.raises(NotFoundError):
                ml.monitoring.get(name)
        finally:
            ml.endpoints.delete(name)


class NotebookTests(_ServiceTests):
    """create / wait / stop / start / delete on notebooks."""

    service = "notebooks"

    def test_lifecycle(self, ml: Connection, unique: Any, wait_timeout: float) -> None:
        name = unique("nb")
        notebook = ml.notebooks.create(name)
        assert ml.notebooks.create(name).provider_id == notebook.provider_id  # idempotent
        notebook.wait(wait_timeout, progress=False)
        assert notebook.status is NotebookStatus.RUNNING
        assert notebook.url
        assert name in {n.name for n in ml.notebooks.list()}
        notebook.stop().wait(wait_timeout, progress=False)
        assert ml.notebooks.get(name).status is NotebookStatus.STOPPED
        notebook.start().wait(wait_timeout, progress=False)
        assert ml.notebooks.get(name).status is NotebookStatus.RUNNING
        ml.notebooks.delete(name)
        ml.notebooks.delete(name)
        with pytest.raises(NotFoundError, match=name):
            ml.notebooks.get(name)

    def test_other_options_conflict(self, ml: Connection, unique: Any) -> None:
        name = unique("nbclash")
        ml.notebooks.create(name)
        try:
            with pytest.raises(AlreadyExistsError, match=name):
                ml.notebooks.create(name, image="other-image:1")
        finally:
            ml.notebooks.delete(name)


class StorageTests(_ServiceTests):
    """upload / ls / exists / download / delete on the artifact store, and cross-store copy."""

    service = "storage"

    def test_round_trip(
        self, ml: Connection, storage_prefix: str | None, tmp_path: Path, unique: Any
    ) -> None:
        if storage_prefix is None:
            pytest.skip("the provider supplies no storage_prefix")
        source = tmp_path / "src"
        (source / "sub").mkdir(parents=True)
        (source / "a.txt").write_text("alpha")
        (source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
        prefix = f"{storage_prefix.rstrip('/')}/{unique('blob')}"
        ml.storage.upload(source, prefix)
        listed = sorted(ml.storage.ls(prefix))
        assert listed == [f"{prefix}/a.txt", f"{prefix}/sub/b.bin"]
        assert ml.storage.exists(f"{prefix}/a.txt")
        target = tmp_path / "dst"
        ml.storage.download(prefix, target)
        assert (target / "a.txt").read_text() == "alpha"
        assert (target / "sub" / "b.bin").read_bytes() == (source / "sub" / "b.bin").read_bytes()
        ml.storage.delete(prefix)
        ml.storage.delete(prefix)
        assert not ml.storage.exists(f"{prefix}/a.txt")
        with pytest.raises(NotFoundError):
            ml.storage.download(prefix, tmp_path / "again")

    def test_copy_from_local_files(
        self, ml: Connection, storage_prefix: str | None, tmp_path: Path, unique: Any
    ) -> None:
        if storage_prefix is None:
            pytest.skip("the provider supplies no storage_prefix")
        from mlport import storage

        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "model.bin").write_bytes(b"x" * 3_000_000)
        prefix = f"{storage_prefix.rstrip('/')}/{unique('copy')}"
        written = storage.copy(f"file://{tmp_path / 'm'}", prefix, dest=ml.storage)
        assert written == [f"{prefix}/model.bin"]
        back = storage.copy(prefix, str(tmp_path / "back"), source=ml.storage)
        assert back == [str(tmp_path / "back" / "model.bin")]
        assert (tmp_path / "back" / "model.bin").read_bytes() == b"x" * 3_000_000
        ml.storage.delete(prefix)
