"""Schedules: job schedules that run their job when triggered, and data-drift monitors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from mlport_azureml.emulator import AzureMLEmulator

from .test_jobs import training_job, wait

# azure-ai-ml 1.35 sends a command job inside a schedule only with its private features on.
PRIVATE_FEATURES = "AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED"


def _drift_monitor(tmp_path: Path, name: str = "churn-drift", **definition: Any) -> Any:
    from azure.ai.ml import Input
    from azure.ai.ml.entities import (
        AlertNotification,
        BaselineDataRange,
        CategoricalDriftMetrics,
        DataDriftMetricThreshold,
        DataDriftSignal,
        MonitorDefinition,
        MonitorSchedule,
        NumericalDriftMetrics,
        ProductionData,
        RecurrenceTrigger,
        ReferenceData,
        ServerlessSparkCompute,
    )

    for folder, rows in (("production", "0.9,0.1\n0.8,0.3\n"), ("reference", "0.1,1.0\n0.3,0.9\n")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "rows.csv").write_text("a,b\n" + rows)
    signal = DataDriftSignal(
        production_data=ProductionData(
            input_data=Input(type="uri_folder", path=str(tmp_path / "production")),
            data_context="model_inputs",
            data_window=BaselineDataRange(lookback_window_size="P7D", lookback_window_offset="P0D"),
        ),
        reference_data=ReferenceData(
            input_data=Input(type="uri_folder", path=str(tmp_path / "reference")),
            data_context="training",
        ),
        features=["a", "b"],
        metric_thresholds=DataDriftMetricThreshold(
            numerical=NumericalDriftMetrics(jensen_shannon_distance=0.01),
            categorical=CategoricalDriftMetrics(pearsons_chi_squared_test=0.02),
        ),
    )
    spec: dict[str, Any] = {
        "compute": ServerlessSparkCompute(instance_type="standard_e4s_v3", runtime_version="3.4"),
        "monitoring_signals": {"drift": signal},
        "alert_notification": AlertNotification(emails=["team@example.com"]),
    }
    spec.update(definition)
    return MonitorSchedule(
        name=name,
        trigger=RecurrenceTrigger(frequency="day", interval=1),
        create_monitor=MonitorDefinition(**spec),
    )


def test_job_schedule_is_stored_listed_and_runs_its_job_when_triggered(
    ml: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    monkeypatch.setenv(PRIVATE_FEATURES, "true")
    created = ml.schedules.begin_create_or_update(
        JobSchedule(
            name="nightly-train",
            trigger=CronTrigger(expression="0 1 * * *"),
            create_job=training_job(project),
        )
    ).result()
    assert created.provisioning_state == "Succeeded"
    assert created.is_enabled is True
    assert created.creation_context.created_by == "emulator-user"
    fetched = ml.schedules.get("nightly-train")
    assert fetched.trigger.expression == "0 1 * * *"
    assert fetched.create_job.command.startswith("python train.py")
    assert [s.name for s in ml.schedules.list()] == ["nightly-train"]

    result = ml.schedules.trigger("nightly-train")
    assert result.schedule_action_type == "CreateJob"
    job = wait(ml, result.job_name)
    assert job.status == "Completed"
    assert job.properties["mlport.scheduleName"] == "nightly-train"


def test_disable_enable_and_delete_a_schedule(
    ml: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.entities import JobSchedule, RecurrencePattern, RecurrenceTrigger

    monkeypatch.setenv(PRIVATE_FEATURES, "true")
    ml.schedules.begin_create_or_update(
        JobSchedule(
            name="weekly-train",
            trigger=RecurrenceTrigger(
                frequency="week",
                interval=1,
                schedule=RecurrencePattern(hours=2, minutes=30, week_days=["monday"]),
            ),
            create_job=training_job(project),
        )
    ).result()
    disabled = ml.schedules.begin_disable("weekly-train").result()
    assert disabled.is_enabled is False
    assert [s.name for s in ml.schedules.list()] == []
    everything = ml.schedules.list(list_view_type="All")
    assert [(s.name, s.is_enabled) for s in everything] == [("weekly-train", False)]
    assert ml.schedules.get("weekly-train").creation_context.last_modified_at is not None
    assert ml.schedules.begin_enable("weekly-train").result().is_enabled is True
    assert [s.name for s in ml.schedules.list()] == ["weekly-train"]

    ml.schedules.begin_delete("weekly-train").result()
    with pytest.raises(ResourceNotFoundError):
        ml.schedules.get("weekly-train")


def test_a_disabled_schedule_cannot_be_triggered(
    ml_no_retry: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    monkeypatch.setenv(PRIVATE_FEATURES, "true")
    ml_no_retry.schedules.begin_create_or_update(
        JobSchedule(
            name="paused",
            trigger=CronTrigger(expression="*/15 * * * *"),
            create_job=training_job(project),
            is_enabled=False,
        )
    ).result()
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.trigger("paused")
    assert caught.value.status_code == 400
    assert [j.name for j in ml_no_retry.jobs.list()] == []


def test_schedule_of_an_existing_job_reruns_that_job(ml: Any, project: Path) -> None:
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    source = ml.jobs.create_or_update(training_job(project))
    assert wait(ml, source.name).status == "Completed"
    ml.schedules.begin_create_or_update(
        JobSchedule(
            name="rerun", trigger=CronTrigger(expression="0 3 * * MON-FRI"), create_job=source.id
        )
    ).result()
    result = ml.schedules.trigger("rerun")
    rerun = wait(ml, result.job_name)
    assert rerun.status == "Completed"
    assert rerun.command == source.command
    assert rerun.outputs["model"].path != source.outputs["model"].path


def test_monitor_schedule_with_a_data_drift_signal(ml: Any, tmp_path: Path) -> None:
    from azure.ai.ml.entities import MonitorSchedule

    created = ml.schedules.begin_create_or_update(_drift_monitor(tmp_path)).result()
    assert isinstance(created, MonitorSchedule)
    assert created.provisioning_state == "Succeeded"
    fetched = ml.schedules.get("churn-drift")
    assert isinstance(fetched, MonitorSchedule)
    monitor = fetched.create_monitor
    assert monitor.compute.instance_type == "standard_e4s_v3"
    drift = monitor.monitoring_signals["drift"]
    assert drift.type == "data_drift"
    assert drift.features == ["a", "b"]
    assert drift.metric_thresholds.numerical.jensen_shannon_distance == 0.01
    assert drift.production_data.input_data.path.startswith("azureml://datastores/")
    assert monitor.alert_notification.emails == ["team@example.com"]
    assert [s.name for s in ml.schedules.list()] == ["churn-drift"]


def test_monitor_without_spark_compute_or_on_a_missing_deployment_is_rejected(
    ml_no_retry: Any, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import MonitoringTarget, ServerlessSparkCompute

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.begin_create_or_update(
            _drift_monitor(
                tmp_path,
                compute=ServerlessSparkCompute(
                    instance_type="Standard_DS3_v2", runtime_version="3.4"
                ),
            )
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error.target == (
        "properties.action.monitorDefinition.computeConfiguration.instanceType"
    )
    # The SDK itself looks the deployment up first, and gets the service's 404.
    with pytest.raises(ResourceNotFoundError):
        ml_no_retry.schedules.begin_create_or_update(
            _drift_monitor(
                tmp_path,
                monitoring_target=MonitoringTarget(
                    ml_task="classification", endpoint_deployment_id="azureml:nowhere:blue"
                ),
            )
        ).result()
    assert [s.name for s in ml_no_retry.schedules.list()] == []


def test_triggering_a_monitor_is_refused_as_not_emulated(ml_no_retry: Any, tmp_path: Path) -> None:
    ml_no_retry.schedules.begin_create_or_update(_drift_monitor(tmp_path)).result()
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.trigger("churn-drift")
    assert caught.value.status_code == 400
    assert "not supported by the emulator" in str(caught.value)


def test_bad_name_missing_trigger_and_missing_schedule(
    ml_no_retry: Any, emulator: AzureMLEmulator, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    monkeypatch.setenv(PRIVATE_FEATURES, "true")
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.begin_create_or_update(
            JobSchedule(
                name="-starts-with-a-dash",
                trigger=CronTrigger(expression="0 1 * * *"),
                create_job=training_job(project),
            )
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error.code == "UserError"
    assert caught.value.error.target == "name"

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.begin_create_or_update(
            JobSchedule(name="no-trigger", trigger=None, create_job=training_job(project))
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error.target == "properties.trigger"

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.begin_create_or_update(
            JobSchedule(
                name="bad-cron",
                trigger=CronTrigger(expression="0 25 * * *"),
                create_job=training_job(project),
            )
        ).result()
    assert caught.value.error.target == "properties.trigger.expression"

    with pytest.raises(ResourceNotFoundError):
        ml_no_retry.schedules.get("never-made")
    # trigger() sends its own request and raises the plain HttpResponseError for every status.
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.trigger("never-made")
    assert caught.value.status_code == 404
    assert [s.name for s in ml_no_retry.schedules.list()] == []


def test_injected_fault_on_schedule_creation(
    ml_no_retry: Any, emulator: AzureMLEmulator, tmp_path: Path
) -> None:
    emulator.inject("Schedules_CreateOrUpdate", "503")
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.schedules.begin_create_or_update(_drift_monitor(tmp_path)).result()
    assert caught.value.status_code == 503
    ml_no_retry.schedules.begin_create_or_update(_drift_monitor(tmp_path)).result()
    assert ml_no_retry.schedules.get("churn-drift").is_enabled is True
