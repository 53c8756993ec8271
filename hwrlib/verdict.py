"""The one verdict type: what a judge says of a claim under one reading, and over all its readings.

:class:`Verdict` is what every judge returns (the statistics in :mod:`hwrlib.stats` decide it); :class:`Robust` is
the one summary over a claim's readings (:func:`robust`). Each carries its label, mark and colour, so the README
headline, REPORT.md, the summary notebook and the paper notebooks render the same objects the same way.
"""
from __future__ import annotations

from enum import Enum


class _Shown(str, Enum):
    """A verdict as text (it equals its label, so tables, CSV files and tests compare it as text), mark and colour."""

    def __new__(cls, label: str, mark: str, colour: str):
        obj = str.__new__(cls, label)
        obj._value_, obj.label, obj.mark, obj.colour = label, label, mark, colour
        return obj

    def __str__(self) -> str:
        return self.label


class Verdict(_Shown):
    """A claim under one reading."""
    REPRODUCED = ("reproduced", "✅", "#c8e6c9")
    NOT_REPRODUCED = ("not reproduced", "❌", "#ffcdd2")
    INCONCLUSIVE = ("inconclusive", "❔", "#fff3c4")
    DID_NOT_TRAIN = ("did not train", "⛔", "#e0e0e0")
    NOT_YET_RUN = ("not yet run", "⏳", "#eeeeee")
    REFERENCE = ("reference", "📖", "#ffffff")
    # a notebook's own run at another profile, set beside the claim: never a verdict
    INDICATION = ("indication only", "🔎", "#e3f2fd")


class Robust(_Shown):
    """A claim over all its readings (a claim with one reading reads *holds* / *fails*)."""
    HOLDS = ("holds under every reading", "✅", "#c8e6c9")
    HOLDS_WHERE_JUDGED = ("holds where judged", "🟢", "#dcedc8")
    READING_DEPENDENT = ("reading-dependent", "🟡", "#fff9c4")
    FAILS_WHERE_JUDGED = ("fails where judged", "🟠", "#ffe0b2")
    FAILS = ("fails under every reading", "❌", "#ffcdd2")
    INCONCLUSIVE = ("inconclusive", "❔", "#fff3c4")
    DID_NOT_TRAIN = ("did not train", "⛔", "#e0e0e0")
    NOT_YET_RUN = ("not yet run", "⏳", "#eeeeee")


    def text(self, verdicts: dict[str, Verdict]) -> str:
        """The label with what it rests on: which readings hold and fail, how many are open."""
        if len(verdicts) == 1:
            return {Robust.HOLDS: "holds", Robust.FAILS: "fails"}.get(self, self.label)
        holds = [r for r, v in verdicts.items() if v is Verdict.REPRODUCED]
        fails = [r for r, v in verdicts.items() if v is Verdict.NOT_REPRODUCED]
        if self is Robust.READING_DEPENDENT:
            return f"{self.label}: holds under {'; '.join(holds)}, fails under {'; '.join(fails)}"
        if self in (Robust.HOLDS_WHERE_JUDGED, Robust.FAILS_WHERE_JUDGED):
            open_ = [f"{sum(v is o for v in verdicts.values())} {o.label}" for o in
                     (Verdict.INCONCLUSIVE, Verdict.DID_NOT_TRAIN, Verdict.NOT_YET_RUN)
                     if any(v is o for v in verdicts.values())]
            return f"{self.label} ({len(holds or fails)} of {len(verdicts)} readings; {', '.join(open_)})"
        return self.label


def robust(verdicts: dict[str, Verdict]) -> Robust:
    """One verdict over a claim's readings (reading name -> verdict).

    Every reading holds: *holds*; every reading fails: *fails*; some hold and some fail: *reading-dependent*; some
    hold (or fail) and the rest are open (inconclusive, did not train, not yet run): *holds* (*fails*) *where
    judged*; none judged: *not yet run* if nothing ran, *did not train* if every run reading did not train, else
    *inconclusive*.
    """
    values = list(verdicts.values())
    holds = sum(v is Verdict.REPRODUCED for v in values)
    fails = sum(v is Verdict.NOT_REPRODUCED for v in values)
    if holds and fails:
        return Robust.READING_DEPENDENT
    if holds:
        return Robust.HOLDS if holds == len(values) else Robust.HOLDS_WHERE_JUDGED
    if fails:
        return Robust.FAILS if fails == len(values) else Robust.FAILS_WHERE_JUDGED
    ran = [v for v in values if v is not Verdict.NOT_YET_RUN]
    if not ran:
        return Robust.NOT_YET_RUN
    return Robust.DID_NOT_TRAIN if all(v is Verdict.DID_NOT_TRAIN for v in ran) else Robust.INCONCLUSIVE
