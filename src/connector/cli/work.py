"""``connector work --queue spotler|afas``: a worker process (see ``workers.launcher``)."""

from __future__ import annotations

import sys

import click

from connector.cli.context import AppContext
from connector.errors import ConfigError

__all__ = ["work"]


@click.command("work")
@click.option(
    "--queue", "queues", multiple=True, required=True, metavar="QUEUE",
    help="queue to consume: spotler or afas (repeatable)",
)
@click.option(
    "--threads", type=click.IntRange(1, 64), default=4, show_default=True,
    help="worker threads in this process",
)
@click.option(
    "--import", "modules", multiple=True, metavar="MODULE",
    help="an extra module of actors to import (repeatable)",
)
@click.pass_obj
def work(app: AppContext, queues: tuple[str, ...], threads: int, modules: tuple[str, ...]) -> None:
    """Process messages until SIGTERM/SIGINT, then finish in-flight work and exit."""
    from connector.workers.launcher import (
        ACTOR_MODULES,
        Launcher,
        import_actor_modules,
        install_log_redaction,
    )

    install_log_redaction()
    import_actor_modules((*ACTOR_MODULES, *modules))
    try:
        code = Launcher(app.broker, queues, threads=threads).run()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)

