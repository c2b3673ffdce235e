"""The one redaction policy: what every exit (logs, errors, pages, CLI output) masks, and how.

Free text (log lines, tracebacks, error messages, URLs) is scanned for
- e-mail addresses in every spelling: plain, mixed case, ``%40``-encoded,
  HTML-escaped ``&#64;``, fullwidth ``U+FF20``, quoted local parts
  (``"john doe"@example.com``, also JSON-escaped or ``%22``-encoded) → ``<email>``;
- phone numbers (``+31 6 12345678``, ``0031…``, ``06-12345678``: a leading ``+``,
  ``00`` or ``0`` with a separator, 9 to 15 digits) → ``<phone>``;
- secrets: the password of ``scheme://user:password@host``, ``token=``/``secret=``/
  ``password=``/``signature=`` query values, ``Bearer``/``AfasToken`` credentials and
  the ``<data>`` of an AFAS token → ``<secret>``.

Names and street addresses cannot be recognised in free text, so structured
values are masked by their field's name: a value is personal when its field
(a GetConnector column, a Spotler property or an UpdateConnector field code,
whatever comes after the last ``.``) names a personal kind: e-mail, name,
initials, prefix/infix, gender, phone/mobile/fax, street/address/house
number/postal code/city, birth date, IBAN, BSN. Such values show as
``<e-mail 1a2b>`` or ``<personal 1a2b>``: a short digest, so equal values
still look equal, without the value. Ids (ContactId, PersonNo, an externalId)
stay visible unless they are an e-mail address.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import traceback
from typing import Any

__all__ = [
    "RedactingFilter",
    "is_personal",
    "mask_fields",
    "mask_value",
    "redact",
    "redact_every_record",
    "redact_exception",
    "shown_value",
]

_AT = r"(?:@|\uFF20|\uFE6B|%40|&#0*64;|&#x0*40;|&commat;)"
_PLAIN = r"(?:[^\s@\uFF20\uFE6B'\"<>(),;:/?&=\\%*\[\]`]|%(?!40)[0-9a-fA-F]{2})"
_QUOTED = r"(?:\"[^\"\r\n]{1,64}\"|\\\"[^\"\r\n]{1,64}?\\\"|%22.{1,96}?%22)"
_EMAIL = re.compile(rf"(?:{_QUOTED}|{_PLAIN}+){_AT}{_PLAIN}+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"(?P<head>\b(?:[a-z_]*token|[a-z_]*secret|password|passwd|pwd|api_?key|[a-z_]*signature)=)[^&\s#\"'<>]+",
    re.IGNORECASE,
)
# Case-sensitive and long enough not to take a word of prose ("Basic settings") for a credential.
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:[Bb]earer|AfasToken|Basic)\s+)[A-Za-z0-9._~+/=-]{12,}")
_AFAS_TOKEN = re.compile(r"(?P<head><data>)[^<]*(?=</data>)", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w.:+-])(?:\+\d{1,3}(?:[ .-]?\(0\))?[ .-]?\d(?:[ .-]?\d){6,12}"
    r"|00\d{1,3}[ .-]\d(?:[ .-]?\d){6,12}"
    r"|0\d{1,3}[ -]\d(?:[ -]?\d){5,8})(?![\w.:-])"
)

# Field names (lower case, letters and digits only) of personal kinds: parts of names, and AFAS field codes.
_PERSONAL_PARTS = (
    "mail", "name", "initial", "infix", "prefix", "gender", "phone", "mob", "tel", "fax",
    "street", "address", "adres", "house", "postal", "postcode", "zipcode", "city", "birth", "iban", "bsn",
)
_PERSONAL_CODES = frozenset({
    "emad", "finm", "lanm", "is", "in", "callnm", "nm", "sexe", "vitt", "tenr", "mbnr", "tenr2", "faxnr",
    "ad", "hmnr", "hmad", "zpcd", "rs", "dabi", "dob", "tel", "zip", "sofi",
})
_ID_ENDINGS = ("id", "no", "key")
# Names that hold a name of something technical, not of a person.
_TECHNICAL = frozenset({"actorname", "queuename", "hostname", "filename", "fieldname", "propertyname", "listname"})


def redact(text: str) -> str:
    """Free text with its secrets, e-mail addresses and phone numbers masked."""
    text = _URL_PASSWORD.sub(r"\g<head>:<secret>@", text)
    text = _QUERY_SECRET.sub(r"\g<head><secret>", text)
    text = _AUTH_HEADER.sub(r"\g<head><secret>", text)
    text = _AFAS_TOKEN.sub(r"\g<head><secret>", text)
    text = _EMAIL.sub("<email>", text)
    return _PHONE.sub("<phone>", text)


def redact_exception(exc: BaseException) -> str:
    """An exception's traceback, redacted (for log lines that carry it as text)."""
    return redact("".join(traceback.format_exception(exc))).rstrip()


