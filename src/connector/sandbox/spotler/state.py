"""Everything one Spotler sandbox holds: store, clock, credentials, settings, faults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from connector.sandbox.faults import FaultInjector
from connector.sandbox.spotler.clock import SandboxClock
from connector.sandbox.spotler.oauth import OAuthVerifier
from connector.sandbox.spotler.store import Store
from connector.sandbox.spotler.wire import Property
from connector.settings import Secret

__all__ = ["SandboxSettings", "SpotlerState"]


class SandboxSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Behaviour switches (``PUT /_sandbox/settings`` replaces them; omitted = default)."""

    bare_array_feeds: bool = False  # the legacy form of updates/list and bounces/list
    timestamp_tolerance_s: float = 300.0
    check_nonce: bool = True
    auth_failure_status: int = 401
    soft_bounces_to_inactive: int | None = None  # None: soft bounces never deactivate
    max_bulk: int = 100
    # Deduplication on e-mail (an account's default rule): a new externalId with an
    # e-mail address another contact already has is refused with CONTACT_ALREADY_EXISTS.
    dedupe_on_email: bool = False
    # The feeds in externalId order instead of stamp order (the real order is not documented).
    feeds_by_id: bool = False


class SpotlerState:
    """The sandbox's state; ``faults`` is set once the app is wrapped in its injector."""

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        catalogue: Iterable[Property] | None = None,
        settings: SandboxSettings | None = None,
    ) -> None:
        self.clock = SandboxClock()
        self.store = Store(self.clock, catalogue)
        self.verifier = OAuthVerifier({k: Secret(v) for k, v in credentials.items()})
        self.settings = SandboxSettings()
        self.faults: FaultInjector | None = None
        self.apply_settings(settings or SandboxSettings())

    def apply_settings(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.verifier.tolerance_s = settings.timestamp_tolerance_s
        self.verifier.check_nonce = settings.check_nonce
        self.verifier.failure_status = settings.auth_failure_status
        self.store.dedupe_on_email = settings.dedupe_on_email
        self.store.feeds_by_id = settings.feeds_by_id

    def __repr__(self) -> str:
        return f"SpotlerState(contacts={len(self.store)}, keys={len(self.verifier.credentials)})"
