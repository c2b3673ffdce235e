"""The chaos bench's oracle: both systems' end state against every edit that was made.

``collect`` reads the end state (AFAS rows, Spotler contacts, agreed states,
rejections, dead letters, bounce flags); ``judge`` applies these rules to
every contact AFAS lists:

- *excused*: a rejection or a dead letter names the contact (reasons printed);
  it counts neither as divergent nor as lost;
- *divergent*: AFAS's mapped row (``decode_row``: a blocked contact has every
  bit off) differs from Spotler's contact (``spotler_values``) or from the
  agreed state in any mapped field; an invalid AFAS row without a rejection;
- *lost edit*, per (contact, field), over the edits made on either side:
  Spotler edits of one-way fields do not count (AFAS's value, or its initial
  one, must win); a Spotler opt-in made while AFAS blocked the contact, or
  within ``window`` before the block, is overruled by the block, except that
  one made within ``window`` before AFAS lifts the block may also stand (the
  link may read the lifted block first: allowed, not required); per side, a
  run of edits each within ``window`` of the previous that ends on the value
  that side held before it is invisible to a poll (its last value is allowed,
  not required). The final value on both sides must be the last remaining
  edit's value, or a value set on the other side within ``window`` before it
  (no defined order); when that last edit is an opt-out, off is required. A
  blocked contact's bits are only held to "off". A hard bounce must set the
  mapping's ``[bounce]`` yes/no field in AFAS; the blocked flag must be AFAS's
  last block edit;
- *raced*: a lost edit whose last edit a write of the link into the same
  system overwrote within ``RACE_S`` after it was made (the sandboxes record
  when API writes changed a contact): the edit landed between the link's last
  look at that system and its write, the one-call window that neither API lets
  a link close (no conditional write). Counted and printed apart, not excused
  silently; the CI test bounds how many a run may have;
- *settled*: a lost edit of a field the link recorded a conflict on
  (``connector conflicts``), whose settled value is the final value and whose
  losing side held the edit's value, was decided by the mapping's owner rules
  (``newest`` compares AFAS's row stamp, which any edit of the row moves; an
  AFAS opt-in loses to a later Spotler change with the bit off): counted and
  printed, not lost. Opt-outs stay strict: no conflict rule ever settles a
  bit on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis

from connector.schemas.events import Value
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import Contact
from connector.stack import Stack
from connector.state.agreed import AgreedStore
from connector.state.conflicts import ConflictStore
from connector.state.rejections import RejectionStore
from connector.sync.from_spotler import spotler_values
from connector.sync.rows import ContactRecord
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["RACE_S", "Edit", "EndState", "Verdict", "collect", "judge", "one_way", "split_raced"]

BLOCKED, BOUNCE = "blocked", "bounce"  # edit "fields" outside the mapping
UNKNOWN: Any = "<unknown>"  # an edit's prior value when the bench did not read it
RACE_S = 1.0  # a link write landing this soon after an edit raced it (one call, on a busy machine)


@dataclass(frozen=True)
class Edit:
    """One edit the bench made: when, where, on which contact, which mapped field, what value."""

    at: float
    side: str  # "afas" | "spotler"
    contact: str
    field: str  # the mapping's Spotler-side name, or "blocked" / "bounce"
    value: Value
    kind: str
    prior: Any = UNKNOWN  # what that side held just before (read for yes/no and code fields)


@dataclass
class EndState:
    rows: dict[str, ContactRecord]
    rejected_rows: dict[str, str]  # contact -> decode_row's reason
    spotler: dict[str, dict[str, Value]]
    spotler_raw: dict[str, dict[str, Any]]
    agreed: dict[str, dict[str, Value] | None]
    excuses: dict[str, list[str]]  # contact -> rejection / dead-letter reasons
    bounced_flag: dict[str, bool]
    conflicts: dict[tuple[str, str], list[tuple[Value, Value, Value, str]]] = field(default_factory=dict)


@dataclass
class Verdict:
    divergent: dict[str, list[str]] = field(default_factory=dict)
    lost: list[dict[str, Any]] = field(default_factory=list)
    excused: dict[str, list[str]] = field(default_factory=dict)
    settled: list[dict[str, Any]] = field(default_factory=list)  # lost to a recorded owner-rule conflict
    raced: list[dict[str, Any]] = field(default_factory=list)  # overwritten within RACE_S by a link write

    def fingerprint(self, state: EndState) -> bytes:
        """What must not change between two comparisons for the end state to count as stable."""
        return msgspec.json.encode([
            sorted(self.divergent), [(e["contact"], e["field"]) for e in self.lost], sorted(self.excused),
            sorted((c, r.values) for c, r in state.rows.items()), sorted(state.spotler.items()),
        ])


def one_way(mapping: Mapping, name: str) -> bool:
    fm = next(f for f in mapping.fields if f.name == name)
    return fm.target is None or fm.type == "tablelink"


def afas_rows(stack: Stack, mapping: Mapping) -> tuple[dict[str, ContactRecord], dict[str, str]]:
    valid, rejected = stack.afas_records(mapping)
    return valid, {cid: f"{r.field}: {r.reason}" for cid, r in rejected.items()}


def collect(stack: Stack, client: redis.Redis, mapping: Mapping, bounced: set[str]) -> EndState:
    rows, rejected_rows = afas_rows(stack, mapping)
    raw = {c["externalId"]: c for c in stack.spotler("GET", "contacts")}
    ids = sorted(set(rows) | set(raw), key=lambda c: (len(c), c))
    agreed = dict(zip(ids, AgreedStore(client).get_many(ids), strict=True))
    excuses: dict[str, list[str]] = defaultdict(list)
    for r in RejectionStore(client).list():
        excuses[str(r.contact_id)].append(f"rejected ({r.source}, {r.field}): {r.reason}")
    for letter in DeadLetterStore(client).list(limit=1_000_000):
        if letter.entity_key and letter.entity_key.startswith("contact:"):
            excuses[letter.entity_key.removeprefix("contact:")].append(
                f"dead letter {letter.id} ({letter.queue}, {letter.reason}, {letter.attempts} attempts): "
                f"{letter.error_class}: {letter.error[:200]}")
    code = (mapping.bounce.writeback or "").partition(".")[2]  # the [bounce] yes/no field, e.g. KnContact.U…
    flags = {cid: bool(stack.afas("GET", f"contacts/{cid}")["fields"].get(code)) for cid in bounced}
    return EndState(
        rows=rows, rejected_rows=rejected_rows,
        spotler={cid: spotler_values(msgspec.convert(c, Contact), mapping) for cid, c in raw.items()},
        spotler_raw=raw, agreed=agreed, excuses=dict(excuses), bounced_flag=flags,
        conflicts=_conflicts(client),
    )


def _conflicts(client: redis.Redis) -> dict[tuple[str, str], list[tuple[Value, Value, Value, str]]]:
    """(contact, field) -> (settled value, AFAS's value, Spotler's value, rule) of each recorded conflict."""
    found: dict[tuple[str, str], list[tuple[Value, Value, Value, str]]] = defaultdict(list)
    for record in ConflictStore(client).list():
        c = record.conflict
        found[(c.contact_id, c.field)].append((c.value, c.afas_value, c.spotler_value, c.rule))
    return dict(found)


def _settled(state: EndState, cid: str, name: str, timeline: list[Edit], final: Value) -> str | None:
    """The recorded conflict that settled this field on ``final`` against the last edit's value, if any."""
    last = timeline[-1].value
    for value, afas_value, spotler_value, rule in state.conflicts.get((cid, name), []):
        if value == final and last in (afas_value, spotler_value) and last != value:
            return rule
    return None


