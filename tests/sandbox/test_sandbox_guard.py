"""Both sandboxes bound their inputs: seed sizes, body sizes, and a control token beyond loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from connector.cli import sandbox as sandbox_cli
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as create_afas
from connector.sandbox.afas.testing import auth_header
from connector.sandbox.guard import MAX_BODY_BYTES, MAX_CONTACTS, control_headers, is_loopback
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import create_app as create_spotler
from connector.stack import Stack

CONTROL = "control-token-for-tests"
AFAS_WRITE = "/ProfitRestServices/connectors/KnContact"
SPOTLER_WRITE = "/integrationservice-1.1.0/contact/list"


@pytest.fixture(scope="module")
def afas() -> Iterator[str]:
    with BackgroundServer(create_afas(contacts=5, seed=1, token=DEFAULT_TOKEN)) as server:
        yield server.url


@pytest.fixture(scope="module")
def spotler() -> Iterator[str]:
    with BackgroundServer(create_spotler()) as server:
        yield server.url


def raw_request(url: str, head: str, chunks: list[bytes] = ()) -> tuple[int, bytes]:  # type: ignore[assignment]
    """Send a request head (and chunks) over a plain socket; (status, body) of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode() + b"\r\n")
        for chunk in chunks:
            conn.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            data = conn.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.split(b"\r\n\r\n", 1)[1]


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _head(method: str, path: str, *lines: str) -> str:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, ""])


@pytest.mark.parametrize(("which", "path"), [
    ("afas", AFAS_WRITE), ("afas", "/_sandbox/reset"), ("spotler", SPOTLER_WRITE), ("spotler", "/_sandbox/contacts"),
])
def test_a_declared_body_over_10_mib_is_413_without_sending_it(
    which: str, path: str, afas: str, spotler: str
) -> None:
    url = afas if which == "afas" else spotler
    status, body = raw_request(url, _head("POST", path, f"Content-Length: {MAX_BODY_BYTES + 1}",
                                          "Content-Type: application/json", *_auth(which)))
    assert status == 413
    assert b"larger than 10 MiB" in body


@pytest.mark.parametrize(("which", "path"), [("afas", AFAS_WRITE), ("spotler", "/_sandbox/contacts")])
def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(which: str, path: str, afas: str, spotler: str) -> None:
    url = afas if which == "afas" else spotler
    piece = b"x" * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # Eleven MiB sent, never the closing chunk: an app that read the whole body would wait for ever.
    status, body = raw_request(url, _head("POST", path, "Transfer-Encoding: chunked",
                                          "Content-Type: application/json", *_auth(which)), [chunk] * 11)
    assert status == 413
    assert b"larger than 10 MiB" in body


def _auth(which: str) -> list[str]:
    return [f"Authorization: {auth_header()['Authorization']}"] if which == "afas" else []


def test_a_body_under_the_limit_is_read_as_before(afas: str, spotler: str) -> None:
    big = b"[" + b" " * (MAX_BODY_BYTES - 10) + b"]"
    assert httpx.post(f"{afas}/_sandbox/edit", content=big, timeout=30).status_code == 400  # not an edit
    assert httpx.post(f"{spotler}/_sandbox/contacts", content=big, timeout=30).status_code == 400


def test_reset_accepts_at_most_a_million_contacts(afas: str) -> None:
    for contacts in (MAX_CONTACTS + 1, 10**12, -1):
        refused = httpx.post(f"{afas}/_sandbox/reset", json={"contacts": contacts, "seed": 1}, timeout=30)
        assert refused.status_code == 400
        assert "contacts" in refused.json()["error"]
    assert httpx.post(f"{afas}/_sandbox/reset", json={"contacts": 5, "seed": 1}).json()["contacts"] == 5
    with pytest.raises(ValueError, match="1,000,000"):
        create_afas(contacts=MAX_CONTACTS + 1, seed=1, token=DEFAULT_TOKEN)


def test_spotler_seeds_at_most_a_million_contacts_a_call(spotler: str) -> None:
    body = b'{"contacts": [' + b",".join([b"{}"] * (MAX_CONTACTS + 1)) + b"]}"
    assert len(body) < MAX_BODY_BYTES
    refused = httpx.post(f"{spotler}/_sandbox/contacts", content=body, timeout=60)
    assert refused.status_code == 400
    assert "1,000,000" in refused.json()["message"]


