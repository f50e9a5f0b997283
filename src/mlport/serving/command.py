"""``mlport serve MODEL_DIR``: serve one model package as variant "1".

Imported by :mod:`mlport.cli`, so it imports nothing heavy until the command runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["serve_command"]

_Hosting = Literal["auto", "none", "sagemaker", "vertex", "azureml"]


def _token_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    candidates = [Path(runtime) / "mlport"] if runtime else []
    candidates += [Path.home() / ".mlport" / "serve", Path(tempfile.gettempdir()) / "mlport-serve"]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.mkdtemp(prefix="mlport-serve-"))


def _new_token_file(endpoint: str) -> Path:
    path = _token_dir() / f"{endpoint}-{os.getpid()}.token"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    return path


def serve_command(  # noqa: PLR0917 - one parameter per command-line option
    model_dir: Annotated[
        Path | None,
        typer.Argument(
            help="The model package directory (default under a cloud's hosting contract: where "
            "the platform put the model, e.g. /opt/ml/model).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0: any free port).")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, envvar="MLPORT_WORKERS", help="Worker processes.")
    ] = 1,
    endpoint: Annotated[
        str, typer.Option(help="Endpoint name (the V2 model name, the capture folder).")
    ] = "model",
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File (mode 0600) holding the bearer token; generated when not given.",
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without a token (trusted networks only).")
    ] = False,
    ready_file: Annotated[
        Path | None,
        typer.Option("--ready-file", help='Write {"port": ..., "pid": ...} here once listening.'),
    ] = None,
    status_file: Annotated[
        Path | None, typer.Option("--status-file", help="Keep the server's status in this file.")
    ] = None,
    capture_dir: Annotated[
        Path | None, typer.Option("--capture-dir", help="Write captured requests under here.")
    ] = None,
    capture_percent: Annotated[
        float,
        typer.Option("--capture-percent", min=0, max=100, help="Share of requests to capture."),
    ] = 0.0,
    manifest_sha256: Annotated[
        str | None,
        typer.Option(
            "--manifest-sha256",
            envvar="MLPORT_MANIFEST_SHA256",
            help="The package manifest's registered sha256 (cloud deploys set it in the "
            "container's environment).",
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Load a package whose hashes cannot be checked."),
    ] = False,
    hosting: Annotated[
        str,
        typer.Option(
            help="Hosting contract: auto (from the environment), none, sagemaker, "
            "vertex or azureml."
        ),
    ] = "auto",
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = (
        "info"
    ),
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    predict_timeout: Annotated[
        float,
        typer.Option(
            "--predict-timeout",
            min=0.001,
            max=86_400,
            help="Seconds a prediction may take; past it the request is answered 504 and the "
            "worker process replaced.",
        ),
    ] = 60.0,
) -> None:
    """Serve a model package with the routes of every cloud and the V2 protocol.

    SageMaker (/ping, /invocations), Vertex AI (/health, /predict or its AIP_* routes), Azure ML
    (/, /score) and the Open Inference Protocol (/v2/...), as variant "1". Blocks until SIGTERM
    or Ctrl+C.
    """
    from mlport.errors import ConfigError
    from mlport.serving import hosting as hosting_module
    from mlport.serving.config import CaptureConfig, ServerConfig, VariantConfig
    from mlport.serving.server import configure_logging, serve

    if hosting not in ("auto", "none", "sagemaker", "vertex", "azureml"):
        raise ConfigError(f"--hosting {hosting!r}: use auto, none, sagemaker, vertex or azureml")
    contract = hosting_module.detect(name=None if hosting == "auto" else hosting)  # type: ignore[arg-type]
    if model_dir is None:
        if contract is None or contract.model_dir is None:
            raise ConfigError(
                "give the model package directory (mlport serve MODEL_DIR); only a cloud's "
                "hosting contract tells where the model is"
            )
        model_dir = Path(contract.model_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", endpoint):
        raise ConfigError(f"--endpoint {endpoint!r}: letters, digits, '.', '_' or '-' only")
    from pydantic import ValidationError

    generated: Path | None = None
    if contract is None and token_file is None and not no_auth:
        generated = token_file = _new_token_file(endpoint)
    try:
        config = ServerConfig(
            endpoint=endpoint,
            host=host,
            port=port,
            workers=workers,
            token_file=str(token_file.resolve()) if token_file is not None else None,
            no_auth=no_auth,
            variants={
                "1": VariantConfig(
                    path=str(model_dir.resolve()), manifest_sha256=manifest_sha256, trust=trust
                )
            },
            capture=CaptureConfig(
                percent=capture_percent,
                dir=str(capture_dir.resolve()) if capture_dir is not None else None,
            ),
            ready_file=str(ready_file.resolve()) if ready_file is not None else None,
            status_file=str(status_file.resolve()) if status_file is not None else None,
            hosting=hosting,  # type: ignore[arg-type]
            log_level=log_level.lower(),  # type: ignore[arg-type]
            access_log=access_log,
            predict_timeout_seconds=predict_timeout,
        )
    except ValidationError as exc:
        if generated is not None:
            generated.unlink()
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"mlport serve: {problems}") from None
    configure_logging(config.log_level)

    def announce(url: str) -> None:
        typer.echo(f"serving {model_dir} as {endpoint!r} at {url}")
        if config.token_file is not None and contract is None:
            typer.echo(f"bearer token in {config.token_file}")
        elif contract is not None:
            typer.echo(f"following the {contract.name} hosting contract: no token required")
        else:
            typer.echo("no authentication (--no-auth)")

    try:
        code = serve(config, on_ready=announce)
    finally:
        if generated is not None:
            with contextlib.suppress(OSError):
                generated.unlink()
    if code:
        raise typer.Exit(code)
