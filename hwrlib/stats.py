"""The statistics every verdict rests on, each rule written once; scipy supplies every distribution.

* :func:`tolerance`: the one tolerance rule of accuracy claims.
* :func:`judge_value`: a measured protocol against a number the paper reports (metric claims).
* :func:`judge_difference`: "A beats B" (comparisons, and each point of a curve claim).
* :func:`judge_at_most`: a ceiling on a protocol's mean ("no rise": metric claims with ``direction: at_most``).
* :func:`combine`: several points of one claim into one verdict.

Each returns a :class:`Judgement`: the :class:`~hwrlib.verdict.Verdict`, the estimate, its 95 % interval and,
when inconclusive, how many seeds (per side) would decide it at the spread measured so far.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .verdict import Verdict

Z = float(stats.norm.ppf(0.975))  # 1.96
MAX_SEEDS = 100  # "seeds needed" is searched up to this; beyond it the claim is called undecidable by seeds


@functools.lru_cache(maxsize=4096)
def _t(q: float, df: int) -> float:
    """Student's t quantile (cached: the seeds-needed search asks for the same few many times)."""
    return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    estimate: float = math.nan  # the protocol's mean (a metric) or the mean difference A - B (a comparison)
    low: float = math.nan  # 95 % interval: a metric's acceptance range for the claim, a difference's CI
    high: float = math.nan
    seeds_needed: int | None = None  # per side, at the measured spread, when inconclusive
    method: str = ""


def tolerance(claimed: float, resolution: float, test_images: int | None) -> float:
    """δ of an accuracy (or error) claim: the larger of half a unit in the last digit the paper reports
    (``resolution``: 0.0001 for "99.31 %") and 1.96 binomial standard errors of the claimed value on the paper's
    test-set size (what the test set alone lets the same model score)."""
    binomial = Z * math.sqrt(claimed * (1 - claimed) / test_images) if test_images else 0.0
    return max(resolution / 2, binomial)


def _value_rule(m: float, s: float, n: int, claimed: float, delta: float, k: int) -> Verdict:
    gap = abs(claimed - m)
    # what k runs of the protocol give (their mean), 95 % prediction interval, widened by delta
    if gap > _t(0.975, n - 1) * s * math.sqrt(1 / k + 1 / n) + delta:
        return Verdict.NOT_REPRODUCED
    # TOST at 5 %: the protocol's mean is within delta plus the spread of the claimed number itself
    if gap + _t(0.95, n - 1) * s / math.sqrt(n) <= delta + Z * s / math.sqrt(k):
        return Verdict.REPRODUCED
    return Verdict.INCONCLUSIVE


