"""The ``mlport`` command.

Errors print one clear line and exit 2; ``--debug`` shows the traceback. Heavy modules are imported
inside each command so that ``mlport --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mlport.connection import Connection
    from mlport.handles import DriftReport, Endpoint

app = typer.Typer(
    name="mlport",
    help="One API for SageMaker, Vertex AI, Azure ML and on-prem: train, register, serve, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
providers_app = typer.Typer(help="Installed providers.", invoke_without_command=True)
config_app = typer.Typer(help="Check mlport.toml.", no_args_is_help=True)
compute_app = typer.Typer(help="The compute catalog.", no_args_is_help=True)
endpoints_app = typer.Typer(
    help="Online endpoints: deploy a registered model, list, predict, read logs, delete.",
    no_args_is_help=True,
)
app.add_typer(providers_app, name="providers")
app.add_typer(config_app, name="config")
app.add_typer(compute_app, name="compute")
monitor_app = typer.Typer(
    help="Drift monitors of endpoints: run one now, show the latest report.",
    no_args_is_help=True,
)
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(monitor_app, name="monitor")

from mlport.serving.command import serve_command  # noqa: E402  (light: typer and stdlib only)

app.command("serve")(serve_command)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from mlport import __version__

        typer.echo(f"mlport {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """mlport: one API for the managed ML services of every cloud, and on-prem."""
    _state["debug"] = debug


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    from rich.markup import escape

    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table)


@providers_app.callback()
def providers_list(ctx: typer.Context) -> None:
    """List installed providers, their versions and whether their SDKs import."""
    if ctx.invoked_subcommand is not None:
        return
    from importlib.metadata import PackageNotFoundError, version

    from mlport import providers

    rows = []
    for name, spec in sorted(providers.available().items()):
        try:
            dist_version = version(spec.distribution)
        except PackageNotFoundError:
            dist_version = "?"
        missing = spec.missing_modules()
        sdk = "ok" if not missing else f"missing {', '.join(missing)} ({spec.pip_command})"
        rows.append([name, spec.distribution, dist_version, sdk, spec.description])
    for name, error in sorted(providers.broken().items()):
        rows.append([name, "?", "?", f"broken: {error}", ""])
    installed = set(providers.available())
    for name, dist in providers.KNOWN_PROVIDERS.items():
        if name not in installed:
            rows.append([name, dist, "not installed", f"pip install {dist}", ""])
    _table("providers", ["name", "distribution", "version", "SDK", "description"], rows)


@providers_app.command("show")
def providers_show(
    name: str,
    iam_policy: Annotated[
        bool,
        typer.Option(
            "--iam-policy",
            help="Print the least-privilege IAM policy the provider needs (AWS), for the "
            "profile's bucket and role when --profile is given.",
        ),
    ] = False,
    profile: Annotated[
        str | None, typer.Option(help="Profile whose settings fill in the policy.")
    ] = None,
) -> None:
    """Show a provider's profile keys (its config JSON schema) and capability table."""
    from mlport import providers
    from mlport.capabilities import FEATURES

    spec = providers.get(name)
    if iam_policy:
        _print_iam_policy(spec, profile)
        return
    schema = spec.config_model.model_json_schema()
    typer.echo(json.dumps(schema, indent=2))
    lacking = {f: spec.unsupported[f] for f in FEATURES if f in spec.unsupported}
    typer.echo(
        f"\nunsupported features of {name}: "
        + (json.dumps(lacking, indent=2) if lacking else "none")
    )


def _print_iam_policy(spec: Any, profile: str | None) -> None:
    import importlib
    import inspect

    from mlport.errors import NotSupportedError

    if spec.iam_policy is None:
        raise NotSupportedError(f"provider {spec.name!r} has no IAM policy document")
    module, _, attr = spec.iam_policy.partition(":")
    build = getattr(importlib.import_module(module), attr)
    settings: dict[str, Any] = {}
    if profile is not None:
        from mlport import config as _config

        resolved = _config.resolve(profile, provider=None, overrides={})
        settings = resolved.profile.config.model_dump()
    accepted = inspect.signature(build).parameters
    typer.echo(
        json.dumps(
            build(**{k: v for k, v in settings.items() if k in accepted and v is not None}),
            indent=2,
        )
    )