def _divergence(cid: str, state: EndState) -> list[str]:
    record = state.rows[cid]
    found: list[str] = []
    theirs = state.spotler.get(cid)
    if theirs is None:
        return ["not in Spotler"]
    for name, value in record.values.items():
        if theirs.get(name) != value:
            found.append(f"{name}: AFAS {value!r} Spotler {theirs.get(name)!r}")
    agreed = state.agreed.get(cid)
    if agreed is None:
        found.append("no agreed state")
    else:
        found += [f"{name}: AFAS {value!r} agreed {agreed.get(name)!r}"
                  for name, value in record.values.items() if agreed.get(name) != value]
    return found


def _blocked_at(blocks: list[Edit], initially: bool, at: float) -> bool:
    state = initially
    for b in blocks:
        if b.at <= at:
            state = bool(b.value)
    return state


def _void(e: Edit, blocks: list[Edit], initially: bool, window: float) -> bool:
    """A Spotler opt-in made while AFAS blocked the contact (or just before a block): the block overrules it."""
    if e.side != "spotler" or e.value is not True:
        return False
    return _blocked_at(blocks, initially, e.at) or any(b.value is True and e.at <= b.at <= e.at + window
                                                       for b in blocks)


def _net(edits: list[Edit], window: float) -> tuple[list[Edit], list[Edit]]:
    """(edits the link could see, last edits of runs it could not): per side, a run of edits each
    within ``window`` of the previous that ends on the value the side held before it changed nothing
    between two polls; the link may or may not have seen its steps."""
    kept: list[Edit] = []
    unseen: list[Edit] = []
    for side in ("afas", "spotler"):
        mine = [e for e in edits if e.side == side]
        start = 0
        for i in range(len(mine)):
            if i + 1 < len(mine) and mine[i + 1].at - mine[i].at <= window:
                continue
            run, start = mine[start:i + 1], i + 1
            if len(run) > 1 and run[0].prior is not UNKNOWN and run[-1].value == run[0].prior:
                unseen.append(run[-1])
            else:
                kept += run
    return sorted(kept, key=lambda e: e.at), unseen


