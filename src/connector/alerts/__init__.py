"""Alerts: one message to ``ALERT_WEBHOOK_URL`` when something needs an operator, one when it recovers.

**What.** Per queue, dead letters appear; per producer, its last successful
poll is older than ``STATUS_MAX_LAG_S`` (or it never polled, for that long);
per producer, its last poll rejected more than ``ALERT_REJECTED_SHARE`` of the
rows it read (``conditions``). The first two are exactly what makes
``connector status`` exit 2 or 3.

**When.** A firing message when a condition starts to hold, a reminder at most
every ``ALERT_REPEAT_S`` while it holds, and one recovery message when it
clears; no condition sends more than one firing message per ``ALERT_REPEAT_S``,
so one that flaps stays quiet in between (``debounce``). The state lives in
Redis and one Lua script moves it on, so every evaluating process agrees and a
message is claimed once between them. Delivery is at most once: a message the
webhook does not take is one warning line, not retried; the next reminder (if
the condition still holds) is the retry, and the status page always shows the
current state.

**Who evaluates.** Both producers, after each poll that reached its end or
failed on AFAS or Spotler, on a daemon thread of their own (``monitor``): the
poll only signals it. Producers are the processes that always run (one per
source, restarted by the platform, held by a lease); they know when a poll ends,
so the rejected share is judged when it is fresh; and each evaluates every
condition of both sides, so a producer that died or hangs is reported by the
other. The web process answers requests and may be scaled to 0 or sleep;
workers are many and busy. A producer waiting for the lease does not evaluate.
When both producers are down nothing evaluates: watch ``/status.json``
(``exit_code``) from outside for that.

**What a message holds.** Counts, queue and producer names, run ids and times,
in ``{"text": …}`` (``ALERT_FORMAT=slack``) or with the structured fields
(``json``, ``webhook.AlertMessage``); never an e-mail address, a name or a
record's values, and every text goes through ``connector.redaction``.

**Never in the way.** The webhook gets ``webhook.TIMEOUT_S`` (5 s) per message
on the monitor's thread; a down, slow or refusing webhook costs one warning
line per message (without the URL, which is a secret) and nothing else.
"""

from __future__ import annotations

from connector.alerts.conditions import Observation, observe
from connector.alerts.debounce import AlertState
from connector.alerts.monitor import AlertMonitor
from connector.alerts.webhook import TIMEOUT_S, AlertMessage, Webhook

__all__ = ["TIMEOUT_S", "AlertMessage", "AlertMonitor", "AlertState", "Observation", "Webhook", "observe"]
