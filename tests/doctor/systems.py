"""Running ``connector doctor`` against the sandboxes, and changing them through their control APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.doctor import doctor
from connector.schemas.mapping import default_mapping_path
from connector.settings import Settings

CONTACTS = 60
GETCONNECTOR = "Spotler_Contacts"


@dataclass
class Outcome:
    """One run of ``connector doctor``: its exit code, its output, and (with --json) its checks."""

    exit_code: int
    output: str
    checks: dict[str, dict[str, str]] = field(default_factory=dict)

    def status(self, check: str) -> str:
        return self.checks[check]["status"]

    def failures(self) -> set[str]:
        return {name for name, c in self.checks.items() if c["status"] == "fail"}


@dataclass
class Systems:
    """The two sandboxes, their control APIs, and the environment that points at them."""

    afas_url: str
    spotler_url: str
    afas: httpx.Client
    spotler: httpx.Client
    env: dict[str, str]

    def run(self, *args: str, **overrides: str | None) -> Outcome:
        """Run the command with ``overrides`` on top of the environment (None unsets)."""
        env = {**self.env, **overrides}
        settings = Settings.from_env({k: v for k, v in env.items() if v is not None})
        result = CliRunner().invoke(doctor, list(args), obj=AppContext(settings=settings))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.output)

    def check(self, *args: str, **overrides: str | None) -> Outcome:
        """Run with ``--json`` and index the checks by name."""
        outcome = self.run("--json", *args, **overrides)
        decoded = msgspec.json.decode(outcome.output)
        assert isinstance(decoded, list)
        outcome.checks = {c["check"]: c for c in decoded}
        return outcome

    def definition(self) -> dict[str, Any]:
        """The sandbox GetConnector's definition, to change and PUT back."""
        response = self.afas.get(f"/getconnector/{GETCONNECTOR}")
        response.raise_for_status()
        return dict(response.json()["definition"])

    def put_definition(self, definition: dict[str, Any]) -> None:
        self.afas.put(f"/getconnector/{GETCONNECTOR}", json=definition).raise_for_status()

    def mapping_file(self, tmp_path: Path, old: str, new: str) -> str:
        """A copy of the example mapping with ``old`` replaced by ``new``; its path."""
        text = default_mapping_path().read_text(encoding="utf-8")
        assert old in text
        path = tmp_path / "mapping.toml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return str(path)
