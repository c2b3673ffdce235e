"""The link's test plan (``connector testplan``): five steps against both systems while the link runs."""

from __future__ import annotations

from connector.testplan.report import PlanReport, StepResult, default_report_path, render_markdown, write_report
from connector.testplan.steps import StepFailed, TestPlan

__all__ = [
    "PlanReport",
    "StepFailed",
    "StepResult",
    "TestPlan",
    "default_report_path",
    "render_markdown",
    "write_report",
]
