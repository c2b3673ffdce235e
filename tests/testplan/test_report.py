"""The test plan's Markdown report."""

from __future__ import annotations

from pathlib import Path

from connector.testplan import PlanReport, StepResult, default_report_path, render_markdown, write_report


def report(*outcomes: str) -> PlanReport:
    steps = [
        StepResult(number=i, title=f"step {i}", outcome=o, details=[f"detail {i}"],  # type: ignore[arg-type]
                   started_at=1_700_000_000.0 + i, duration_s=1.5)
        for i, o in enumerate(outcomes, start=1)
    ]
    return PlanReport(run_id="abc123", afas="https://12345.rest.afas.online/ProfitRestServices",
                      getconnector="Spotler_Contacts", spotler="https://restapi.mailplus.nl/integrationservice-1.1.0",
                      started_at=1_700_000_000.0, finished_at=1_700_000_042.0, steps=steps)


def test_all_passed_renders_a_pass_with_a_table_and_a_section_per_step() -> None:
    text = render_markdown(report("pass", "pass", "skip", "pass", "pass"))
    assert text.startswith("# Test plan report: PASS")
    assert "| 3 | step 3 | skip | 1.5 s |" in text
    assert "4 of 5 steps passed" in text
    assert text.count("\n## ") == 5
    assert "- detail 2" in text
    assert "(42.0 s)" in text


def test_one_failed_step_fails_the_report() -> None:
    failed = report("pass", "fail", "skip", "skip", "pass")
    assert not failed.passed
    assert [s.number for s in failed.failed] == [2]
    assert render_markdown(failed).startswith("# Test plan report: FAIL")


def test_nothing_passed_is_not_a_pass() -> None:
    assert not report("skip", "skip").passed


def test_e_mail_addresses_and_pipes_never_reach_the_report() -> None:
    r = report("fail")
    r.steps[0].note("Spotler answered: Email is invalid for someone@example.com | x")
    text = render_markdown(r)
    assert "someone@example.com" not in text
    assert "<email>" in text
    assert "\\| x" in text


def test_the_report_is_written_where_asked_and_by_default_under_reports(tmp_path: Path) -> None:
    path = write_report(report("pass"), tmp_path / "deep" / "plan.md")
    assert path.read_text().startswith("# Test plan report: PASS")
    default = default_report_path(1_700_000_000.0)
    assert default == Path("reports") / "testplan-20231114-221320.md"