def _lifted_soon(e: Edit, blocks: list[Edit], window: float) -> bool:
    """A voided opt-in made within ``window`` before AFAS lifted the block: the link reads the two in
    either order (a poll between them, or not), so the opt-in may stand or be undone."""
    return any(b.value is False and e.at <= b.at <= e.at + window for b in blocks)


def _allowed(edits: list[Edit], perm: bool, window: float, initial: Value,
             optional: list[Edit] | None = None) -> set[Value]:
    seen, unseen = _net(edits, window)
    unseen = sorted([*unseen, *(optional or [])], key=lambda e: e.at)
    if not seen:
        return {initial, *(e.value for e in unseen)}
    last = seen[-1]
    also = {e.value for e in unseen if e.at >= last.at - window}
    if perm and last.value is False:
        return {False, *also}  # an opt-out always wins, even over a concurrent opt-in on the other side
    allowed: set[Value] = {last.value, *also}
    allowed |= {e.value for e in seen if e.side != last.side and last.at - window <= e.at <= last.at}
    return allowed


def judge(state: EndState, edits: list[Edit], initial: dict[str, tuple[dict[str, Value], bool]],
          mapping: Mapping, window: float) -> Verdict:
    verdict = Verdict()
    for cid in set(state.rows) | set(state.rejected_rows) | set(state.spotler):
        if cid in state.excuses:
            verdict.excused[cid] = state.excuses[cid]
        elif cid in state.rejected_rows:
            verdict.divergent[cid] = [f"AFAS row invalid ({state.rejected_rows[cid]}) but no rejection recorded"]
        elif cid not in state.rows:
            verdict.divergent[cid] = ["in Spotler, not listed by AFAS"]
        elif found := _divergence(cid, state):
            verdict.divergent[cid] = found
    by_key: dict[tuple[str, str], list[Edit]] = defaultdict(list)
    for e in sorted(edits, key=lambda e: e.at):
        by_key[(e.contact, e.field)].append(e)
    perms = {f.name for f in mapping.fields if f.permission_bit is not None}
    for (cid, name), timeline in sorted(by_key.items()):
        record = state.rows.get(cid)
        if cid in verdict.excused or record is None:
            continue
        if name == BOUNCE:
            if not state.bounced_flag.get(cid):
                verdict.lost.append(_lost(cid, name, timeline, "AFAS has no bounce flag", False, None))
            continue
        if name == BLOCKED:
            if record.blocked is not timeline[-1].value:
                verdict.lost.append(_lost(cid, name, timeline, "AFAS", record.blocked, None))
            continue
        perm = name in perms
        if perm and record.blocked:
            continue  # blocked: every bit off, which the divergence check holds Spotler to
        relevant = timeline
        if one_way(mapping, name):
            relevant = [e for e in timeline if e.side == "afas"]
        optional: list[Edit] = []
        if perm:
            blocks = by_key.get((cid, BLOCKED), [])
            voided = [e for e in relevant if _void(e, blocks, initial[cid][1], window)]
            optional = [e for e in voided if _lifted_soon(e, blocks, window)]
            relevant = [e for e in relevant if e not in voided]
        allowed = _allowed(relevant, perm, window, initial[cid][0].get(name), optional)
        finals = {"AFAS": record.values.get(name), "Spotler": state.spotler.get(cid, {}).get(name)}
        for side, value in finals.items():
            if value not in allowed:
                rule = _settled(state, cid, name, timeline, value)
                if rule is not None and finals["AFAS"] == finals["Spotler"]:
                    verdict.settled.append({**_lost(cid, name, timeline, side, value, allowed), "rule": rule})
                else:
                    verdict.lost.append(_lost(cid, name, timeline, side, value, allowed))
                break
    return verdict


