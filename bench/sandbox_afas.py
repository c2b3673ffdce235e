"""Benchmark: the AFAS sandbox's GetConnector at 100,000 contacts.

The sandbox runs in its own process (as ``connector sandbox afas`` would), so
the client threads do not share its interpreter. Prints the seed time, the
first (cold) page, the time per page of full walks with take=1000 ordered by
ContactId: a first one by skip (it also encodes each row's JSON, once), then
one by skip and one by key (``ContactId > last`` at skip 0, the way the
connector pages: every page a new filter) on encoded rows; early pages against
deep ones, since a page is a slice (or a bisect) of a cached order. Then
requests per second for a 1,000-row page from several httpx client threads,
by skip and by key. Asserts nothing about time.

The sandbox's deep-skip model (a page waits 3 s per 100,000 rows skipped, as
AFAS is slow at deep skips) is on unless ``--no-deep-skip`` is given; the run
prints which. With it on, the walks by skip show what they would cost against
Profit; ``--no-deep-skip`` measures the sandbox's own cost of a page.

    python bench/sandbox_afas.py [--contacts 100000] [--threads 4] [--seconds 5] [--no-deep-skip]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

import httpx

from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.afas_paging import page_params
from connector.sandbox.afas.skip_cost import DEFAULT_MS_PER_100K
from connector.sandbox.afas.testing import auth_header
from connector.sandbox.server import free_port

CONNECTOR = "/ProfitRestServices/connectors/Spotler_Contacts"
TAKE = 1000


def start_sandbox(port: int, contacts: int, ms_per_100k: float) -> subprocess.Popen[bytes]:
    code = (
        "from connector.sandbox.server import serve;"
        "from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app;"
        "from connector.sandbox.afas.skip_cost import SkipCost;"
        f"serve(create_app(contacts={contacts}, seed=1, token=DEFAULT_TOKEN, "
        f"skip_cost=SkipCost(ms_per_100k={ms_per_100k!r})), '127.0.0.1', {port})"
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


def by_key(after: int | None) -> dict[str, str]:
    """The connector's keyset page: ``ContactId > after`` at skip 0 (no filter on the first page)."""
    flt = None if after is None else Filter.all_of(Condition("ContactId", Op.GT, after))
    return page_params(flt, ["ContactId"], 0, TAKE)


def walk(client: httpx.Client, keyset: bool) -> list[tuple[int, float, int]]:
    """Every page of take=1000 ordered by ContactId, by skip or by key: (rows before it, seconds, rows)."""
    pages = []
    skip = 0
    after: int | None = None
    while True:
        params = by_key(after) if keyset else {"skip": str(skip), "take": str(TAKE), "orderbyfieldids": "ContactId"}
        began = time.perf_counter()
        response = client.get(CONNECTOR, params=params)
        elapsed = time.perf_counter() - began
        response.raise_for_status()
        rows = response.json()["rows"]
        pages.append((skip, elapsed, len(rows)))
        if len(rows) < TAKE:
            return pages
        skip += TAKE
        after = int(rows[-1]["ContactId"])


def report_walk(name: str, pages: list[tuple[int, float, int]], total: float) -> None:
    rows = sum(p[2] for p in pages)
    print(f"{name}: {len(pages)} pages, {rows:,} rows in {total:.2f} s ({rows / total:,.0f} rows/s)")
    first, rest = pages[0], pages[1:]
    print(f"  page 1 (rows 0.., sorts once):                  {ms(first[1])}")
    tenth = max(1, len(rest) // 10)
    shallow = [p[1] for p in rest[:tenth]]
    deep = [p[1] for p in rest[-tenth:]]
    print(f"  median of pages 2..{tenth + 1} (early rows):            {ms(statistics.median(shallow))}")
    print(f"  median of the last {tenth} pages (rows ≥ {rest[-tenth][0]:,}):  {ms(statistics.median(deep))}")
    print(f"  median of pages 2..{len(pages)}:                        {ms(statistics.median(p[1] for p in rest))}")


def hammer(url: str, seconds: float, params: dict[str, str], latencies: list[float], errors: list[str]) -> None:
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
    parser.add_argument("--deep-skip", action=argparse.BooleanOptionalAction, default=True,
                        help="the sandbox's deep-skip model (default: on)")
    args = parser.parse_args()

    ms_per_100k = DEFAULT_MS_PER_100K if args.deep_skip else 0.0
    model = f"on, {ms_per_100k:g} ms per 100,000 rows skipped" if ms_per_100k else "off"
    print(f"deep-skip model: {model}")
    port = free_port()
    began = time.perf_counter()
    proc = start_sandbox(port, args.contacts, ms_per_100k)
    print(f"sandbox seeded with {args.contacts:,} contacts and listening after {time.perf_counter() - began:.1f} s")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=auth_header(), timeout=120) as client:
            cold = time.perf_counter()
            client.get(CONNECTOR, params={"skip": 0, "take": 1, "orderbyfieldids": "ContactModified"})
            print(f"first query (builds the rows and one order):      {ms(time.perf_counter() - cold)}")
            walks = (("first full walk, by skip (encodes each row's JSON once)", False),
                     ("full walk by skip, rows encoded", False),
                     ("full walk by key (ContactId > last, skip 0), rows encoded", True))
            for name, keyset in walks:
                began = time.perf_counter()
                pages = walk(client, keyset)
                report_walk(name, pages, time.perf_counter() - began)

        middle = max(0, args.contacts // 2)
        with httpx.Client(base_url=base, headers=auth_header(), timeout=120) as client:
            key = int(client.get(CONNECTOR, params={"skip": str(middle), "take": "1",
                                                    "orderbyfieldids": "ContactId"}).json()["rows"][0]["ContactId"])
        for name, params in ((f"skip={middle:,}", {"skip": str(middle), "take": str(TAKE),
                                                    "orderbyfieldids": "ContactId"}),
                             (f"ContactId > {key}", by_key(key))):
            latencies: list[float] = []
            errors: list[str] = []
            threads = [
                threading.Thread(target=hammer, args=(base + CONNECTOR, args.seconds, params, latencies, errors))
                for _ in range(args.threads)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            count = len(latencies)
            print(
                f"{args.threads} threads, {args.seconds:.0f} s, take={TAKE} at {name}: "
                f"{count / args.seconds:,.0f} requests/s ({count * TAKE / args.seconds:,.0f} rows/s), "
                f"median {ms(statistics.median(latencies))}, errors {len(errors)}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
