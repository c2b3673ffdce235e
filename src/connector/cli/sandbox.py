"""``connector sandbox afas|spotler``: run a simulator in the foreground.

On a loopback address (the default) the control API under ``/_sandbox/`` is
open; any other address needs ``--control-token`` (or SANDBOX_CONTROL_TOKEN),
which the control API then requires as ``Authorization: Bearer``. The AFAS
sandbox makes a GetConnector page wait for its skip, as Profit does
(``--skip-ms-per-100k``; 0 turns that off).
"""

from __future__ import annotations

import click

from connector.errors import ConfigError
from connector.sandbox.afas.skip_cost import DEFAULT_MS_PER_100K
from connector.sandbox.guard import CONTROL_TOKEN_ENV, MAX_CONTACTS, check_bind
from connector.sandbox.server import serve

__all__ = ["sandbox"]

_CONTROL_TOKEN = click.option(
    "--control-token", envvar=CONTROL_TOKEN_ENV, default=None, show_envvar=True,
    help="bearer token the control API (/_sandbox/...) requires; needed to bind a non-loopback --host",
)


def _bindable(host: str, control_token: str | None) -> None:
    try:
        check_bind(host, control_token)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _announce(name: str, url: str, control_token: str | None) -> None:
    click.echo(f"{name} sandbox: {url}", err=True)
    if control_token:
        click.echo(f"{name} sandbox: the control API requires Authorization: Bearer ({CONTROL_TOKEN_ENV})", err=True)


@click.group()
def sandbox() -> None:
    """Run a local simulator of AFAS Profit or Spotler Mail+."""


@sandbox.command("afas")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8701, show_default=True)
@click.option("--contacts", type=click.IntRange(0, MAX_CONTACTS), default=1000, show_default=True,
              help="GetConnector rows to seed")
@click.option("--seed", type=int, default=1, show_default=True, help="seed of the generated data")
@click.option("--token", default=None, help="the accepted token XML (default: the sandbox token)")
@click.option("--skip-ms-per-100k", type=click.FloatRange(min=0), default=DEFAULT_MS_PER_100K, show_default=True,
              help="deep-skip model: ms a GetConnector page waits per 100,000 rows skipped (0: off)")
@_CONTROL_TOKEN
def afas(
    host: str, port: int, contacts: int, seed: int, token: str | None, skip_ms_per_100k: float,
    control_token: str | None,
) -> None:
    """AFAS Profit REST (GetConnector, metainfo, KnContact/KnPerson/KnOrganisation)."""
    from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app
    from connector.sandbox.afas.skip_cost import SkipCost

    _bindable(host, control_token)  # before seeding: refusing takes no time
    app = create_app(contacts=contacts, seed=seed, token=token or DEFAULT_TOKEN, control_token=control_token,
                     skip_cost=SkipCost(ms_per_100k=skip_ms_per_100k))
    _announce("AFAS", f"AFAS_BASE_URL=http://{host}:{port}/ProfitRestServices", control_token)
    state = f"{skip_ms_per_100k:g} ms per 100,000 rows skipped" if skip_ms_per_100k else "off"
    click.echo(f"AFAS sandbox: deep-skip model {state}", err=True)
    serve(app, host, port)


@sandbox.command("spotler")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8702, show_default=True)
@click.option("--key", default=None, help="accepted consumer key (default: the sandbox key)")
@click.option("--secret", default=None, help="accepted consumer secret (default: the sandbox secret)")
@_CONTROL_TOKEN
def spotler(host: str, port: int, key: str | None, secret: str | None, control_token: str | None) -> None:
    """Spotler Mail+ REST (contacts, bulk upsert, change and bounce feeds)."""
    from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app

    _bindable(host, control_token)
    app = create_app(key=key or DEFAULT_KEY, secret=secret or DEFAULT_SECRET, control_token=control_token)
    _announce("Spotler", f"SPOTLER_BASE_URL=http://{host}:{port}/integrationservice-1.1.0", control_token)
    serve(app, host, port)
