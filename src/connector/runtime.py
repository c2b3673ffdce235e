"""Build the long-lived objects of a process from its Settings (one place, no globals)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.embedded_redis import redis_url_for
from connector.schemas.mapping import Mapping, load_mapping
from connector.settings import Settings

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


def redis_client(settings: Settings) -> redis.Redis:
    url = resolved_redis_url(settings)
    if url.startswith("rediss://") and settings.redis_tls_insecure:
        return redis.Redis.from_url(url, ssl_cert_reqs=None)
    return redis.Redis.from_url(url)


def afas_client(settings: Settings) -> AfasClient:
    settings.require("AFAS_BASE_URL", "AFAS_TOKEN")
    assert settings.afas_base_url is not None
    assert settings.afas_token is not None
    return AfasClient(settings.afas_base_url, settings.afas_token, timeout=settings.http_timeout_s)


def spotler_client(settings: Settings) -> SpotlerClient:
    settings.require("SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET")
    assert settings.spotler_base_url
    assert settings.spotler_key
    assert settings.spotler_secret
    return SpotlerClient(
        settings.spotler_base_url, settings.spotler_key, settings.spotler_secret,
        timeout=settings.http_timeout_s,
    )


def mapping(settings: Settings) -> Mapping:
    return load_mapping(settings.mapping_path)
