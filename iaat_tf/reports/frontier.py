"""The clean-vs-robust frontier over seeds: the verdict of each adaptive setting.

Pure functions of per-run numbers (no training, no attacks): `iaat_tf.frontier`
trains and evaluates the runs, then calls `analyse(runs)`, the public entry
point (a user with their own runs calls it too). Intervals come from
`reports/stats.py` (Student's t over the seeds), the per-setting summaries
and the failed-run rule from `reports/seed_summary.py`; the words and table
are `reports/frontier_words.py`, the picture `reports/frontier_plot.py`.

PGD-AT's frontier is its non-dominated radii (on the means over the seeds
that learn), joined by straight lines.

**The verdict carries the uncertainty of its own choices** (docs/frontier.md).
Which piece of the frontier a setting is compared with is chosen from its
noisy mean clean accuracy, and near a kink or on a steep frontier the wrong
choice brings the wrong slope. So every piece its clean accuracy may lie on
is tested (`reports/pieces.py`), and the verdict is the one they agree on:

* `above` / `below` when every piece left says so; `below` too when a
  PGD-AT radius has more clean and more AutoAttack accuracy, both intervals
  above 0 (`dominated_by` lists every radius that has more of both in the
  means, with its intervals and on how many shared seeds).
* `not_comparable` when the setting's clean accuracy is surely beyond the
  frontier's clean range (more: add smaller radii; less and not below: add
  larger radii); else `cannot_tell`.
* `gap` is the gap under the setting's mean clean accuracy; `gap_ci` the
  hull of the pieces' intervals (neither when not comparable);
  `detectable_gap` the smallest advantage these seeds find 80% of the time,
  and with `detect`, `seeds_to_detect` about how many seeds would find that
  much (`reports/power.py`).

`tests/reports/calibration_test.py` measures the error rates in a family of
simulated worlds (reports/calibration.py); `tools/frontier_calibration.py`
the large run whose table is in docs/frontier.md.
"""

import math
from typing import Any, Mapping, Optional, Sequence

from iaat_tf.reports import frontier_words, pieces, power, stats
from iaat_tf.reports.seed_summary import (
  FAILURE_RULE,
  UNIFORM,
  beats_chance,
  learned,
  learned_runs,
  learns,
  summarise,
)

__all__ = ["FAILURE_RULE", "UNIFORM", "beats_chance", "learns", "summarise"]

VERDICTS = ("above", "below", "cannot_tell", "not_comparable")
RULE = (
  "every piece of PGD-AT's frontier the setting's clean accuracy may lie on (not ruled out "
  "at one-sided {level}) must agree: above (below) a segment when the gap to its line, or "
  "to its higher (lower) end, has its interval above (below) 0; below the flat piece left "
  "of the lowest-clean point when AutoAttack is below that point's; below too when a "
  "PGD-AT radius has more of both, both intervals above 0"
)


def pareto_flags(settings: Sequence[Mapping]) -> list[bool]:
  """True where the setting learns on some seed and no other such setting
  has both higher mean clean and higher mean AutoAttack accuracy (ties do
  not dominate)."""
  ok = [s for s in settings if learned(s)]
  flags = []
  for a in settings:
    if not learned(a):
      flags.append(False)
      continue
    dominated = any(
      b is not a
      and b["clean_mean"] >= a["clean_mean"]
      and b["autoattack_mean"] >= a["autoattack_mean"]
      and (b["clean_mean"] > a["clean_mean"] or b["autoattack_mean"] > a["autoattack_mean"])
      for b in ok
    )
    flags.append(not dominated)
  return flags


def uniform_frontier(settings: Sequence[Mapping]) -> list[Mapping]:
  """PGD-AT's non-dominated settings (among PGD-AT alone, where they learn),
  by clean accuracy."""
  uniform = [s for s in settings if s["method"] in UNIFORM]
  keep = [s for s, ok in zip(uniform, pareto_flags(uniform)) if ok]
  return sorted(keep, key=lambda s: s["clean_mean"])


def _radius(setting: Mapping) -> str:
  eps = setting.get("train_eps")
  return setting["setting"] if eps is None else f"{eps:.4g}"


