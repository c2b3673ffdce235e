"""Benchmark: the README's set-up on a fresh clone, once per supported Python, timed.

For each Python the classifiers name (``--pythons`` narrows them) that this
machine has (on PATH or through pyenv, as ``./dev`` looks), in a fresh
``git clone`` of this checkout's HEAD:

- **dev**: ``PYTHON=<that Python> ./dev demo`` — the README's first command,
  unchanged: a new ``.venv`` from ``requirements-dev.txt``, then the demo on
  the sandboxes and an embedded Redis. Its install time is the one ``./dev``
  prints ("installed in Ns"); the demo's exit code says the set-up was complete.
- **platform**: a new virtualenv and ``pip install -r requirements.txt`` as the
  buildpack runs it, then ``connector --version`` from that virtualenv.

Prints one row per Python (install seconds, demo seconds and exit code,
platform install seconds) and one ``summary {json}`` line. Packages come from
whatever index pip is configured with on this machine, with pip's own cache
warm or cold as it happens to be: say which when you record the figures.

    python bench/install_times.py [--pythons 3.11,3.12,3.13] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.deploy.buildpack import tested_minors  # noqa: E402
from tests.deploy.venvs import clean_env, find_python, make_venv  # noqa: E402

_INSTALLED = re.compile(r"dev: installed in (\d+)s")


def run(command: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def measure(minor: str, python: str, folder: Path) -> dict[str, object]:
    clone = folder / f"clone-{minor}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    # A fresh machine has no Redis: the demo's embedded one.
    env = clean_env(Path(python).parent, {"PYTHON": python}, drop=("REDIS_URL",))
    rc, demo_s, output = run(["./dev", "demo"], clone, env, timeout_s=1800)
    found = _INSTALLED.search(output)
    if rc != 0:
        print(f"--- ./dev demo on Python {minor} exited {rc} ---\n{output[-3000:]}")
    bin_dir = make_venv(python, folder / f"platform-{minor}")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    platform_rc, platform_s, platform_out = run([*pip, "-r", "requirements.txt"], clone, clean_env(bin_dir), 1800)
    version_rc, _, version = run([str(bin_dir / "connector"), "--version"], clone, clean_env(bin_dir), 60)
    if platform_rc or version_rc:
        print(f"--- platform install on Python {minor} failed ---\n{platform_out[-3000:]}{version}")
    return {
        "python": minor,
        "interpreter": subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip(),
        "dev_install_s": int(found.group(1)) if found else None,
        "dev_demo_s": round(demo_s - (int(found.group(1)) if found else 0), 1),
        "dev_demo_rc": rc,
        "platform_install_s": round(platform_s, 1),
        "platform_rc": platform_rc or version_rc,
        "connector_version": version.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default=",".join(tested_minors(ROOT)))
    parser.add_argument("--keep", action="store_true", help="leave the clones and virtualenvs in place")
    args = parser.parse_args()
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="connector-install-"))
    results: list[dict[str, object]] = []
    try:
        for minor in args.pythons.split(","):
            python = find_python(minor)
            if python is None:
                print(f"Python {minor}: not on this machine, skipped")
                continue
            results.append(measure(minor, python, folder))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print_table(
        "fresh clone: ./dev demo (install + demo) and the platform's pip install -r requirements.txt",
        ["python", "dev install s", "demo s", "demo exit", "platform install s", "platform exit"],
        [[r["interpreter"], r["dev_install_s"], r["dev_demo_s"], r["dev_demo_rc"], r["platform_install_s"],
          r["platform_rc"]] for r in results],
    )
    print("summary " + json.dumps(results))
    return 0 if results and all(r["dev_demo_rc"] == 0 and r["platform_rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
