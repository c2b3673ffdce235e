"""Benchmark: what the journal, the consent trail and the events outbox cost after an initial sync.

The whole link as OS processes on the two sandboxes, as ``bench/redis_memory.py``
runs it (``--workers`` spotler workers, an afas worker, both producers; no
latency, Spotler 10,000 requests/s), once per mode, each on a fresh stack (its
own embedded Redis, sandboxes seeded alike):

- ``journal off``: ``JOURNAL_MAX_ENTRIES=0``, no ``EVENTS_URL``;
- ``journal on``: ``JOURNAL_MAX_ENTRIES=50`` (the default), no ``EVENTS_URL``;
- ``journal on + outbox``: also ``EVENTS_URL`` set to a bus nobody listens on
  and no publisher running, so the outbox keeps every event
  (``EVENTS_OUTBOX_MAX=2000000``: nothing trimmed).

The consent trail has no switch: every mode keeps it.

Per mode: **contacts/s** from starting the AFAS producer (workers up) until
every valid contact is written and the queue is empty; until settled (both
producers finished a poll started after that, queues empty), the CPU seconds
of the link's processes and of Redis, and Redis's ``EVAL`` calls (the
journal's appends, one per contact per call, with the producers' locks and
the outbox's records). Then, settled: Redis bytes per valid
contact as ``used_memory`` minus the Redis before the producers started, and
per key family (journal ``connector:journal:*``, consent
``connector:consent:*``, outbox ``connector:outbox*``) both the sum of
``MEMORY USAGE`` over its keys (SCAN by pattern) and the ``used_memory`` drop
when the family's keys are deleted (which also counts what ``MEMORY USAGE``
leaves out, such as a key's expiry entry). With the journal on, its frames are
counted by kind and a journal of median length is shown frame by frame.

Last, in the outbox mode, on the same Redis with the link stopped and the
three families deleted, a micro-benchmark: the steps, consent records and
events of one synced contact recorded again for ``--micro`` fresh contacts,
batched as the link batches them (the AFAS producer's steps a page at a time
in one pipeline, a worker's per batch of 100 contacts), in µs per step,
record or event; and a journal appended to at 49 and 50 steps (full: the
oldest goes). Asserts nothing about time.

    python bench/journal_cost.py [--contacts 100000] [--workers 2] [--threads 8] [--micro 10000] [--modes …] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import msgspec
import psutil
import redis

from common import machine, open_stack, print_table, start_workers, valid_contact_ids
from connector.clients.afas import page_size_for
from connector.events.outbox import OUTBOX, Outbox
from connector.events.schemas import ContactSynced, DomainEvent, decode_event
from connector.schemas.mapping import load_mapping
from connector.state.consent import ConsentRecord, ConsentTrail
from connector.state.journal import Journal, Seen, Step, Wrote
from redis_memory import family, settle

UNREACHABLE_BUS = "amqp://guest:guest@127.0.0.1:9//"  # the discard port: nothing answers, nothing publishes
MODES: dict[str, dict[str, str]] = {
    "journal off": {"JOURNAL_MAX_ENTRIES": "0"},
    "journal on": {"JOURNAL_MAX_ENTRIES": "50"},
    "journal on + outbox": {"JOURNAL_MAX_ENTRIES": "50", "EVENTS_URL": UNREACHABLE_BUS,
                            "EVENTS_OUTBOX_MAX": "2000000"},
}
FAMILIES = {"journal": "connector:journal:*", "consent": "connector:consent:*", "outbox": "connector:outbox*"}
WORKER_BATCH = 100  # contacts per Spotler batch: a worker's steps, records and events per call
MICRO_BASE = 900_000_000  # fresh ContactIds for the micro-benchmark, far above the sandbox's


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children."""
    root = psutil.Process(pid)
    return sum(float(t.user + t.system) for t in (p.cpu_times() for p in [root, *root.children(recursive=True)]))


def keys_of(client: redis.Redis, pattern: str) -> list[bytes]:
    return list(client.scan_iter(match=pattern, count=1000))


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def memory_usage(client: redis.Redis, keys: list[bytes]) -> dict[str, int]:
    """``MEMORY USAGE`` summed by key shape (``connector:journal:*``, ``connector:consent:t``, …)."""
    parts: Counter[str] = Counter()
    for batch in chunks(keys, 1000):
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, n in zip(batch, pipe.execute(), strict=True):
            parts[family(key.decode())] += int(n or 0)
    return dict(parts.most_common())


