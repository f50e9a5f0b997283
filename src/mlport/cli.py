"""The ``mlport`` command.

Errors print one clear line and exit 2; ``--debug`` shows the traceback. Heavy modules are imported
inside each command so that ``mlport --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Annotated, Any

import typer

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
app.add_typer(providers_app, name="providers")
app.add_typer(config_app, name="config")
app.add_typer(compute_app, name="compute")

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
def providers_show(name: str) -> None:
    """Show a provider's profile keys (its config JSON schema) and capability table."""
    from mlport import providers
    from mlport.capabilities import FEATURES

    spec = providers.get(name)
    schema = spec.config_model.model_json_schema()
    typer.echo(json.dumps(schema, indent=2))
    lacking = {f: spec.unsupported[f] for f in FEATURES if f in spec.unsupported}
    typer.echo(
        f"\nunsupported features of {name}: "
        + (json.dumps(lacking, indent=2) if lacking else "none")
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
