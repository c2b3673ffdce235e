"""The chaos oracle's race rule: only an edit a link write overwrote within RACE_S counts as raced."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos_oracle import RACE_S, Verdict, split_raced

AT = 1_800_000_000.0


def lost(side: str, at: float) -> dict[str, object]:
    return {"contact": "7", "field": "lastName", "where": "AFAS", "final": "Oud",
            "timeline": [(at - 8.0, "afas", "edit lastName", "Oud"), (at, side, "edit lastName", "Nieuw")]}


def test_a_write_into_the_edited_system_right_after_the_edit_is_a_race() -> None:
    verdict = Verdict(lost=[lost("spotler", AT)])
    split_raced(verdict, {("spotler", "7"): [int((AT + 0.04) * 1000)]})
    assert (len(verdict.lost), len(verdict.raced)) == (0, 1)
    assert verdict.raced[0]["gap_s"] == 0.04


def test_a_later_write_or_one_into_the_other_system_stays_lost() -> None:
    verdict = Verdict(lost=[lost("spotler", AT)])
    late = int((AT + RACE_S + 0.5) * 1000)
    split_raced(verdict, {("spotler", "7"): [late, int((AT - 3) * 1000)], ("afas", "7"): [int(AT * 1000) + 10]})
    assert (len(verdict.lost), len(verdict.raced)) == (1, 0)
