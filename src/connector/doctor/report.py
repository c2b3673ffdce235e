"""Check results and how they are shown: a table, terse release lines, or JSON."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from connector.redaction import redact

__all__ = [
    "Check",
    "Status",
    "exit_code",
    "fail",
    "failed",
    "ok",
    "render_json",
    "render_release",
    "render_table",
    "scrub",
    "skip",
    "summary",
    "warn",
]

Status = Literal["ok", "fail", "warn", "skip"]
_LABELS: dict[Status, str] = {"ok": "ok", "fail": "FAIL", "warn": "warn", "skip": "skip"}
_WIDTH = 100


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one check: what was checked, how it went, why, and what to change."""

    check: str
    status: Status
    detail: str = ""
    fix: str = ""


def ok(check: str, detail: str = "") -> Check:
    return Check(check=check, status="ok", detail=detail)


def fail(check: str, detail: str, fix: str) -> Check:
    return Check(check=check, status="fail", detail=detail, fix=fix)


def warn(check: str, detail: str, fix: str = "") -> Check:
    return Check(check=check, status="warn", detail=detail, fix=fix)


def skip(check: str, why: str) -> Check:
    """Not run because a prerequisite failed; ``why`` names it."""
    return Check(check=check, status="skip", detail=f"not checked: {why}")


def failed(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if c.status == "fail"]


def exit_code(checks: Iterable[Check]) -> int:
    """1 when anything required failed; warnings and skips alone do not fail."""
    return 1 if failed(checks) else 0


def scrub(checks: Iterable[Check], secrets: Iterable[str]) -> list[Check]:
    """Mask e-mail addresses and any configured secret in every text shown."""
    hidden = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def clean(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, "***")
        return redact(text)

    return [msgspec.structs.replace(c, detail=clean(c.detail), fix=clean(c.fix)) for c in checks]


def summary(checks: Sequence[Check]) -> str:
    counts = {status: sum(1 for c in checks if c.status == status) for status in _LABELS}
    parts = [f"{counts[s]} {_LABELS[s]}" for s in ("fail", "warn", "ok", "skip") if counts[s]]
    verdict = "FAILED" if counts["fail"] else "passed"
    return f"doctor {verdict}: {len(checks)} checks, " + ", ".join(parts)


def render_table(checks: Sequence[Check]) -> str:
    """check | result | detail, with the fix under every failure and warning."""
    name_width = max([len("check"), *(len(c.check) for c in checks)])
    indent = " " * (name_width + 10)
    lines = [f"{'check':<{name_width}}  result  detail", f"{'-' * name_width}  ------  {'-' * 40}"]
    for c in checks:
        detail = textwrap.wrap(c.detail, _WIDTH - len(indent)) or [""]
        lines.append(f"{c.check:<{name_width}}  {_LABELS[c.status]:<6}  {detail[0]}")
        lines += [indent + more for more in detail[1:]]
        if c.fix and c.status in ("fail", "warn"):
            fix = textwrap.wrap("fix: " + c.fix, _WIDTH - len(indent), subsequent_indent="     ")
            lines += [indent + line for line in fix]
    lines += ["", summary(checks)]
    return "\n".join(lines)


def render_release(checks: Sequence[Check]) -> str:
    """One line per failure, then per warning, then the verdict: for a release phase's log."""
    lines = [
        f"{_LABELS[c.status]} {c.check}: {c.detail}" + (f" -> {c.fix}" if c.fix else "")
        for status in ("fail", "warn")
        for c in checks
        if c.status == status
    ]
    return "\n".join([*lines, summary(checks)])


def render_json(checks: Sequence[Check]) -> str:
    """A JSON list of ``{check, status, detail, fix}``."""
    return msgspec.json.format(msgspec.json.encode(list(checks)), indent=2).decode()