def split_raced(verdict: Verdict, api_changes: dict[tuple[str, str], list[int]], race_s: float = RACE_S) -> None:
    """Move to ``raced`` each lost edit whose last edit a link write into that side overwrote within ``race_s``.

    ``api_changes``: (side, contact) -> epoch ms of the API writes that changed the contact there.
    """
    kept: list[dict[str, Any]] = []
    for lost in verdict.lost:
        at, side = lost["timeline"][-1][0], lost["timeline"][-1][1]
        gaps = [w / 1000 - at for w in api_changes.get((side, lost["contact"]), [])]
        raced = [g for g in gaps if -0.05 <= g <= race_s]
        if raced:
            verdict.raced.append({**lost, "side": side, "gap_s": round(min(raced), 3)})
        else:
            kept.append(lost)
    verdict.lost = kept


def _lost(cid: str, name: str, timeline: list[Edit], side: str, value: Value,
          allowed: set[Value] | None) -> dict[str, Any]:
    return {
        "contact": cid, "field": name, "where": side, "final": value,
        "allowed": sorted(map(repr, allowed)) if allowed is not None else None,
        "timeline": [(round(e.at, 3), e.side, e.kind, e.value) for e in timeline],
    }


def _status_counts(stats: dict[str, Any]) -> dict[str, int]:
    codes = {int(k): int(v) for k, v in stats["statuses"].items() if str(k).isdigit()}
    return {
        "5xx": sum(n for c, n in codes.items() if 500 <= c < 600 and c != 504),
        "503": codes.get(503, 0),
        "429": codes.get(429, 0),
        "timeouts": codes.get(504, 0),  # the sandbox answers a hung call with 504 after timeout_s
        "requests": int(stats["total"]),
    }


def _timeline(rows: list[tuple[float, str, str, Value]], start: float) -> str:
    return "; ".join(f"t+{at - start:.2f}s {side} {kind} {value!r}" for at, side, kind, value in rows)


