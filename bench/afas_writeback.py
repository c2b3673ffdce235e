"""Benchmark: Spotler → AFAS write-back, only the changed entities versus all three.

One seeded AFAS sandbox in its own process adds ``--latency-ms`` to every
call. ``--changes`` Spotler changes on distinct contacts (about 70% opt-outs,
12% name edits, 10% e-mail edits, 8% edits of the organisation's customer
type) are written twice, in the same run, each time to a freshly reset sandbox:

1. the connector: ``apply_afas_change`` messages on the ``afas`` queue,
   processed by ``--workers`` ``connector work --queue afas`` OS processes
   under the shared cap ``AFAS_MAX_PARALLEL=--parallel``; only the entities
   whose fields changed are PUT;
2. the naive way: every change PUTs the whole record to KnContact, KnPerson and
   KnOrganisation (3 calls), ``--parallel`` calls at a time.

Calls are counted by the sandbox itself; both runs are checked against the
GetConnector afterwards. Prints a table; asserts nothing about time.

    python bench/afas_writeback.py [--changes 1000] [--latency-ms 300] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import redis

from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.names import CUSTOMER_TYPES
from connector.schemas.events import AfasChange, Value
from connector.schemas.mapping import load_mapping
from connector.stack import ManagedProcess, Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.sync.rows import ContactRecord, decode_row
from connector.sync.to_afas import afas_writes

MAPPING = load_mapping(None)
CONNECTOR = "Spotler_Contacts"
FIRST_NAMES = ("Anne", "Bram", "Daan", "Fleur", "Joris", "Lotte", "Milan", "Noor", "Sem", "Tess")
LAST_NAMES = ("Bakker", "de Boer", "Dekker", "Jansen", "Meijer", "Mulder", "Smit", "Visser", "de Vries")


class Result(msgspec.Struct, kw_only=True):
    name: str
    changes: int
    seconds: float
    routes: dict[str, int]
    max_in_flight: int
    verified: int
    missing: dict[str, int]  # Spotler field -> changes whose value AFAS does not show afterwards
    why_lost: str = ""

    @property
    def calls(self) -> int:
        return sum(n for route, n in self.routes.items() if route.startswith("PUT "))

    def put(self, connector: str) -> int:
        return self.routes.get(f"PUT /connectors/{connector}", 0)


def read_contacts(client: AfasClient) -> dict[str, ContactRecord]:
    records: dict[str, ContactRecord] = {}
    for page in client.iter_pages(CONNECTOR, key="ContactId", page_size=5000):
        for row in page:
            decoded = decode_row(row, MAPPING)
            if isinstance(decoded, ContactRecord):
                records[decoded.contact_id] = decoded
    return records


def _other(current: Value, options: tuple[str, ...], rng: random.Random) -> str:
    return rng.choice([o for o in options if o != current])


def make_changes(records: dict[str, ContactRecord], count: int, seed: int) -> tuple[list[AfasChange], Counter[str]]:
    """``count`` changes on distinct persons; an organisation's customer type changes once at most."""
    rng = random.Random(seed)
    shares = {"opt-out": 0.70, "name": 0.12, "e-mail": 0.10, "customer type": 0.08}
    kinds = [k for k, share in shares.items() for _ in range(round(share * count))]
    kinds = (kinds + ["opt-out"] * count)[:count]
    rng.shuffle(kinds)
    pool = list(records.values())
    rng.shuffle(pool)
    persons: set[str] = set()
    orgs: set[str] = set()
    changes: list[AfasChange] = []
    mix: Counter[str] = Counter()
    stamp = int(time.time() * 1000)
    for kind in kinds:
        record = next(
            r
            for r in pool
            if r.person_id not in persons
            and (kind != "opt-out" or r.values.get("permissions.1") is True)
            and (kind != "customer type" or r.organisation_id not in orgs)
        )
        persons.add(record.person_id)
        values: dict[str, Value]
        if kind == "opt-out":
            values = {"permissions.1": False}
            if record.values.get("permissions.2") is True and rng.random() < 0.3:
                values["permissions.2"] = False  # unsubscribed from everything: still one call
        elif kind == "name":
            values = {
                "firstName": _other(record.values.get("firstName"), FIRST_NAMES, rng),
                "lastName": _other(record.values.get("lastName"), LAST_NAMES, rng),
            }
        elif kind == "e-mail":
            values = {"email": f"bench.{record.contact_id}@example.org"}
        else:
            orgs.add(record.organisation_id)
            values = {"customerType": _other(record.values.get("customerType"), CUSTOMER_TYPES, rng)}
        mix[kind] += 1
        changes.append(
            AfasChange(
                contact_id=record.contact_id,
                person_id=record.person_id,
                organisation_id=record.organisation_id,
                changes=values,
                # Each run's changes are newer than the last, whatever the agreed state holds.
                stamps=dict.fromkeys(values, stamp),
                bases=dict.fromkeys(values, -1),
            )
        )
    return changes, mix