def _dominated_by(setting: Mapping, uniform: Sequence[Mapping], level: float) -> list[dict]:
  """Every learned PGD-AT setting with more mean clean and more mean
  AutoAttack accuracy: the differences with their intervals, on how many
  shared seeds both are higher, and whether both intervals lie above 0."""
  runs = learned_runs(setting)
  out = []
  for u in uniform:
    if not learned(u) or not (
      u["clean_mean"] > setting["clean_mean"] and u["autoattack_mean"] > setting["autoattack_mean"]
    ):
      continue
    other = learned_runs(u)
    dc = pieces.difference(other, runs, "clean", level)
    da = pieces.difference(other, runs, "autoattack", level)
    mine = {int(r["seed"]): r for r in runs}
    shared = [r for r in other if int(r["seed"]) in mine]
    both = sum(
      r["clean"] > mine[int(r["seed"])]["clean"]
      and r["autoattack"] > mine[int(r["seed"])]["autoattack"]
      for r in shared
    )
    out.append(
      {
        "setting": u["setting"],
        "clean": dc.value,
        "clean_ci": dc.ci,
        "autoattack": da.value,
        "autoattack_ci": da.ci,
        "seeds_both": f"{both}/{len(shared)}",
        "confident": bool(dc.known and da.known and dc.low > 0 and da.low > 0),
        "strength": min(dc.value / dc.se, da.value / da.se) if dc.se and da.se else math.inf,
      }
    )
  out.sort(key=lambda d: -d["strength"] if not math.isnan(d["strength"]) else 0.0)
  for d in out:
    d.pop("strength")
  return out


def gap_under_mean(setting: Mapping, frontier: Sequence[Mapping], level: float):
  """(gap estimate, basis, compared settings, the frontier's AutoAttack there)
  on the piece under the setting's mean clean accuracy, its slope taken as
  known (the estimate None beyond the highest-clean point). The verdict's
  `gap`; alone it was iaat_tf 0.6's verdict (calibration.previous_verdict)."""
  x, cleans = setting["clean_mean"], [f["clean_mean"] for f in frontier]
  runs = learned_runs(setting)
  if x > cleans[-1]:
    return None, None, [], 0.0
  if x < cleans[0] or len(frontier) == 1:
    lo = hi = frontier[0]
    basis = "higher_clean_point" if x < cleans[0] else "interpolated"
  else:
    i = max(j for j in range(len(cleans) - 1) if cleans[j] <= x)
    lo, hi = frontier[i], frontier[i + 1]
    if hi["clean_mean"] == lo["clean_mean"]:
      hi = lo
    basis = "interpolated"
  lo_runs = learned_runs(lo)
  hi_runs = lo_runs if hi is lo else learned_runs(hi)
  gap, w = stats.gap_to_segment(runs, lo_runs, hi_runs, level=level)
  reach = (1 - w) * lo["autoattack_mean"] + w * hi["autoattack_mean"]
  return gap, basis, [lo["setting"]] + ([] if hi is lo else [hi["setting"]]), reach


def compare_to_frontier(
  setting: Mapping,
  frontier: Sequence[Mapping],
  level: float = stats.LEVEL,
  uniform: Optional[Sequence[Mapping]] = None,
) -> dict:
  """The structured verdict of one adaptive setting against PGD-AT's frontier
  (`uniform`: every PGD-AT setting, for `dominated_by`; default the frontier).

  {"verdict", "gap" (under the mean clean accuracy), "gap_ci" (the pieces'
  hull, at `level`), "gap_level", "gap_se", "gap_df", "frontier_autoattack",
  "frontier_basis" ("interpolated", "higher_clean_point" or None),
  "compared_with", "pieces", "dominated_by", "reason"}.
  """
  out: dict[str, Any] = {
    "verdict": "not_comparable",
    "gap": None,
    "gap_ci": None,
    "gap_level": level,
    "gap_se": None,
    "gap_df": None,
    "frontier_autoattack": None,
    "frontier_basis": None,
    "compared_with": [],
    "pieces": [],
    "dominated_by": [],
    "reason": None,
  }
  if not learned(setting):
    out["reason"] = "it learns on no seed"
    return out
  out["dominated_by"] = _dominated_by(setting, uniform or frontier, level)
  if not frontier:
    out["reason"] = "no PGD-AT radius learns on any seed"
    return _dominance(out)
  found = pieces.pieces(
    learned_runs(setting), [(f["setting"], learned_runs(f)) for f in frontier], level
  )
  kinds = [p["piece"] for p in found]
  shows = [p["shows"] for p in found]
  out["pieces"] = found
  if found and all(v == "above" for v in shows):
    verdict = "above"
  elif found and all(v == "below" for v in shows):
    verdict = "below"
  elif kinds == ["beyond"] or not found:
    verdict = "not_comparable"
    out["reason"] = (
      f"more clean accuracy than every PGD-AT radius reached; add "
      f"radii smaller than {_radius(frontier[-1])}"
    )
  elif kinds == ["flat"]:
    verdict = "not_comparable"
    out["reason"] = (
      f"less clean accuracy than every PGD-AT frontier point "
      f"({frontier[0]['setting']} reaches {100 * frontier[0]['clean_mean']:.1f}), "
      f"and not below it; add radii larger than {_radius(frontier[0])}"
    )
  else:
    verdict = "cannot_tell"
  out["verdict"] = verdict
  gap, basis, compared, reach = gap_under_mean(setting, frontier, level)
  if verdict != "not_comparable" and gap is not None:
    cis = [p["ci"] for p in found if p["piece"] != "beyond"]
    known = cis and all(c[0] is not None and c[1] is not None for c in cis)
    hull: list = [min(c[0] for c in cis), max(c[1] for c in cis)] if known else [None, None]
    if known and "beyond" in kinds:
      # Its clean accuracy may be above the top point's: there the gap is at
      # most its AutoAttack minus that point's, the interval's upper end.
      d = pieces.difference(learned_runs(setting), learned_runs(frontier[-1]), "autoattack", level)
      if d.known:
        hull[1] = max(float(hull[1]), d.high)
    out.update(
      {
        "gap": gap.value,
        "gap_ci": hull,
        "gap_se": stats.finite(gap.se),
        "gap_df": stats.finite(gap.df),
        "frontier_autoattack": reach,
        "frontier_basis": basis,
        "compared_with": compared,
      }
    )
  return _dominance(out)


