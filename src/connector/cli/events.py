"""``connector publish-events``: drain the event outbox to EVENTS_URL (the Procfile's ``events`` process)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from connector import runtime
from connector.cli.context import AppContext
from connector.redaction import redact

__all__ = ["publish_events"]

POLL_S = 0.5  # an event waits at most about this long in the outbox while the bus is up


@click.command("publish-events")
@click.option("--once", is_flag=True, help="publish what the outbox holds now, then exit")
@click.option("--no-wait", is_flag=True, help="exit 3 when another publisher holds the lease")
@click.pass_obj
def publish_events(app: AppContext, once: bool, no_wait: bool) -> None:
    """Publish the link's events from the Redis outbox to EVENTS_URL, in order, at least once."""
    from connector.events.publisher import Publisher
    from connector.producers.loop import ProducerLock, run_loop

    url = app.settings.events_url
    if not url:
        click.echo("publish-events: EVENTS_URL is not set: no events are recorded; idling until stopped", err=True)
        if not once:
            _idle()
        return
    client = runtime.redis_client(app.settings)
    publisher = Publisher(client, url)
    click.echo(f"publish-events: publishing to {redact(url)}", err=True)
    try:
        code = run_loop(publisher.poll, ProducerLock(client, "events"), interval_s=POLL_S,
                        wait_for_lock=not no_wait, max_polls=1 if once else None)
    finally:
        publisher.close()
    if code:
        raise SystemExit(code)


def _idle() -> None:
    """Wait for SIGTERM/SIGINT: a process type that exited would be restarted by the platform, again and again."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(3600):
        pass
