"""``connector doctor``: check every requirement of the link against the configured systems."""

from __future__ import annotations

from connector.doctor.report import Check, Status, exit_code, render_json, render_release, render_table
from connector.doctor.run import DEFAULT_SAMPLE, run_doctor

__all__ = [
    "DEFAULT_SAMPLE",
    "Check",
    "Status",
    "exit_code",
    "render_json",
    "render_release",
    "render_table",
    "run_doctor",
]