def is_personal(field: str) -> bool:
    """True when ``field`` names a personal kind (see the module docstring): its values are masked."""
    name = re.sub(r"[^a-z0-9]", "", field.rpartition(".")[2].lower())
    if name in _PERSONAL_CODES:
        return True
    if not name or name in _TECHNICAL or name.endswith(_ID_ENDINGS):
        return False  # ids (ContactId, PersonNo, externalId) stay visible: operators need them
    return any(part in name for part in _PERSONAL_PARTS)


def mask_value(value: Any) -> Any:
    """A personal value as ``<e-mail 1a2b>`` / ``<personal 1a2b>``; booleans, numbers, None and "" as they are."""
    if value is None or isinstance(value, bool | int | float) or value == "":
        return value
    text = value if isinstance(value, str) else repr(value)
    digest = hashlib.blake2b(text.strip().lower().encode(), digest_size=2).hexdigest()
    kind = "e-mail" if _EMAIL.search(text) else "personal"
    return f"<{kind} {digest}>"


def shown_value(field: str, value: Any) -> str:
    """One field's value for a terminal: masked when the field is personal, else its repr, redacted."""
    return str(mask_value(value)) if is_personal(field) and value not in (None, "") else redact(repr(value))


_VALUE_KEYS = ("value", "old", "new", "afas_value", "spotler_value", "agreed_value")
_NAME_KEYS = ("field", "name", "property", "column")


def mask_fields(data: Any) -> Any:
    """Builtins (a payload, a record) with personal fields' values masked and all text redacted.

    A value is personal by its key (``{"firstName": …}``), by a sibling naming the
    field (``{"field": "firstName", "value": …}``) or as the second item of a
    ``[field, value, …]`` row (msgspec's array-like FieldWrite).
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        names = {k for k in _NAME_KEYS if isinstance(data.get(k), str) and is_personal(data[k])}
        return {key: _masked_item(key, value, names) for key, value in data.items()}
    if isinstance(data, list | tuple):
        if (3 <= len(data) <= 4 and isinstance(data[0], str) and is_personal(data[0])
                and isinstance(data[2], int) and not isinstance(data[1], dict | list)):
            return [data[0], mask_value(data[1]), *data[2:]]
        return [mask_fields(v) for v in data]
    return data


def _masked_item(key: Any, value: Any, names: set[str]) -> Any:
    if key in names:
        return value  # {"field": "firstName", …}: the field's name stays, its value goes
    if names and key in _VALUE_KEYS:
        return mask_value(value)
    if isinstance(key, str) and is_personal(key) and not isinstance(value, dict | list):
        return mask_value(value)
    return mask_fields(value)


@functools.cache
def _message_types() -> tuple[type, ...]:
    import dramatiq  # here, not at the top: the module is imported by errors and settings

    return (dramatiq.Message, dramatiq.MessageProxy)


def _message_id(message: Any) -> str:
    return f"{message.actor_name} message {message.message_id}"


class RedactingFilter(logging.Filter):
    """Applies ``redact`` to every log record: its message, its arguments and its traceback.

    A Dramatiq message among a line's arguments is shown as its actor and id: its
    string form holds the payload (names, addresses).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        kinds = _message_types()
        if isinstance(record.args, tuple) and any(isinstance(a, kinds) for a in record.args):
            record.args = tuple(_message_id(a) if isinstance(a, kinds) else a for a in record.args)
        try:
            message = record.getMessage()
        except Exception:
            message = redact(f"{record.msg} {record.args}")
        masked = redact(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_every_record() -> None:
    """Redact each log record as it is made, whichever handler (added now or later) gets it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return
    redacting = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redacting.filter(record)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