def verify(client: AfasClient, changes: list[AfasChange]) -> tuple[int, Counter[str]]:
    """How many changes the GetConnector shows in full, and the fields of those it does not."""
    records = read_contacts(client)
    missing: Counter[str] = Counter()
    verified = 0
    for change in changes:
        values = records[change.contact_id].values if change.contact_id in records else {}
        wrong = [name for name, value in change.changes.items() if values.get(name) != value]
        missing.update(wrong)
        verified += not wrong
    return verified, missing


def prepare(stack: Stack, args: argparse.Namespace) -> None:
    """A freshly seeded sandbox with the latency on and the request counters at zero."""
    stack.afas("POST", "reset", json={"contacts": args.contacts, "seed": args.seed})
    stack.afas("PUT", "faults", json={"latency_ms": args.latency_ms})
    stack.afas("DELETE", "requests")


def finish(stack: Stack, name: str, changes: list[AfasChange], seconds: float, client: AfasClient) -> Result:
    stats = stack.afas("GET", "requests")
    stack.afas("PUT", "faults", json={})
    verified, missing = verify(client, changes)
    return Result(
        name=name,
        changes=len(changes),
        seconds=seconds,
        routes=stats["routes"],
        max_in_flight=stats["max_in_flight"],
        verified=verified,
        missing=dict(missing),
    )


def run_connector(stack: Stack, changes: list[AfasChange], args: argparse.Namespace, client: AfasClient) -> Result:
    """Enqueue every change and let the worker processes write them."""
    os.environ["REDIS_URL"] = stack.redis_url  # the global broker is built from it on import
    from connector.workers.actor import send
    from connector.workers.actors_afas import AFAS_QUEUE, apply_afas_change

    connection = redis.Redis.from_url(stack.redis_url)
    connection.delete(COUNTERS)
    prepare(stack, args)
    workers: list[ManagedProcess] = [
        stack.start(f"afas-worker-{n}", "work", "--queue", AFAS_QUEUE, "--threads", str(args.threads))
        for n in range(args.workers)
    ]
    try:
        wait_until(lambda: all("worker started" in w.output() for w in workers), timeout_s=120)
        began = time.perf_counter()
        for change in changes:
            send(apply_afas_change, change)

        def done() -> bool:
            dead = [w.name for w in workers if not w.alive()]
            if dead:
                raise SystemExit(f"{', '.join(dead)} exited; see {stack.log_dir}")
            written = int(connection.hget(COUNTERS, "afas_changes_written") or 0)
            return written >= len(changes) and outstanding(connection, AFAS_QUEUE) == 0

        wait_until(done, timeout_s=3600, interval_s=0.05)
        seconds = time.perf_counter() - began
    finally:
        for worker in workers:
            worker.stop()
    return finish(stack, f"connector ({args.workers} worker processes)", changes, seconds, client)


