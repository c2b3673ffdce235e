"""``connector sandbox afas|spotler``: run a simulator in the foreground."""

from __future__ import annotations

import click

from connector.sandbox.server import serve

__all__ = ["sandbox"]


@click.group()
def sandbox() -> None:
    """Run a local simulator of AFAS Profit or Spotler Mail+."""


@sandbox.command("afas")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8701, show_default=True)
@click.option("--contacts", type=int, default=1000, show_default=True, help="GetConnector rows to seed")
@click.option("--seed", type=int, default=1, show_default=True, help="seed of the generated data")
@click.option("--token", default=None, help="the accepted token XML (default: the sandbox token)")
def afas(host: str, port: int, contacts: int, seed: int, token: str | None) -> None:
    """AFAS Profit REST (GetConnector, metainfo, KnContact/KnPerson/KnOrganisation)."""
    from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app

    app = create_app(contacts=contacts, seed=seed, token=token or DEFAULT_TOKEN)
    click.echo(f"AFAS sandbox: AFAS_BASE_URL=http://{host}:{port}/ProfitRestServices", err=True)
    serve(app, host, port)


@sandbox.command("spotler")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8702, show_default=True)
@click.option("--key", default=None, help="accepted consumer key (default: the sandbox key)")
@click.option("--secret", default=None, help="accepted consumer secret (default: the sandbox secret)")
def spotler(host: str, port: int, key: str | None, secret: str | None) -> None:
    """Spotler Mail+ REST (contacts, bulk upsert, change and bounce feeds)."""
    from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app

    app = create_app(key=key or DEFAULT_KEY, secret=secret or DEFAULT_SECRET)
    click.echo(
        f"Spotler sandbox: SPOTLER_BASE_URL=http://{host}:{port}/integrationservice-1.1.0", err=True
    )
    serve(app, host, port)
