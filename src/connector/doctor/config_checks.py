"""Checks that need no network: settings present, mapping loads, the AFAS URL's shape."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from connector.doctor.report import Check, fail, ok, skip, warn
from connector.errors import ConfigError
from connector.schemas.mapping import Mapping, default_mapping_path, load_mapping
from connector.settings import ENV_VARS, Settings

__all__ = [
    "AFAS_SETTINGS",
    "AFAS_URL",
    "MAPPING",
    "SPOTLER_SETTINGS",
    "check_afas_settings",
    "check_afas_url",
    "check_mapping",
    "check_spotler_settings",
    "is_sandbox_url",
]

AFAS_SETTINGS = "AFAS settings"
SPOTLER_SETTINGS = "Spotler settings"
MAPPING = "mapping file"
AFAS_URL = "AFAS URL"

_AFAS_ONLINE = re.compile(
    r"^https://(?P<env>\d{5})\.rest(?P<kind>test|accept)?\.afas\.online/ProfitRestServices$",
    re.IGNORECASE,
)
_AFAS_PATTERN = "https://NNNNN.rest[test|accept].afas.online/ProfitRestServices"
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _missing(settings: Settings, names: tuple[str, ...]) -> list[str]:
    """The unset ones among ``names``, as ``Settings.require`` judges them."""
    missing: list[str] = []
    for name in names:
        try:
            settings.require(name)
        except ConfigError:
            missing.append(name)
    return missing


def _fix_for(missing: list[str]) -> str:
    return "; ".join(f"set {name} ({ENV_VARS[name][1]})" for name in missing)


def check_afas_settings(settings: Settings) -> Check:
    missing = _missing(settings, ("AFAS_BASE_URL", "AFAS_TOKEN"))
    if missing:
        return fail(AFAS_SETTINGS, "missing: " + ", ".join(missing), _fix_for(missing))
    return ok(AFAS_SETTINGS, f"AFAS_BASE_URL, AFAS_TOKEN set; AFAS_GETCONNECTOR={settings.afas_getconnector}")


def check_spotler_settings(settings: Settings) -> Check:
    missing = _missing(settings, ("SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET"))
    if missing:
        return fail(SPOTLER_SETTINGS, "missing: " + ", ".join(missing), _fix_for(missing))
    return ok(SPOTLER_SETTINGS, "SPOTLER_BASE_URL, SPOTLER_KEY, SPOTLER_SECRET set")


def check_mapping(path: Path | None, *, sandbox: bool = False) -> tuple[Check, Mapping | None]:
    """Load the mapping as every process would; its ConfigError is the detail.

    The shipped example carries the sandbox's free-field codes: outside the
    sandbox it loads, with a warning.
    """
    shown = str(path) if path else f"{default_mapping_path()} (the example; CONNECTOR_MAPPING unset)"
    try:
        mapping = load_mapping(path)
    except ConfigError as exc:
        fix = (
            f"correct the mapping file {path}" if path else "set CONNECTOR_MAPPING to your mapping file"
        ) + " (deploy/mapping.example.toml documents every key)"
        return fail(MAPPING, str(exc), fix), None
    if path is None and not sandbox:
        return warn(
            MAPPING,
            f"{shown}: {len(mapping.fields)} fields; its free-field codes are the sandbox's",
            "copy deploy/mapping.example.toml, put your environment's field codes in it "
            "(GET /metainfo/update/KnContact, …/KnOrganisation) and set CONNECTOR_MAPPING to it",
        ), mapping
    return ok(MAPPING, f"{shown}: {len(mapping.fields)} fields"), mapping


def is_sandbox_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in _LOCAL_HOSTS


def check_afas_url(url: str | None) -> Check:
    """AFAS Online only (production, test or accept); a local sandbox passes with a note."""
    if not url:
        return skip(AFAS_URL, "AFAS_BASE_URL is not set")
    match = _AFAS_ONLINE.match(url.rstrip("/"))
    if match:
        kind = (match.group("kind") or "production").lower()
        return ok(AFAS_URL, f"AFAS Online environment {match.group('env')} ({kind})")
    if is_sandbox_url(url):
        return ok(AFAS_URL, f"sandbox: {url} is a local address, not AFAS Online")
    return fail(
        AFAS_URL,
        f"{url} is not an AFAS Online REST URL (only AFAS Online can be connected)",
        f"set AFAS_BASE_URL to {_AFAS_PATTERN} with your 5-digit environment number",
    )
