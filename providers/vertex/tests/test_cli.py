"""``python -m mlport_vertex.emulator``: one line of settings, the control API, a clean stop."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import ControlClient, VertexEmulator
from mlport_vertex.emulator.control import CONTROL_SERVICE

from mlport.processes import spawn, stop, wait_for_ready_file

from .helpers import TRAIN_IMAGE, wait_for


def test_module_prints_settings_and_obeys_the_control_api(
    tmp_path: Path, vertex_session: VertexEmulator
) -> None:
    popen, record = spawn(
        [
            sys.executable,
            "-m",
            "mlport_vertex.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--ready-file",
            str(tmp_path / "ready.json"),
        ],
        name="vertex-emulator",
        log_dir=tmp_path,
        detach=False,
    )
    try:
        settings = json.loads(
            wait_for_ready_file(tmp_path / "ready.json", timeout=60, process=popen)
        )
        printed = (tmp_path / "vertex-emulator.out").read_text().strip().splitlines()
        assert json.loads(printed[0]) == settings
        assert settings["env"]["STORAGE_EMULATOR_HOST"] == settings["storage_host"]
        assert settings["env"]["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"]

        from google.cloud import aiplatform_v1

        endpoints = aiplatform_v1.EndpointServiceClient(
            client_options={"api_endpoint": settings["api_endpoint"]},
            credentials=vertex_session.credentials,
        )
        parent = f"projects/{settings['project']}/locations/{settings['location']}"
        control = ControlClient(settings["api_endpoint"], settings["ca_file"])
        try:
            control.inject("ListEndpoints", "RESOURCE_EXHAUSTED")
            with pytest.raises(exceptions.ResourceExhausted):
                endpoints.list_endpoints(parent=parent, retry=None)
            endpoints.create_endpoint(parent=parent, endpoint={"display_name": "a"}).result()
            assert len(list(endpoints.list_endpoints(parent=parent))) == 1
            control.set_latency("ListEndpoints", 0.3)
            started = time.monotonic()
            list(endpoints.list_endpoints(parent=parent))
            assert time.monotonic() - started >= 0.3
            jobs = aiplatform_v1.JobServiceClient(
                client_options={"api_endpoint": settings["api_endpoint"]},
                credentials=vertex_session.credentials,
            )
            job = jobs.create_custom_job(
                parent=parent,
                custom_job={
                    "display_name": "sleeper",
                    "job_spec": {
                        "worker_pool_specs": [
                            {
                                "machine_spec": {"machine_type": "n1-standard-4"},
                                "replica_count": 1,
                                "container_spec": {
                                    "image_uri": TRAIN_IMAGE,
                                    "command": ["python", "-c", "import time; time.sleep(60)"],
                                },
                            }
                        ]
                    },
                },
            )
            wait_for(
                lambda: jobs.get_custom_job(name=job.name),
                lambda j: j.state.name == "JOB_STATE_RUNNING",
            )
            control.fail_job(job.name, "out of quota")
            failed = wait_for(
                lambda: jobs.get_custom_job(name=job.name),
                lambda j: j.state.name == "JOB_STATE_FAILED",
            )
            assert failed.error.message == "out of quota"
            control.reset()
            assert list(endpoints.list_endpoints(parent=parent)) == []
            with pytest.raises(Exception, match="not a gRPC status code"):
                control.inject("ListEndpoints", "NOPE")
        finally:
            control.close()
    finally:
        stop(record, grace=10)
    assert popen.wait(timeout=10) == 0
    assert CONTROL_SERVICE.startswith("mlport.")