def report(*, state: EndState, verdict: Verdict, edits: list[Edit], actions: Counter[str] | dict[str, int],
           start: float, statuses: dict[str, dict[str, Any]], faults: dict[str, int],
           disruptions: list[dict[str, Any]], exits: list[dict[str, Any]], counters: dict[str, int],
           spotler_writes: int, untouched_writes: int, untouched_written: int) -> dict[str, Any]:
    """Print what the oracle found and return the figures for the CHAOS line."""
    injected = {side: _status_counts(stats) for side, stats in statuses.items()}
    kills = sum(1 for d in disruptions if "worker" in d["what"])
    restarts = sum(1 for d in disruptions if "redis" in d["what"])
    afas_puts = sum(int(n) for route, n in statuses["afas"]["routes"].items() if route.startswith("PUT "))
    letters = sum(1 for reasons in state.excuses.values() for r in reasons if r.startswith("dead letter"))
    rejections = sum(1 for reasons in state.excuses.values() for r in reasons if r.startswith("rejected"))
    by_contact: dict[str, list[Edit]] = defaultdict(list)
    for e in edits:
        by_contact[e.contact].append(e)

    print(f"\ncontacts: AFAS lists {len(state.rows) + len(state.rejected_rows)} "
          f"({len(state.rows)} valid, {len(state.rejected_rows)} invalid rows); Spotler holds {len(state.spotler)}")
    sides = Counter(k.split(" ")[0] for k in actions for _ in range(actions[k]))
    print(f"edits: {sum(actions.values())} ({sides['afas']} in AFAS, {sides['spotler']} in Spotler), "
          f"{len(edits)} contact-field edits")
    for kind, n in sorted(actions.items()):
        print(f"  {kind:<28} {n:>5}")
    print("faults injected:")
    for side, counts in injected.items():
        print(f"  {side:<8} 5xx {counts['5xx']} (503: {counts['503']}), 429 {counts['429']}, "
              f"timeouts {counts['timeouts']}, of {counts['requests']} requests")
    for name, n in sorted(faults.items()):
        print(f"  {name:<28} {n:>5}")
    for d in disruptions:
        print(f"  {d}")
    for cid, reasons in sorted(verdict.excused.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        print(f"excused {cid}: {' | '.join(reasons)}")
    for cid, found in sorted(verdict.divergent.items()):
        print(f"DIVERGENT {cid}: {'; '.join(found)}")
        print(f"    agreed: {state.agreed.get(cid)}")
        mine = [(e.at, e.side, f"{e.kind} {e.field}", e.value) for e in by_contact[cid]]
        print(f"    edits: {_timeline(mine, start)}")
    for lost in verdict.lost:
        print(f"LOST EDIT contact {lost['contact']} field {lost['field']}: {lost['where']} holds {lost['final']!r}, "
              f"allowed {lost['allowed']}")
        print(f"    timeline: {_timeline(lost['timeline'], start)}")
        others = [(e.at, e.side, f"{e.kind} {e.field}", e.value) for e in by_contact[lost["contact"]]
                  if e.field != lost["field"]]
        if others:
            print(f"    other edits of the contact: {_timeline(others, start)}")
        print(f"    agreed: {state.agreed.get(lost['contact'])}")
    for raced in verdict.raced:
        print(f"RACED EDIT contact {raced['contact']} field {raced['field']}: a link write into {raced['side']} "
              f"landed {raced['gap_s'] * 1000:.0f} ms after the last edit; {raced['where']} holds {raced['final']!r}")
        print(f"    timeline: {_timeline(raced['timeline'], start)}")
    for settled in verdict.settled:
        print(f"settled by a recorded conflict ({settled['rule']}): contact {settled['contact']} field "
              f"{settled['field']} ends {settled['final']!r}; timeline: {_timeline(settled['timeline'], start)}")
    for e in exits:
        print(f"EXITED {e}")
    superseded = counters.get("spotler_superseded", 0) + counters.get("afas_superseded", 0)
    print(f"divergent {len(verdict.divergent)}, lost {len(verdict.lost)}, excused {len(verdict.excused)} "
          f"({letters} dead letters, {rejections} rejections), settled by recorded conflicts {len(verdict.settled)}, "
          f"raced {len(verdict.raced)}")
    print(f"superseded writes {superseded}; Spotler contact writes after the initial sync {spotler_writes}, "
          f"of which {untouched_writes} to {untouched_written} contacts no edit touched (pure duplicates); "
          f"AFAS PUTs {afas_puts} for {counters.get('afas_changes_written', 0)} changes written back")
    return {
        "contacts": len(state.rows) + len(state.rejected_rows), "valid": len(state.rows),
        "edits": {"total": sum(actions.values()), "afas": sides["afas"], "spotler": sides["spotler"],
                  "contact_fields": len(edits), "by_kind": dict(actions)},
        "faults": {"afas": injected["afas"], "spotler": injected["spotler"], **faults,
                   "worker_kills": kills, "redis_restarts": restarts,
                   "total": sum(c["5xx"] + c["429"] + c["timeouts"] for c in injected.values()) + kills + restarts},
        "divergent": len(verdict.divergent), "lost": len(verdict.lost), "excused": len(verdict.excused),
        "settled": len(verdict.settled), "raced": len(verdict.raced),
        "dead_letters": letters, "rejections": rejections, "superseded": superseded,
        "duplicates": {"spotler_contact_writes": spotler_writes, "untouched_writes": untouched_writes,
                       "untouched_contacts_written": untouched_written, "afas_puts": afas_puts,
                       "afas_changes_written": counters.get("afas_changes_written", 0)},
        "exited": exits, "disruptions": disruptions,
    }


def leftovers(client: redis.Redis) -> list[dict[str, Any]]:
    """Messages still in a queue after the catch-up: where each sits, who holds it, what it carries."""
    holders: dict[str, str] = {}
    for key in client.scan_iter(match="dramatiq:__acks__.*", count=1000):
        for member in client.smembers(key):
            holders[member.decode()] = key.decode().removeprefix("dramatiq:__acks__.")
    found = []
    for key in client.scan_iter(match="dramatiq:*.msgs", count=1000):
        for mid, raw in client.hgetall(key).items():
            message = msgspec.json.decode(raw)
            payload = message.get("kwargs", {}).get("payload", {})
            changes = payload.get("changes")
            contacts = ([c.get("contact_id") for c in changes] if isinstance(changes, list)
                        else [payload.get("contact_id")])
            found.append({"queue": key.decode().removeprefix("dramatiq:").removesuffix(".msgs"),
                          "id": mid.decode(), "actor": message.get("actor_name"),
                          "options": message.get("options"), "held_by": holders.get(mid.decode()),
                          "contacts": contacts})
    return found
