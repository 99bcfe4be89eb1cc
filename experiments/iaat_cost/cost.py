"""IAAT's cheaper variants against the exact algorithm: cost, robustness, verdict, picture.

Pure functions of per-run numbers (clean and AutoAttack accuracy per seed)
and measured step-time ratios; experiments/iaat_cost/iaat_cost.py trains,
times and calls them.

* `summarise` gives a variant's mean and (sample) standard deviation over
  its seeds.
* `paired_difference` compares two variants seed by seed (the same seed:
  the same initial weights, data order and test split): the mean of the
  per-seed differences, its standard error std / sqrt(n) and its 95%
  Student's t interval with n - 1 degrees of freedom (`reports/stats.py`).
* `judge` applies the goal: a step at most `max_ratio` x PGD-AT's, AutoAttack
  accuracy within `margin` of the exact algorithm, clean accuracy not lower.
  It says whether the seeds can tell: the AutoAttack loss is "told" to be
  within the margin when the interval's low end is above -margin, "told" to
  exceed it when its high end is below -margin, otherwise the seeds cannot
  tell (and the interval's low end is the largest loss they rule out).
* `plot_cost` draws AutoAttack accuracy (mean, one-std error bars) against
  the step-time ratio, one panel per task.
"""

from typing import Mapping, Optional, Sequence

import numpy as np

from iaat_tf.reports import frontier
from iaat_tf.reports import stats
from iaat_tf.reports.plots import save_figure

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-order

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-order

MAX_RATIO = 1.3  # The goal: a step at most 1.3x PGD-AT's (README of this experiment).
MARGIN = 0.01  # AutoAttack accuracy below the exact algorithm's (1 point).