def run_naive(
    stack: Stack, changes: list[AfasChange], records: dict[str, ContactRecord], args: argparse.Namespace,
    client: AfasClient,
) -> Result:
    """Every change writes the whole record to all three UpdateConnectors."""
    prepare(stack, args)

    def write_all(change: AfasChange) -> None:
        full = {**records[change.contact_id].values, **change.changes}
        writes = afas_writes(msgspec.structs.replace(change, changes=full), MAPPING)
        assert len(writes) == 3, [w.connector for w in writes]
        for write in writes:
            client.update(write.connector, write.fields)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(write_all, changes))
    seconds = time.perf_counter() - began
    result = finish(stack, f"naive (3 PUTs per change, {args.parallel} in parallel)", changes, seconds, client)
    if set(result.missing) <= {"customerType"}:
        result.why_lost = (
            ": a full-record write for another contact of the same organisation put back "
            "the organisation's old value (a lost update)"
        )
    return result


def report(results: list[Result], mix: Counter[str], args: argparse.Namespace) -> None:
    total = sum(mix.values())
    print(
        f"{total} Spotler changes on {total} contacts: "
        + ", ".join(f"{kind} {n} ({100 * n / total:.0f}%)" for kind, n in mix.most_common())
    )
    print(f"AFAS sandbox: +{args.latency_ms:.0f} ms per call; at most {args.parallel} calls in parallel\n")
    header = (
        f"{'approach':<44} {'AFAS calls':>10} {'calls/contact':>13} {'KnContact':>9} {'KnPerson':>8} "
        f"{'KnOrganisation':>14} {'max in flight':>13} {'wall time':>9} {'changes/s':>9} {'verified':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<44} {r.calls:>10} {r.calls / r.changes:>13.2f} {r.put('KnContact'):>9} "
            f"{r.put('KnPerson'):>8} {r.put('KnOrganisation'):>14} {r.max_in_flight:>13} "
            f"{r.seconds:>8.1f}s {r.changes / r.seconds:>9.1f} {r.verified:>4}/{r.changes}"
        )
    ours, naive = results
    for r in results:
        if r.verified < r.changes:
            fields = ", ".join(f"{name} {n}" for name, n in sorted(r.missing.items()))
            print(f"{r.name}: {r.changes - r.verified} change(s) not in AFAS afterwards ({fields}){r.why_lost}")
    print(
        f"\ncalls: {ours.calls / naive.calls:.0%} of naive; wall time: {ours.seconds / naive.seconds:.0%} of naive "
        f"(floor at {args.parallel} in parallel: {ours.calls * args.latency_ms / 1000 / args.parallel:.1f}s "
        f"vs {naive.calls * args.latency_ms / 1000 / args.parallel:.1f}s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=2500, help="contacts seeded in the sandbox")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--parallel", type=int, default=4, help="AFAS_MAX_PARALLEL")
    parser.add_argument("--workers", type=int, default=2, help="worker OS processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-afas-writeback-"))
    env = {"AFAS_MAX_PARALLEL": str(args.parallel)}
    with Stack(data_dir, contacts=args.contacts, seed=args.seed, env=env) as stack:
        stack.start(
            "afas-sandbox", "sandbox", "afas", "--port", str(stack.afas_port),
            "--contacts", str(args.contacts), "--seed", str(args.seed),
        )
        wait_until(lambda: _up(stack), timeout_s=120)
        with AfasClient(f"{stack.afas_url}/ProfitRestServices", DEFAULT_TOKEN, timeout=60) as client:
            records = read_contacts(client)
            changes, mix = make_changes(records, args.changes, args.seed)
            ours = run_connector(stack, changes, args, client)
            naive = run_naive(stack, changes, records, args, client)
        report([ours, naive], mix, args)
    shutil.rmtree(data_dir, ignore_errors=True)  # kept (logs included) when the run fails


def _up(stack: Stack) -> Any:
    try:
        return stack.afas("GET", "summary")
    except Exception:
        if not stack.processes["afas-sandbox"].alive():
            raise SystemExit("the AFAS sandbox exited during start-up") from None
        return None


if __name__ == "__main__":
    main()
