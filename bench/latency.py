"""Benchmark: how long an edit in one system takes to arrive in the other, with the real processes.

For each poll interval (``--intervals``, seconds; 30 is production's default)
a fresh link runs as OS processes on a flushed Redis: both sandboxes, both
producers and one worker per queue (``connector work``, default threads), with
production's rate settings (``SPOTLER_RATE_PER_S=5``, ``AFAS_MAX_PARALLEL=4``)
unless told otherwise. After the initial sync and one more poll of each
producer, ``--repeats`` edits of each kind are made at random moments spread
over ``--spread`` poll intervals (one per equal slot, so every phase of the
poll cycle is sampled), each on its own contact, person and organisation:

    AFAS contact e-mail, AFAS person first name, AFAS organisation name  → Spotler
    Spotler unsubscribe (permission bit 1), Spotler last name            → AFAS

A kind's latency is the arrival's stamp minus the edit's stamp, both taken
from the systems themselves: the AFAS entity's modification time (Amsterdam
local time, ms) and the Spotler contact's ``lastChanged`` (epoch ms). Both
sandboxes run on this machine's clock, so the bench's own polling for the
arrival (every ``--check-s``) adds nothing to the figures.

Prints per kind and interval n / min / median / p95 / max (p95 by nearest
rank: with 20 edits the 19th value), the producers' poll durations meanwhile,
and one ``summary {json}`` line. Asserts nothing about time.

    python bench/latency.py [--intervals 30,5] [--repeats 20] [--spread 2] [--contacts 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import redis

from common import flush_connector_keys, machine, open_stack, set_faults
from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.seed import PRIVATE_ORGANISATION
from connector.schemas.mapping import load_mapping
from connector.stack import ManagedProcess, Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.sync.rows import ContactRecord, decode_row

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MAPPING = load_mapping(None)


def afas_epoch(text: str) -> float:
    """An AFAS sandbox entity's ``modified`` (naive Amsterdam wall-clock time) as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM).timestamp()


@dataclass(frozen=True)
class Edit:
    """One edit to make: which kind, on which contact, with which new value."""

    kind: str
    record: ContactRecord
    value: str


# A kind: (label, make the edit and return its stamp, return the arrival's stamp or None).
Make = Callable[[Stack, Edit], float]
Arrived = Callable[[Stack, Edit], float | None]


def _afas_edit(entity: str, ident: Callable[[ContactRecord], str], code: str) -> Make:
    def make(stack: Stack, edit: Edit) -> float:
        body = {"entity": entity, "id": ident(edit.record), "fields": {code: edit.value}}
        view = stack.afas("POST", "edit", json=body)
        return afas_epoch(view["modified"])

    return make


def _in_spotler(prop: str) -> Arrived:
    def arrived(stack: Stack, edit: Edit) -> float | None:
        contact = stack.spotler("GET", f"contacts/{edit.record.contact_id}")
        return contact["lastChanged"] / 1000 if contact["properties"].get(prop) == edit.value else None

    return arrived


def _spotler_stamp(stack: Stack, edit: Edit) -> float:
    return float(stack.spotler("GET", f"contacts/{edit.record.contact_id}")["lastChanged"]) / 1000


def _unsubscribe(stack: Stack, edit: Edit) -> float:
    stack.spotler("POST", "unsubscribe", json={"externalId": edit.record.contact_id, "bit": 1})
    return _spotler_stamp(stack, edit)


def _unsubscribed_in_afas(stack: Stack, edit: Edit) -> float | None:
    view = stack.afas("GET", f"contacts/{edit.record.contact_id}")
    return afas_epoch(view["modified"]) if view["Newsletter"] is False else None


def _spotler_last_name(stack: Stack, edit: Edit) -> float:
    stack.spotler("POST", "edit", json={"externalId": edit.record.contact_id, "properties": {"lastName": edit.value}})
    return _spotler_stamp(stack, edit)


def _last_name_in_afas(stack: Stack, edit: Edit) -> float | None:
    if stack.afas("GET", f"contacts/{edit.record.contact_id}")["LastName"] != edit.value:
        return None
    return afas_epoch(stack.afas("GET", f"persons/{edit.record.person_id}")["modified"])


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    make: Make
    arrived: Arrived
    value: Callable[[int], str]
    needs: Callable[[ContactRecord], bool] = lambda record: True


KINDS = (
    Kind("afas_email", "AFAS contact e-mail → Spotler", _afas_edit("contact", lambda r: r.contact_id, "EmAd"),
         _in_spotler("email"), lambda n: f"latency.{n}@example.org"),
    Kind("afas_person_name", "AFAS person first name → Spotler",
         _afas_edit("person", lambda r: r.person_id, "FiNm"), _in_spotler("firstName"), lambda n: f"Meting{n}"),
    Kind("afas_organisation", "AFAS organisation name → Spotler",
         _afas_edit("organisation", lambda r: r.organisation_id, "Nm"), _in_spotler("organisation"),
         lambda n: f"Latentie {n} B.V."),
    Kind("spotler_unsubscribe", "Spotler unsubscribe → AFAS", _unsubscribe, _unsubscribed_in_afas,
         lambda n: "", lambda r: r.values.get("permissions.1") is True),
    Kind("spotler_name", "Spotler last name → AFAS", _spotler_last_name, _last_name_in_afas,
         lambda n: f"Vertraging-{n}"),
)