def _dominance(out: dict) -> dict:
  """A PGD-AT radius with more of both, both intervals above 0: below."""
  sure = [d for d in out["dominated_by"] if d["confident"]]
  if sure and out["verdict"] != "below":
    out["verdict"] = "below"
    out["reason"] = f"dominated by {sure[0]['setting']}"
  return out


def finding_possible(setting: Mapping) -> bool:
  """More seeds could still change this verdict into a finding: undecided,
  or not comparable while some PGD-AT radius has more of both in the means
  (more seeds may show it `below`)."""
  if setting["verdict"] in ("above", "below"):
    return False
  if setting["verdict"] == "cannot_tell":
    return True
  return learned(setting) and bool(setting.get("dominated_by"))


def add_power(
  settings: Sequence[dict],
  level: float = stats.LEVEL,
  detect: Optional[float] = None,
  sims: int = power.SIMS,
  only: Optional[Sequence[str]] = None,
) -> None:
  """Each adaptive setting's (or those named in `only`) `detectable_gap`,
  and with `detect` its `seeds_to_detect` (reports/power.py; `sims=0`: none)."""
  if not sims:
    return
  frontier = uniform_frontier(settings)
  cov = power.pooled_covariance(settings)
  for s in settings:
    if s["method"] in UNIFORM or (only is not None and s["setting"] not in only):
      continue
    s.update({"detectable_gap": None, "detect": detect, "seeds_to_detect": None})
    if s.get("gap") is not None:
      s["detectable_gap"] = power.detectable_gap(s, frontier, cov, level, sims=sims)
      if detect:
        s["seeds_to_detect"] = power.seeds_to_detect(s, frontier, cov, detect, level, sims=sims)


def power_rule(sims: int) -> str:
  """frontier.json's words for `detectable_gap`, made by `sims` simulations."""
  if not sims:
    return "not computed (no power simulations)"
  return (
    f"about the smallest true advantage the verdict finds {100 * stats.POWER:.0f}% of the "
    f"time, by {sims} simulated experiments in the fitted world (reports/power.py); null: "
    "no advantage, however large, is found that often at these seeds (the clean accuracy "
    "may lie where only below can be shown, or beyond the frontier; see seeds_to_detect)"
  )


def analyse(
  runs: Sequence[Mapping],
  level: float = stats.LEVEL,
  detect: Optional[float] = None,
  power_sims: int = power.SIMS,
) -> dict:
  """Everything frontier.json holds: settings (with on_frontier and, for
  adaptive settings, the structured verdict with its gap interval at
  `level`, `detectable_gap`, and with `detect` (a gap in accuracy, e.g.
  0.02) `seeds_to_detect`), the rules, and the verdict in words.
  `power_sims=0` skips the power simulations (the calibration's own
  simulations do)."""
  settings = summarise(runs)
  for s, ok in zip(settings, pareto_flags(settings)):
    s["on_frontier"] = ok
  frontier = uniform_frontier(settings)
  uniform = [s for s in settings if s["method"] in UNIFORM]
  for s in settings:
    if s["method"] not in UNIFORM:
      s.update(compare_to_frontier(s, frontier, level, uniform))
  add_power(settings, level, detect, power_sims)
  return {
    "settings": settings,
    "uniform_frontier": [s["setting"] for s in frontier],
    "rules": {
      "failed_run": FAILURE_RULE,
      "verdict": RULE.format(level=f"{100 * level:.3g}%"),
      "detectable_gap": power_rule(power_sims),
    },
    "verdict": frontier_words.verdict(settings),
  }