@config_app.command("check")
def config_check(
    profile: Annotated[str | None, typer.Option(help="Profile to check.")] = None,
    portable: Annotated[
        bool, typer.Option("--portable", help="Warn about names another provider would refuse.")
    ] = False,
    names: Annotated[
        list[str] | None, typer.Option("--name", help="Resource names to check with --portable.")
    ] = None,
) -> None:
    """Validate mlport.toml and print the resolved profile with its routing (never secrets)."""
    from mlport import config

    resolved = config.resolve(profile)
    typer.echo(json.dumps(resolved.describe(), indent=2))
    if portable:
        from mlport.names import KINDS, refusals

        warned = False
        for name in names or []:
            for kind in KINDS:
                for provider, rule in refusals(name, kind).items():
                    warned = True
                    typer.echo(
                        f"warning: {kind} name {name!r} would be refused by {provider} "
                        f"(rule {rule.rule_id}: {rule.description})",
                        err=True,
                    )
        if not warned:
            typer.echo("portable: no provider would refuse the names given", err=True)


@compute_app.command("show")
def compute_show(
    cpus: Annotated[float | None, typer.Option(help="Minimum vCPUs.")] = None,
    memory_gb: Annotated[
        float | None, typer.Option("--memory-gb", help="Minimum memory, GiB.")
    ] = None,
    gpus: Annotated[int, typer.Option(help="Minimum GPUs.")] = 0,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="GPU model, e.g. T4.")] = None,
) -> None:
    """Print the instance type each provider resolves the request to, with its price."""
    from mlport.compute import CLOUD_CATALOGS, catalog, resolve
    from mlport.errors import InvalidSpecError
    from mlport.specs import Compute

    request = Compute(cpus=cpus, memory_gb=memory_gb, gpus=gpus, gpu_type=gpu_type)
    rows = []
    for provider in (*CLOUD_CATALOGS, "onprem"):
        table = catalog(provider)
        try:
            resolved = resolve(request, provider)
        except InvalidSpecError as exc:
            rows.append([provider, "-", "", "", "", "", str(exc)])
            continue
        row = resolved.row
        if row is None:
            rows.append([provider, resolved.instance_type or "this machine", "", "", "", "", ""])
            continue
        price = (
            f"${row.price_per_hour:.4f}/h" if row.price_per_hour is not None else "no price found"
        )
        where = f"{table.region} {table.prices_as_of}" if table.region else "this machine"
        rows.append(
            [
                provider,
                row.key if provider != "onprem" else "local",
                f"{row.vcpus:g}",
                f"{row.memory_gib:g}",
                f"{row.gpus}x {row.gpu_type}" if row.gpus else "-",
                price,
                where,
            ]
        )
    _table(
        f"cheapest match for {request.model_dump(exclude_defaults=True) or 'the default'}",
        ["provider", "type", "vCPU", "GiB", "GPU", "on-demand", "region / prices as of"],
        rows,
    )


@app.command("down")
def down(
    profile: Annotated[str | None, typer.Option(help="Profile whose processes to stop.")] = None,
) -> None:
    """Stop every local process mlport started for this profile (jobs, notebooks, servers)."""
    import mlport

    stopped = mlport.connect(profile=profile).down()
    for line in stopped:
        typer.echo(f"stopped {line}")
    typer.echo(f"{len(stopped)} process(es) stopped")


# -- endpoints


_Profile = Annotated[
    str | None, typer.Option(help="Profile of mlport.toml to use (default: as connect() picks).")
]


@contextmanager
def _connect(profile: str | None) -> Iterator[Connection]:
    import mlport

    connection = mlport.connect(profile=profile)
    try:
        yield connection
    finally:
        connection.close()


def _bad(message: str) -> Exception:
    """An error about a command-line value, printed as one line like every other error."""
    from mlport.errors import InvalidSpecError

    return InvalidSpecError(message)


def _traffic(endpoint: Endpoint) -> str:
    """``"1 (90%), 2 (10%)"``: each version on the endpoint with its share of traffic."""
    return ", ".join(f"{version} ({share:g}%)" for version, share in endpoint.variants.items())


def _version_choice(version: str | None, stage: str | None, what: str) -> str | None:
    """The version or stage to look up from --version/--stage (None: the latest)."""
    if version is not None and stage is not None:
        raise _bad(
            f"give --version or --stage, not both (--version {version} --stage {stage}); "
            f"without either the latest version is {what}"
        )
    if version is not None and not (version.isdigit() or version == "latest"):
        raise _bad(
            f"--version {version!r} is not a version number; give one such as --version 3, "
            f"or use --stage {version} for a stage or alias"
        )
    return stage if stage is not None else version


