"""Benchmark: signed ``POST contact/list`` calls (100 contacts each) per second, Spotler sandbox.

The sandbox runs in its own process (as ``connector sandbox spotler`` would),
so the client threads do not share its interpreter. Every request is signed
with oauthlib (OAuth 1.0a HMAC-SHA1), sent with httpx over keep-alive
connections, and must answer 200 with one OK per contact. Prints figures;
asserts nothing about time.

    python bench/sandbox_spotler.py [--threads 4] [--seconds 5] [--distinct 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

import httpx
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, Client

from connector.sandbox.server import free_port
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET

BATCH = 100


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    code = (
        "from connector.sandbox.server import serve;"
        "from connector.sandbox.spotler.app import create_app;"
        f"serve(create_app(), '127.0.0.1', {port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/requests", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("sandbox did not start")


def batch_body(start: int, distinct: int) -> bytes:
    contacts = []
    for n in range(start, start + BATCH):
        i = n % distinct
        contacts.append({
            "externalId": str(100000 + i),
            "properties": {
                "email": f"contact{i}@example.com",
                "firstName": "Jan",
                "lastName": f"Jansen {n}",  # changes every round: a real write each time
                "city": "Utrecht",
                "permissions": [{"bit": 1, "enabled": n % 2 == 0}, {"bit": 2, "enabled": True}],
            },
        })
    return json.dumps({"update": True, "purge": False, "contacts": contacts}).encode()


def worker(
    url: str, seconds: float, distinct: int, offset: int, latencies: list[float], errors: list[str]
) -> None:
    signer = Client(
        DEFAULT_KEY, client_secret=DEFAULT_SECRET, signature_type=SIGNATURE_TYPE_AUTH_HEADER
    )
    sent = offset
    with httpx.Client(timeout=30) as http:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            body = batch_body(sent, distinct)
            _, headers, _ = signer.sign(url, http_method="POST")
            headers.update({"Content-Type": "application/json", "Accept": "application/json"})
            began = time.perf_counter()
            response = http.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or any(r["code"] != "OK" for r in response.json()):
                errors.append(f"{response.status_code} {response.text[:200]}")
            sent += BATCH * 97  # threads walk different contacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--distinct", type=int, default=20_000, help="distinct externalIds")
    args = parser.parse_args()

    port = free_port()
    proc = start_sandbox(port)
    url = f"http://127.0.0.1:{port}/integrationservice-1.1.0/contact/list"
    try:
        warm: list[float] = []
        worker(url, 1.0, args.distinct, 0, warm, [])  # warm-up, also seeds contacts
        latencies: list[float] = []
        errors: list[str] = []
        threads = [
            threading.Thread(
                target=worker,
                args=(url, args.seconds, args.distinct, i * 1000, latencies, errors),
            )
            for i in range(args.threads)
        ]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        stats = httpx.get(f"http://127.0.0.1:{port}/_sandbox/requests").json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    count = len(latencies)
    print(f"POST contact/list x {BATCH} contacts, {args.threads} client threads, {elapsed:.1f} s")
    print(f"  requests:       {count} ({len(errors)} failed)")
    print(f"  requests/s:     {count / elapsed:,.0f}")
    print(f"  contacts/s:     {count * BATCH / elapsed:,.0f}")
    if latencies:
        ordered = sorted(latencies)
        p95 = ordered[int(0.95 * (count - 1))]
        median = statistics.median(ordered)
        print(f"  latency median: {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    print(f"  sandbox max in flight: {stats['max_in_flight']}")
    if errors:
        print(f"  first error: {errors[0]}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