def judge_value(values: Sequence[float], claimed: float, delta: float, claimed_runs: int = 1) -> Judgement:
    """Is ``claimed`` what this protocol gives? ``values``: one per seed; ``claimed_runs``: how many runs the paper's
    number is the mean of (1: a single run, the usual case).

    The rule (after CORE-Bench's reproduction criterion, Siegel et al. 2024, "CORE-Bench", arXiv:2409.11363, with an
    equivalence test, Schuirmann 1987, "two one-sided tests"):

    * **not reproduced** when the claim lies outside the 95 % prediction interval of the mean of ``claimed_runs``
      new runs, widened by ``delta``: ``|c - m| > t(.975, n-1) s sqrt(1/k + 1/n) + delta``;
    * **reproduced** when TOST shows the protocol's mean within ``delta + 1.96 s / sqrt(k)`` of the claim (the 90 %
      interval of the mean lies inside it);
    * **inconclusive** otherwise, and with a single run (no spread to judge by), unless ``s`` is 0 (a deterministic
      quantity, judged by ``delta`` alone).

    Calibration (``tests/test_stats.py``, 20,000 simulated draws of 5 seeds from N(0, 1)): a claim drawn from the
    protocol's own distribution (delta 0) is judged reproduced in 59 % of draws and not reproduced in 5.1 % (the
    prediction interval's 5 %); a claim delta + 3 sd away (delta 0.5) is judged not reproduced in 56 % and reproduced
    in 0.01 %.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return Judgement(Verdict.NOT_YET_RUN)
    m = float(v.mean())
    if n == 1:
        return Judgement(Verdict.INCONCLUSIVE, m, method="one run: no spread to judge by")
    s = float(v.std(ddof=1))
    verdict = _value_rule(m, s, n, claimed, delta, claimed_runs)
    half = _t(0.975, n - 1) * s * math.sqrt(1 / claimed_runs + 1 / n) + delta
    needed = (_seeds_needed(lambda N: _value_rule(m, s, N, claimed, delta, claimed_runs), n)
              if verdict is Verdict.INCONCLUSIVE else None)
    method = "prediction interval + TOST" + (f" (claim: mean of {claimed_runs} runs)" if claimed_runs > 1 else "")
    return Judgement(verdict, m, m - half, m + half, needed, method)


def _seeds_needed(decides: Callable[[int], Verdict], n: int) -> int | None:
    """The fewest seeds (above ``n``) at which the rule, fed the spread measured so far, stops being inconclusive."""
    return next((N for N in range(n + 1, MAX_SEEDS + 1) if decides(N) is not Verdict.INCONCLUSIVE), None)


def _difference_ci(a: pd.Series, b: pd.Series, paired: bool) -> tuple[float, float, float, Callable, str]:
    """(estimate, low, high, half-width at N seeds per side, method) of mean(a) - mean(b)."""
    est = float(a.mean() - b.mean())
    if paired:
        d = (a - b.reindex(a.index)).to_numpy()
        if np.ptp(d) <= 1e-12 * max(1.0, abs(est)):  # identical differences: exact (scipy would warn and say nan)
            return est, est, est, lambda N: 0.0, "paired t (by seed)"
        ci = stats.ttest_rel(a.to_numpy(), b.reindex(a.index).to_numpy()).confidence_interval(0.95)
        sd = d.std(ddof=1)
        return est, ci.low, ci.high, lambda N: _t(0.975, N - 1) * sd / math.sqrt(N), "paired t (by seed)"
    ci = stats.ttest_ind(a.to_numpy(), b.to_numpy(), equal_var=False).confidence_interval(0.95)
    va, vb = a.var(ddof=1), b.var(ddof=1)
    return est, ci.low, ci.high, lambda N: _t(0.975, 2 * N - 2) * math.sqrt((va + vb) / N), "Welch t"


def judge_difference(a: pd.Series, b: pd.Series, paired: bool = False, margin: float = 0.0) -> Judgement:
    """Does A exceed B (by more than ``margin``)? ``a``, ``b``: one value per seed, indexed by seed.

    The 95 % interval of mean(A) - mean(B): paired by seed when ``paired`` and both sides ran the same seeds (their
    seeds fix the same data and order), Welch's otherwise. **Reproduced** when the interval lies above ``margin``,
    **not reproduced** when below it, **inconclusive** otherwise, and whenever a side has a single run: its spread is
    unknown, and borrowing the other side's assumes what two different models rarely share (004: the modified
    AlexNet's seed-to-seed sd was 3-4x the improved model's).
    """
    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if a.empty or b.empty:
        return Judgement(Verdict.NOT_YET_RUN)
    if len(a) == 1 or len(b) == 1:
        return Judgement(Verdict.INCONCLUSIVE, float(a.mean() - b.mean()),
                         method="one run a side: no spread" if len(a) == len(b) else "one side a single run: no spread")
    paired = paired and set(a.index) == set(b.index)  # both sides have 2+ runs here
    est, low, high, half_at, method = _difference_ci(a, b, paired)
    if math.isnan(low):  # no spread at all (identical differences): the estimate is exact
        low = high = est
    verdict = (Verdict.REPRODUCED if low > margin else Verdict.NOT_REPRODUCED if high < margin
               else Verdict.INCONCLUSIVE)
    needed = None
    if verdict is Verdict.INCONCLUSIVE and est != margin:
        needed = next((N for N in range(max(len(a), len(b)) + 1, MAX_SEEDS + 1)
                       if half_at(N) < abs(est - margin)), None)
    return Judgement(verdict, est, float(low), float(high), needed, method)


def judge_above(values: pd.Series, level: float) -> Judgement:
    """Does the mean of ``values`` (one per seed) exceed ``level``? The one-sample case of :func:`judge_difference`
    (each seed's value minus the level, a t interval)."""
    return judge_difference(values, values * 0 + level, paired=True)


def judge_at_most(values: pd.Series, ceiling: float) -> Judgement:
    """Is the mean of ``values`` at most ``ceiling`` (a claim of no rise)? :func:`judge_above` reversed: **reproduced**
    when the mean's 95 % interval lies below the ceiling, **not reproduced** when above it; the estimate and interval
    are the mean's, in the values' units."""
    j = opposite(judge_above(values, ceiling))
    return replace(j, estimate=j.estimate + ceiling, low=j.low + ceiling, high=j.high + ceiling,
                   method="t interval of the mean, against a ceiling" if j.method.startswith("paired") else j.method)


def opposite(j: Judgement) -> Judgement:
    """The judgement of a claim that says the reverse ("no gain", "no rise"): reproduced and not reproduced swap."""
    swap = {Verdict.REPRODUCED: Verdict.NOT_REPRODUCED, Verdict.NOT_REPRODUCED: Verdict.REPRODUCED}
    return replace(j, verdict=swap.get(j.verdict, j.verdict))


def combine(parts: Sequence[Judgement]) -> Judgement:
    """One verdict from several points of a claim: not reproduced if any point is, reproduced if all are, else not
    yet run (a point without runs) or inconclusive, needing the most seeds any open point needs."""
    verdicts = [p.verdict for p in parts]
    if not parts or Verdict.NOT_YET_RUN in verdicts:
        return Judgement(Verdict.NOT_YET_RUN)
    if Verdict.NOT_REPRODUCED in verdicts:
        return Judgement(Verdict.NOT_REPRODUCED, method=parts[0].method)
    if all(v is Verdict.REPRODUCED for v in verdicts):
        return Judgement(Verdict.REPRODUCED, method=parts[0].method)
    open_ = [p.seeds_needed for p in parts if p.verdict is Verdict.INCONCLUSIVE]
    needed = None if None in open_ else max(open_)
    return Judgement(Verdict.INCONCLUSIVE, seeds_needed=needed, method=parts[0].method)