@endpoints_app.command("deploy")
def endpoints_deploy(  # noqa: PLR0917 - one parameter per command-line option
    name: Annotated[str, typer.Argument(help="Endpoint name (created, or updated if it exists).")],
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        str | None,
        typer.Option(help="Model version number to deploy (default: the latest version)."),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(help="Deploy the version holding this stage or alias, e.g. production."),
    ] = None,
    replicas: Annotated[
        int, typer.Option(min=1, help="Replicas (on-prem: server worker processes).")
    ] = 1,
    capture_percent: Annotated[
        float,
        typer.Option(
            "--capture-percent", min=0, max=100, help="Share of requests captured for monitoring."
        ),
    ] = 0.0,
    traffic_percent: Annotated[
        float | None,
        typer.Option(
            "--traffic-percent",
            min=0,
            max=100,
            help="Add the version beside the serving one as a canary taking this share of "
            "traffic (the endpoint must exist). Without it the new version replaces the old.",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds to wait for READY (default: no limit)."),
    ] = None,
    profile: _Profile = None,
) -> None:
    """Deploy a registered model version to an endpoint and wait until it is READY."""
    wanted = _version_choice(version, stage, "deployed")
    from mlport.errors import NotFoundError, WaitTimeoutError

    with _connect(profile) as ml:
        chosen = ml.registry.get(model, wanted)
        if traffic_percent is not None:
            try:
                ml.endpoints.get(name)
            except NotFoundError:
                raise _bad(
                    f"--traffic-percent adds a canary beside the serving version, but endpoint "
                    f"{name!r} does not exist yet; deploy a first version without "
                    "--traffic-percent"
                ) from None
        how = f" (stage {stage})" if stage is not None else ""
        typer.echo(
            f"deploying model {chosen.name} version {chosen.version}{how} to endpoint {name}",
            err=True,
        )
        try:
            endpoint = ml.endpoints.deploy(
                name,
                chosen,
                min_replicas=replicas,
                capture_percent=capture_percent,
                traffic_percent=traffic_percent,
                wait=True,
                timeout=timeout,
            )
        except WaitTimeoutError as exc:
            if timeout is None:
                raise
            raise WaitTimeoutError(
                f"endpoint {name} was not READY within --timeout {timeout:g}s; the deployment "
                "carries on: see its status with mlport endpoints list",
                resource=name,
            ) from exc
    typer.echo(f"name:     {endpoint.name}")
    typer.echo(f"status:   {endpoint.status.value}")
    if endpoint.model:
        typer.echo(f"model:    {endpoint.model}")
    typer.echo(f"versions: {_traffic(endpoint) or '-'}")
    if endpoint.url:
        typer.echo(f"url:      {endpoint.url}")


@endpoints_app.command("batch")
def endpoints_batch(  # noqa: PLR0917 - one parameter per command-line option
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    input: Annotated[
        str, typer.Argument(help="A CSV, JSON Lines or Parquet file, or a folder of them.")
    ],
    output: Annotated[str, typer.Argument(help="Folder the predictions are written to.")],
    version: Annotated[
        str | None,
        typer.Option(help="Model version number (default: the latest version)."),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(help="Use the version holding this stage or alias, e.g. production."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows predicted at a time.")
    ] = 1000,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Input column holding each row's id (not a feature)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the job to end (default).")
    ] = True,
    profile: _Profile = None,
) -> None:
    """Predict a model version over files in a batch job; prints the job and its output."""
    wanted = _version_choice(version, stage, "used")
    with _connect(profile) as ml:
        chosen = ml.registry.get(model, wanted)
        job = ml.endpoints.batch_predict(
            chosen, input=input, output=output, batch_size=batch_size, id_column=id_column
        )
        typer.echo(f"batch job {job.name}: model {chosen.name} version {chosen.version}", err=True)
        if wait:
            job.wait()
            rows = job.metrics.get("rows")
            typer.echo(
                f"batch job {job.name}: {job.status.value}"
                + (f", {rows:,.0f} rows" if rows is not None else "")
                + f", output {job.output_uri or output}"
            )
        else:
            typer.echo(f"batch job {job.name}: {job.status.value}")


