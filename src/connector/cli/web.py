"""``connector web``: /healthz, the status page, /status.json and /metrics on $PORT."""

from __future__ import annotations

import click

from connector.cli.context import AppContext

__all__ = ["web"]


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="address to bind")
@click.option("--port", type=click.IntRange(1, 65535), help="port to bind [default: PORT, else 8000]")
@click.pass_obj
def web(app: AppContext, host: str, port: int | None) -> None:
    """Serve the status page (STATUS_TOKEN protects all but /healthz) until SIGTERM."""
    import uvicorn

    from connector.web.app import create_app

    if not app.settings.status_token:
        click.echo("web: STATUS_TOKEN is not set: /, /status.json and /metrics answer 403", err=True)
    # No access log: an old bookmark's ?token= (answered with a redirect) must not reach a log line.
    # No logging config of uvicorn's own: its lines (tracebacks included) go to the root handlers,
    # which redact them.
    uvicorn.run(
        create_app(app.settings), host=host, port=port or app.settings.port,
        log_level="warning", access_log=False, lifespan="off", proxy_headers=True, log_config=None,
    )