@dataclass
class Outcome:
    """What one interval's run measured."""

    interval_s: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    polls: dict[str, list[float]] = field(default_factory=dict)  # source → poll durations meanwhile
    measured_s: float = 0.0


def read_records(stack: Stack) -> list[ContactRecord]:
    with AfasClient(f"{stack.afas_url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        return [
            decoded
            for page in client.iter_pages("Spotler_Contacts", key="ContactId", page_size=5000)
            for row in page
            if isinstance(decoded := decode_row(row, MAPPING), ContactRecord)
        ]


def pick(records: Sequence[ContactRecord], repeats: int, seed: int) -> list[Edit]:
    """``repeats`` edits per kind, each on a contact whose person and organisation no other edit touches."""
    per_person: dict[str, int] = {}
    for record in records:
        per_person[record.person_id] = per_person.get(record.person_id, 0) + 1
    pool = [r for r in records if not r.blocked and per_person[r.person_id] == 1
            and r.values.get("organisation") != PRIVATE_ORGANISATION]
    random.Random(seed).shuffle(pool)
    used_orgs: set[str] = set()
    edits: list[Edit] = []
    for kind in KINDS:
        for n in range(repeats):
            record = next((r for r in pool if r.organisation_id not in used_orgs and kind.needs(r)), None)
            if record is None:
                raise SystemExit(f"not enough distinct organisations for {repeats} edits per kind: raise --contacts")
            used_orgs.add(record.organisation_id)
            edits.append(Edit(kind.key, record, kind.value(n)))
    return edits


def start_link(stack: Stack) -> list[ManagedProcess]:
    processes = [
        stack.start("spotler-worker", "work", "--queue", "spotler"),
        stack.start("afas-worker", "work", "--queue", "afas"),
    ]
    for proc in processes:
        wait_until(lambda p=proc: _started(p), timeout_s=120, interval_s=0.05)  # type: ignore[misc]
    processes.append(stack.start("afas-producer", "produce", "afas"))
    processes.append(stack.start("spotler-producer", "produce", "spotler"))
    return processes


def _started(proc: ManagedProcess) -> bool:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
    return "worker started" in proc.output()


def settle(client: redis.Redis, valid: int, timeout_s: float) -> None:
    """The initial sync written, then one whole poll of each producer after it, queues empty."""
    def synced() -> bool:
        written, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
        return written + rejected >= valid and outstanding(client, "spotler") == 0

    wait_until(synced, timeout_s=timeout_s, interval_s=0.1)
    after = time.time()
    history = RunHistory(client)
    for source in ("afas", "spotler"):
        wait_until(lambda s=source: any(r.started_at > after for r in history.latest(s, 5)),  # type: ignore[misc]
                   timeout_s=timeout_s, interval_s=0.2)
    wait_until(lambda: outstanding(client, "spotler") + outstanding(client, "afas") == 0, timeout_s, 0.1)


def measure(stack: Stack, client: redis.Redis, edits: list[Edit], args: argparse.Namespace,
            interval_s: float) -> Outcome:
    """Make the edits at their moments; wait for each to arrive; the systems' stamps give the latency."""
    kinds = {k.key: k for k in KINDS}
    rng = random.Random(args.seed)
    slot = interval_s * args.spread / args.repeats
    began = time.time() + 1.0
    by_kind: dict[str, int] = {}
    schedule: list[tuple[float, Edit]] = []
    for edit in edits:
        n = by_kind[edit.kind] = by_kind.get(edit.kind, -1) + 1
        schedule.append((began + (n + rng.random()) * slot, edit))
    schedule.sort(key=lambda item: item[0])
    deadline_s = 2 * interval_s + args.timeout
    outcome = Outcome(interval_s, {k.key: [] for k in KINDS}, {k.key: 0 for k in KINDS})
    pending: list[tuple[Edit, float, float]] = []  # edit, its stamp, give up after
    while schedule or pending:
        now = time.time()
        while schedule and schedule[0][0] <= now:
            _, edit = schedule.pop(0)
            pending.append((edit, kinds[edit.kind].make(stack, edit), time.time() + deadline_s))
        still: list[tuple[Edit, float, float]] = []
        for edit, stamp, give_up in pending:
            arrived = kinds[edit.kind].arrived(stack, edit)
            if arrived is not None:
                outcome.latencies[edit.kind].append(arrived - stamp)
            elif time.time() > give_up:
                outcome.missing[edit.kind] += 1
                print(f"  {edit.kind} on contact {edit.record.contact_id}: not arrived after {deadline_s:.0f} s")
            else:
                still.append((edit, stamp, give_up))
        pending = still
        wake = min([args.check_s, *(at - time.time() for at, _ in schedule[:1])])
        time.sleep(max(0.0, wake))
    ended = time.time()
    outcome.measured_s = ended - began
    history = RunHistory(client)
    outcome.polls = {s: [r.duration_s for r in history.latest(s, 10_000) if began <= r.started_at <= ended]
                     for s in ("afas", "spotler")}
    return outcome