@endpoints_app.command("list")
def endpoints_list(profile: _Profile = None) -> None:
    """List endpoints with their status and the versions they serve, with traffic shares."""
    with _connect(profile) as ml:
        endpoints = list(ml.endpoints.list())
    if not endpoints:
        typer.echo("no endpoints")
        return
    rows = [
        [e.name, e.status.value, e.model or "", _traffic(e) or "-", e.url or ""] for e in endpoints
    ]
    _table("endpoints", ["name", "status", "model", "versions (traffic)", "url"], rows)


@endpoints_app.command("delete")
def endpoints_delete(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    profile: _Profile = None,
) -> None:
    """Delete an endpoint and what was created for it (its server). Idempotent."""
    from mlport.errors import NotFoundError

    with _connect(profile) as ml:
        try:
            ml.endpoints.get(name)
        except NotFoundError:
            typer.echo(f"endpoint {name}: not found, nothing to do")
            return
        ml.endpoints.delete(name)
    typer.echo(f"endpoint {name}: deleted")


def _rows_from_json(text: str, where: str) -> list[Any]:
    example = 'e.g. [[1, 2], [3, 4]] or {"instances": [[1, 2]]}'
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _bad(f"{where} is not valid JSON ({exc}); give a list of rows, {example}") from None
    if isinstance(value, dict):
        if "instances" not in value:
            raise _bad(
                f'{where} holds a JSON object without "instances"; give a list of rows, '
                f"{example} (a single row of named features goes in a list: [{{...}}])"
            )
        value = value["instances"]
    if not isinstance(value, list):
        raise _bad(f"{where} holds {type(value).__name__}, not a list of rows; {example}")
    if value and not any(isinstance(row, list | dict) for row in value):
        raise _bad(f"{where} holds a single row; wrap it in a list: [{json.dumps(value)}]")
    return value


def _rows_from_csv(text: str, where: str) -> tuple[list[Any], bool]:
    """Rows of a CSV text, and whether its first line was a header (rows are then objects)."""
    import csv
    import io

    from mlport.serving.formats import cell_value, is_number

    lines = [line for line in csv.reader(io.StringIO(text), strict=True) if line]
    if not lines:
        return [], False
    columns: list[str] | None = None
    if not any(is_number(cell) for cell in lines[0]):
        columns = [cell.strip() for cell in lines[0]]
        lines = lines[1:]
    width = len(columns) if columns is not None else len(lines[0]) if lines else 0
    rows: list[Any] = []
    for number, line in enumerate(lines, start=2 if columns is not None else 1):
        if len(line) != width:
            raise _bad(
                f"{where}: CSV row {number} has {len(line)} values where the "
                f"{'header' if columns is not None else 'first row'} has {width}; every row "
                "needs the same number of values"
            )
        values = [cell_value(cell) for cell in line]
        rows.append(dict(zip(columns, values, strict=True)) if columns is not None else values)
    return rows, columns is not None


def _read_rows(rows_json: str | None, file: str | None) -> tuple[list[Any], str, bool]:
    """The rows to predict, where they came from, and whether they came with a CSV header."""
    if rows_json is not None and file is not None:
        raise _bad("give the rows with --json or with --file, not both")
    if rows_json is None and file is None:
        raise _bad(
            "no rows to predict: give --json '[[1, 2]]', or --file with a JSON or CSV file "
            "(--file - reads stdin)"
        )
    header = False
    if rows_json is not None:
        where = "--json"
        rows = _rows_from_json(rows_json, where)
    else:
        assert file is not None
        from pathlib import Path

        if file == "-":
            where, text, suffix = "--file - (stdin)", sys.stdin.read(), ""
        else:
            path = Path(file).expanduser()
            where = f"--file {file}"
            if not path.is_file():
                raise _bad(f"{where}: no such file; give a JSON or CSV file, or - for stdin")
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise _bad(f"{where} cannot be read as UTF-8 text: {exc}") from None
            suffix = path.suffix.lower()
        is_json = suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{"))
        if is_json:
            rows = _rows_from_json(text, where)
        else:
            import csv

            try:
                rows, header = _rows_from_csv(text, where)
            except csv.Error as exc:
                raise _bad(f"{where} cannot be read as CSV: {exc}") from None
    if not rows:
        raise _bad(f"{where} holds no rows; give at least one, e.g. [[1, 2]]")
    return rows, where, header


@endpoints_app.command("predict")
def endpoints_predict(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    rows_json: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="Rows as JSON: a list of rows, e.g. '[[1, 2], [3, 4]]', or {\"instances\": [...]}.",
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="Rows from a JSON file (as --json), a CSV file (first line a header when none "
            "of its cells is a number), or - for stdin.",
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(help="Send every row to this model version instead of following traffic."),
    ] = None,
    profile: _Profile = None,
) -> None:
    """Send rows to an endpoint; prints the predictions as one line of JSON."""
    rows, where, header = _read_rows(rows_json, file)
    from mlport.errors import InvalidSpecError

    with _connect(profile) as ml:
        try:
            predictions = ml.endpoints.predict(name, rows, variant=variant)
        except InvalidSpecError as exc:
            if header:
                raise _bad(
                    f"{exc}; note: the first line of {where} was read as a header, so the rows "
                    "were sent as feature -> value objects; for a model without feature names, "
                    "remove the header line"
                ) from exc
            raise
    typer.echo(json.dumps(predictions))


