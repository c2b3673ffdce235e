"""Self-hosted two-way sync between AFAS Profit and Spotler Mail+."""

from __future__ import annotations

__version__ = "0.1.0"