def summarise(runs: Sequence[Mapping]) -> dict:
  """{seeds, clean_mean, clean_std, autoattack_mean, autoattack_std, failed_seeds}.

  Accuracies in [0, 1]. `failed_seeds`: seeds whose model failed to learn
  (a constant prediction, `frontier.learns`); when some did, the same
  statistics over the seeds that learned are added with a `_learned` suffix.
  """

  def stats(subset, suffix=""):
    out = {}
    for key in ("clean", "autoattack"):
      values = np.asarray([r[key] for r in subset], np.float64)
      out[f"{key}_mean{suffix}"] = float(values.mean()) if values.size else float("nan")
      out[f"{key}_std{suffix}"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return out

  out = {"seeds": [int(r["seed"]) for r in runs], **stats(runs)}
  learned = [r for r in runs if frontier.learns(r)]
  out["failed_seeds"] = [int(r["seed"]) for r in runs if not frontier.learns(r)]
  if out["failed_seeds"] and learned:
    out.update(stats(learned, "_learned"))
  return out


def paired_difference(runs: Sequence[Mapping], base: Sequence[Mapping], key: str) -> dict:
  """Over the seeds both have: mean of runs[key] - base[key], its SE, the
  95% t interval ("ci", n - 1 df) and n."""
  by_seed = {int(r["seed"]): r[key] for r in base}
  diffs = {
    int(r["seed"]): r[key] - by_seed[int(r["seed"])] for r in runs if int(r["seed"]) in by_seed
  }
  if not diffs:
    return {"diff": float("nan"), "se": float("nan"), "ci": [None, None], "n": 0}
  est = stats.combination([diffs])
  return {"diff": est.value, "se": est.se, "ci": est.ci, "n": len(diffs), "estimate": est}


def _aa_verdict(est: stats.Estimate, margin: float) -> tuple[str, bool]:
  """(words, told): is the AutoAttack loss within `margin`, and can the seeds tell?"""
  pts = lambda v: f"{100 * v:+.1f}"
  if not est.known:
    return f"{pts(est.value)} points on one seed: the seeds cannot tell", False
  ci = f"{pts(est.value)} points, 95% interval [{pts(est.low)}, {pts(est.high)}]"
  if est.low > -margin:
    return (f"{ci}: not more than {100 * margin:.0f} point below it, and the seeds tell", True)
  if est.high < -margin:
    return f"{ci}: more than {100 * margin:.0f} point below, and the seeds tell", True
  where = "not more than" if est.value >= -margin else "more than"
  return (
    f"{ci}: {where} {100 * margin:.0f} point below it on the mean, but the "
    f"seeds cannot tell (they rule out only a loss of more than "
    f"{-100 * est.low:.1f} points)",
    False,
  )


def judge(
  runs: Sequence[Mapping],
  exact: Sequence[Mapping],
  step_ratios: Sequence[float],
  *,
  max_ratio: float = MAX_RATIO,
  margin: float = MARGIN,
) -> dict:
  """The goal for one variant on one task against the exact algorithm's runs.

  `step_ratios`: its step time / PGD-AT's on every timed model; the cost
  goal holds when every one is <= max_ratio. `meets_on_means`: cost, mean
  AutoAttack difference >= -margin and clean accuracy not lower (a mean
  difference >= 0, or a 95% interval that reaches 0: no lower clean
  accuracy the seeds can show).
  """
  aa = paired_difference(runs, exact, "autoattack")
  clean = paired_difference(runs, exact, "clean")
  words, told = _aa_verdict(aa["estimate"], margin) if aa["n"] else ("no paired seeds", False)
  cost_ok = bool(step_ratios) and all(r <= max_ratio for r in step_ratios)
  clean_ok = clean["n"] > 0 and (
    clean["diff"] >= 0 or (clean["estimate"].known and clean["estimate"].high >= 0)
  )
  aa_ok = aa["n"] > 0 and aa["diff"] >= -margin
  return {
    "aa_diff_vs_exact": aa["diff"],
    "aa_diff_se": aa["se"],
    "aa_diff_ci": aa["ci"],
    "clean_diff_vs_exact": clean["diff"],
    "clean_diff_se": clean["se"],
    "clean_diff_ci": clean["ci"],
    "paired_seeds": aa["n"],
    "cost_ok": cost_ok,
    "aa_within_margin": aa_ok,
    "aa_told": told,
    "clean_not_lower": clean_ok,
    "aa_verdict": words,
    "meets_on_means": cost_ok and aa_ok and clean_ok,
    "meets_and_told": cost_ok and aa_ok and clean_ok and told,
  }


def table_markdown(rows: Sequence[Mapping], models: Sequence[str]) -> str:
  """One row per variant of one task: cost, passes, accuracies, differences."""
  pct = lambda m, s: f"{100 * m:.1f} +- {100 * s:.1f}"
  head = (
    "| variant | "
    + " | ".join(f"step / PGD-AT ({m})" for m in models)
    + " | passes / image | clean | AutoAttack | AutoAttack - exact (95% interval) | "
    "clean - exact (95% interval) | goal |"
  )
  lines = [head, "|" + "---|" * (7 + len(models))]
  for r in rows:
    ratios = " | ".join(_fmt(r.get("step_time_ratios", {}).get(m)) for m in models)
    if r["variant"] == "exact":
      diff = clean_diff = goal = "-"
    else:
      diff = with_ci(r["aa_diff_vs_exact"], r["aa_diff_ci"]) if r.get("paired_seeds") else "n/a"
      clean_diff = (
        with_ci(r["clean_diff_vs_exact"], r["clean_diff_ci"]) if r.get("paired_seeds") else "n/a"
      )
      goal = (
        "n/a"
        if r["variant"] == "pgd_at"
        else "met, told"
        if r.get("meets_and_told")
        else "met on the means"
        if r.get("meets_on_means")
        else "missed"
      )
    clean, robust = (
      pct(r["clean_mean"], r["clean_std"]),
      pct(r["autoattack_mean"], r["autoattack_std"]),
    )
    failed = r.get("failed_seeds") or []
    if failed:
      clean = (
        f"fails to learn on {len(failed)} of {len(r['seeds'])} seeds; on the "
        f"others {pct(r['clean_mean_learned'], r['clean_std_learned'])}"
        if "clean_mean_learned" in r
        else f"fails to learn on every seed ({clean})"
      )
      robust = (
        f"{pct(r['autoattack_mean_learned'], r['autoattack_std_learned'])} on those"
        if "autoattack_mean_learned" in r
        else robust
      )
    lines.append(
      f"| {r['variant']} | {ratios} | {_fmt(r.get('passes_per_image'), 1)} | "
      f"{clean} | {robust} | {diff} | {clean_diff} | {goal} |"
    )
  return "\n".join(lines) + "\n"


def with_ci(value: float, ci) -> str:
  """+1.4 [-1.9, +4.7]: percent points with the 95% interval."""
  if not ci or ci[0] is None:
    return f"{100 * value:+.1f} (one seed)"
  return f"{100 * value:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _fmt(value: Optional[float], digits: int = 2) -> str:
  return "n/a" if value is None else f"{value:.{digits}f}"


def plot_cost(
  tasks: Mapping[str, Sequence[Mapping]], path: str, *, model: str, aa_eps: Mapping[str, float]
) -> str:
  """AutoAttack accuracy vs step time / PGD-AT (on `model`), one panel per task."""
  fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.2), squeeze=False)
  for ax, (task, rows) in zip(axes[0], tasks.items()):
    timed = sorted(
      (r for r in rows if r.get("step_time_ratios", {}).get(model) is not None),
      key=lambda r: r["step_time_ratios"][model],
    )
    for i, r in enumerate(timed):
      x = r["step_time_ratios"][model]
      # A variant that fails to learn on some seeds is drawn where it learns.
      part = "_learned" if "autoattack_mean_learned" in r else ""
      y, err = 100 * r[f"autoattack_mean{part}"], 100 * r[f"autoattack_std{part}"]
      clean = 100 * r[f"clean_mean{part}"]
      failed = len(r.get("failed_seeds") or [])
      note = (
        f"; learns on {len(r['seeds']) - failed} of {len(r['seeds'])}"
        if part
        else f"; never learns, {failed} of {failed}"
        if failed
        else ""
      )
      colour = {"exact": "tab:blue", "pgd_at": "tab:gray"}.get(r["variant"], "tab:orange")
      ax.errorbar([x], [y], yerr=[err], fmt="o", color=colour, capsize=4)
      # Neighbours in cost alternate above and below their point.
      ax.annotate(
        f"{r['variant']} (clean {clean:.1f}{note})",
        (x, y),
        textcoords="offset points",
        xytext=(6, 6 if i % 2 == 0 else -14),
        fontsize=8,
      )
    ax.axvline(MAX_RATIO, color="tab:red", lw=0.8, ls="--", label=f"goal: {MAX_RATIO}x")
    ax.legend(loc="center right", fontsize=8)
    ax.set_xlabel(f"train-step time / PGD-AT's ({model}, one run)")
    ax.set_ylabel(f"AutoAttack accuracy at eps {aa_eps[task]:.3g} (%)")
    ax.set_title(f"{task}: mean +- std over seeds")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return save_figure(fig, path)
