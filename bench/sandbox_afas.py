"""Benchmark: the AFAS sandbox's GetConnector at 100,000 contacts.

The sandbox runs in its own process (as ``connector sandbox afas`` would), so
the client threads do not share its interpreter. Prints the seed time, the
first (cold) page, the time per page of a full walk with take=1000 ordered by
ContactId (small skip versus large skip: a page is a slice of a cached order,
so deep pages should cost what shallow ones do), and requests per second for
a 1,000-row page from several httpx client threads. Asserts nothing about time.

    python bench/sandbox_afas.py [--contacts 100000] [--threads 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

import httpx

from connector.sandbox.afas.testing import auth_header
from connector.sandbox.server import free_port

CONNECTOR = "/ProfitRestServices/connectors/Spotler_Contacts"
TAKE = 1000


def start_sandbox(port: int, contacts: int) -> subprocess.Popen[bytes]:
    code = (
        "from connector.sandbox.server import serve;"
        "from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app;"
        f"serve(create_app(contacts={contacts}, seed=1, token=DEFAULT_TOKEN), '127.0.0.1', {port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/summary", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit("sandbox exited during start-up") from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("sandbox did not start")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def walk(client: httpx.Client) -> list[tuple[int, float, int]]:
    """Every page of take=1000 ordered by ContactId: (skip, seconds, rows)."""
    pages = []
    skip = 0
    while True:
        params = {"skip": skip, "take": TAKE, "orderbyfieldids": "ContactId"}
        began = time.perf_counter()
        response = client.get(CONNECTOR, params=params)
        elapsed = time.perf_counter() - began
        response.raise_for_status()
        rows = len(response.json()["rows"])
        pages.append((skip, elapsed, rows))
        if rows < TAKE:
            return pages
        skip += TAKE


def hammer(url: str, seconds: float, skip: int, latencies: list[float], errors: list[str]) -> None:
    params = {"skip": skip, "take": TAKE, "orderbyfieldids": "ContactId"}
    with httpx.Client(headers=auth_header(), timeout=60) as client:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            began = time.perf_counter()
            response = client.get(url, params=params)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                errors.append(str(response.status_code))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    port = free_port()
    began = time.perf_counter()
    proc = start_sandbox(port, args.contacts)
    print(f"sandbox seeded with {args.contacts:,} contacts and listening after {time.perf_counter() - began:.1f} s")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=auth_header(), timeout=120) as client:
            cold = time.perf_counter()
            client.get(CONNECTOR, params={"skip": 0, "take": 1, "orderbyfieldids": "ContactModified"})
            print(f"first query (builds the rows and one order):      {ms(time.perf_counter() - cold)}")
            began = time.perf_counter()
            pages = walk(client)
            total = time.perf_counter() - began
            rows = sum(p[2] for p in pages)
            print(f"full walk: {len(pages)} pages, {rows:,} rows in {total:.2f} s ({rows / total:,.0f} rows/s)")
            first, rest = pages[0], pages[1:]
            print(f"  page 1 (skip 0, sorts once):                    {ms(first[1])}")
            tenth = max(1, len(rest) // 10)
            shallow = [p[1] for p in rest[:tenth]]
            deep = [p[1] for p in rest[-tenth:]]
            print(f"  median of pages 2..{tenth + 1} (small skip):            {ms(statistics.median(shallow))}")
            print(f"  median of the last {tenth} pages (skip ≥ {rest[-tenth][0]:,}):  {ms(statistics.median(deep))}")
            print(f"  median of all cached pages:                     {ms(statistics.median(p[1] for p in rest))}")

        latencies: list[float] = []
        errors: list[str] = []
        skip = max(0, args.contacts // 2)
        threads = [
            threading.Thread(target=hammer, args=(base + CONNECTOR, args.seconds, skip, latencies, errors))
            for _ in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        count = len(latencies)
        print(
            f"{args.threads} threads, {args.seconds:.0f} s, take={TAKE} at skip={skip:,}: "
            f"{count / args.seconds:,.0f} requests/s ({count * TAKE / args.seconds:,.0f} rows/s), "
            f"median {ms(statistics.median(latencies))}, errors {len(errors)}"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
