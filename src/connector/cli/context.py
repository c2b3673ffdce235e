"""The object handed to every subcommand: settings, and what is built from them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from connector.settings import Settings

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker
    from redis import Redis

__all__ = ["AppContext"]


@dataclass
class AppContext:
    settings: Settings

    @cached_property
    def redis(self) -> Redis:
        """A Redis client for these settings, built on first use."""
        from connector import runtime

        return runtime.redis_client(self.settings)

    @property
    def broker(self) -> RedisBroker:
        """The process's one Dramatiq broker (``connector.workers.broker``), imported on first use."""
        from connector.workers.broker import broker

        return broker
