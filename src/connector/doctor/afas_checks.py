"""AFAS checks against ``/metainfo``: the token, and what the App Connector grants."""

from __future__ import annotations

from connector.clients.afas import AfasClient
from connector.doctor.calls import attempt
from connector.doctor.report import Check, fail, ok
from connector.errors import AuthError, ConnectorError, RetriableError
from connector.schemas.afas import MetaInfo
from connector.schemas.mapping import UPDATE_CONNECTORS

__all__ = [
    "APP_CONNECTOR_MENU",
    "GETCONNECTOR_GRANTED",
    "GETCONNECTOR_MENU",
    "TOKEN",
    "UPDATE_GRANTED",
    "check_getconnector_granted",
    "check_token",
    "check_update_connectors",
]

TOKEN = "AFAS token"  # noqa: S105 (a check name)
GETCONNECTOR_GRANTED = "GetConnector granted"
UPDATE_GRANTED = "UpdateConnectors granted"

APP_CONNECTOR_MENU = "in AFAS (Algemeen > Connectoren > App connectoren)"
GETCONNECTOR_MENU = "in AFAS (Algemeen > Connectoren > GetConnectors)"
_LISTED = 10


def check_token(client: AfasClient) -> tuple[Check, MetaInfo | None]:
    """``GET /metainfo`` with the token: accepted, and which App Connector it belongs to."""
    try:
        meta = attempt(client.metainfo)
    except AuthError as exc:
        if exc.status == 403:
            return fail(
                TOKEN,
                "AFAS refused the call (HTTP 403): the App Connector has an IP restriction",
                f"allow this host's outgoing IP address on the App Connector {APP_CONNECTOR_MENU}",
            ), None
        return fail(
            TOKEN,
            f"token refused (HTTP {exc.status or '?'})",
            "set AFAS_TOKEN to the App Connector's token exactly as AFAS issued it (the whole "
            f"<token>…</token> XML), for this environment; check it was not withdrawn {APP_CONNECTOR_MENU}",
        ), None
    except RetriableError as exc:
        return fail(
            TOKEN, f"AFAS did not answer: {exc}", "check AFAS_BASE_URL and the network, then run doctor again"
        ), None
    except ConnectorError as exc:
        return fail(TOKEN, f"GET /metainfo failed: {exc}", "check AFAS_BASE_URL (…/ProfitRestServices)"), None
    app = f" for App Connector '{meta.info.appName}'" if meta.info and meta.info.appName else ""
    env = f", environment {meta.info.envid}" if meta.info and meta.info.envid else ""
    return ok(TOKEN, f"accepted{app}{env}"), meta


def _listing(ids: list[str]) -> str:
    shown = ", ".join(sorted(ids)[:_LISTED]) or "none"
    return shown + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


def check_getconnector_granted(meta: MetaInfo, connector_id: str) -> tuple[Check, str | None]:
    """The GetConnector exists and the token may read it; returns its id as AFAS spells it."""
    granted = [c.id for c in meta.getConnectors]
    if connector_id in granted:
        return ok(GETCONNECTOR_GRANTED, f"{connector_id} is granted to the token"), connector_id
    same = next((g for g in granted if g.lower() == connector_id.lower()), None)
    if same is not None:
        return ok(GETCONNECTOR_GRANTED, f"{same} is granted (AFAS_GETCONNECTOR spells it {connector_id})"), same
    return fail(
        GETCONNECTOR_GRANTED,
        f"GetConnector {connector_id} does not exist or is not granted to the token "
        f"(the token may use: {_listing(granted)})",
        f"add GetConnector {connector_id} to the App Connector {APP_CONNECTOR_MENU}, "
        "or set AFAS_GETCONNECTOR to the id of the contacts GetConnector",
    ), None


def check_update_connectors(meta: MetaInfo) -> Check:
    """KnContact, KnPerson and KnOrganisation are all granted."""
    granted = meta.update_connector_ids
    missing = [c for c in UPDATE_CONNECTORS if c not in granted]
    if missing:
        return fail(
            UPDATE_GRANTED,
            "not granted to the token: " + ", ".join(missing),
            f"grant UpdateConnector{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"to the App Connector {APP_CONNECTOR_MENU}",
        )
    return ok(UPDATE_GRANTED, ", ".join(UPDATE_CONNECTORS))
