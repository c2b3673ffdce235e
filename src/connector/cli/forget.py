"""``connector forget CONTACT_ID…``: erase what the link holds about a person (GDPR erasure).

The erasure itself is ``connector.state.forget.erase``; this command checks
first that AFAS no longer lists the contacts (looked up by id in the
GetConnector, as a full pass confirms a deletion), asks for confirmation and
reports what was removed, ids and counts only.

The link does not delete the person from Spotler: Spotler has no delete, and
anonymizing is the operator's decision. Erase the person in AFAS first, run
this command, then anonymize the contact in Spotler Mail+ (its contact page,
or ``PUT contact/anonymize/{externalId}``); the link ignores that change,
the contact being forgotten.
"""

from __future__ import annotations

import json

import click
import msgspec

from connector import runtime
from connector.cli.context import AppContext
from connector.errors import ConnectorError

__all__ = ["forget"]


def _still_listed(app: AppContext, contact_ids: list[str]) -> list[str]:
    settings = app.settings
    try:
        settings.require("AFAS_BASE_URL", "AFAS_TOKEN")
        mapping = runtime.mapping(settings)
        with runtime.afas_client(settings, app.redis) as afas:
            found = afas.rows_by_ids(settings.afas_getconnector, key=mapping.keys.contact_id, ids=contact_ids)
    except ConnectorError as exc:
        raise click.ClickException(f"cannot check AFAS (nothing was erased): {exc}; --force skips the check") from None
    return [cid for cid in contact_ids if cid in found]


@click.command()
@click.argument("contact_ids", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="forget even contacts AFAS still lists (no AFAS lookup)")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
@click.pass_obj
def forget(app: AppContext, contact_ids: tuple[str, ...], force: bool, yes: bool, as_json: bool) -> None:
    """Erase the link's data about these contacts, keeping only a tombstone (id and time).

    Removes their agreed state, pending changes, rejections, conflicts, dead
    letters, bounce markers, consent trail and journal from Redis. A contact AFAS still lists is
    refused (erase it in AFAS first, or --force: it is then not synced while
    the tombstone lasts, 30 days). Spotler is not touched: anonymize the
    contact there yourself.
    """
    from connector.state.forget import erase
    from connector.workers.broker import QUEUES
    from connector.workers.dead_letters import adopt_broker_dead_letters
    from connector.workers.middleware import policy_of

    ids = list(dict.fromkeys(c.strip() for c in contact_ids if c.strip()))
    if not ids:
        raise click.UsageError("give at least one ContactId")
    if not force:
        listed = _still_listed(app, ids)
        if listed:
            raise click.ClickException(
                f"AFAS still lists contact(s) {', '.join(listed)}: erase them in AFAS first "
                "(or --force to forget them here anyway); nothing was erased"
            )
    if not yes:
        click.confirm(f"Forget {len(ids)} contact(s) ({', '.join(ids)}): erase their data in the link's Redis?",
                      abort=True, err=True)
    broker = app.broker
    store = policy_of(broker).store
    # Dramatiq's own dead letters may name the contacts too: take them over, then erase.
    adopt_broker_dead_letters(broker, store, set(QUEUES) | broker.get_declared_queues())
    report = erase(app.redis, ids, dead_letters=store)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
        return
    click.echo(
        f"forgot {len(report.contacts)} contact(s): {report.agreed_state} agreed state(s), "
        f"{report.rejections} rejection(s), {report.conflicts} conflict(s), {report.dead_letters} dead letter(s), "
        f"{report.bounce_markers} bounce marker(s), {report.departed} departure(s), "
        f"{report.consent_records} consent record(s), {report.journal} journal(s) removed; tombstones kept"
    )
    click.echo("Spotler still holds these contacts: anonymize them there (Spotler has no delete).")
