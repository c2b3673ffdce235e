"""HTTP clients for AFAS Profit and Spotler Mail+; failures leave as connector errors."""

from __future__ import annotations

from connector.clients.afas import AfasClient, page_size_for, parse_afas_datetime
from connector.clients.afas_filter import Condition, Filter, Op, format_value
from connector.clients.spotler import SpotlerClient

__all__ = [
    "AfasClient",
    "Condition",
    "Filter",
    "Op",
    "SpotlerClient",
    "format_value",
    "page_size_for",
    "parse_afas_datetime",
]