def run_interval(interval_s: float, args: argparse.Namespace) -> Outcome:
    env = {"POLL_INTERVAL_S": f"{interval_s:g}", "SPOTLER_RATE_PER_S": f"{args.rate:g}",
           "AFAS_MAX_PARALLEL": str(args.afas_parallel)}
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        client = redis.Redis.from_url(stack.redis_url)
        flush_connector_keys(client)
        if args.latency_ms:
            set_faults(stack, "afas", latency_ms=args.latency_ms)
            set_faults(stack, "spotler", latency_ms=args.latency_ms)
        records = read_records(stack)
        edits = pick(records, args.repeats, args.seed)
        set_up = time.perf_counter()
        start_link(stack)
        settle(client, len(records), timeout_s=4 * interval_s + args.timeout)
        print(f"  POLL_INTERVAL_S={interval_s:g}: link up, initially synced and settled in "
              f"{time.perf_counter() - set_up:.0f} s; {len(edits)} edits over {interval_s * args.spread:g} s",
              flush=True)
        outcome = measure(stack, client, edits, args, interval_s)
        print(f"  POLL_INTERVAL_S={interval_s:g}: measured in {outcome.measured_s:.0f} s", flush=True)
        flush_connector_keys(client)
        client.close()
        return outcome


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def figures(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "p95": p95(values), "max": max(values)}


def report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    stats = ("min", "median", "p95", "max")
    label_width = max(len(k.label) for k in KINDS)
    block = "  ".join(f"{s:>6}" for s in ("n", *stats))
    print(f"\nEdit → arrival, seconds (systems' own stamps; {args.repeats} edits per kind and interval)")
    print((" " * label_width + "".join(f"    {f'POLL_INTERVAL_S={o.interval_s:g}':<{len(block)}}"
                                       for o in outcomes)).rstrip())
    print(f"{'kind':<{label_width}}" + "".join(f"    {block}" for _ in outcomes))
    print("-" * (label_width + (len(block) + 4) * len(outcomes)))
    for kind in KINDS:
        cells = []
        for o in outcomes:
            got = figures(o.latencies[kind.key])
            missing = f"-{o.missing[kind.key]}" if o.missing[kind.key] else ""
            n = f"{len(o.latencies[kind.key])}{missing}"
            cells.append("  ".join([f"{n:>6}", *(f"{got.get(s, math.nan):>6.1f}" for s in stats)]))
        print(f"{kind.label:<{label_width}}" + "".join(f"    {c}" for c in cells))
    print("\nproducer polls during the measurement: count, median / max duration")
    for o in outcomes:
        parts = [f"{source} {len(d)} polls, {statistics.median(d):.2f} / {max(d):.2f} s" if d else f"{source} none"
                 for source, d in o.polls.items()]
        print(f"  POLL_INTERVAL_S={o.interval_s:g}: " + "; ".join(parts))
    summary = {
        "bench": "latency",
        "contacts": args.contacts,
        "repeats": args.repeats,
        "latency_ms": args.latency_ms,
        "intervals_s": [o.interval_s for o in outcomes],
        "latency_s": {
            kind.key: {
                f"{o.interval_s:g}": {
                    "n": len(o.latencies[kind.key]), "missing": o.missing[kind.key],
                    **{s: round(v, 3) for s, v in figures(o.latencies[kind.key]).items()},
                }
                for o in outcomes
            }
            for kind in KINDS
        },
    }
    print("\nsummary " + json.dumps(summary, separators=(",", ":")))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--intervals", default="30,5", help="comma-separated POLL_INTERVAL_S values")
    parser.add_argument("--repeats", type=int, default=20, help="edits per kind and interval")
    parser.add_argument("--spread", type=float, default=2.0, help="poll intervals the edits are spread over")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5.0, help="SPOTLER_RATE_PER_S (production default 5)")
    parser.add_argument("--afas-parallel", type=int, default=4, help="AFAS_MAX_PARALLEL")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call of both sandboxes")
    parser.add_argument("--check-s", type=float, default=0.25, help="how often the bench looks for arrivals")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    intervals = [float(s) for s in args.intervals.split(",")]

    print(machine())
    print(f"{args.contacts:,} AFAS contacts · SPOTLER_RATE_PER_S={args.rate:g} · AFAS_MAX_PARALLEL="
          f"{args.afas_parallel} · +{args.latency_ms:g} ms per API call · 1 worker per queue (default threads)")
    outcomes = [run_interval(interval, args) for interval in intervals]
    report(outcomes, args)


if __name__ == "__main__":
    main()
