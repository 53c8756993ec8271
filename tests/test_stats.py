"""The statistics behind every verdict: checked against scipy on hand-computed cases, and calibrated by simulation."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from hwrlib import stats
from hwrlib.verdict import Robust, Verdict, robust


def test_tolerance_is_the_larger_of_rounding_and_the_binomial_error_of_the_test_set():
    # 99.31 % on 10,000 images: 1.96 * sqrt(0.9931 * 0.0069 / 10000) = 0.163 points > half of 0.01 points
    assert stats.tolerance(0.9931, 0.0001, 10_000) == pytest.approx(1.96 * math.sqrt(0.9931 * 0.0069 / 1e4), rel=1e-3)
    # a count printed as 2.1e7: half a unit in its last digit
    assert stats.tolerance(2.1e7, 1e6, None) == 5e5
    # a large test set and a coarse print: the rounding wins
    assert stats.tolerance(0.94, 0.01, 224_419) == 0.005


def test_value_rule_edges_by_hand():
    v = [0.990, 0.992, 0.994, 0.992, 0.992]  # mean 0.992, sd 0.001414
    m, s, n = 0.992, np.std(v, ddof=1), 5
    half = sp.t.ppf(0.975, 4) * s * math.sqrt(1 + 1 / n)
    assert stats.judge_value(v, m + half + 0.001 - 1e-6, 0.001).verdict is not Verdict.NOT_REPRODUCED
    assert stats.judge_value(v, m + half + 0.001 + 1e-6, 0.001).verdict is Verdict.NOT_REPRODUCED
    # TOST edge: |c - m| + t(.95, 4) s / sqrt(5) <= delta + 1.96 s
    edge = 0.001 + stats.Z * s - sp.t.ppf(0.95, 4) * s / math.sqrt(n)
    assert stats.judge_value(v, m + edge - 1e-7, 0.001).verdict is Verdict.REPRODUCED
    assert stats.judge_value(v, m + edge + 1e-7, 0.001).verdict is Verdict.INCONCLUSIVE
    j = stats.judge_value(v, m + edge + 1e-7, 0.001)
    assert j.seeds_needed is not None and j.seeds_needed > 5
    assert stats.judge_value(v, m + edge + 1e-7, 0.001, claimed_runs=50).verdict is Verdict.INCONCLUSIVE


def test_one_run_is_inconclusive_and_a_deterministic_value_is_judged_by_delta():
    assert stats.judge_value([0.99], 0.99, 0.01).verdict is Verdict.INCONCLUSIVE
    assert stats.judge_value([], 0.99, 0.01).verdict is Verdict.NOT_YET_RUN
    assert stats.judge_value([0.2, 0.2, 0.2], 0.21, 0.05).verdict is Verdict.REPRODUCED
    assert stats.judge_value([0.2, 0.2, 0.2], 0.3, 0.05).verdict is Verdict.NOT_REPRODUCED


def test_the_value_rule_is_calibrated():
    """n = 5 seeds from N(0, 1): a claim drawn from the same distribution, and one delta + 3 sd away."""
    rng = np.random.default_rng(0)
    draws = 20_000
    own = [stats.judge_value(rng.normal(0, 1, 5), rng.normal(0, 1), 0.0).verdict for _ in range(draws)]
    far = [stats.judge_value(rng.normal(0, 1, 5), 3.0 + 0.5, 0.5).verdict for _ in range(draws)]
    rate = lambda vs, v: sum(x is v for x in vs) / draws  # noqa: E731
    assert rate(own, Verdict.REPRODUCED) > 0.5  # measured: 0.59
    # the prediction interval's 5 %, within three Monte Carlo standard errors
    assert rate(own, Verdict.NOT_REPRODUCED) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)  # measured: 0.051
    assert rate(far, Verdict.NOT_REPRODUCED) > 0.5 and rate(far, Verdict.REPRODUCED) < 0.001  # measured: 0.56, 0.0001


def test_differences_paired_and_welch_against_scipy():
    a = pd.Series([0.991, 0.993, 0.990, 0.994], index=[0, 1, 2, 3])
    b = pd.Series([0.989, 0.990, 0.989, 0.991], index=[0, 1, 2, 3])
    paired = stats.judge_difference(a, b, paired=True)
    ci = sp.ttest_rel(a, b).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ci.low, ci.high)) and paired.method.startswith("paired")
    welch = stats.judge_difference(a, b.set_axis([4, 5, 6, 7]), paired=True)  # other seeds: cannot pair
    ci = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((ci.low, ci.high)) and welch.method == "Welch t"
    # pairing removes the seed-to-seed spread both sides share: decided paired, not unpaired
    assert paired.verdict is Verdict.REPRODUCED and welch.verdict is Verdict.INCONCLUSIVE
    # a side with a single run has no spread of its own: never decided by borrowing the other side's
    far = stats.judge_difference(a + 0.5, b.iloc[:1], paired=True)
    assert far.verdict is Verdict.INCONCLUSIVE and "no spread" in far.method and far.estimate > 0.5
    assert stats.judge_difference(a.iloc[:1], b.iloc[:1]).verdict is Verdict.INCONCLUSIVE
    assert stats.judge_difference(b, a, paired=True).verdict is Verdict.NOT_REPRODUCED
    assert stats.judge_difference(a, b, paired=True, margin=0.01).verdict is Verdict.NOT_REPRODUCED


def test_a_ceiling_is_judged_by_the_interval_of_the_mean_and_a_mean_above_it_never_holds():
    rise = pd.Series([0.0023, 0.0012, 0.0033, 0.0026, 0.0039])  # 002's linear-head test error rises, 0.27 points
    j = stats.judge_at_most(rise, 0.002)
    ci = sp.ttest_1samp(rise, 0.0).confidence_interval(0.95)
    assert (j.estimate, j.low, j.high) == pytest.approx((rise.mean(), ci.low, ci.high))
    assert j.verdict is Verdict.INCONCLUSIVE and j.seeds_needed > 5
    # read as one run's number (0 within 0.2 points, widened by a run's spread) it would have held
    assert stats.judge_value(rise, 0.0, 0.002).verdict is Verdict.REPRODUCED
    assert stats.judge_at_most(rise - 0.002, 0.002).verdict is Verdict.REPRODUCED
    assert stats.judge_at_most(rise + 0.002, 0.002).verdict is Verdict.NOT_REPRODUCED
    assert stats.judge_at_most(rise.iloc[:1] - 0.002, 0.002).verdict is Verdict.INCONCLUSIVE


def test_combine_and_robust():
    r, nr, i = (stats.Judgement(v) for v in (Verdict.REPRODUCED, Verdict.NOT_REPRODUCED, Verdict.INCONCLUSIVE))
    assert stats.combine([r, r]).verdict is Verdict.REPRODUCED
    assert stats.combine([r, i]).verdict is Verdict.INCONCLUSIVE
    assert stats.combine([i, nr]).verdict is Verdict.NOT_REPRODUCED


@pytest.mark.parametrize("verdicts,kind,text", [
    ({"a": "reproduced", "b": "reproduced"}, Robust.HOLDS, "holds under every reading"),
    ({"a": "not reproduced", "b": "not reproduced"}, Robust.FAILS, "fails under every reading"),
    ({"a": "reproduced", "b": "not reproduced"}, Robust.READING_DEPENDENT,
     "reading-dependent: holds under a, fails under b"),
    ({"a": "reproduced", "b": "not yet run"}, Robust.HOLDS_WHERE_JUDGED,
     "holds where judged (1 of 2 readings; 1 not yet run)"),
    ({"a": "not reproduced", "b": "inconclusive"}, Robust.FAILS_WHERE_JUDGED,
     "fails where judged (1 of 2 readings; 1 inconclusive)"),
    ({"a": "inconclusive", "b": "not yet run"}, Robust.INCONCLUSIVE, "inconclusive"),
    ({"a": "did not train", "b": "did not train"}, Robust.DID_NOT_TRAIN, "did not train"),
    ({"a": "not yet run", "b": "not yet run"}, Robust.NOT_YET_RUN, "not yet run"),
    ({"as stated": "not reproduced"}, Robust.FAILS, "fails"),
])
def test_robust_verdict(verdicts, kind, text):
    verdicts = {r: Verdict(v) for r, v in verdicts.items()}
    assert robust(verdicts) is kind and kind.text(verdicts) == text
