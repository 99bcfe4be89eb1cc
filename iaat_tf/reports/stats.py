"""Statistics over a few seeds: intervals from Student's t, never "2 SE".

Pure numpy and scipy; `reports/frontier.py` (the frontier's verdict) and
`experiments/iaat_cost/cost.py` (a variant against the exact algorithm) use these, so
every interval the package prints comes from one place.

* `Estimate`: a value, its standard error and degrees of freedom, and the
  two-sided t interval at `level` (95% by default).
* `mean`: a mean over seeds (t with n - 1 degrees of freedom).
* `combination`: the sum of several settings' means, each a per-seed value
  (a setting's own linear combination of its clean and AutoAttack accuracy,
  which keeps their correlation within the setting). Paired by seed when
  every part has the same seeds (the same seed: the same initial weights
  and data order), then t with n - 1 degrees of freedom on the per-seed
  sums; otherwise independent parts, Welch-Satterthwaite degrees of freedom.
* `difference`: a - b, paired or Welch as above.
* `gap_to_segment`: a setting's AutoAttack accuracy minus the straight line
  between two frontier points at the setting's clean accuracy, with the
  uncertainty of all six means (both coordinates of the setting and of the
  two points: on a sloped frontier the noise of the clean mean moves the
  point along it), by the delta method.

`tests/reports/stats_test.py` checks these against `scipy.stats` (t intervals, Welch
and paired tests); `tests/reports/calibration_test.py` measures by simulation
how often the frontier's verdict, built on them, is wrong.
"""

import dataclasses
import functools
import math
from typing import Iterable, Mapping, Sequence

from scipy import special as _special

LEVEL = 0.95


def t_quantile(df: float, level: float = LEVEL) -> float:
  """The two-sided t critical value (df = inf: the normal's)."""
  return _t_inverse(df, 0.5 + level / 2)


@functools.lru_cache(maxsize=4096)
def _t_inverse(df: float, p: float) -> float:
  """The t distribution's quantile function (scipy.stats.t.ppf's own ufunc,
  cached: the verdict's simulations ask for the same few thousands of times)."""
  if math.isinf(df):
    return float(_special.ndtri(p))
  return float(_special.stdtrit(df, p))


@dataclasses.dataclass(frozen=True)
class Estimate:
  """value +- t(df) * se. se is nan when it cannot be estimated (one seed)."""

  value: float
  se: float
  df: float
  level: float = LEVEL

  @property
  def half_width(self) -> float:
    if math.isnan(self.se):
      return float("nan")
    if self.se == 0:
      return 0.0
    return t_quantile(self.df, self.level) * self.se

  @property
  def low(self) -> float:
    return self.value - self.half_width

  @property
  def high(self) -> float:
    return self.value + self.half_width

  @property
  def known(self) -> bool:
    """An interval exists (at least two seeds where it needs them)."""
    return not math.isnan(self.se)

  def side(self) -> str:
    """ "above" (interval above 0), "below" (under 0), else "cannot_tell"."""
    if self.known and self.low > 0:
      return "above"
    if self.known and self.high < 0:
      return "below"
    return "cannot_tell"

  @property
  def ci(self) -> list:
    """[low, high] for JSON (None where unknown)."""
    return [finite(self.low), finite(self.high)]


def finite(v: float):
  """v as a float for JSON, None for nan/inf/None."""
  return None if v is None or math.isnan(v) or math.isinf(v) else float(v)


def _mean(values: Iterable[float]) -> float:
  values = [float(v) for v in values]
  return math.fsum(values) / len(values)


def _var(values: Iterable[float]) -> float:
  """The sample variance (n - 1), in plain Python: numpy's overhead dominates
  on 3-5 seeds, and the verdict's simulations ask for it many times."""
  values = [float(v) for v in values]
  m = math.fsum(values) / len(values)
  return math.fsum((v - m) ** 2 for v in values) / (len(values) - 1)


def mean(values: Sequence[float], level: float = LEVEL) -> Estimate:
  """The mean over seeds, se = sd / sqrt(n), t with n - 1 df."""
  return combination([dict(enumerate(values))], level=level)


def combination(
  parts: Sequence[Mapping[int, float]], level: float = LEVEL, paired: bool = True
) -> Estimate:
  """sum_k mean(parts[k]); each part maps seed -> that seed's value.

  Paired (when `paired` and every part has the same seeds): the per-seed
  sums' mean, se and n - 1 df. Otherwise the parts are independent: se^2 =
  sum var_k / n_k and Welch-Satterthwaite df. A part with one seed leaves
  se unknown (nan).
  """
  if not parts or not all(parts):
    raise ValueError("every part needs at least one seed")
  value = float(sum(_mean(p.values()) for p in parts))
  if min(len(p) for p in parts) < 2:
    return Estimate(value, math.nan, math.nan, level)
  seeds = sorted(parts[0])
  if paired and all(sorted(p) == seeds for p in parts):
    sums = [sum(p[s] for p in parts) for s in seeds]
    return Estimate(value, math.sqrt(_var(sums) / len(seeds)), len(seeds) - 1.0, level)
  variances = [_var(p.values()) / len(p) for p in parts]
  var = sum(variances)
  df = var**2 / sum(v**2 / (len(p) - 1) for v, p in zip(variances, parts)) if var > 0 else math.inf
  return Estimate(value, math.sqrt(var), df, level)


def difference(
  a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL, paired: bool = True
) -> Estimate:
  """mean(a) - mean(b): paired by seed when both have the same seeds."""
  return combination([a, {s: -v for s, v in b.items()}], level=level, paired=paired)


def _per_seed(runs: Sequence[Mapping], a: float, c: float) -> dict:
  """seed -> a * autoattack + c * clean."""
  return {int(r["seed"]): a * r["autoattack"] + c * r["clean"] for r in runs}


def gap_to_segment(
  setting: Sequence[Mapping],
  lo: Sequence[Mapping],
  hi: Sequence[Mapping],
  level: float = LEVEL,
  paired: bool = True,
) -> tuple[Estimate, float]:
  """(gap, w): the setting's mean AutoAttack accuracy minus the line from
  `lo` to `hi` (runs of three settings: seed, clean, autoattack) at the
  setting's mean clean accuracy, and where on that line (w = 0 at lo, 1 at
  hi). The gap is linear to first order in the six means,

    gap = A_s - (1 - w) A_lo - w A_hi,  w = (C_s - C_lo) / (C_hi - C_lo),

  with d gap / d C_s = -m, d / d C_lo = m (1 - w), d / d C_hi = m w (m the
  line's slope), so each setting contributes one per-seed value: that
  setting's own coefficients times its clean and AutoAttack accuracy.
  `lo` and `hi` may be the same runs (one point: gap = A_s - A_lo).
  """
  c = lambda runs: _mean(r["clean"] for r in runs)
  a = lambda runs: _mean(r["autoattack"] for r in runs)
  if lo is hi:
    return difference(_per_seed(setting, 1, 0), _per_seed(lo, 1, 0), level, paired), 0.0
  span = c(hi) - c(lo)
  w = (c(setting) - c(lo)) / span
  m = (a(hi) - a(lo)) / span
  parts = [
    _per_seed(setting, 1.0, -m),
    _per_seed(lo, -(1 - w), m * (1 - w)),
    _per_seed(hi, -w, m * w),
  ]
  return combination(parts, level=level, paired=paired), w


POWER = 0.8  # The chance a detectable gap is found (the usual 80%).
