"""What the status page must show for a report: {data-metric: data-value}, derived from the report's JSON.

This is the page's naming contract written out independently of the page code,
so a figure missing from the page, an extra one, or a wrong value all show up.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TIME_DEPENDENT", "assert_same_moment", "expected_metrics"]

# Figures that grow with the clock: compared after correcting for the two reports' generated_at.
TIME_DEPENDENT = (".lag_s", ".oldest_age_s")


def _v(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def expected_metrics(report: dict[str, Any]) -> dict[str, str]:
    m: dict[str, Any] = {
        "generated_at": report["generated_at"], "max_lag_s": report["max_lag_s"], "exit_code": report["exit_code"],
    }
    for alert in report["alerts"]:
        m[f"alert.{alert['kind']}.{alert['subject']}"] = alert["message"]
    for q in report["queues"]:
        for key in ("ready", "delayed", "in_flight", "dead_letters", "broker_dead", "oldest_age_s"):
            m[f"queue.{q['name']}.{key}"] = q[key]
    for p in report["producers"]:
        for key in ("running", "cursor", "last_poll_end", "lag_s", "last_run_id"):
            m[f"producer.{p['source']}.{key}"] = p[key]
    for key, value in report["limits"].items():
        m[f"limits.{key}"] = value
    for name, value in report["counters"].items():
        m[f"counter.{name}"] = value
    for source, runs in report["runs"].items():
        for run in runs:
            for key in ("started_at", "kind", "read", "changed", "unchanged", "rejected", "enqueued_messages",
                        "written", "superseded", "duration_s"):
                m[f"run.{source}.{run['run_id']}.{key}"] = run[key]
    rej = report["rejections"]
    m["rejections.total"] = rej["total"]
    m.update({f"rejections.by_reason.{k}": v for k, v in rej["by_reason"].items()})
    for i, r in enumerate(rej["latest"]):
        m.update({f"rejection.{i}.{k}": r[k] for k in ("source", "contact_id", "field", "reason", "last_seen")})
    dead = report["dead_letters"]
    m["dead_letters.total"] = dead["total"]
    m.update({f"dead_letters.by_queue.{k}": v for k, v in dead["by_queue"].items()})
    for d in dead["latest"]:
        m.update({f"dead_letter.{d['id']}.{k}": d[k]
                  for k in ("queue", "entity_key", "reason", "error_class", "error", "attempts", "failed_at")})
    con = report["conflicts"]
    m["conflicts.total"] = con["total"]
    m.update({f"conflicts.by_rule.{k}": v for k, v in con["by_rule"].items()})
    for i, c in enumerate(con["latest"]):
        m.update({f"conflict.{i}.{k}": c[k] for k in ("contact_id", "field", "rule", "winner", "at")})
    return {name: _v(value) for name, value in m.items()}


def assert_same_moment(page: dict[str, str], report: dict[str, Any]) -> None:
    """The page shows exactly the report's figures; clock-driven ones differ only by the time between them."""
    expected = expected_metrics(report)
    assert set(page) == set(expected), (
        f"missing on the page: {sorted(set(expected) - set(page))}; unexpected: {sorted(set(page) - set(expected))}"
    )
    shift = float(page["generated_at"]) - float(expected["generated_at"])
    for name, want in expected.items():
        got = page[name]
        if name == "generated_at":
            continue
        if name.endswith(TIME_DEPENDENT) and want and got:
            # Ages are clamped at 0, so a later report can only be older by at most the shift.
            assert math.isclose(float(got), max(0.0, float(want) + shift), abs_tol=1e-3), (name, got, want, shift)
        else:
            assert got == want, (name, got, want)
