"""The test plan's results and their Markdown report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from connector.redaction import redact

__all__ = ["PlanReport", "StepResult", "default_report_path", "render_markdown", "write_report"]

Outcome = Literal["pass", "fail", "skip"]


class StepResult(msgspec.Struct, kw_only=True):
    """One step: what it checks, how it went, what was seen and how long it took."""

    number: int
    title: str
    outcome: Outcome = "skip"
    details: list[str] = msgspec.field(default_factory=list)
    started_at: float = 0.0  # epoch seconds
    duration_s: float = 0.0

    def note(self, text: str) -> None:
        self.details.append(text)


class PlanReport(msgspec.Struct, kw_only=True):
    """A whole run of the test plan against one AFAS and one Spotler environment."""

    run_id: str
    afas: str  # base URL (no credentials in it)
    getconnector: str
    spotler: str
    started_at: float
    finished_at: float = 0.0
    steps: list[StepResult] = msgspec.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.outcome != "fail" for s in self.steps) and any(s.outcome == "pass" for s in self.steps)

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.outcome == "fail"]


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: str) -> str:
    return redact(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: PlanReport) -> str:
    """The report as Markdown; e-mail addresses are masked, whatever a detail says."""
    verdict = "PASS" if report.passed else "FAIL"
    passed = sum(1 for s in report.steps if s.outcome == "pass")
    lines = [
        f"# Test plan report: {verdict}",
        "",
        f"- run: `{report.run_id}`",
        f"- started: {_when(report.started_at)}; finished: {_when(report.finished_at or report.started_at)}"
        f" ({(report.finished_at or report.started_at) - report.started_at:.1f} s)",
        f"- AFAS: {_cell(report.afas)}, GetConnector `{_cell(report.getconnector)}`",
        f"- Spotler: {_cell(report.spotler)}",
        f"- result: **{verdict}**, {passed} of {len(report.steps)} steps passed",
        "",
        "| # | step | result | time |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s.number} | {_cell(s.title)} | {s.outcome} | {s.duration_s:.1f} s |" for s in report.steps
    ]
    for s in report.steps:
        lines += ["", f"## {s.number}. {_cell(s.title)}", ""]
        lines.append(f"**{s.outcome}**" + (f", started {_when(s.started_at)}, took {s.duration_s:.1f} s"
                                            if s.started_at else ""))
        if s.details:
            lines.append("")
            lines += [f"- {_cell(d)}" for d in s.details]
    return "\n".join(lines) + "\n"


def default_report_path(started_at: float) -> Path:
    """``reports/testplan-<UTC timestamp>.md`` under the working directory."""
    stamp = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"testplan-{stamp}.md"


def write_report(report: PlanReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report), encoding="utf-8")
    return path