def dropped(client: redis.Redis, keys: list[bytes]) -> int:
    """``used_memory`` freed by deleting ``keys`` (read after the append-only buffer has gone out)."""
    time.sleep(1.5)
    before = used(client)
    for batch in chunks(keys, 1000):
        client.delete(*batch)
    time.sleep(1.5)
    return before - used(client)


def frames(value: bytes) -> Iterator[tuple[int, bytes]]:
    """(length byte, msgpack body) of each frame: 1 length byte, 4 time bytes, the body."""
    pos = 0
    while pos < len(value):
        n = value[pos]
        yield n, value[pos + 5:pos + 1 + n]
        pos += n + 1


def step_kind(body: bytes) -> str:
    packed = msgspec.msgpack.decode(body)
    tag = packed[0]
    if tag == 1:
        return f"Seen {packed[1]} {packed[-1]}"
    if tag == 4:
        return f"Wrote {packed[1]} {packed[4]}"
    return {2: "Settled", 3: "Rejected", 5: "DeadLettered", 6: "Replayed"}.get(tag, f"tag {tag}")


def named_fields(body: bytes) -> bool:
    """A Seen or Wrote step whose field list holds a name (a string) rather than only positions."""
    packed = msgspec.msgpack.decode(body)
    fields = packed[3] if packed[0] in (1, 4) and len(packed) > 3 else []
    return isinstance(fields, list) and any(isinstance(f, str) for f in fields)


