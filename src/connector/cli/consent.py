"""``connector consent``: the consent audit trail for a privacy officer (``connector.state.consent``).

``connector consent CONTACT_ID [--json]`` shows one contact's timeline, oldest
first; ``connector consent export --since DATE [--format csv|json]`` writes
every record applied since DATE (``YYYY-MM-DD`` or an ISO time; UTC unless it
says otherwise) to stdout. CSV columns, in order: ``contact_id, kind, field,
bit, old, new, source, source_stamp, source_time, target, applied_at,
applied_time, result`` (stamps in epoch ms, times in ISO 8601 UTC, empty for
unknown). JSON: a list of the same fields per record. All output goes through
the redaction policy, though a record holds ids, booleans and times only.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import click
import msgspec

from connector.cli.context import AppContext
from connector.redaction import redact
from connector.state.consent import ConsentRecord, ConsentTrail

__all__ = ["COLUMNS", "consent"]

COLUMNS = ("contact_id", "kind", "field", "bit", "old", "new", "source", "source_stamp", "source_time", "target",
           "applied_at", "applied_time", "result")


def _iso(ms: int) -> str:
    if ms <= 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row(record: ConsentRecord) -> dict[str, Any]:
    data = msgspec.to_builtins(record)
    data["source_time"] = _iso(record.source_stamp)
    data["applied_time"] = _iso(record.applied_at)
    return {c: data[c] for c in COLUMNS}


def _trail(app: AppContext) -> ConsentTrail:
    return ConsentTrail(app.redis, retention_s=app.settings.consent_retention_days * 86400)


def _since_ms(text: str) -> int:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is no date (YYYY-MM-DD or an ISO time)", param_hint="--since") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _csv(records: list[ConsentRecord]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else str(v).lower() if isinstance(v, bool) else v
                         for k, v in _row(record).items()})
    return out.getvalue()


def _line(r: ConsentRecord) -> str:
    old = "?" if r.old is None else "yes" if r.old else "no"
    return (f"{_iso(r.applied_at)}  {r.kind:<11} {r.field:<16} {old:>3} -> {'yes' if r.new else 'no':<3}  "
            f"from {r.source} ({_iso(r.source_stamp) or 'no stamp'}) to {r.target}: {r.result}")


class _ContactOrCommand(click.Group):
    """``consent CONTACT_ID`` is ``consent show CONTACT_ID``; ``consent export …`` the export."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ContactOrCommand)
def consent() -> None:
    """The consent audit trail: `consent CONTACT_ID [--json]`, `consent export --since DATE [--format csv|json]`."""


@consent.command()
@click.argument("contact_id")
@click.option("--json", "as_json", is_flag=True, help="the records as JSON")
@click.pass_obj
def show(app: AppContext, contact_id: str, as_json: bool) -> None:
    """One contact's consent changes as the link applied them, oldest first."""
    records = _trail(app).timeline(contact_id.strip())
    if as_json:
        click.echo(redact(json.dumps([_row(r) for r in records], indent=2)))
        return
    if not records:
        click.echo(redact(f"no consent records for contact {contact_id} (kept {app.settings.consent_retention_days:g}"
                          " days: CONSENT_RETENTION_DAYS)"))
        return
    click.echo(redact(f"contact {contact_id}: {len(records)} consent record(s)"))
    for record in records:
        click.echo(redact(_line(record)))


@consent.command()
@click.option("--since", "since", required=True, help="records applied at or after this date (YYYY-MM-DD, ISO time)")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.pass_obj
def export(app: AppContext, since: str, fmt: str) -> None:
    """Every contact's consent records applied since --since, by time, to stdout."""
    records = _trail(app).since(_since_ms(since))
    text = json.dumps([_row(r) for r in records], indent=2) if fmt == "json" else _csv(records)
    click.echo(redact(text), nl=fmt == "json")
