"""The link's test plan: five steps against the configured AFAS and Spotler, while the link runs.

1. create a contact person under a new test organisation in AFAS; it arrives in Spotler;
2. change its last name in AFAS (KnPerson); the change arrives in Spotler;
3. unsubscribe it in Spotler (the first mapped permission bit off); AFAS follows;
4. change its city (a one-way address field) in Spotler; AFAS keeps its value
   (and the link puts AFAS's value back in Spotler);
5. clean up: block the contact in AFAS (contacts cannot be deleted), rename the
   organisation to "… (removed)" and anonymize the contact in Spotler.

The plan starts none of the link's processes: it acts on both systems as a user
would and waits (up to the timeout) for the link to react. A step that waits
in vain says which processes look absent. Clean-up runs whenever step 1 created
something, even after a failure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.spotler import SpotlerClient
from connector.errors import ConnectorError
from connector.redaction import redact
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import Contact, Permission
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.testplan.hints import link_hints
from connector.testplan.records import PlanAfasClient, PlanFields, TestRecord, organisation_body
from connector.testplan.report import PlanReport, StepResult

__all__ = ["StepFailed", "TestPlan"]

T = TypeVar("T")


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class StepFailed(Exception):
    """A step's check did not hold; the message says what was expected and seen."""


class _Waited(StepFailed):
    """The link did not react within the timeout."""