def journal_anatomy(client: redis.Redis, keys: list[bytes], valid: int) -> dict[str, Any]:
    """Where a journal's bytes are: value sizes, frames by kind, one key of median length in detail."""
    values: list[tuple[bytes, bytes]] = []
    for batch in chunks(keys, 1000):
        values += [(k, v) for k, v in zip(batch, cast(list[bytes | None], client.mget(batch)), strict=True) if v]
    kinds: Counter[str] = Counter()
    body_bytes: Counter[str] = Counter()
    wrote_first = 0  # a worker's step stored before the producer's step that led to it
    by_name = 0  # steps holding field names, not positions in connector:fields (names not registered yet)
    for _, value in values:
        order = []
        for _, body in frames(value):
            kind = step_kind(body)
            order.append(kind)
            kinds[kind] += 1
            body_bytes[kind] += len(body)
            by_name += named_fields(body)
        if "Seen afas to_spotler" in order and order[0].startswith("Wrote"):
            wrote_first += 1
    lengths = sorted(len(v) for _, v in values)
    median = lengths[len(lengths) // 2]
    key, value = next((k, v) for k, v in values if len(v) == median)
    return {
        "keys": len(values), "value_bytes_mean": round(sum(lengths) / len(lengths), 1), "value_bytes_median": median,
        "frames_per_contact": round(sum(kinds.values()) / valid, 3), "wrote_before_seen": wrote_first,
        "steps_with_field_names": by_name,
        "by_kind": {k: {"per_contact": round(n / valid, 3), "body_bytes_mean": round(body_bytes[k] / n, 1)}
                    for k, n in kinds.most_common()},
        "sample": {
            "key": key.decode(), "memory_usage": int(client.memory_usage(key, samples=0) or 0),
            "value_bytes": len(value), "ttl_s": int(client.ttl(key)), "key_bytes": len(key),
            "frames": [{"kind": step_kind(body), "frame_bytes": n + 1, "body_bytes": len(body),
                        "body_hex": body.hex()} for n, body in frames(value)],
        },
    }


def run_mode(args: argparse.Namespace, mode: str, micro: bool) -> dict[str, Any]:
    env = {"SPOTLER_RATE_PER_S": "10000", "POLL_INTERVAL_S": "5", **MODES[mode]}
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        valid, invalid = valid_contact_ids(stack)
        client = redis.Redis.from_url(stack.redis_url)
        start_workers(stack, args.workers, args.threads)
        stack.start("afas-worker", "work", "--queue", "afas")
        empty = used(client)
        began = time.perf_counter()
        stack.start("afas-producer", "produce", "afas")
        stack.start("spotler-producer", "produce", "spotler")
        synced_at = settle(stack, client, len(valid), args.timeout)
        time.sleep(1.5)
        settled = used(client)
        link = [p for name, p in stack.processes.items() if not name.endswith("sandbox")]
        cpu = client.info("cpu")
        stats = client.info("commandstats")  # script calls: the journal's appends, the locks', the outbox's
        evals = {k: sum(float(stats.get(f"cmdstat_{c}", {}).get(k, 0)) for c in ("eval", "evalsha"))
                 for k in ("calls", "usec")}
        link_cpu_s = sum(tree_cpu(p.pid) for p in link)
        for proc in link:
            proc.stop()  # nothing writes while the families are read, deleted and timed
        n = len(valid)
        figures: dict[str, Any] = {
            "mode": mode, "env": MODES[mode], "valid": n, "invalid": invalid,
            "wall_s": round(synced_at - began, 1), "contacts_per_s": round(n / (synced_at - began)),
            "redis_bytes_per_contact_settled": round((settled - empty) / n, 1),
            "cpu_s": {"link": round(link_cpu_s, 1), "redis": round(float(cpu["used_cpu_user"])
                                                                   + float(cpu["used_cpu_sys"]), 1)},
            "eval_calls": int(evals.get("calls", 0)), "eval_s_in_redis": round(float(evals.get("usec", 0)) / 1e6, 1),
        }
        family_keys = {name: keys_of(client, pattern) for name, pattern in FAMILIES.items()}
        if mode != "journal off" and family_keys["journal"]:
            figures["journal_anatomy"] = journal_anatomy(client, family_keys["journal"], n)
        if "EVENTS_URL" in MODES[mode]:
            figures["events"] = int(client.xlen(OUTBOX))
            figures["events_per_contact"] = round(figures["events"] / n, 3)
            figures["events_by_kind"] = events_by_kind(client)
        figures["consent_records"] = sum(int(client.zcard(k)) for k in family_keys["consent"]
                                         if k.startswith(b"connector:consent:c:"))
        figures["consent_records_per_contact"] = round(figures["consent_records"] / n, 3)
        sample = template(client) if micro else None
        figures["families"] = {}
        for name, keys in family_keys.items():
            parts = memory_usage(client, keys)
            usage = sum(parts.values())
            freed = dropped(client, keys) if keys else 0
            figures["families"][name] = {
                "keys": len(keys), "memory_usage_bytes": usage, "memory_usage_per_contact": round(usage / n, 1),
                "used_memory_drop": freed, "used_memory_drop_per_contact": round(freed / n, 1),
                "memory_usage_by_key": {k: round(b / n, 1) for k, b in parts.items()}}
        figures["redis_bytes_per_contact_without_the_three"] = round((used(client) - empty) / n, 1)
        if sample is not None:  # on the same Redis, the three families deleted: fresh keys only
            figures["micro"] = micro_bench(client, sample, args.micro, page_size_for(len(load_mapping(None).columns)))
        return figures


StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def events_by_kind(client: redis.Redis) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    low = "-"
    while entries := cast(StreamEntries, client.xrange(OUTBOX, min=low, max="+", count=5000)):
        kinds.update(fields[b"k"].decode() for _, fields in entries)
        low = "(" + entries[-1][0].decode()
    return dict(kinds.most_common())


# -- the micro-benchmark --------------------------------------------------------------------------------

Template = tuple[str, list[Step], list[ConsentRecord], list[DomainEvent]]


def template(client: redis.Redis) -> Template:
    """A synced contact's steps, consent records and events: the first in the outbox that has all three."""
    by_contact: dict[str, list[DomainEvent]] = {}
    for _, fields in cast(StreamEntries, client.xrange(OUTBOX, count=2000)):
        by_contact.setdefault(fields[b"c"].decode(), []).append(decode_event(fields[b"e"]))
    journal, trail = Journal(client), ConsentTrail(client)
    for cid, events in by_contact.items():
        steps = [e.step for e in journal.entries(cid)]
        records = trail.timeline(cid)
        if steps and records and any(isinstance(e, ContactSynced) for e in events):
            return cid, steps, records, events
    raise RuntimeError("no synced contact with steps, consent records and events among the outbox's first")


def per_item_us(batches: Iterable[Callable[[], object]], items: int) -> float:
    began = time.perf_counter()
    for call in batches:
        call()
    return round((time.perf_counter() - began) / items * 1e6, 1)


def micro_bench(client: redis.Redis, sample: Template, contacts: int, page: int) -> dict[str, Any]:
    cid, stored, records, events = sample
    steps = sorted(stored, key=sync_order)  # a worker may have journalled its write before the producer its change
    ids = [str(MICRO_BASE + n) for n in range(contacts)]
    journal = Journal(client, max_entries=50, retention_s=30 * 86400.0)
    now = time.time()

    def appends(step: Step, size: int) -> Iterator[Callable[[], object]]:
        for batch in chunks(ids, size):
            yield functools.partial(journal.append, [(c, step) for c in batch], now=now)

    rounds: list[dict[str, Any]] = []
    for held, step in enumerate(steps):  # the sync's steps in order: the AFAS producer's by page, others by 100
        size = page if isinstance(step, Seen) and step.source == "afas" else WORKER_BATCH
        rounds.append({"step": describe_step(step), "per_call": size, "held_before": held,
                       "us_per_step": per_item_us(appends(step, size), contacts)})
    # A full journal: every contact at 49 steps, then two writes more (the second drops the oldest).
    filler = [Seen(source="afas", stamp=n, fields=[], decision="echo") for n in range(49 - len(steps))]
    for batch in chunks(ids, WORKER_BATCH):
        journal.append([(c, s) for c in batch for s in filler], now=now)
    last = Wrote(target="spotler", entity="contact/list", fields=["email"], outcome="ok", attempt=2)
    for held, step in ((49, last), (50, msgspec.structs.replace(last, attempt=3))):
        rounds.append({"step": describe_step(step), "per_call": WORKER_BATCH, "held_before": held,
                       "us_per_step": per_item_us(appends(step, WORKER_BATCH), contacts)})
    full = statistics.mean(journal.size(c) for c in ids[:1000])

    trail = ConsentTrail(client)

    def consent(batch: list[str]) -> None:
        trail.record([msgspec.structs.replace(r, contact_id=c) for c in batch for r in records])
        trail.expire()

    outbox = Outbox(client, max_len=2_000_000)

    def outbox_record(batch: list[str]) -> None:
        outbox.record([msgspec.structs.replace(e, contact_id=c) for c in batch for e in events])

    return {
        "contacts": contacts, "template_contact": cid, "producer_page": page, "journal": rounds,
        "journal_full_value_bytes": round(full, 1),
        "consent_records_per_contact": len(records),
        "consent_us_per_record": per_item_us((functools.partial(consent, b) for b in chunks(ids, WORKER_BATCH)),
                                             contacts * len(records)),
        "outbox_events_per_contact": len(events),
        "outbox_us_per_event": per_item_us((functools.partial(outbox_record, b) for b in chunks(ids, WORKER_BATCH)),
                                           contacts * len(events)),
    }


def sync_order(step: Step) -> int:
    """The AFAS producer's change first, then the write into Spotler, then the rest (the read-back)."""
    if isinstance(step, Seen) and step.source == "afas":
        return 0
    return 1 if isinstance(step, Wrote) else 2


def describe_step(step: Step) -> str:
    if isinstance(step, Seen):
        return f"Seen {step.source} {step.decision}"
    if isinstance(step, Wrote):
        return f"Wrote {step.target} {step.outcome}, attempt {step.attempt}"
    return type(step).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--micro", type=int, default=10_000, help="fresh contacts of the micro-benchmark")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of: " + ", ".join(MODES))
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown modes: {', '.join(unknown)}")

    print(machine())
    runs = [run_mode(args, mode, micro=(mode == modes[-1] and "EVENTS_URL" in MODES[mode])) for mode in modes]
    report(args, runs)
    if args.json:
        print("JOURNAL_COST " + json.dumps({"contacts": args.contacts, "workers": args.workers,
                                            "threads": args.threads, "runs": runs}, sort_keys=True))


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    first = runs[0]
    print(f"{args.contacts:,} AFAS rows ({first['valid']:,} valid, {first['invalid']:,} invalid) · "
          f"{args.workers} spotler workers x {args.threads} threads, 1 afas worker, both producers · "
          "Spotler 10,000 requests/s, no latency")
    print_table("initial sync, one fresh stack per mode", ["mode", "wall s", "contacts/s", "CPU s link / Redis",
                "EVAL calls (s in Redis)", "Redis B/contact settled", "without the three families",
                "events / contact", "consent records / contact"], [
        (r["mode"], r["wall_s"], f"{r['contacts_per_s']:,}", f"{r['cpu_s']['link']} / {r['cpu_s']['redis']}",
         f"{r['eval_calls']:,} ({r['eval_s_in_redis']})", r["redis_bytes_per_contact_settled"],
         r["redis_bytes_per_contact_without_the_three"], r.get("events_per_contact", "-"),
         r["consent_records_per_contact"]) for r in runs])
    rows = []
    for r in runs:
        for name, f in r["families"].items():
            if f["keys"]:
                rows.append((r["mode"], name, f"{f['keys']:,}", f"{f['memory_usage_bytes']:,}",
                             f["memory_usage_per_contact"], f"{f['used_memory_drop']:,}",
                             f["used_memory_drop_per_contact"]))
    print_table("settled, per key family (bytes per valid contact)", ["mode", "family", "keys", "MEMORY USAGE",
                "per contact", "used_memory drop on DEL", "per contact"], rows)
    last = runs[-1]["families"]
    print("MEMORY USAGE per contact by key, " + runs[-1]["mode"] + ": " + "; ".join(
        ", ".join(f"{k} {b}" for k, b in f["memory_usage_by_key"].items()) for f in last.values() if f["keys"]))
    for r in runs:
        if "events_by_kind" in r:
            print(f"events in the outbox ({r['mode']}): "
                  + ", ".join(f"{k} {n:,}" for k, n in r["events_by_kind"].items()))
    anatomy = next((r["journal_anatomy"] for r in reversed(runs) if "journal_anatomy" in r), None)
    if anatomy:
        s = anatomy["sample"]
        print(f"\njournal values: mean {anatomy['value_bytes_mean']} B, median {anatomy['value_bytes_median']} B, "
              f"{anatomy['frames_per_contact']} frames per contact; {anatomy['wrote_before_seen']:,} journals hold "
              f"the Spotler write before the AFAS change it wrote; {anatomy['steps_with_field_names']:,} steps hold "
              "field names instead of positions")
        print_table("journal frames by kind", ["step", "per contact", "msgpack body B (mean)"],
                    [(k, v["per_contact"], v["body_bytes_mean"]) for k, v in anatomy["by_kind"].items()])
        print(f"\nsample {s['key']} (median length): MEMORY USAGE {s['memory_usage']} B, value {s['value_bytes']} B, "
              f"key name {s['key_bytes']} B, TTL {s['ttl_s']} s")
        for f in s["frames"]:
            print(f"  frame {f['frame_bytes']} B = 1 length + 4 time + {f['body_bytes']} B msgpack "
                  f"({f['kind']}): {f['body_hex']}")
    micro = next((r["micro"] for r in runs if "micro" in r), None)
    if micro:
        print(f"\nmicro-benchmark on the same Redis, {micro['contacts']:,} fresh contacts, the steps, records and "
              f"events of contact {micro['template_contact']}; AFAS producer page {micro['producer_page']:,}")
        print_table("time per event", ["what", "contacts per call", "µs each"], [
            *[(f"journal append: {j['step']} ({j['held_before']} steps held)", j["per_call"], j["us_per_step"])
              for j in micro["journal"]],
            (f"consent record (+ expire), {micro['consent_records_per_contact']} per contact", WORKER_BATCH,
             micro["consent_us_per_record"]),
            (f"outbox event, {micro['outbox_events_per_contact']} per contact", WORKER_BATCH,
             micro["outbox_us_per_event"]),
        ])
        print(f"a full journal (50 steps) holds {micro['journal_full_value_bytes']} B")


if __name__ == "__main__":
    main()
