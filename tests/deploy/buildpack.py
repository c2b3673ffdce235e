"""What the platforms check before they build: Heroku's Python buildpack (which Scalingo and
Dokku's builder share), the Procfile and the app manifests. Each check returns its problems."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from connector.settings import ENV_VARS

# The buildpack refuses a build with none or more than one of these at the root.
PACKAGE_MANAGER_FILES = ("requirements.txt", "Pipfile.lock", "poetry.lock", "uv.lock")
# Files it either rejects (a Pipfile without its lock) or that would override .python-version.
REFUSED_FILES = ("Pipfile", "runtime.txt")
# The buildpack's own rule for .python-version: a major version (recommended) or an exact patch.
_PYTHON_VERSION = re.compile(r"^3\.(\d+)(\.\d+)?$")
# The Pythons the buildpack still builds (heroku-buildpack-python lib/python_version.sh).
BUILDPACK_MINORS = range(10, 15)
# The pip the buildpack installs before `pip install -r requirements.txt` (its requirements/pip.txt).
BUILDPACK_PIP = "pip==26.2.1"
# Procfile types the platforms run once per deploy: Heroku and Dokku `release`, Scalingo `postdeploy`.
ONE_OFF = ("release", "postdeploy")
RELEASE_COMMAND = "connector doctor --release"


def procfile(app: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    for line in (app / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            types[name.strip()] = command.strip()
    return types


def long_running(app: Path) -> list[str]:
    """The Procfile's process types that run all the time, web first (it gets $PORT from honcho)."""
    types = [name for name in procfile(app) if name not in ONE_OFF]
    return sorted(types, key=lambda name: name != "web")


def python_version(app: Path) -> str:
    """The version .python-version asks for, exactly as the buildpack reads it."""
    lines = [line.strip() for line in (app / ".python-version").read_text().splitlines()]
    versions = [line for line in lines if line and not line.startswith("#")]
    if len(versions) != 1:
        raise ValueError(f".python-version must name exactly one version, found {versions}")
    return versions[0]


def tested_minors(app: Path) -> list[str]:
    text = (app / "pyproject.toml").read_text()
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)


def package_manager_problems(app: Path) -> list[str]:
    found = [name for name in PACKAGE_MANAGER_FILES if (app / name).is_file()]
    problems = [] if len(found) == 1 else [f"exactly one package-manager file expected, found {found}"]
    problems += [f"{name} must not be at the root" for name in REFUSED_FILES if (app / name).exists()]
    return problems


def python_version_problems(app: Path) -> list[str]:
    if not (app / ".python-version").is_file():
        return [".python-version is missing: the buildpack would pick its own default Python"]
    try:
        version = python_version(app)
    except ValueError as exc:
        return [str(exc)]
    match = _PYTHON_VERSION.match(version)
    if match is None:
        return [f".python-version {version!r} is neither 3.X nor 3.X.Y"]
    problems = []
    if int(match.group(1)) not in BUILDPACK_MINORS:
        problems.append(f"the buildpack does not build Python {version}")
    minor = ".".join(version.split(".")[:2])
    if minor not in tested_minors(app):
        problems.append(f"Python {version} is not among the tested versions {tested_minors(app)}")
    return problems


def _manifest(app: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((app / name).read_text())
    return data


def manifest_problems(app: Path, name: str, *, quantity_key: str) -> list[str]:
    """app.json (Heroku, Dokku) or scalingo.json: every setting, a Redis add-on, the formation."""
    if not (app / name).is_file():
        return [f"{name} is missing at the root"]
    manifest = _manifest(app, name)
    problems = []
    missing = sorted(set(ENV_VARS) - set(manifest.get("env", {})))
    unknown = sorted(set(manifest.get("env", {})) - set(ENV_VARS))
    if missing or unknown:
        problems.append(f"{name} env: missing {missing}, not a setting {unknown}")
    if not any("redis" in str(addon).lower() for addon in manifest.get("addons", [])):
        problems.append(f"{name} has no Redis add-on")
    formation = manifest.get("formation", {})
    types = procfile(app)
    if sorted(formation) != sorted(long_running(app)):
        problems.append(f"{name} formation {sorted(formation)} is not the Procfile's {sorted(long_running(app))}")
    problems += [f"{name} formation {kind}: {spec}" for kind, spec in formation.items()
                 if spec.get(quantity_key) != 1]
    problems += [f"Procfile has no {kind}: {RELEASE_COMMAND}" for kind in ONE_OFF
                 if types.get(kind) != RELEASE_COMMAND]
    return problems


def problems(app: Path) -> list[str]:
    """Everything a Heroku, Scalingo or Dokku build of ``app`` would stumble on, or nothing."""
    return [
        *package_manager_problems(app),
        *python_version_problems(app),
        *manifest_problems(app, "app.json", quantity_key="quantity"),
        *manifest_problems(app, "scalingo.json", quantity_key="amount"),
    ]


if __name__ == "__main__":  # pragma: no cover - `python -m tests.deploy.buildpack [DIR]`
    found = problems(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    print("\n".join(found) or "ok")
    sys.exit(bool(found))
