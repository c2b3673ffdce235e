"""Everything one AFAS sandbox holds: the CRM, its GetConnector views, the clock, the token."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading

import msgspec

from connector.sandbox.afas.catalogue import Catalogue
from connector.sandbox.afas.clock import SandboxClock
from connector.sandbox.afas.definitions import ConnectorDef, default_definitions
from connector.sandbox.afas.getconnector import View
from connector.sandbox.afas.model import Store
from connector.sandbox.afas.seed import seed_store
from connector.sandbox.afas.updates import CONNECTORS

__all__ = ["AfasState", "TokenConfig"]


class TokenConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the App Connector behind the token grants; None = every defined GetConnector."""

    token: str | None = None
    getConnectors: list[str] | None = None
    updateConnectors: list[str] = msgspec.field(default_factory=lambda: list(CONNECTORS))
    appName: str = "Spotler koppeling"


class AfasState:
    """The sandbox's state; handlers hold ``lock`` while they read or write it."""

    def __init__(self, *, contacts: int, seed: int, token: str, edge_cases: bool = True) -> None:
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self.catalogue = Catalogue.load()
        values = self.catalogue.fields("KnOrganisation")["ViLb"].values or []
        self.sectors = [v.id for v in values]
        self.default_token = token
        self.store = Store()
        self.views: dict[str, View] = {}
        self.token = TokenConfig()
        self.reset(contacts=contacts, seed=seed, edge_cases=edge_cases)

    def reset(self, *, contacts: int, seed: int, edge_cases: bool = True) -> None:
        """Fresh seed data, the default GetConnectors and the default token grants."""
        with self.lock:
            for view in self.views.values():
                view.close()
            self.store = Store()
            seed_store(
                self.store,
                contacts=contacts,
                seed=seed,
                now_epoch=self.clock.time(),
                sectors=self.sectors,
                edge_cases=edge_cases,
            )
            self.views = {}
            for name, defn in default_definitions().items():
                self.set_definition(name, defn)
            self.set_token(TokenConfig())

    def set_definition(self, name: str, defn: ConnectorDef) -> View:
        """Add or replace a GetConnector; ValueError when the definition is invalid."""
        with self.lock:
            view = View(name, defn, self.store, self.catalogue)
            old = self.views.pop(self.find(name) or name, None)
            if old is not None:
                old.close()
            self.views[name] = view
            return view

    def remove_definition(self, name: str) -> bool:
        with self.lock:
            view = self.views.pop(self.find(name) or name, None)
            if view is not None:
                view.close()
            return view is not None

    def find(self, name: str) -> str | None:
        """A GetConnector id as defined, matched case-insensitively."""
        if name in self.views:
            return name
        return next((k for k in self.views if k.lower() == name.lower()), None)

    def set_token(self, config: TokenConfig) -> None:
        with self.lock:
            self.token = config
            token = config.token or self.default_token
            self._expected = token.encode()

    def authorised(self, header: str | None) -> bool:
        """``Authorization: AfasToken <base64 of the whole token XML>``."""
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "afastoken":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, self._expected)

    def get_connectors(self) -> list[str]:
        """The GetConnectors the token may use (and that exist)."""
        granted = self.token.getConnectors
        if granted is None:
            return list(self.views)
        return [name for name in self.views if name in granted]

    def update_connectors(self) -> list[str]:
        return [c for c in CONNECTORS if c in self.token.updateConnectors]
