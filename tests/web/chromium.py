"""Headless Chromium for the page tests: find or install it (Debian's package), dump a DOM, take a screenshot.

``ensure_chromium()`` installs ``chromium`` with apt-get when it is missing and
the tests run as root (CI containers); otherwise the calling test is skipped
with the reason. ``read_metrics`` turns a rendered page into {data-metric: data-value}.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

__all__ = ["dump_dom", "ensure_chromium", "read_metrics", "screenshot"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
_INSTALL_TIMEOUT_S = 1200
_RUN_TIMEOUT_S = 120


def find_chromium() -> str | None:
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """The Chromium binary, installed from Debian's packages if needed; skips the test if impossible."""
    found = find_chromium()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root); "
                    "install it with: apt-get update && apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Test processes running side by side install once: the others wait here, then find it.
    with open(Path(tempfile.gettempdir()) / "connector-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for args in ([] if find_chromium() else [["apt-get", "update", "-q"],
                                                 ["apt-get", "install", "-y", "-q", "chromium"]]):
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S,
                                  check=False)
            if done.returncode != 0:
                pytest.skip(f"chromium could not be installed: {' '.join(args)} failed: {done.stderr[-500:]}")
    found = find_chromium()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def _run(binary: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="connector-chromium-") as profile:
        done = subprocess.run(
            [binary, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=_RUN_TIMEOUT_S, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dump_dom(binary: str, url: str) -> str:
    """The page's DOM after Chromium loaded and rendered it."""
    return _run(binary, "--dump-dom", url)


def screenshot(binary: str, url: str, path: Path, width: int = 1280, height: int = 900) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(binary, f"--screenshot={path}", f"--window-size={width},{height}", "--hide-scrollbars", url)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class _Metrics(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}
        self.duplicates: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        name = values.get("data-metric")
        if name is None:
            return
        if name in self.found:
            self.duplicates.append(name)
        self.found[name] = values.get("data-value") or ""


def read_metrics(html: str) -> dict[str, str]:
    """Every ``data-metric`` of a page with its ``data-value``; a name used twice is an error."""
    parser = _Metrics()
    parser.feed(html)
    if parser.duplicates:
        raise AssertionError(f"data-metric names used more than once: {sorted(set(parser.duplicates))}")
    return parser.found
