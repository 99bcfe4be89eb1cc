"""reports/stats.py against scipy.stats: t intervals, Welch and paired
differences, and the gap to a frontier segment (its value, its delta-method
variance against a numerical derivative, its coverage by simulation)."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from iaat_tf.reports import stats

A = [0.62, 0.66, 0.61, 0.69, 0.64]
B = [0.60, 0.61, 0.63, 0.58]


def test_mean_interval_is_scipys_t_interval():
  est = stats.mean(A)
  low, high = scipy_stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=scipy_stats.sem(A))
  assert est.value == pytest.approx(np.mean(A))
  assert est.se == pytest.approx(scipy_stats.sem(A))
  assert est.df == len(A) - 1
  assert (est.low, est.high) == pytest.approx((low, high))
  # Not the normal rule: t(4) is 2.78, not 2 (nor 1.96).
  assert est.half_width / est.se == pytest.approx(2.776, abs=1e-3)
  assert stats.t_quantile(2) == pytest.approx(4.303, abs=1e-3)
  assert stats.t_quantile(math.inf) == pytest.approx(1.960, abs=1e-3)


def test_one_seed_has_no_interval():
  est = stats.mean([0.5])
  assert not est.known and est.side() == "cannot_tell" and est.ci == [None, None]


def test_welch_difference_is_scipys_welch_test():
  est = stats.difference(dict(enumerate(A)), {10 + i: v for i, v in enumerate(B)})
  test = scipy_stats.ttest_ind(A, B, equal_var=False)
  assert est.value == pytest.approx(np.mean(A) - np.mean(B))
  assert est.value / est.se == pytest.approx(test.statistic)
  assert est.df == pytest.approx(test.df)
  ci = test.confidence_interval(0.95)
  assert (est.low, est.high) == pytest.approx((ci.low, ci.high))


def test_paired_difference_is_scipys_paired_test():
  b = [0.60, 0.65, 0.62, 0.66, 0.61]
  est = stats.difference(dict(enumerate(A)), dict(enumerate(b)))
  test = scipy_stats.ttest_rel(A, b)
  assert est.value / est.se == pytest.approx(test.statistic)
  assert est.df == len(A) - 1
  ci = test.confidence_interval(0.95)
  assert (est.low, est.high) == pytest.approx((ci.low, ci.high))
  # Unpaired on request, or when the seeds differ.
  welch = stats.difference(dict(enumerate(A)), dict(enumerate(b)), paired=False)
  assert welch.df == pytest.approx(scipy_stats.ttest_ind(A, b, equal_var=False).df)


def test_side_needs_the_whole_interval_on_one_side():
  assert stats.Estimate(0.05, 0.01, 4).side() == "above"
  assert stats.Estimate(0.02, 0.01, 4).side() == "cannot_tell"  # 2 SE < t(4) SE.
  assert stats.Estimate(-0.05, 0.01, 4).side() == "below"


def _runs(pairs, seeds=None):
  seeds = seeds or range(len(pairs))
  return [{"seed": s, "clean": c, "autoattack": a} for s, (c, a) in zip(seeds, pairs)]


def _gap(setting, lo, hi):
  """The gap by its definition, from the six means."""
  cs, as_, cl, al, ch, ah = setting
  w = (cs - cl) / (ch - cl)
  return as_ - (1 - w) * al - w * ah


def test_gap_to_segment_value_and_delta_method_variance():
  rng = np.random.default_rng(0)
  s = _runs(list(zip(0.975 + 0.006 * rng.standard_normal(5), 0.66 + 0.03 * rng.standard_normal(5))))
  lo = _runs(
    list(zip(0.970 + 0.006 * rng.standard_normal(5), 0.68 + 0.03 * rng.standard_normal(5)))
  )
  hi = _runs(
    list(zip(0.987 + 0.006 * rng.standard_normal(5), 0.63 + 0.03 * rng.standard_normal(5)))
  )
  means = lambda r: (np.mean([x["clean"] for x in r]), np.mean([x["autoattack"] for x in r]))
  point = (*means(s), *means(lo), *means(hi))
  est, w = stats.gap_to_segment(s, lo, hi, paired=False)
  assert est.value == pytest.approx(_gap(point, None, None))
  assert w == pytest.approx((point[0] - point[2]) / (point[4] - point[2]))
  # Delta method: sum over settings of grad' Cov grad / n, the gradient by
  # finite differences of the definition, the covariance per setting.
  var = 0.0
  for k, runs in enumerate((s, lo, hi)):
    grad = []
    for j in (0, 1):
      h = 1e-7
      bumped = list(point)
      bumped[2 * k + j] += h
      grad.append((_gap(bumped, None, None) - _gap(point, None, None)) / h)
    cov = np.cov([[x["clean"] for x in runs], [x["autoattack"] for x in runs]], ddof=1)
    var += np.array(grad) @ cov @ np.array(grad) / len(runs)
  assert est.se == pytest.approx(math.sqrt(var), rel=1e-4)
  # The clean coordinate counts: AutoAttack accuracy the same on every seed,
  # clean accuracy noisy, on a slope of -4 AutoAttack points per clean point.
  flat = lambda c, a: _runs([(c - 0.004, a), (c, a), (c + 0.004, a)])
  est, _ = stats.gap_to_segment(flat(0.98, 0.66), flat(0.97, 0.70), flat(0.99, 0.62), paired=False)
  assert est.value == pytest.approx(0.0, abs=1e-12)
  slope = 4.0
  expected = math.sqrt(slope**2 * (1 + 0.25 + 0.25) * 0.004**2 / 3)
  assert est.se == pytest.approx(expected)


def test_gap_to_one_point_is_a_difference():
  s, p = _runs([(0.9, 0.5), (0.92, 0.54)]), _runs([(0.95, 0.6), (0.97, 0.61)])
  est, w = stats.gap_to_segment(s, p, p)
  assert w == 0.0 and est.value == pytest.approx(0.52 - 0.605)
  assert est.df == 1  # Paired by seed.


def test_gap_interval_covers_the_truth_95_percent_of_the_time():
  """Coverage by simulation on a steep segment, 3 seeds (paired), where the
  clean noise dominates: the interval holds the true gap (0) >= 93% of the time."""
  rng = np.random.default_rng(1)
  truth = {"lo": (0.974, 0.68), "hi": (0.987, 0.63)}
  covered, trials = 0, 1000
  for _ in range(trials):
    c_s = 0.980
    a_s = 0.68 + (0.63 - 0.68) * (c_s - 0.974) / (0.987 - 0.974)
    draw = lambda c, a: _runs(
      list(zip(c + 0.004 * rng.standard_normal(3), a + 0.02 * rng.standard_normal(3)))
    )
    est, _ = stats.gap_to_segment(draw(c_s, a_s), draw(*truth["lo"]), draw(*truth["hi"]))
    covered += est.low <= 0 <= est.high
  assert covered / trials >= 0.93


def test_every_path_keeps_its_level():
  """A 90% interval is t(0.95 quantile) wide on every path."""
  t90 = lambda df: scipy_stats.t.ppf(0.95, df)
  est = stats.mean(A, level=0.9)
  assert est.level == 0.9 and est.half_width == pytest.approx(t90(4) * est.se)
  paired = stats.difference(dict(enumerate(A)), dict(enumerate(A[::-1])), level=0.9)
  assert paired.level == 0.9 and paired.df == 4
  welch = stats.difference(dict(enumerate(A)), {9: 0.1, 8: 0.2}, level=0.9)
  assert welch.level == 0.9
  assert stats.combination([{0: 0.5}], level=0.9).level == 0.9
  assert stats.combination([{0: 0.5, 1: 0.5}, {2: 0.1, 3: 0.1}], level=0.9).level == 0.9
  runs = _runs([(0.9, 0.5), (0.92, 0.54), (0.91, 0.5)])
  for lo, hi in ((runs, runs), (runs, _runs([(0.95, 0.3), (0.97, 0.35), (0.96, 0.3)]))):
    est, _ = stats.gap_to_segment(
      _runs([(0.93, 0.4), (0.94, 0.45), (0.92, 0.42)]), lo, hi, level=0.9, paired=False
    )
    assert est.level == 0.9 and est.df != 2  # Welch, not paired.


def test_pairing_is_the_default_and_needs_the_same_seeds():
  a, b = dict(enumerate(A)), dict(enumerate([0.60, 0.65, 0.62, 0.66, 0.61]))
  assert stats.combination([a, b]).df == 4
  assert stats.combination([a, b], paired=False).df != 4
  assert stats.combination([a, {s + 1: v for s, v in b.items()}]).df != 4
  runs = _runs([(0.9, 0.5), (0.92, 0.54), (0.91, 0.5)])
  other = _runs([(0.95, 0.3), (0.97, 0.35), (0.96, 0.31)])
  est, _ = stats.gap_to_segment(_runs([(0.93, 0.4), (0.94, 0.45), (0.92, 0.42)]), runs, other)
  assert est.df == 2


def test_two_seeds_give_an_interval_one_does_not():
  two = stats.difference({0: 0.5, 1: 0.7}, {2: 0.1, 3: 0.2})
  welch = scipy_stats.ttest_ind([0.5, 0.7], [0.1, 0.2], equal_var=False)
  assert two.known and two.df == pytest.approx(welch.df)
  assert not stats.difference({0: 0.5}, {2: 0.1, 3: 0.2}).known
  assert math.isnan(stats.difference({0: 0.5}, {2: 0.1, 3: 0.2}).df)


def test_no_spread_is_an_exact_value():
  est = stats.combination([{0: 0.5, 1: 0.5}, {2: 0.25, 3: 0.25}], paired=False)
  assert est.value == 0.75 and est.se == 0.0 and est.half_width == 0.0
  assert (est.low, est.high) == (0.75, 0.75) and est.side() == "above"
  zero = stats.Estimate(0.0, 0.0, 4)
  assert zero.side() == "cannot_tell"  # An interval at exactly 0 is not above.
  assert stats.Estimate(-0.0, 0.0, 4).side() == "cannot_tell"


def test_empty_parts_are_refused():
  for parts in ([], [{}], [{0: 1.0}, {}]):
    with pytest.raises(ValueError, match="^every part needs at least one seed$"):
      stats.combination(parts)


def test_finite_is_json_safe():
  assert stats.finite(None) is None and stats.finite(math.nan) is None
  assert stats.finite(math.inf) is None and stats.finite(-math.inf) is None
  value = stats.finite(np.float32(0.5))
  assert value == 0.5 and type(value) is float
  assert stats.Estimate(0.1, 0.01, 4).ci == pytest.approx(
    [0.1 - 2.776 * 0.01, 0.1 + 2.776 * 0.01], abs=1e-4
  )
