"""One UpdateConnector call is one transaction: remember, then commit or roll back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.sandbox.afas.model import Entity, Store

__all__ = ["Journal"]


class Journal:
    """Snapshots of the entities a call touches, the ones it creates, and the ones it writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._saved: dict[int, tuple[Entity, tuple[Any, ...]]] = {}
        self._created: list[Entity] = []
        self._written: dict[int, Entity] = {}
        self.written_rows: list[int] = []  # after commit: the contacts whose rows a written entity shows

    def before(self, entity: Entity) -> None:
        """Call before changing an existing entity."""
        if id(entity) not in self._saved:
            snapshot = (
                dict(entity.fields),
                None if entity.address is None else dict(entity.address),
                None if entity.postal is None else dict(entity.postal),
                list(entity.extra),
                entity.modified,
            )
            self._saved[id(entity)] = (entity, snapshot)

    def created(self, entity: Entity) -> None:
        self._created.append(entity)
        self._written[id(entity)] = entity

    def wrote(self, entity: Entity) -> None:
        """The entity was written (not merely referenced): its modification date moves."""
        self.before(entity)
        self._written[id(entity)] = entity

    def rollback(self) -> None:
        for entity in reversed(self._created):
            self.store.remove(entity)
        for entity, (fields, address, postal, extra, modified) in self._saved.values():
            entity.fields, entity.address, entity.postal = fields, address, postal
            entity.extra, entity.modified = extra, modified

    def commit(self, now: datetime) -> None:
        ids: set[int] = set()
        for entity in self._written.values():
            entity.modified = now
            ids.update(self.store.affected(entity))
        self.written_rows = sorted(ids)
        for entity, _ in self._saved.values():
            ids.update(self.store.affected(entity))
        self.store.touch(ids)
