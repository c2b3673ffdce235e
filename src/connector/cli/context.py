"""The object handed to every subcommand: settings, and what is built from them."""

from __future__ import annotations

from dataclasses import dataclass

from connector.settings import Settings

__all__ = ["AppContext"]


@dataclass
class AppContext:
    settings: Settings
