"""``connector testplan``: run the link's test plan against the configured systems while the link runs."""

from __future__ import annotations

from pathlib import Path

import click

from connector import runtime
from connector.cli.context import AppContext
from connector.errors import ConnectorError

__all__ = ["testplan"]


@click.command()
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the Markdown report  [default: reports/testplan-<timestamp>.md]")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1), default=None,
              help="seconds to wait for the link at each step  [default: 6 x POLL_INTERVAL_S, at least 120]")
@click.pass_obj
def testplan(ctx: AppContext, report_path: Path | None, timeout_s: float | None) -> None:
    """Create, change, unsubscribe and clean up a test contact in AFAS and Spotler, checking the link
    carries each change (its processes must be running). Exits 1 when a step fails."""
    from connector.testplan import TestPlan, default_report_path, write_report
    from connector.testplan.records import PlanAfasClient

    settings = ctx.settings
    timeout = timeout_s if timeout_s is not None else max(120.0, 6 * settings.poll_interval_s)
    try:
        settings.require("AFAS_BASE_URL", "AFAS_TOKEN")
        assert settings.afas_base_url is not None
        assert settings.afas_token is not None
        afas = PlanAfasClient(settings.afas_base_url, settings.afas_token, timeout=settings.http_timeout_s)
        spotler = runtime.spotler_client(settings)
        mapping = runtime.mapping(settings)
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"test plan against {afas.base_url} and {spotler.base_url}; waiting up to {timeout:.0f}s "
               "per step for the link's processes to carry each change", err=True)
    with afas, spotler:
        plan = TestPlan(afas, spotler, mapping, ctx.redis, getconnector=settings.afas_getconnector,
                        timeout_s=timeout, poll_interval_s=settings.poll_interval_s, echo=click.echo)
        report = plan.run()
    path = write_report(report, report_path or default_report_path(report.started_at))
    passed = sum(1 for s in report.steps if s.outcome == "pass")
    click.echo(f"test plan {report.run_id}: {'PASS' if report.passed else 'FAIL'} "
               f"({passed} of {len(report.steps)} steps passed, {report.finished_at - report.started_at:.0f}s); "
               f"report: {path}")
    if not report.passed:
        raise SystemExit(1)
