"""Run every check in order; a check whose prerequisite failed is skipped, saying which."""

from __future__ import annotations

from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.doctor import afas_checks as afas
from connector.doctor import config_checks as config
from connector.doctor import mapping_checks as columns
from connector.doctor import spotler_checks as spotler
from connector.doctor import writeback_checks as writeback
from connector.doctor.calls import attempt
from connector.doctor.report import Check, fail, scrub, skip
from connector.doctor.sample import SAMPLE, check_sample
from connector.errors import ConnectorError
from connector.schemas.afas import GetConnectorMeta, MetaInfo
from connector.schemas.mapping import UPDATE_CONNECTORS, Mapping
from connector.settings import Settings

__all__ = ["DEFAULT_SAMPLE", "run_doctor"]

DEFAULT_SAMPLE = 1000
_NO_MAPPING = "the mapping file did not load"

# Every check after the URL, in the order they run; skipped together when a prerequisite fails.
_AFAS_NAMES = (
    afas.TOKEN,
    afas.GETCONNECTOR_GRANTED,
    columns.KEYS,
    columns.COLUMNS,
    columns.NEWSLETTER,
    afas.UPDATE_GRANTED,
    writeback.TARGETS,
    writeback.BOUNCE,
    SAMPLE,
)
_COLUMN_NAMES = (columns.KEYS, columns.COLUMNS, columns.NEWSLETTER)
_SPOTLER_NAMES = (spotler.CREDENTIALS, spotler.PROPERTIES, spotler.PERMISSION_BITS)


def run_doctor(settings: Settings, *, sample: int = DEFAULT_SAMPLE) -> list[Check]:
    """Every check, in order, with secrets and e-mail addresses masked in the texts."""
    afas_settings = config.check_afas_settings(settings)
    spotler_settings = config.check_spotler_settings(settings)
    sandbox = config.is_sandbox_url(settings.afas_base_url or "")
    mapping_check, mapping = config.check_mapping(settings.mapping_path, sandbox=sandbox)
    checks = [afas_settings, spotler_settings, mapping_check]
    checks += _afas(settings, mapping, sample, settings_ok=afas_settings.status == "ok")
    checks += _spotler(settings, mapping, settings_ok=spotler_settings.status == "ok")
    secrets = [s.reveal() for s in (settings.afas_token, settings.spotler_secret) if s]
    return scrub(checks, [*secrets, settings.spotler_key or ""])


def _afas(settings: Settings, mapping: Mapping | None, sample: int, *, settings_ok: bool) -> list[Check]:
    url = config.check_afas_url(settings.afas_base_url)
    if not settings_ok:
        return [url, *_skipped(_AFAS_NAMES, "AFAS settings are missing")]
    if url.status == "fail":  # the token is not sent to an address that is not AFAS's
        return [url, *_skipped(_AFAS_NAMES, "the AFAS URL is not AFAS Online")]
    assert settings.afas_base_url is not None
    assert settings.afas_token is not None
    with AfasClient(settings.afas_base_url, settings.afas_token, timeout=settings.http_timeout_s) as client:
        token, meta = afas.check_token(client)
        if meta is None:
            return [url, token, *_skipped(_AFAS_NAMES[1:], "the AFAS token was not accepted")]
        return [url, token, *_afas_with_token(client, meta, settings.afas_getconnector, mapping, sample)]


def _skipped(names: tuple[str, ...], why: str) -> list[Check]:
    return [skip(name, why) for name in names]


def _afas_with_token(
    client: AfasClient, meta: MetaInfo, connector_id: str, mapping: Mapping | None, sample: int
) -> list[Check]:
    granted, found_id = afas.check_getconnector_granted(meta, connector_id)
    checks = [granted]
    readable: GetConnectorMeta | None = None
    if found_id is None:
        checks += _skipped(_COLUMN_NAMES, "the GetConnector is not granted")
    elif mapping is None:
        checks += _skipped(_COLUMN_NAMES, _NO_MAPPING)
    else:
        column_checks, get_meta = _getconnector(client, found_id, mapping)
        checks += column_checks
        readable = get_meta if column_checks[0].status == "ok" else None
    checks.append(afas.check_update_connectors(meta))
    if mapping is None:
        checks += _skipped((writeback.TARGETS, writeback.BOUNCE), _NO_MAPPING)
    else:
        wanted = {f.target.connector for f in mapping.fields if f.target is not None}
        if mapping.bounce.writeback:
            wanted.add(mapping.bounce.writeback.partition(".")[0])
        metas = writeback.read_update_metas(
            client, [c for c in UPDATE_CONNECTORS if c in wanted], meta.update_connector_ids
        )
        checks += [writeback.check_targets(mapping, metas), writeback.check_bounce(mapping, metas)]
    if sample <= 0:
        checks.append(skip(SAMPLE, "--sample 0"))
    elif mapping is None:
        checks.append(skip(SAMPLE, _NO_MAPPING))
    elif found_id is None or readable is None:
        checks.append(skip(SAMPLE, "the GetConnector or its key columns are not in order"))
    else:
        checks.append(check_sample(client, found_id, mapping, sample, len(readable.fields)))
    return checks


def _getconnector(client: AfasClient, connector_id: str, mapping: Mapping) -> tuple[list[Check], GetConnectorMeta]:
    """The three column checks (keys first), and the columns read."""
    try:
        get_meta = attempt(lambda: client.getconnector_meta(connector_id))
    except ConnectorError as exc:
        failed = fail(columns.KEYS, f"GET metainfo/get/{connector_id} failed: {exc}", "check the GetConnector in AFAS")
        unread = _skipped(_COLUMN_NAMES[1:], "the GetConnector's columns could not be read")
        return [failed, *unread], GetConnectorMeta()
    return [
        columns.check_keys(get_meta, mapping, connector_id),
        columns.check_columns(get_meta, mapping, connector_id),
        columns.check_newsletter(get_meta, mapping, connector_id),
    ], get_meta


def _spotler(settings: Settings, mapping: Mapping | None, *, settings_ok: bool) -> list[Check]:
    if not settings_ok:
        return _skipped(_SPOTLER_NAMES, "Spotler settings are missing")
    assert settings.spotler_base_url
    assert settings.spotler_key
    assert settings.spotler_secret
    with SpotlerClient(
        settings.spotler_base_url, settings.spotler_key, settings.spotler_secret, timeout=settings.http_timeout_s
    ) as client:
        credentials, properties = spotler.check_credentials(client)
    if properties is None:
        return [credentials, *_skipped(_SPOTLER_NAMES[1:], "the Spotler key and secret were not accepted")]
    if mapping is None:
        return [credentials, *_skipped(_SPOTLER_NAMES[1:], _NO_MAPPING)]
    return [
        credentials,
        spotler.check_properties(properties, mapping),
        spotler.check_permissions(properties, mapping),
    ]
