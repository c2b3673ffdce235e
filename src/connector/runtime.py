"""Build the long-lived objects of a process from its Settings (one place, no globals)."""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.embedded_redis import redis_url_for
from connector.schemas.mapping import Mapping, load_mapping
from connector.settings import Settings
from connector.state.limits import afas_cap, spotler_rate

__all__ = ["afas_client", "mapping", "once", "redis_client", "resolved_redis_url", "spotler_client"]

T = TypeVar("T")


def once(build: Callable[[], T]) -> Callable[[], T]:
    """Build a process's long-lived objects on first use, once, even with many worker threads."""
    lock = threading.Lock()
    built: list[T] = []

    @functools.wraps(build)
    def get() -> T:
        if not built:
            with lock:
                if not built:
                    built.append(build())
        return built[0]

    return get


def resolved_redis_url(settings: Settings) -> str:
    return redis_url_for(settings.redis_url, settings.data_dir)


# No command the connector sends blocks on the server, and the slowest takes well under a
# second: a reply missing after 10 s means a half-open connection (a failover, a cut network),
# and the call fails, so the process's outage handling takes over instead of hanging.
REDIS_SOCKET_TIMEOUT_S = 10.0
# A server that is down refuses at once; one that does not answer the SYN is given up on after this.
REDIS_CONNECT_TIMEOUT_S = 5.0
# A pooled connection idle this long is PINGed before use, so one the server or a proxy closed
# meanwhile (a restart; Heroku's Redis drops clients idle for 300 s) is replaced, not failed on.
REDIS_HEALTH_CHECK_INTERVAL_S = 30
# TCP keep-alive finds a vanished peer of an idle TCP connection within 30 + 3 * 5 s.
_KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}


def redis_client(settings: Settings) -> redis.Redis:
    """A client that fails fast when Redis is gone (timeouts, health checks, keep-alive), never hangs."""
    url = resolved_redis_url(settings)
    options: dict[str, object] = {
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        "health_check_interval": REDIS_HEALTH_CHECK_INTERVAL_S,
        # Once, at once, on a connection error (a pooled connection a restarted server closed);
        # never on a timeout, after which the command may well have run.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }
    if not url.startswith("unix://"):  # keep-alive is a TCP option
        options["socket_keepalive"] = True
        options["socket_keepalive_options"] = {
            getattr(socket, name): value for name, value in _KEEPALIVE.items() if hasattr(socket, name)
        }
    if url.startswith("rediss://") and settings.redis_tls_insecure:
        options["ssl_cert_reqs"] = None
    return redis.Redis.from_url(url, **options)


_redis_for = redis_client  # afas_client's parameter of the same name hides the function


def afas_client(settings: Settings, redis_client: redis.Redis | None = None) -> AfasClient:
    """The AFAS client; every call it makes holds a slot of the Redis-wide AFAS_MAX_PARALLEL cap."""
    settings.require("AFAS_BASE_URL", "AFAS_TOKEN")
    assert settings.afas_base_url is not None
    assert settings.afas_token is not None
    cap = afas_cap(redis_client if redis_client is not None else _redis_for(settings), settings)
    return AfasClient(
        settings.afas_base_url, settings.afas_token, timeout=settings.http_timeout_s, gate=cap.slot
    )


def spotler_client(settings: Settings, redis_client: redis.Redis | None = None) -> SpotlerClient:
    """The Spotler client; with a Redis, every call it makes waits for a slot of the shared SPOTLER_RATE_PER_S.

    The workers' writes and the producers' feed reads spend the same account's
    budget, so they book the same limiter; a client without Redis (doctor,
    testplan, the dry run, which leaves Redis as it found it) is not paced.
    """
    settings.require("SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET")
    assert settings.spotler_base_url
    assert settings.spotler_key
    assert settings.spotler_secret
    pace = spotler_rate(redis_client, settings).acquire if redis_client is not None else None
    return SpotlerClient(
        settings.spotler_base_url, settings.spotler_key, settings.spotler_secret,
        timeout=settings.http_timeout_s, pace=pace,
    )


def mapping(settings: Settings) -> Mapping:
    return load_mapping(settings.mapping_path)