class TestPlan:
    """Runs the five steps once and returns a PlanReport; see the module docstring."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        afas: PlanAfasClient,
        spotler: SpotlerClient,
        mapping: Mapping,
        redis_client: redis.Redis,
        *,
        getconnector: str,
        timeout_s: float,
        poll_interval_s: float,
        echo: Callable[[str], None] = lambda line: None,
        run_id: str | None = None,
    ) -> None:
        self.afas = afas
        self.spotler = spotler
        self.mapping = mapping
        self.redis = redis_client
        self.getconnector = getconnector
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.echo = echo
        self.fields = PlanFields.of(mapping)
        self.record = TestRecord.for_run(run_id or uuid.uuid4().hex[:8])
        self.org: str | None = None
        self.contact: str | None = None
        self.person: str | None = None
        self.arrived = False

    # -- running -------------------------------------------------------------------
    def run(self) -> PlanReport:
        report = PlanReport(run_id=self.record.run_id, afas=self.afas.base_url, getconnector=self.getconnector,
                            spotler=self.spotler.base_url, started_at=time.time())
        steps: list[tuple[str, Callable[[StepResult], None]]] = [
            ("Create a contact under a test organisation in AFAS; it arrives in Spotler", self.create),
            ("Change the last name in AFAS (KnPerson); Spotler follows", self.change_in_afas),
            ("Unsubscribe in Spotler (a permission bit off); AFAS follows", self.unsubscribe_in_spotler),
            ("Change the city in Spotler; it does not reach AFAS", self.one_way_field),
        ]
        failed: int | None = None
        for number, (title, action) in enumerate(steps, start=1):
            step = StepResult(number=number, title=title)
            report.steps.append(step)
            if failed is not None:
                step.note(f"skipped: step {failed} failed")
                self._print(step)
                continue
            self._run(step, action)
            if step.outcome == "fail":
                failed = number
        cleanup = StepResult(number=5, title="Clean up: block in AFAS, rename the organisation, anonymize in Spotler")
        report.steps.append(cleanup)
        if self.org is None and self.contact is None:
            cleanup.note("nothing was created")
            self._print(cleanup)
        else:
            self._run(cleanup, self.clean_up)
        report.finished_at = time.time()
        return report

    def _run(self, step: StepResult, action: Callable[[StepResult], None]) -> None:
        step.started_at = time.time()
        t0 = time.monotonic()
        step.outcome = "pass"  # unless the action finds the step not applicable or it fails
        try:
            action(step)
        except _Waited as exc:
            step.outcome = "fail"
            step.note(str(exc))
            hints = link_hints(self.redis, poll_interval_s=self.poll_interval_s)
            step.note("the link's processes must run while the test plan runs (it does not start them)"
                      + ("; " + "; ".join(hints) if hints else ""))
        except StepFailed as exc:
            step.outcome = "fail"
            step.note(str(exc))
        except ConnectorError as exc:
            step.outcome = "fail"
            step.note(f"a call failed: {exc}")
        except redis.RedisError as exc:
            step.outcome = "fail"
            step.note(f"Redis could not be read ({type(exc).__name__}): is REDIS_URL the link's Redis?")
        step.duration_s = time.monotonic() - t0
        self._print(step)

    def _print(self, step: StepResult) -> None:
        self.echo(f"{step.number}. {step.title}: {step.outcome.upper()} ({step.duration_s:.1f}s)")
        for detail in step.details:
            self.echo(f"     {redact(detail)}")

    def _wait(self, what: str, check: Callable[[], T | None], timeout_s: float | None = None) -> tuple[T, float]:
        """Poll ``check`` until it returns something; (value, seconds waited) or _Waited."""
        started = time.monotonic()
        deadline = started + (self.timeout_s if timeout_s is None else timeout_s)
        interval = min(1.0, max(0.2, self.poll_interval_s / 4))
        while True:
            value = check()
            if value is not None:
                return value, time.monotonic() - started
            if time.monotonic() >= deadline:
                raise _Waited(f"waited {time.monotonic() - started:.0f}s in vain for {what}")
            time.sleep(interval)

    # -- reading both sides ---------------------------------------------------------
    def _rows(self, column: str, value: object) -> list[dict[str, Any]]:
        key = self.mapping.keys.contact_id
        flt = Filter.all_of(Condition(column, Op.EQ, value))
        return self.afas.get_page(self.getconnector, filter=flt, order_by=[key], take=10)

    def _afas_row(self) -> dict[str, Any]:
        assert self.contact is not None
        rows = self._rows(self.mapping.keys.contact_id, int(self.contact) if self.contact.isdigit() else self.contact)
        if not rows:
            raise StepFailed(f"contact {self.contact} is no longer in GetConnector {self.getconnector}")
        return rows[0]

    def _in_spotler(self) -> Contact | None:
        assert self.contact is not None
        return self.spotler.get(self.contact)

    def _spotler_value(self, name: str) -> Any:
        contact = self._in_spotler()
        return None if contact is None else contact.properties.get(name)

    # -- the steps ----------------------------------------------------------------
    def create(self, step: StepResult) -> None:
        record, keys = self.record, self.mapping.keys
        result = self.afas.insert_nested(organisation_body(record, self.fields))
        number = result.keys_of("KnOrganisation").get("BcCo")
        self.org = str(number) if number not in (None, "") else None
        if self.org is not None:
            row, _ = self._wait("the new contact in the GetConnector",
                                lambda: next(iter(self._rows(keys.organisation_id, self.org)), None))
        else:  # AFAS answered without the organisation number: find the row by the test e-mail
            row, _ = self._wait("the new contact in the GetConnector",
                                lambda: next(iter(self._rows(keys.email, record.email)), None))
            self.org = str(row.get(keys.organisation_id))
        self.contact, self.person = str(row.get(keys.contact_id)), str(row.get(keys.person_id))
        step.note(f"AFAS: organisation {self.org} '{record.organisation_name}' with person {self.person}, "
                  f"contact {self.contact} (POST KnOrganisation with KnContact and KnPerson)")
        contact, waited = self._wait(f"contact {self.contact} in Spotler", self._in_spotler)
        self.arrived = True
        step.note(f"Spotler: contact {self.contact} arrived {waited:.1f}s after the GetConnector showed it")
        email_ok = contact.properties.get("email") == record.email
        bits = contact.permissions()
        off = [f.name for f in self.fields.permissions if f.permission_bit is not None
               and not bits.get(f.permission_bit, False)]
        if not email_ok or off:
            raise StepFailed("Spotler holds the contact but " + (
                "not the test e-mail address" if not email_ok else f"with {', '.join(off)} off"))
        step.note("Spotler: the e-mail address and every mapped permission bit match AFAS")

    def change_in_afas(self, step: StepResult) -> None:
        field = self.fields.last_name
        if field is None or self.person is None:
            step.outcome = "skip"
            step.note("the mapping maps no last name (KnPerson.LaNm)")
            return
        new = f"Testplan-{self.record.run_id}"
        self.afas.update_person({"MatchPer": "0", "BcCo": self.person, "LaNm": new})
        step.note(f"AFAS: PUT KnPerson {self.person} LaNm = {new!r}")
        _, waited = self._wait(f"the new last name in Spotler ({field.name})",
                               lambda: True if self._spotler_value(field.name) == new else None)
        step.note(f"Spotler: {field.name} = {new!r} after {waited:.1f}s")

    def unsubscribe_in_spotler(self, step: StepResult) -> None:
        field = self.fields.permission
        if field is None or field.permission_bit is None or self.contact is None:
            step.outcome = "skip"
            step.note("the mapping maps no yes/no permission field that goes back to AFAS")
            return
        bit = field.permission_bit
        self.spotler.update(self.contact, Contact(self.contact, {"permissions": [Permission(bit=bit, enabled=False)]}))
        step.note(f"Spotler: PUT contact/{self.contact} with permission bit {bit} off")
        _, waited = self._wait(f"AFAS column {field.column} to turn off",
                               lambda: True if self._afas_row().get(field.column) is False else None)
        step.note(f"AFAS: {field.column} = no after {waited:.1f}s (GetConnector read)")

    def one_way_field(self, step: StepResult) -> None:
        field = self.fields.city
        if field is None or self.contact is None:
            step.outcome = "skip"
            step.note("the mapping maps no one-way city field")
            return
        before = self._afas_row().get(field.column)
        edited = f"Elders {self.record.run_id}"
        edited_at = time.time()
        self.spotler.update(self.contact, Contact(self.contact, {field.name: edited}))
        step.note(f"Spotler: PUT contact/{self.contact} {field.name} = {edited!r} (AFAS has {before!r})")
        self._wait_polls("spotler", edited_at, 2)
        _, waited = self._wait(f"the link to put AFAS's {field.column} back in Spotler",
                               lambda: True if _text(self._spotler_value(field.name)) == _text(before) else None)
        self._wait("the afas queue to drain", lambda: True if outstanding(self.redis, "afas") == 0 else None)
        after = self._afas_row().get(field.column)
        if after != before:
            raise StepFailed(f"AFAS's {field.column} changed from {before!r} to {after!r}: "
                             "a one-way field reached AFAS")
        step.note(f"after two Spotler polls AFAS's {field.column} is still {before!r}; Spotler shows AFAS's value "
                  f"again ({waited:.1f}s)")

    def _wait_polls(self, source: str, since: float, count: int) -> None:
        """Until the producer finished ``count`` polls that started after ``since`` (two poll intervals)."""
        history = RunHistory(self.redis)

        def done() -> bool | None:
            return True if sum(1 for r in history.latest(source, 50) if r.started_at >= since) >= count else None

        self._wait(f"{count} polls of the {source}-producer", done)

    def clean_up(self, step: StepResult) -> None:
        keys = self.mapping.keys
        if self.contact is not None and self.person is not None and self.org is not None:
            self.afas.update_contact({"BcCoOga": self.org, "BcCoPer": self.person, "Bl": True})
            step.note(f"AFAS: contact {self.contact} blocked (PUT KnContact Bl = yes; contacts cannot be deleted)")
        if self.org is not None:
            name = f"{self.record.organisation_name} (removed)"
            self.afas.update_organisation({"MatchOga": "0", "BcCo": self.org, "Nm": name})
            step.note(f"AFAS: organisation {self.org} renamed to {name!r}")
        if self.contact is None:
            return
        if self.arrived and keys.blocked:
            mapped = [f.permission_bit for f in self.mapping.fields if f.permission_bit is not None]

            def all_off() -> bool | None:
                contact = self._in_spotler()
                bits = contact.permissions() if contact is not None else {}
                return True if not any(bits.get(b, False) for b in mapped) else None

            try:
                _, waited = self._wait("the block to reach Spotler", all_off)
                step.note(f"Spotler: every mapped permission bit off {waited:.1f}s after the block")
            except _Waited:
                step.note("Spotler: the block had not arrived yet (the link will turn every permission off)")
        if self._in_spotler() is not None:
            self.spotler.anonymize(self.contact)
            step.note(f"Spotler: contact {self.contact} anonymized (PUT contact/anonymize)")
            step.note("the link copies the anonymisation back like any Spotler edit: the blocked test contact's "
                      "mapped text fields (e-mail, names) are cleared in AFAS too")
