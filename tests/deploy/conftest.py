"""A fresh clone of the repository, as a platform receives it (committed files only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.deploy.venvs import ROOT, git_clone


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``git clone`` of this repository: what a ``git push`` to the platform would carry."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        print(f"note: the clone has only committed files; uncommitted changes are not in it:\n{dirty}")
    return git_clone(ROOT, tmp_path_factory.mktemp("push") / "app")
