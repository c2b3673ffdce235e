"""Run history: one record per producer poll, kept for a bounded number of runs.

A run's record is written when the poll ends; what the workers then made of
its messages (written, superseded) accumulates in ``connector:run:<id>:outcome``
and is joined in when the history is read.
"""

from __future__ import annotations

import msgspec
import redis

from connector.schemas.runs import PollResult
from connector.state.keys import PREFIX, run_outcome

__all__ = ["RunHistory"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PollResult).decode


class RunHistory:
    def __init__(self, client: redis.Redis, keep: int = 2000) -> None:
        self.client = client
        self.keep = keep

    def key(self, source: str) -> str:
        return f"{PREFIX}:runs:{source}"

    def record(self, result: PollResult) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.key(result.source), _encode(result))
        pipe.ltrim(self.key(result.source), 0, self.keep - 1)
        pipe.set(f"{PREFIX}:last_poll:{result.source}", _encode(result))
        pipe.execute()

    def latest(self, source: str, limit: int = 20) -> list[PollResult]:
        return self._with_outcomes([_decode(r) for r in self.client.lrange(self.key(source), 0, limit - 1)])

    def last(self, source: str) -> PollResult | None:
        raw = self.client.get(f"{PREFIX}:last_poll:{source}")
        return None if raw is None else self._with_outcomes([_decode(raw)])[0]

    def _with_outcomes(self, runs: list[PollResult]) -> list[PollResult]:
        if not runs:
            return runs
        pipe = self.client.pipeline(transaction=False)
        for run in runs:
            pipe.hmget(run_outcome(run.run_id), ["written", "superseded"])
        for run, (written, superseded) in zip(runs, pipe.execute(), strict=True):
            run.written, run.superseded = int(written or 0), int(superseded or 0)
        return runs
