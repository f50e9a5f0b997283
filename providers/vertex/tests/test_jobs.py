"""JobService through the GAPIC v1 client: CustomJob and ModelDeploymentMonitoringJob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import Delays, VertexEmulator

from .helpers import TRAIN_IMAGE, wait_for

pytestmark = pytest.mark.usefixtures("emu")


@pytest.fixture
def jobs(client_options: dict[str, Any]) -> Any:
    from google.cloud import aiplatform_v1

    return aiplatform_v1.JobServiceClient(**client_options)


def _job(command: list[str] | None = None, **pool: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "machine_spec": {"machine_type": "n1-standard-4"},
        "replica_count": 1,
        "container_spec": {
            "image_uri": TRAIN_IMAGE,
            "command": command or ["python", "-c", "print('hello')"],
        },
    }
    spec.update(pool)
    return {"display_name": "job", "job_spec": {"worker_pool_specs": [spec]}}


def _ended(job: Any) -> bool:
    return job.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def test_custom_job_runs_with_vertex_environment_and_gcs_mount(
    jobs: Any, parent: str, emu: VertexEmulator
) -> None:
    from google.cloud import storage

    bucket = storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )
    bucket.blob("data/train.csv").upload_from_string("a,b\n1,2\n")
    code = (
        "import json, os, sys, pathlib\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "data = pathlib.Path(args['--data']).read_text()\n"
        "out = pathlib.Path(args['--out'])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "env = {k: os.environ[k] for k in ('AIP_MODEL_DIR', 'AIP_CHECKPOINT_DIR',"
        " 'AIP_TENSORBOARD_LOG_DIR', 'CLUSTER_SPEC', 'CLOUD_ML_JOB_ID', 'GREETING')}\n"
        "(out / 'seen.json').write_text(json.dumps({'data': data, 'env': env}))\n"
    )
    request = _job(["python", "-c", code])
    pool = request["job_spec"]["worker_pool_specs"][0]
    pool["container_spec"]["args"] = [
        f"--data=/gcs/{emu.staging_bucket[5:]}/data/train.csv",
        f"--out=/gcs/{emu.staging_bucket[5:]}/outputs",
    ]
    pool["container_spec"]["env"] = [{"name": "GREETING", "value": "hi"}]
    request["job_spec"]["base_output_directory"] = {
        "output_uri_prefix": f"{emu.staging_bucket}/run"
    }
    request["labels"] = {"team": "ml"}

    created = jobs.create_custom_job(parent=parent, custom_job=request)
    assert created.state.name == "JOB_STATE_QUEUED"
    assert created.name.startswith(
        f"projects/{emu.project_number}/locations/us-central1/customJobs/"
    )
    assert created.create_time and created.labels["team"] == "ml"
    job = wait_for(lambda: jobs.get_custom_job(name=created.name), _ended)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error.message
    assert job.start_time and job.end_time and job.end_time >= job.start_time

    seen = json.loads(bucket.blob("outputs/seen.json").download_as_text())
    assert seen["data"] == "a,b\n1,2\n"
    env = seen["env"]
    assert env["AIP_MODEL_DIR"] == f"{emu.staging_bucket}/run/model/"
    assert env["AIP_CHECKPOINT_DIR"] == f"{emu.staging_bucket}/run/checkpoints/"
    assert env["AIP_TENSORBOARD_LOG_DIR"] == f"{emu.staging_bucket}/run/logs/"
    assert env["CLOUD_ML_JOB_ID"] == created.name.rsplit("/", 1)[-1]
    assert env["GREETING"] == "hi"
    cluster = json.loads(env["CLUSTER_SPEC"])
    assert cluster["task"] == {"type": "workerpool0", "index": 0, "trial": ""}
    assert list(cluster["cluster"]) == ["workerpool0"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"display_name": ""}, "custom_job.display_name"),
        ({"job_spec": {"worker_pool_specs": []}}, "custom_job.job_spec.worker_pool_specs"),
        (
            {"pool": {"machine_spec": {"machine_type": "n1-giant-7"}}},
            "custom_job.job_spec.worker_pool_specs[0].machine_spec.machine_type",
        ),
        (
            {"pool": {"machine_spec": {"machine_type": ""}}},
            "custom_job.job_spec.worker_pool_specs[0].machine_spec.machine_type",
        ),
        (
            {
                "pool": {
                    "machine_spec": {
                        "machine_type": "n1-standard-4",
                        "accelerator_type": "NVIDIA_TESLA_A100",
                        "accelerator_count": 1,
                    }
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].machine_spec.accelerator_type",
        ),
        (
            {
                "pool": {
                    "machine_spec": {
                        "machine_type": "n1-standard-4",
                        "accelerator_type": "NVIDIA_TESLA_T4",
                        "accelerator_count": 3,
                    }
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].machine_spec.accelerator_count",
        ),
        (
            {
                "pool": {
                    "machine_spec": {
                        "machine_type": "a2-highgpu-2g",
                        "accelerator_type": "NVIDIA_TESLA_A100",
                        "accelerator_count": 1,
                    }
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].machine_spec.accelerator_type",
        ),
        (
            {"pool": {"container_spec": None}},
            "custom_job.job_spec.worker_pool_specs[0]",
        ),
        ({"pool": {"replica_count": 2}}, "custom_job.job_spec.worker_pool_specs[0].replica_count"),
        ({"labels": {"Team": "x"}}, "custom_job.labels.Team"),
        (
            {"pool": {"container_spec": None, "python_package_spec": {"python_module": "t"}}},
            "custom_job.job_spec.worker_pool_specs[0].python_package_spec.executor_image_uri",
        ),
        (
            {
                "pool": {
                    "container_spec": None,
                    "python_package_spec": {
                        "executor_image_uri": TRAIN_IMAGE,
                        "python_module": "t",
                    },
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].python_package_spec.package_uris",
        ),
        (
            {
                "pool": {
                    "container_spec": None,
                    "python_package_spec": {
                        "executor_image_uri": TRAIN_IMAGE,
                        "package_uris": ["gs://b/trainer.tar.gz"],
                    },
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].python_package_spec.python_module",
        ),
        (
            {
                "pool": {
                    "container_spec": None,
                    "python_package_spec": {
                        "executor_image_uri": TRAIN_IMAGE,
                        "package_uris": ["/tmp/trainer.tar.gz"],
                        "python_module": "t",
                    },
                }
            },
            "custom_job.job_spec.worker_pool_specs[0].python_package_spec.package_uris[0]",
        ),
        (
            {"output": "/tmp/x"},
            "custom_job.job_spec.base_output_directory.output_uri_prefix",
        ),
    ],
)
def test_custom_job_validation_names_the_field(
    jobs: Any, parent: str, change: dict[str, Any], field: str
) -> None:
    from google.rpc import error_details_pb2

    request = _job()
    pool = request["job_spec"]["worker_pool_specs"][0]
    for key, value in change.items():
        if key == "output":
            request["job_spec"]["base_output_directory"] = {"output_uri_prefix": value}
        elif key == "pool":
            for pool_key, pool_value in value.items():
                if pool_value is None:
                    pool.pop(pool_key)
                else:
                    pool[pool_key] = pool_value
        else:
            request[key] = value
    with pytest.raises(exceptions.InvalidArgument) as caught:
        jobs.create_custom_job(parent=parent, custom_job=request)
    violations = [
        v.field
        for detail in caught.value.details
        if isinstance(detail, error_details_pb2.BadRequest)
        for v in detail.field_violations
    ]
    assert violations == [field]
    assert jobs.list_custom_jobs(parent=parent).custom_jobs == []


def test_valid_accelerator_combinations_are_accepted(jobs: Any, parent: str) -> None:
    for machine, accelerator, count in [
        ("n1-standard-8", "NVIDIA_TESLA_T4", 2),
        ("a2-highgpu-2g", "NVIDIA_TESLA_A100", 2),
        ("g2-standard-24", "NVIDIA_L4", 2),
    ]:
        request = _job(
            machine_spec={
                "machine_type": machine,
                "accelerator_type": accelerator,
                "accelerator_count": count,
            }
        )
        job = jobs.create_custom_job(parent=parent, custom_job=request)
        assert job.job_spec.worker_pool_specs[0].machine_spec.accelerator_count == count
        wait_for(lambda job=job: jobs.get_custom_job(name=job.name), _ended)


def test_cancel_a_running_job_then_delete_it(jobs: Any, parent: str) -> None:
    job = jobs.create_custom_job(
        parent=parent, custom_job=_job(["python", "-c", "import time; time.sleep(60)"])
    )
    wait_for(
        lambda: jobs.get_custom_job(name=job.name), lambda j: j.state.name == "JOB_STATE_RUNNING"
    )
    with pytest.raises(exceptions.FailedPrecondition):
        jobs.delete_custom_job(name=job.name)
    jobs.cancel_custom_job(name=job.name)
    cancelled = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert cancelled.state.name == "JOB_STATE_CANCELLED"
    assert cancelled.error.code == 1
    with pytest.raises(exceptions.FailedPrecondition):
        jobs.cancel_custom_job(name=job.name)
    jobs.delete_custom_job(name=job.name).result(timeout=10)
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=job.name)


def test_get_and_list_jobs(jobs: Any, parent: str, emu: VertexEmulator) -> None:
    first = jobs.create_custom_job(parent=parent, custom_job={**_job(), "display_name": "one"})
    second = jobs.create_custom_job(parent=parent, custom_job={**_job(), "display_name": "two"})
    pages = jobs.list_custom_jobs(request={"parent": parent, "page_size": 1})
    assert [j.name for j in pages] == [first.name, second.name]
    only = jobs.list_custom_jobs(request={"parent": parent, "filter": 'display_name="two"'})
    assert [j.name for j in only] == [second.name]
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=f"{parent}/customJobs/42")
    with pytest.raises(exceptions.PermissionDenied):
        jobs.list_custom_jobs(parent="projects/someone-else/locations/us-central1")
    for job in (first, second):
        wait_for(lambda job=job: jobs.get_custom_job(name=job.name), _ended)


def test_lifecycle_passes_through_queued_pending_running() -> None:
    """A second emulator in the same process works: the CA that signs its fresh certificate is
    the one gRPC already trusts."""
    import time

    with VertexEmulator(delays=Delays(state=0.3)) as slow:
        from google.cloud import aiplatform_v1

        client = aiplatform_v1.JobServiceClient(
            client_options={"api_endpoint": slow.api_endpoint}, credentials=slow.credentials
        )
        parent = f"projects/{slow.project}/locations/{slow.location}"
        job = client.create_custom_job(parent=parent, custom_job=_job())
        seen = [job.state.name]
        deadline = time.monotonic() + 60
        while seen[-1] not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"):
            assert time.monotonic() < deadline, seen
            state = client.get_custom_job(name=job.name).state.name
            if state != seen[-1]:
                seen.append(state)
        assert seen == [
            "JOB_STATE_QUEUED",
            "JOB_STATE_PENDING",
            "JOB_STATE_RUNNING",
            "JOB_STATE_SUCCEEDED",
        ]


def test_injected_job_failure_and_forced_failure(
    jobs: Any, parent: str, emu: VertexEmulator
) -> None:
    emu.inject("CreateCustomJob", "JOB_FAILED")
    job = jobs.create_custom_job(parent=parent, custom_job=_job())
    failed = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert failed.state.name == "JOB_STATE_FAILED"
    assert "injected" in failed.error.message

    slow = jobs.create_custom_job(
        parent=parent, custom_job=_job(["python", "-c", "import time; time.sleep(60)"])
    )
    wait_for(
        lambda: jobs.get_custom_job(name=slow.name), lambda j: j.state.name == "JOB_STATE_RUNNING"
    )
    emu.fail_job(slow.name, "the machine was preempted")
    ended = wait_for(lambda: jobs.get_custom_job(name=slow.name), _ended)
    assert ended.state.name == "JOB_STATE_FAILED"
    assert ended.error.message == "the machine was preempted"


def test_faults_and_dropped_answers(jobs: Any, parent: str, emu: VertexEmulator) -> None:
    emu.inject("CreateCustomJob", "UNAVAILABLE", times=2)
    for _ in range(2):
        with pytest.raises(exceptions.ServiceUnavailable):
            jobs.create_custom_job(parent=parent, custom_job=_job(), retry=None)
    assert list(jobs.list_custom_jobs(parent=parent)) == []

    emu.inject("CreateCustomJob", "drop_response_after_commit")
    with pytest.raises(exceptions.ServiceUnavailable):
        jobs.create_custom_job(parent=parent, custom_job=_job(), retry=None)
    committed = list(jobs.list_custom_jobs(parent=parent))
    assert len(committed) == 1  # the call took effect although its answer was lost
    wait_for(lambda: jobs.get_custom_job(name=committed[0].name), _ended)

    emu.inject("GetCustomJob", exceptions.ResourceExhausted("slow down"))
    with pytest.raises(exceptions.ResourceExhausted, match="slow down"):
        jobs.get_custom_job(name=committed[0].name, retry=None)

    from mlport.errors import InvalidSpecError

    with pytest.raises(InvalidSpecError):
        emu.inject("CreateCustomJob", "NOT_A_CODE")
    with pytest.raises(InvalidSpecError):
        emu.inject("GetCustomJob", "JOB_FAILED")


def test_latency_is_added(jobs: Any, parent: str, emu: VertexEmulator) -> None:
    import time

    emu.set_latency("ListCustomJobs", 0.3)
    started = time.monotonic()
    list(jobs.list_custom_jobs(parent=parent))
    assert time.monotonic() - started >= 0.3


def test_python_package_job_runs_the_module(
    jobs: Any, parent: str, emu: VertexEmulator, tmp_path: Path
) -> None:
    import tarfile

    from google.cloud import storage

    source = tmp_path / "trainer-0.1"
    (source / "trainer").mkdir(parents=True)
    (source / "setup.py").write_text("from setuptools import setup\nsetup(name='trainer')\n")
    (source / "trainer" / "__init__.py").write_text("")
    (source / "trainer" / "task.py").write_text(
        "import sys\nprint('args', sys.argv[1:])\nsys.exit(3 if '--fail' in sys.argv else 0)\n"
    )
    archive = tmp_path / "trainer-0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="trainer-0.1")
    storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    ).blob("pkgs/trainer-0.1.tar.gz").upload_from_filename(str(archive))
    outcomes = []
    for args, state in ((["--ok"], "JOB_STATE_SUCCEEDED"), (["--fail"], "JOB_STATE_FAILED")):
        job = jobs.create_custom_job(
            parent=parent,
            custom_job={
                "display_name": "pkg",
                "job_spec": {
                    "worker_pool_specs": [
                        {
                            "machine_spec": {"machine_type": "e2-standard-4"},
                            "replica_count": 1,
                            "python_package_spec": {
                                "executor_image_uri": TRAIN_IMAGE,
                                "package_uris": [f"{emu.staging_bucket}/pkgs/trainer-0.1.tar.gz"],
                                "python_module": "trainer.task",
                                "args": args,
                            },
                        }
                    ]
                },
            },
        )
        ended = wait_for(lambda job=job: jobs.get_custom_job(name=job.name), _ended)
        assert ended.state.name == state, ended.error.message
        outcomes.append(ended)
    assert "non-zero status of 3" in outcomes[1].error.message
    assert emu.job_logs(outcomes[0].name) == {"workerpool0-0": "args ['--ok']\n"}


def test_an_image_the_emulator_cannot_run_fails_the_job(jobs: Any, parent: str) -> None:
    request = _job()
    request["job_spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"] = (
        "gcr.io/acme/trainer:1"
    )
    job = jobs.create_custom_job(parent=parent, custom_job=request)
    ended = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert ended.state.name == "JOB_STATE_FAILED"
    assert "cannot run" in ended.error.message


def test_every_replica_of_every_pool_runs_with_its_task(
    jobs: Any, parent: str, emu: VertexEmulator
) -> None:
    from google.cloud import storage

    code = (
        "import json, os, pathlib, sys\n"
        "spec = json.loads(os.environ['CLUSTER_SPEC'])\n"
        "task = spec['task']\n"
        "out = pathlib.Path(sys.argv[1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / f\"{task['type']}-{task['index']}.json\").write_text(json.dumps(spec['cluster']))\n"
    )
    pool = {
        "machine_spec": {"machine_type": "n1-standard-4"},
        "container_spec": {
            "image_uri": TRAIN_IMAGE,
            "command": ["python", "-c", code],
            "args": [f"/gcs/{emu.staging_bucket[5:]}/tasks"],
        },
    }
    job = jobs.create_custom_job(
        parent=parent,
        custom_job={
            "display_name": "distributed",
            "job_spec": {
                "worker_pool_specs": [{**pool, "replica_count": 1}, {**pool, "replica_count": 2}]
            },
        },
    )
    ended = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert ended.state.name == "JOB_STATE_SUCCEEDED", ended.error.message
    bucket = storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )
    written = sorted(b.name for b in bucket.list_blobs(prefix="tasks/"))
    assert written == [
        "tasks/workerpool0-0.json",
        "tasks/workerpool1-0.json",
        "tasks/workerpool1-1.json",
    ]
    cluster = json.loads(bucket.blob("tasks/workerpool1-1.json").download_as_text())
    assert [len(cluster["workerpool0"]), len(cluster["workerpool1"])] == [1, 2]


def test_a_job_past_its_timeout_fails(jobs: Any, parent: str) -> None:
    request = _job(["python", "-c", "import time; time.sleep(60)"])
    request["job_spec"]["scheduling"] = {"timeout": {"seconds": 1}}
    job = jobs.create_custom_job(parent=parent, custom_job=request)
    ended = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert ended.state.name == "JOB_STATE_FAILED"
    assert "timeout" in ended.error.message


def test_a_gcs_path_in_a_missing_bucket_fails_the_job(jobs: Any, parent: str) -> None:
    request = _job()
    request["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"] = [
        "--data=/gcs/no-such-bucket/train.csv"
    ]
    job = jobs.create_custom_job(parent=parent, custom_job=request)
    ended = wait_for(lambda: jobs.get_custom_job(name=job.name), _ended)
    assert ended.state.name == "JOB_STATE_FAILED"
    assert "gs://no-such-bucket does not exist" in ended.error.message
