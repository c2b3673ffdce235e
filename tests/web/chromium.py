"""Headless Chromium for the page tests: find or install it (Debian's package), dump a DOM, take a screenshot.

``ensure_chromium()`` installs ``chromium`` with apt-get when it is missing and
the tests run as root (CI containers); otherwise the calling test is skipped
with the reason. ``read_metrics`` turns a rendered page into {data-metric: data-value}.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

__all__ = ["Browser", "dump_dom", "ensure_chromium", "read_metrics", "screenshot"]

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


class Browser:
    """One headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    What a person does, without any script in the page: open a URL, type into
    a field, press Enter (which submits its form), then read the DOM. Cookies
    live as long as the browser, so a sign-in carries over to the next page.
    """

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="connector-chromium-", ignore_cleanup_errors=True)
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # Chromium reads commands from fd 3 and writes to fd 4; bash puts them there (dash: one-digit fds only).
        wiring = f'exec "$@" 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-'
        self._process = subprocess.Popen(
            ["bash", "-c", wiring, "bash", binary, *_FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._next = 0
        self._session: str | None = None
        [target] = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"][:1]
        self._session = self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One command; its result (an error answer raises)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive(_RUN_TIMEOUT_S)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._events.append(answer)

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(line)
        return message

    def _wait_for(self, event: str, timeout_s: float = _RUN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for n, seen in enumerate(self._events):
                if seen.get("method") == event:
                    del self._events[: n + 1]
                    return
            self._events.append(self._receive(max(0.0, deadline - time.monotonic())))

    def open(self, url: str) -> None:
        self._events.clear()
        self.send("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")

    def url(self) -> str:
        history = self.send("Page.getNavigationHistory")
        url: str = history["entries"][history["currentIndex"]]["url"]
        return url

    def type_and_enter(self, selector: str, text: str, *, lands_on: str) -> None:
        """Focus the field, type ``text``, press Enter, and wait until the page at path ``lands_on`` loaded.

        A page that reloads itself (the status page) may load again meanwhile: such loads are skipped.
        """
        node = self._find(selector)
        self.send("DOM.focus", nodeId=node)
        self.send("Input.insertText", text=text)
        self._events.clear()
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))
        deadline = time.monotonic() + _RUN_TIMEOUT_S
        while True:
            self._wait_for("Page.loadEventFired", max(0.0, deadline - time.monotonic()))
            if urlsplit(self.url()).path == lands_on:
                return

    def _find(self, selector: str, timeout_s: float = 10.0) -> int:
        """The element's node id, waiting out a reload under way (the document is empty meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while True:
            root = self.send("DOM.getDocument")["root"]["nodeId"]
            node: int = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
            if node:
                return node
            if time.monotonic() > deadline:
                raise AssertionError(f"no {selector} on the page")
            time.sleep(0.1)

    def dom(self) -> str:
        """The current page's DOM as HTML."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        html: str = self.send("DOM.getOuterHTML", nodeId=root)["outerHTML"]
        return html

    def close(self) -> None:
        try:
            self._session = None
            self.send("Browser.close")
            self._process.wait(timeout=15)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):  # its own session: the browser and its helpers
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
