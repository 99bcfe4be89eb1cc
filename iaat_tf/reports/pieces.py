"""Which pieces of PGD-AT's frontier a setting may lie on, and what each shows.

PGD-AT's frontier (its non-dominated radii joined by straight lines) has
pieces: the flat piece left of its lowest-clean point (a radius there has
more clean accuracy: only `below` can be shown), one segment between each
two neighbouring points, and beyond its highest-clean point (nothing to
compare with). `pieces` tests the setting against every piece its clean
accuracy may lie on; `reports/frontier.py` takes the verdict they agree on.

* A piece is ruled out only when the setting's clean accuracy is beyond one
  of its ends at one-sided `level` (a t test of the clean difference, paired
  by seed where the two settings share their seeds).
* Against a segment, the gap interval is the intersection of two intervals
  that both hold when the setting lies on that segment: the gap to the
  segment's line at matched clean accuracy (`stats.gap_to_segment`, both
  coordinates of all three settings), and the range the segment spans in
  AutoAttack accuracy (the setting's AutoAttack minus the higher end's, up
  to minus the lower end's), which holds whatever the slope. It shows
  `above` (`below`) when that interval lies above (below) 0.
* Against the flat piece: the setting's AutoAttack minus the lowest-clean
  point's; it shows `below` when that lies below 0, else nothing.

Pure functions of per-seed values (dicts with seed, clean, autoattack).
"""

import math
from typing import Mapping, Sequence

from iaat_tf.reports import stats

Runs = Sequence[Mapping]


def values(runs: Runs, key: str) -> dict:
  """seed -> the runs' `key` value."""
  return {int(r["seed"]): r[key] for r in runs}


def difference(a: Runs, b: Runs, key: str, level: float) -> stats.Estimate:
  """`a`'s mean `key` minus `b`'s with its interval at `level` (paired by
  seed where the two share their seeds; `stats.difference`)."""
  return stats.difference(values(a, key), values(b, key), level)


def _mean(runs: Runs, key: str) -> float:
  return math.fsum(r[key] for r in runs) / len(runs)


def side(low: float, high: float) -> str:
  if low > 0:
    return "above"
  if high < 0:
    return "below"
  return "cannot_tell"


def pieces(runs: Runs, points: Sequence[tuple], level: float = stats.LEVEL) -> list[dict]:
  """Every piece the setting (its learned `runs`) may lie on, against the
  frontier `points` ([(name, runs)], by mean clean accuracy): [{"piece"
  ("flat", "segment", "beyond"), "between" (the points' names), "ci" (the
  gap interval at `level`; [None, None] where there is none), "shows"
  ("above", "below", "cannot_tell"; "none" where nothing can be shown)}]."""
  one_sided = 2 * level - 1  # A two-sided interval at this level is one-sided at `level`.

  def surely_less(a: Runs, b: Runs) -> bool:
    d = difference(a, b, "clean", one_sided)
    return d.known and d.high < 0

  def aa_gap(point: Runs) -> stats.Estimate:
    return difference(runs, point, "autoattack", level)

  out = []
  first_name, first = points[0]
  if not surely_less(first, runs):
    d = aa_gap(first)
    out.append(
      {
        "piece": "flat",
        "between": [first_name],
        "ci": d.ci,
        "shows": "below" if d.known and d.high < 0 else "none",
      }
    )
  for (lo_name, lo), (hi_name, hi) in zip(points, points[1:]):
    if _mean(hi, "clean") == _mean(lo, "clean"):
      continue
    if surely_less(runs, lo) or surely_less(hi, runs):
      continue
    line, _ = stats.gap_to_segment(runs, lo, hi, level)
    top, bottom = (lo, hi) if _mean(lo, "autoattack") >= _mean(hi, "autoattack") else (hi, lo)
    low, high = line.low, line.high
    if line.known:
      low, high = max(low, aa_gap(top).low), min(high, aa_gap(bottom).high)
    known = line.known and not (math.isnan(low) or math.isnan(high))
    out.append(
      {
        "piece": "segment",
        "between": [lo_name, hi_name],
        "ci": [stats.finite(low), stats.finite(high)],
        "shows": side(low, high) if known else "cannot_tell",
      }
    )
  last_name, last = points[-1]
  if not surely_less(runs, last):
    out.append({"piece": "beyond", "between": [last_name], "ci": [None, None], "shows": "none"})
  return out


def needed_for_above(found: Sequence[Mapping]) -> float:
  """How much more AutoAttack accuracy (on every seed) the setting would need
  for every piece to show `above` (inf where a piece never can: flat,
  beyond, or no interval). Each piece's interval only moves with it."""
  need = -math.inf
  for p in found:
    low = p["ci"][0]
    if p["piece"] != "segment" or low is None:
      return math.inf
    need = max(need, -low)
  return need if found else math.inf
