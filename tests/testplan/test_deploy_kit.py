"""The deploy kit lists exactly the connector's settings, and its formation matches the Procfile.

app.json (Heroku, Dokku) and scalingo.json (Scalingo) sit at the root, where the platforms read them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from connector.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


ONE_OFF = {"release", "postdeploy"}  # run by the platform per deploy (Heroku/Dokku, Scalingo), never scaled


def app_json(name: str = "app.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / name).read_text())
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


def test_app_json_is_at_the_root_only() -> None:
    assert (ROOT / "app.json").is_file()
    assert not (DEPLOY / "app.json").exists(), "Heroku and Scalingo read app.json at the root only"


@pytest.mark.parametrize("manifest", ["app.json", "scalingo.json"])
def test_app_json_lists_every_setting_with_its_description_and_required_flag(manifest: str) -> None:
    env = app_json(manifest)["env"]
    assert set(env) == set(ENV_VARS)
    for name, (_, description) in ENV_VARS.items():
        assert description in env[name]["description"], name
        assert isinstance(env[name]["required"], bool), name
    required = {name for name, spec in env.items() if spec["required"]}
    assert required == {"AFAS_BASE_URL", "AFAS_TOKEN", "SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET"}


def test_app_json_has_a_redis_add_on_no_postdeploy_and_a_formation_from_the_procfile() -> None:
    app = app_json()
    assert any(str(a.get("plan", a) if isinstance(a, dict) else a).startswith("heroku-redis") for a in app["addons"])
    assert "postdeploy" not in app.get("scripts", {})  # Heroku runs it once per app, not per deploy
    formation = app["formation"]
    assert set(formation) == {"afas-producer", "spotler-producer", "spotler-worker", "afas-worker", "web", "events"}
    assert all(spec["quantity"] == 1 for spec in formation.values())
    assert set(formation) == procfile_types() - ONE_OFF, "every long-running Procfile type, and only those"


def test_scalingo_json_mirrors_app_json_in_scalingo_terms() -> None:
    app, scalingo = app_json(), app_json("scalingo.json")
    assert {k: v["description"] for k, v in scalingo["env"].items()} == {
        k: v["description"].replace("heroku-redis", "Redis") for k, v in app["env"].items()
    }
    assert {k: v["required"] for k, v in scalingo["env"].items()} == {k: v["required"] for k, v in app["env"].items()}
    assert any(str(a.get("plan", "")).startswith("redis:") for a in scalingo["addons"])
    assert {k: v["amount"] for k, v in scalingo["formation"].items()} == {
        k: v["quantity"] for k, v in app["formation"].items()
    }


def test_the_release_gate_runs_on_every_platform() -> None:
    """Heroku and Dokku run the Procfile's release entry, Scalingo its postdeploy entry: the same gate."""
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    assert lines["release"].strip() == lines["postdeploy"].strip() == "connector doctor --release"


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