@endpoints_app.command("logs")
def endpoints_logs(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    tail: Annotated[int | None, typer.Option(min=1, help="Print only the last N lines.")] = None,
    profile: _Profile = None,
) -> None:
    """Print the endpoint's serving log."""
    from collections import deque

    with _connect(profile) as ml:
        lines = ml.endpoints.logs(name)
        for line in deque(lines, maxlen=tail) if tail is not None else lines:
            typer.echo(line.rstrip("\n"))


# -- monitors


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _show_report(report: DriftReport) -> None:
    """The report's window, its per-feature table and verdict on stdout."""
    start = report.window_start.isoformat(timespec="seconds") if report.window_start else "?"
    end = report.window_end.isoformat(timespec="seconds") if report.window_end else "?"
    typer.echo(
        f"endpoint {report.endpoint}: window {start} to {end}, {report.current_size:,} rows "
        f"(baseline {report.reference_size:,})"
    )
    if report.features:
        rows = [
            [
                f.feature,
                f.kind,
                f.statistic,
                _number(f.value),
                _number(f.threshold),
                _number(f.p_value),
                "DRIFT" if f.drifted else "no",
                f"{f.reference_size:,}",
                f"{f.current_size:,}",
            ]
            for f in report.features
        ]
        from mlport.monitoring.report_page import TABLE_COLUMNS

        _table("features", list(TABLE_COLUMNS), rows)
        drifted = report.drifted_features
        typer.echo(f"drifted: {', '.join(drifted)}" if drifted else "no drift")
    if report.message:
        typer.echo(report.message)
    if report.alert:
        typer.echo(f"alert: {report.alert}")
    if report.report_uri:
        typer.echo(f"report: {report.report_uri}")


def _write_html(report: DriftReport, path: str) -> None:
    from pathlib import Path

    target = Path(path)
    target.write_text(report.to_html(), encoding="utf-8")
    typer.echo(f"wrote {target}", err=True)


_Html = Annotated[
    str | None, typer.Option("--html", help="Also write the report as a self-contained HTML page.")
]


@monitor_app.command("run")
def monitor_run(
    endpoint: Annotated[str, typer.Argument(help="The monitored endpoint.")],
    html: _Html = None,
    profile: _Profile = None,
) -> None:
    """Run the endpoint's monitor now and print the drift of each feature.

    The run reads the requests captured since the monitor's last run.
    """
    with _connect(profile) as ml:
        report = ml.monitoring.run(endpoint)
    _show_report(report)
    if html:
        _write_html(report, html)


@monitor_app.command("report")
def monitor_report(
    endpoint: Annotated[str, typer.Argument(help="The monitored endpoint.")],
    html: _Html = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    profile: _Profile = None,
) -> None:
    """Show the latest report of the endpoint's monitor."""
    from mlport.errors import NotFoundError

    with _connect(profile) as ml:
        report = next(iter(ml.monitoring.reports(endpoint)), None)
    if report is None:
        raise NotFoundError(
            f"endpoint {endpoint!r} has no drift report yet; run its monitor with: "
            f"mlport monitor run {endpoint}",
            resource=endpoint,
        )
    if as_json:
        typer.echo(report.to_json())
    else:
        _show_report(report)
    if html:
        _write_html(report, html)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the app, turning errors into one line and exit status 2.

    Usage errors (unknown option, bad value) are reported by typer, also with status 2.
    """
    try:
        return app(args=argv)
    except Exception as exc:
        from mlport.errors import MlportError

        if _state["debug"]:
            traceback.print_exc()
        if isinstance(exc, MlportError):
            typer.echo(f"error: {exc}", err=True)
        else:
            typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
