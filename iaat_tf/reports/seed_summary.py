"""Runs over seeds -> one summary per setting, and which runs failed.

Pure numpy/scipy; `reports/frontier.py` builds its verdict on these summaries.

* A run **failed** (it is a reliability figure, `learns: "k/n"`, never
  averaged into its setting's accuracy) when either
  - `at chance`: its clean accuracy does not beat chance (the majority-class
    rate of the test labels it was judged on) by more than luck on that many
    test images explains (one-sided binomial p < `LEARN_P`), or
  - `collapsed`: it beats chance, but its clean accuracy is less than
    halfway (`COLLAPSE`) from chance to the best clean accuracy among its
    setting's seeds that beat chance: 12% or 20% clean where the other seeds
    reach 97% (chance 10%) is a run that broke, not seed noise, whatever
    the binomial test says on 10,000 images. A setting whose seeds all sit
    near chance together is not "collapsed": it is a bad setting, placed
    honestly where its runs are.
* `summarise` groups runs by setting: mean, (sample) standard deviation and
  95% t interval of clean and AutoAttack accuracy over the seeds that learn.
"""

from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import special as _special

from iaat_tf.reports import stats

UNIFORM = ("pgd_at",)
LEARN_P = 1e-3  # One-sided binomial p-value that clean accuracy beats chance.
COLLAPSE = 0.5  # A run under chance + COLLAPSE * (its setting's best - chance) collapsed.
FAILURE_RULE = (
  "a run failed when its clean accuracy does not beat chance (the majority-class rate of "
  f"the test labels) at one-sided binomial p < {LEARN_P:g}, or when it beats chance but "
  f"stays under {COLLAPSE:g} of the way from chance to its setting's best seed (collapsed)"
)


def beats_chance(run: Mapping) -> bool:
  """Clean accuracy above chance (`run["chance"]`) beyond luck on
  `run["n_examples"]` test images: P(Binomial(n, chance) >= correct) < LEARN_P."""
  chance, n = run.get("chance"), run.get("n_examples")
  if chance is None or not n:
    raise ValueError(
      f"run {run.get('setting')} seed {run.get('seed')}: "
      "'learns' needs its chance rate and number of test examples"
    )
  correct = int(round(run["clean"] * n))
  # P(Binomial(n, chance) > correct - 1): scipy.stats.binom.sf's own ufunc.
  tail = 1.0 if correct <= 0 else float(_special.bdtrc(correct - 1, int(n), chance))
  return bool(tail < LEARN_P)


def failure(
  run: Mapping, best: Optional[float] = None, beat: Optional[bool] = None
) -> Optional[str]:
  """Why the run failed ("at chance", "collapsed") or None when it learned.
  `best`: the best clean accuracy among its setting's seeds that beat chance;
  `beat`: `beats_chance(run)` when already known."""
  if not (beats_chance(run) if beat is None else beat):
    return "at chance"
  if best is not None and run["clean"] - run["chance"] < COLLAPSE * (best - run["chance"]):
    return "collapsed"
  return None


def learns(run: Mapping, best: Optional[float] = None) -> bool:
  """The run learned: not at chance, and (given its setting's best seed) not collapsed."""
  return failure(run, best) is None


def _interval_dict(values: Sequence[float]) -> dict:
  est = stats.mean(values)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return {"mean": est.value, "std": std, "ci": est.ci}


def summarise(runs: Sequence[Mapping], collapse: bool = True) -> list[dict]:
  """Per setting (in first-seen order): method, flags, seeds, the seeds that
  learn ("learns": "k/n", "reliability": k/n, each seed's "failure"), and
  over those seeds the mean, std and 95% t interval of clean and AutoAttack
  accuracy (None where no seed learns).

  Each run is {"setting", "method", "flags", "seed", "clean", "autoattack",
  "chance", "n_examples"} and optionally "eps_quantiles" (the learned
  radii's 10/25/50/75/90th percentiles) and "train_eps". `collapse=False`:
  only runs at chance fail (iaat_tf 0.6's rule, kept for comparison).
  """
  order: list[str] = []
  groups: dict[str, list[Mapping]] = {}
  for run in runs:
    key = run["setting"]
    if key not in groups:
      order.append(key)
      groups[key] = []
    groups[key].append(run)
  out = []
  for key in order:
    group = sorted(groups[key], key=lambda r: r["seed"])
    beat = [beats_chance(r) for r in group]
    best = max((r["clean"] for r, ok in zip(group, beat) if ok), default=None) if collapse else None
    failures = [failure(r, best, ok) for r, ok in zip(group, beat)]
    learned = [r for r, why in zip(group, failures) if why is None]
    row = {
      "setting": key,
      "method": group[0]["method"],
      "flags": list(group[0]["flags"]),
      "seeds": [r["seed"] for r in group],
      "learned_seeds": [r["seed"] for r in learned],
      "learns": f"{len(learned)}/{len(group)}",
      "reliability": len(learned) / len(group),
      "per_seed": [
        {
          "seed": r["seed"],
          "clean": r["clean"],
          "autoattack": r["autoattack"],
          "learned": why is None,
          "failure": why,
        }
        for r, why in zip(group, failures)
      ],
    }
    for name in ("clean", "autoattack"):
      if learned:
        d = _interval_dict([r[name] for r in learned])
        row.update({f"{name}_mean": d["mean"], f"{name}_std": d["std"], f"{name}_ci": d["ci"]})
      else:
        row.update({f"{name}_mean": None, f"{name}_std": None, f"{name}_ci": None})
    if group[0].get("train_eps") is not None:
      row["train_eps"] = group[0]["train_eps"]
    quantiles = [r["eps_quantiles"] for r in learned if r.get("eps_quantiles")]
    if quantiles:
      row["eps_quantiles"] = [float(v) for v in np.mean(quantiles, axis=0)]
    out.append(row)
  return out


def learned(setting: Mapping) -> bool:
  """The setting learns on some seed (it has means)."""
  return setting["clean_mean"] is not None


def learned_runs(setting: Mapping) -> list[dict]:
  """The per-seed values of the seeds that learn."""
  return [p for p in setting["per_seed"] if p["learned"]]
