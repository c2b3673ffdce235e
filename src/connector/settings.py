"""Settings: read from the environment here and nowhere else, then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from connector.errors import ConfigError
from connector.redaction import redact

__all__ = ["ENV_VARS", "Secret", "Settings"]


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# name -> (default or None, description). The README's settings table and
# deploy/app.json are checked against this list by a test.
ENV_VARS: dict[str, tuple[str | None, str]] = {
    "REDIS_URL": (None, "Redis URL shared by every process; unset = embedded Redis under CONNECTOR_DATA_DIR"),
    "REDIS_TLS_INSECURE": ("0", "1 = accept the self-signed certificate of Heroku's TLS Redis (rediss://)"),
    "CONNECTOR_DATA_DIR": (".connector", "local folder for the embedded Redis and reports"),
    "AFAS_BASE_URL": (None, "AFAS Online REST base, e.g. https://12345.rest.afas.online/ProfitRestServices"),
    "AFAS_TOKEN": (None, "the App Connector token exactly as AFAS issues it: the whole <token>…</token> XML"),
    "AFAS_GETCONNECTOR": ("Spotler_Contacts", "id of the GetConnector that lists the contacts"),
    "SPOTLER_BASE_URL": (None, "Spotler Mail+ REST base, e.g. https://restapi.mailplus.nl/integrationservice-1.1.0"),
    "SPOTLER_KEY": (None, "Spotler REST API consumer key"),
    "SPOTLER_SECRET": (None, "Spotler REST API consumer secret"),
    "CONNECTOR_MAPPING": (
        None,
        "path of the mapping TOML file; unset = the example mapping shipped in the package"
        " (a copy of deploy/mapping.example.toml)",
    ),
    "POLL_INTERVAL_S": ("30", "seconds between two polls of each producer"),
    "SPOTLER_RATE_PER_S": ("5", "Spotler requests per second, shared by every process that calls Spotler"),
    "AFAS_MAX_PARALLEL": ("4", "AFAS calls in flight at once across all processes (AFAS allows 8)"),
    "HTTP_TIMEOUT_S": ("30", "timeout of one HTTP call to AFAS or Spotler"),
    "LOG_LEVEL": ("INFO", "DEBUG, INFO, WARNING or ERROR"),
    "PORT": ("8000", "port of `connector web` (the platform sets it)"),
    "STATUS_TOKEN": (None, "token of the status page and /metrics: Authorization: Bearer, or the page's "
                           "sign-in form; unset = they answer 403"),
    "STATUS_MAX_LAG_S": ("900", "`connector status` fails when a producer's last good poll is older than this"),
    "DELETIONS_MAX_SHARE": ("0.05", "share of the synced contacts one resync may unsubscribe (deletions = "
                            "unsubscribe) without --yes"),
    "SPOTLER_RESTART_LOOKBACK_S": ("86400", "without a Spotler cursor (first start, Redis lost its data) the "
                                   "Spotler producer reads this far back"),
    "FORGET_AFTER_DAYS": ("30", "contacts a full pass (resync) no longer finds in AFAS are forgotten (state "
                          "erased, tombstone kept) after this many days"),
    "RETENTION_DAYS": ("30", "rejections, settled conflicts and dead letters are deleted this many days after "
                       "they were last seen or failed"),
    "CONSENT_RETENTION_DAYS": ("730", "records of the consent audit trail (permission bits, AFAS blocks, hard "
                               "bounces as applied: `connector consent`) are deleted this many days after "
                               "they were applied"),
    "JOURNAL_MAX_ENTRIES": ("50", "steps kept in each contact's journal (`connector trace`), the oldest dropped "
                            "first; 0 = no journal"),
    "JOURNAL_RETENTION_DAYS": ("30", "journal steps older than this many days are dropped"),
    "ALERT_WEBHOOK_URL": (None, "where alerts are POSTed (a Slack incoming webhook, or any URL taking JSON); a "
                          "secret, never logged; unset = no alerts"),
    "ALERT_FORMAT": ("slack", "slack = {\"text\": …} only; json = the text and the structured fields (condition, "
                     "subject, state, value, threshold, times)"),
    "ALERT_REPEAT_S": ("3600", "at most one firing message per condition per this many seconds (a reminder while "
                       "it holds); its recovery message is sent once"),
    "ALERT_REJECTED_SHARE": ("0.05", "alert when a producer's last poll rejected more than this share of the rows "
                             "it read"),
    "EVENTS_URL": (None, "kombu URL of your own bus for the link's events (amqp://, redis://, sqs://, …); unset = "
                         "no events are recorded or published"),
    "EVENTS_OUTBOX_MAX": ("50000", "events kept in the Redis outbox while the bus is unreachable; beyond it the "
                          "oldest are dropped and counted (events_trimmed)"),
}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable, typed. Build with ``Settings.from_env``."""

    redis_url: str | None = None
    redis_tls_insecure: bool = False
    data_dir: Path = Path(".connector")
    afas_base_url: str | None = None
    afas_token: Secret | None = None
    afas_getconnector: str = "Spotler_Contacts"
    spotler_base_url: str | None = None
    spotler_key: str | None = None
    spotler_secret: Secret | None = None
    mapping_path: Path | None = None
    poll_interval_s: float = 30.0
    spotler_rate_per_s: float = 5.0
    afas_max_parallel: int = 4
    http_timeout_s: float = 30.0
    log_level: str = "INFO"
    port: int = 8000
    status_token: Secret | None = None
    status_max_lag_s: float = 900.0
    deletions_max_share: float = 0.05
    spotler_restart_lookback_s: float = 86400.0
    forget_after_days: float = 30.0
    retention_days: float = 30.0
    consent_retention_days: float = 730.0
    journal_max_entries: int = 50
    journal_retention_days: float = 30.0
    alert_webhook_url: Secret | None = None
    alert_format: Literal["slack", "json"] = "slack"
    alert_repeat_s: float = 3600.0
    alert_rejected_share: float = 0.05
    events_url: str | None = None
    events_outbox_max: int = 50_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment; a bad value names its variable."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or ENV_VARS[name][0]

        def number(name: str, kind: type[float] | type[int], minimum: float) -> float | int:
            raw = get(name)
            assert raw is not None
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {value}")
            return value

        for url_var in ("AFAS_BASE_URL", "SPOTLER_BASE_URL", "REDIS_URL", "ALERT_WEBHOOK_URL"):
            value = get(url_var)
            schemes = ("redis://", "rediss://", "unix://") if url_var == "REDIS_URL" else ("http://", "https://")
            if value and not value.startswith(schemes):
                raise ConfigError(f"{url_var} must start with one of {', '.join(schemes)}")
        events_url = get("EVENTS_URL")
        if events_url and "://" not in events_url:
            raise ConfigError("EVENTS_URL must be a kombu URL such as amqp://user:password@host:5672//")
        level = (get("LOG_LEVEL") or "INFO").upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        alert_format = (get("ALERT_FORMAT") or "slack").lower()
        if alert_format not in {"slack", "json"}:
            raise ConfigError(f"ALERT_FORMAT={alert_format!r} is not one of slack, json")
        rejected_share = float(number("ALERT_REJECTED_SHARE", float, 0))
        if rejected_share > 1:
            raise ConfigError(f"ALERT_REJECTED_SHARE is a share between 0 and 1, got {rejected_share}")
        token, secret, mapping = get("AFAS_TOKEN"), get("SPOTLER_SECRET"), get("CONNECTOR_MAPPING")
        return cls(
            redis_url=get("REDIS_URL"),
            redis_tls_insecure=get("REDIS_TLS_INSECURE") in {"1", "true", "yes"},
            data_dir=Path(get("CONNECTOR_DATA_DIR") or ".connector"),
            afas_base_url=(get("AFAS_BASE_URL") or "").rstrip("/") or None,
            afas_token=Secret(token) if token else None,
            afas_getconnector=get("AFAS_GETCONNECTOR") or "Spotler_Contacts",
            spotler_base_url=(get("SPOTLER_BASE_URL") or "").rstrip("/") or None,
            spotler_key=get("SPOTLER_KEY"),
            spotler_secret=Secret(secret) if secret else None,
            mapping_path=Path(mapping) if mapping else None,
            poll_interval_s=float(number("POLL_INTERVAL_S", float, 0.1)),
            spotler_rate_per_s=float(number("SPOTLER_RATE_PER_S", float, 0.1)),
            afas_max_parallel=int(number("AFAS_MAX_PARALLEL", int, 1)),
            http_timeout_s=float(number("HTTP_TIMEOUT_S", float, 0.1)),
            log_level=level,
            port=int(number("PORT", int, 1)),
            status_token=Secret(status_token) if (status_token := get("STATUS_TOKEN")) else None,
            status_max_lag_s=float(number("STATUS_MAX_LAG_S", float, 1)),
            deletions_max_share=float(number("DELETIONS_MAX_SHARE", float, 0)),
            spotler_restart_lookback_s=float(number("SPOTLER_RESTART_LOOKBACK_S", float, 0)),
            forget_after_days=float(number("FORGET_AFTER_DAYS", float, 0)),
            retention_days=float(number("RETENTION_DAYS", float, 0)),
            consent_retention_days=float(number("CONSENT_RETENTION_DAYS", float, 0)),
            journal_max_entries=int(number("JOURNAL_MAX_ENTRIES", int, 0)),
            journal_retention_days=float(number("JOURNAL_RETENTION_DAYS", float, 0.01)),
            alert_webhook_url=Secret(webhook) if (webhook := get("ALERT_WEBHOOK_URL")) else None,
            alert_format="json" if alert_format == "json" else "slack",
            alert_repeat_s=float(number("ALERT_REPEAT_S", float, 1)),
            alert_rejected_share=rejected_share,
            events_url=events_url,
            events_outbox_max=int(number("EVENTS_OUTBOX_MAX", int, 1)),
        )

    def require(self, *names: str) -> None:
        """Raise one ConfigError naming every required variable that is unset."""
        attrs = {
            "AFAS_BASE_URL": self.afas_base_url,
            "AFAS_TOKEN": self.afas_token,
            "SPOTLER_BASE_URL": self.spotler_base_url,
            "SPOTLER_KEY": self.spotler_key,
            "SPOTLER_SECRET": self.spotler_secret,
        }
        missing = [name for name in names if not attrs[name]]
        if missing:
            raise ConfigError("missing setting(s): " + ", ".join(missing))

    def __repr__(self) -> str:
        # Secret fields mask themselves, the URL's password is masked here; the key is not secret on its own.
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__)
        return f"Settings({redact(fields)})"
