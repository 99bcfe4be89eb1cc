"""How large a gap the seeds can find: the verdict simulated in the fitted world.

`detectable_gap`: about the smallest true advantage that the verdict
(`reports/pieces.py`, every piece the setting's clean accuracy may lie on)
would call `above` in `stats.POWER` (80%) of experiments like this one: the
setting and PGD-AT's frontier points at their means, the setting placed on
the frontier at its mean clean accuracy, each at its own number of seeds,
each with seed noise of the clean/AutoAttack covariance pooled over every
setting's learned seeds, or its own variances where they are larger (a
noisier setting is not credited with the others' calm). Because
every piece's interval moves one for one with the setting's AutoAttack
accuracy, one set of simulated experiments gives, for each, the advantage it
would have needed (`pieces.needed_for_above`); the 80th percentile of those
is the answer. A textbook formula on the local segment alone, (t + t_0.8) x
SE, promised 80% where the verdict found 10-60% (docs/frontier.md).

`seeds_to_detect`: about how many seeds per setting would make a gap of a
given size detectable, by the same simulation at more seeds.

Both are estimates from the fitted world ("about"), for planning.
"""

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from iaat_tf.reports import pieces, stats
from iaat_tf.reports.seed_summary import learned, learned_runs

SIMS = 200
MOST_SEEDS = 100  # seeds_to_detect looks no further.


def pooled_covariance(settings: Sequence[Mapping]) -> np.ndarray:
  """The within-setting covariance of (clean, AutoAttack) over the seeds that
  learn, pooled over every setting with two or more of them."""
  scatter, df = np.zeros((2, 2)), 0
  for s in settings:
    runs = learned_runs(s) if learned(s) else []
    if len(runs) < 2:
      continue
    x = np.array([[r["clean"], r["autoattack"]] for r in runs])
    x -= x.mean(axis=0)
    scatter += x.T @ x
    df += len(runs) - 1
  return scatter / df if df else np.zeros((2, 2))


def _frontier_at(points: Sequence[tuple], clean: float) -> Optional[float]:
  """The fitted frontier's AutoAttack accuracy at `clean` (flat left of its
  lowest-clean point; None right of its highest)."""
  cleans = [c for _, c, _ in points]
  if clean <= cleans[0]:
    return points[0][2]
  for (_, c0, a0), (_, c1, a1) in zip(points, points[1:]):
    if c0 <= clean <= c1 and c1 > c0:
      return a0 + (a1 - a0) * (clean - c0) / (c1 - c0)
  return None


def _needed(
  setting: tuple,
  points: Sequence[tuple],
  cov: Mapping[str, np.ndarray],
  seeds: Mapping[str, int],
  level: float,
  sims: int,
) -> np.ndarray:
  """For `sims` experiments drawn with the setting on the fitted frontier
  (`cov`: each setting's seed covariance), the advantage each would have
  needed to be called `above`."""
  name, clean = setting
  aa = _frontier_at(points, clean)
  if aa is None:
    return np.full(sims, math.inf)
  rng = np.random.default_rng(0)
  chol = {n: np.linalg.cholesky(c + 1e-12 * np.eye(2)) for n, c in cov.items()}

  def draw(who: str, c: float, a: float) -> list:
    x = rng.standard_normal((seeds[who], 2)) @ chol[who].T + [c, a]
    return [{"seed": i, "clean": float(v[0]), "autoattack": float(v[1])} for i, v in enumerate(x)]

  out = np.empty(sims)
  for i in range(sims):
    drawn = [(n, draw(n, c, a)) for n, c, a in points]
    drawn.sort(key=lambda p: math.fsum(r["clean"] for r in p[1]))
    mine = draw(name, clean, aa)
    out[i] = pieces.needed_for_above(pieces.pieces(mine, drawn, level))
  return out


def _quantile(needed: np.ndarray, power: float) -> Optional[float]:
  value = float(np.quantile(needed, power)) if np.isfinite(needed).mean() >= power else math.inf
  return None if math.isinf(value) else max(0.0, value)


def _covariance(setting: Mapping, pooled: np.ndarray) -> np.ndarray:
  """The pooled covariance, each variance raised to the setting's own where
  that is larger (the correlation kept)."""
  runs = learned_runs(setting)
  if len(runs) < 2:
    return pooled
  own = np.var([[r["clean"], r["autoattack"]] for r in runs], axis=0, ddof=1)
  sd = np.sqrt(np.diag(pooled))
  scale = np.where(sd > 0, np.sqrt(np.maximum(own, sd**2)) / np.where(sd > 0, sd, 1), 1.0)
  out = pooled * np.outer(scale, scale)
  for k in range(2):
    if sd[k] == 0:
      out[k, k] = own[k]
  return out


def _world(setting: Mapping, frontier: Sequence[Mapping], pooled: np.ndarray) -> tuple:
  points = [(f["setting"], f["clean_mean"], f["autoattack_mean"]) for f in frontier]
  involved = [*frontier, setting]
  seeds = {s["setting"]: len(learned_runs(s)) for s in involved}
  cov = {s["setting"]: _covariance(s, pooled) for s in involved}
  return (setting["setting"], setting["clean_mean"]), points, seeds, cov


def detectable_gap(
  setting: Mapping,
  frontier: Sequence[Mapping],
  cov: np.ndarray,
  level: float = stats.LEVEL,
  power: float = stats.POWER,
  sims: int = SIMS,
) -> Optional[float]:
  """The smallest advantage found `power` of the time at these seeds (None:
  not even then, e.g. where the setting's clean accuracy may lie beyond the
  frontier's range, or with one seed)."""
  me, points, seeds, covs = _world(setting, frontier, cov)
  if min(seeds.values()) < 2:
    return None
  return _quantile(_needed(me, points, covs, seeds, level, sims), power)


def seeds_to_detect(
  setting: Mapping,
  frontier: Sequence[Mapping],
  cov: np.ndarray,
  gap: float,
  level: float = stats.LEVEL,
  power: float = stats.POWER,
  sims: int = SIMS,
  most: int = MOST_SEEDS,
) -> Optional[int]:
  """About how many seeds per setting (all of them) find an advantage of
  `gap` `power` of the time (None: more than `most`)."""
  me, points, seeds, covs = _world(setting, frontier, cov)

  def finds(n: int) -> bool:
    found = _quantile(_needed(me, points, covs, dict.fromkeys(seeds, n), level, sims), power)
    return found is not None and found <= gap

  if gap <= 0 or not finds(most):
    return None
  lo, hi = 2, most  # finds(hi); find the smallest such n.
  while lo < hi:
    mid = (lo + hi) // 2
    if finds(mid):
      hi = mid
    else:
      lo = mid + 1
  return lo
