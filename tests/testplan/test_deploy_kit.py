"""The deploy kit lists exactly the connector's settings, and its formation matches the Procfile."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from connector.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def app_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "app.json").read_text())
    return data


def env_example() -> dict[str, str]:
    """Every ``NAME=value`` line, commented out or not (the last one wins)."""
    found: dict[str, str] = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def procfile_types() -> set[str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {line.split(":", 1)[0].strip() for line in lines if ":" in line and not line.startswith("#")}


def test_app_json_lists_every_setting_with_its_description_and_required_flag() -> None:
    env = app_json()["env"]
    assert set(env) == set(ENV_VARS)
    for name, (_, description) in ENV_VARS.items():
        assert description in env[name]["description"], name
        assert isinstance(env[name]["required"], bool), name
    required = {name for name, spec in env.items() if spec["required"]}
    assert required == {"AFAS_BASE_URL", "AFAS_TOKEN", "SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET"}


def test_app_json_has_a_redis_add_on_no_postdeploy_and_a_formation_from_the_procfile() -> None:
    app = app_json()
    assert any(str(a.get("plan", a) if isinstance(a, dict) else a).startswith("heroku-redis") for a in app["addons"])
    assert "postdeploy" not in app.get("scripts", {})
    formation = app["formation"]
    assert set(formation) == {"afas-producer", "spotler-producer", "spotler-worker", "afas-worker", "web"}
    assert all(spec["quantity"] == 1 for spec in formation.values())
    missing = set(formation) - procfile_types()
    assert not missing, f"app.json formation names missing from the Procfile: {sorted(missing)}"


def test_env_example_lists_exactly_the_settings_and_its_values_are_valid() -> None:
    values = env_example()
    assert set(values) == set(ENV_VARS)
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    active = {m.group(1): m.group(2) for line in lines if (m := _ASSIGNMENT.match(line)) and not line.startswith("#")}
    settings = Settings.from_env(active)  # the sandbox values are accepted as they stand
    assert settings.afas_base_url is not None
    assert settings.spotler_base_url is not None
    for line in lines:  # every variable is explained by a comment just above it
        if _ASSIGNMENT.match(line):
            previous = lines[lines.index(line) - 1]
            assert previous.startswith("#"), line