@pytest.mark.parametrize("which", ["afas", "spotler"])
def test_with_a_control_token_the_control_api_requires_it(which: str) -> None:
    app: Any = (create_afas(contacts=3, seed=1, token=DEFAULT_TOKEN, control_token=CONTROL) if which == "afas"
                else create_spotler(control_token=CONTROL))
    with BackgroundServer(app) as server:
        control = f"{server.url}/_sandbox/requests"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": CONTROL},
                        {"Authorization": f"Basic {CONTROL}"}, {"Authorization": f"Bearer {CONTROL}x"}):
            refused = httpx.get(control, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert CONTROL not in refused.text
        assert httpx.get(control, headers=control_headers(CONTROL)).status_code == 200
        if which == "afas":  # the API itself is authenticated as Profit does it, not by the control token
            api = httpx.get(f"{server.url}/ProfitRestServices/profitversion", headers=auth_header())
            assert api.status_code == 200


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.0.10", "example.org", ""):
        assert not is_loopback(host), host


@pytest.mark.parametrize("which", ["afas", "spotler"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.0.10", "sandbox.example.org"])
def test_the_cli_refuses_a_non_loopback_host_without_a_control_token(
    which: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    monkeypatch.setattr(sandbox_cli, "serve", lambda app, h, port: served.append(h))
    monkeypatch.delenv("SANDBOX_CONTROL_TOKEN", raising=False)
    result = CliRunner().invoke(sandbox_cli.sandbox, [which, "--host", host, "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to bind" in result.output
    assert served == []


@pytest.mark.parametrize("which", ["afas", "spotler"])
@pytest.mark.parametrize("how", ["option", "env"])
def test_the_cli_binds_anywhere_with_a_control_token_that_the_control_api_then_requires(
    which: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Any, str]] = []
    monkeypatch.setattr(sandbox_cli, "serve", lambda app, h, port: served.append((app, h)))
    monkeypatch.delenv("SANDBOX_CONTROL_TOKEN", raising=False)
    args = [which, "--host", "0.0.0.0", "--port", "1"]
    if which == "afas":
        args += ["--contacts", "3"]
    if how == "option":
        args += ["--control-token", CONTROL]
    result = CliRunner().invoke(sandbox_cli.sandbox, args, env={"SANDBOX_CONTROL_TOKEN": CONTROL} if how == "env"
                                else None)
    assert result.exit_code == 0, result.output
    assert CONTROL not in result.output
    [(app, host)] = served
    assert host == "0.0.0.0"
    with BackgroundServer(app) as server:  # what it would have served, here on loopback
        assert httpx.get(f"{server.url}/_sandbox/requests").status_code == 401
        assert httpx.get(f"{server.url}/_sandbox/requests", headers=control_headers(CONTROL)).status_code == 200


def test_the_cli_refuses_more_than_a_million_contacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_cli, "serve", lambda app, h, port: None)
    result = CliRunner().invoke(sandbox_cli.sandbox, ["afas", "--contacts", str(MAX_CONTACTS + 1)])
    assert result.exit_code == 2
    assert "--contacts" in result.output


def test_on_loopback_without_a_token_the_control_api_is_open_as_before(afas: str, spotler: str) -> None:
    assert httpx.get(f"{afas}/_sandbox/summary").status_code == 200
    assert httpx.get(f"{spotler}/_sandbox/requests").status_code == 200


@pytest.mark.e2e
def test_a_control_token_in_the_environment_flows_from_the_stack_to_its_sandboxes(
    tmp_path: Path, redis_url: str
) -> None:
    with Stack(tmp_path / "stack", redis_url=redis_url, contacts=20, seed=2,
               env={"SANDBOX_CONTROL_TOKEN": CONTROL}) as stack:
        stack.start_sandboxes()  # waits on the control API: only answers with the token
        assert stack.afas("GET", "summary")["contacts"] == 20
        assert stack.spotler("GET", "requests")["total"] == 0
        assert httpx.get(f"{stack.afas_url}/_sandbox/summary").status_code == 401
        assert httpx.get(f"{stack.spotler_url}/_sandbox/requests").status_code == 401
