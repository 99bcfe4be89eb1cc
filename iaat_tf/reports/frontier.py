"""The clean-vs-robust frontier over seeds: summary, frontier, verdict, picture.

Pure functions of per-run numbers (no training, no attacks): `iaat_tf.frontier`
trains and evaluates the runs, then calls these. Intervals come from
`reports/stats.py` (Student's t over the seeds; see docs/frontier.md).

* `learns`: a run learned when its clean accuracy is above chance (the
  majority-class rate of the test labels it was judged on) by more than
  luck on that many test images explains (one-sided binomial p < 0.001).
  Seeds that fail to learn are a reliability figure (`learns`: "k/n"),
  never averaged into a setting's accuracy.
* `summarise` groups runs by setting: mean, (sample) standard deviation and
  95% t interval of clean and AutoAttack accuracy over the seeds that learn.
* `pareto_flags` marks the settings no other setting beats in both means.
* `compare_to_frontier` places each adaptive setting against uniform PGD-AT's
  frontier (PGD-AT's non-dominated settings, where they learn), as a
  structured verdict: `gap`, `gap_ci` (95%) and `verdict`, one of
  - `above` / `below`: the interval of the gap at matched clean accuracy
    (the frontier interpolated linearly between its two neighbouring points)
    lies above / below 0. Its uncertainty carries both coordinates of the
    setting and of both points (`stats.gap_to_segment`), paired by seed
    where the settings share their seeds.
  - `cannot_tell`: the interval holds 0.
  - `not_comparable`: outside PGD-AT's clean range. With more clean
    accuracy than every frontier point there is nothing to compare with
    (add smaller radii); with less, the comparison is with the frontier's
    lowest-clean point, which has more clean accuracy: that can show the
    setting `below` (dominated) but never above (a larger uniform radius
    may buy the same trade), so anything else is `not_comparable` (add
    larger radii).
* `verdict` says it in words, generated from those fields.
* `plot_frontier` draws the means over learned seeds with error bars (one
  standard deviation) both ways, "k/n" beside a point whose setting fails on
  some seeds, PGD-AT's frontier as a line, and each setting's radii.

`tests/reports/frontier_test.py` simulates settings that lie on the frontier and
measures how often `above` is claimed (at most 5%), and how often a true
advantage is found.
"""

import textwrap
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from scipy import stats as _scipy

from iaat_tf.reports import stats
from iaat_tf.reports.plots import norm_label, save_figure

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-order

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-order

UNIFORM = ("pgd_at",)
VERDICTS = ("above", "below", "cannot_tell", "not_comparable")
LEARN_P = 1e-3  # One-sided binomial p-value that clean accuracy beats chance.


def learns(run: Mapping) -> bool:
  """Clean accuracy above chance (`run["chance"]`, the majority-class rate
  of the test labels) beyond luck on `run["n_examples"]` test images:
  P(Binomial(n, chance) >= correct) < LEARN_P."""
  chance, n = run.get("chance"), run.get("n_examples")
  if chance is None or not n:
    raise ValueError(
      f"run {run.get('setting')} seed {run.get('seed')}: "
      "'learns' needs its chance rate and number of test examples"
    )
  correct = int(round(run["clean"] * n))
  return bool(_scipy.binom.sf(correct - 1, int(n), chance) < LEARN_P)


def _interval_dict(values: Sequence[float]) -> dict:
  est = stats.mean(values)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return {"mean": est.value, "std": std, "ci": est.ci}


def summarise(runs: Sequence[Mapping]) -> list[dict]:
  """Per setting (in first-seen order): method, flags, seeds, the seeds that
  learn ("learns": "k/n", "reliability": k/n), and over those seeds the
  mean, std and 95% t interval of clean and AutoAttack accuracy (None where
  no seed learns).

  Each run is {"setting", "method", "flags", "seed", "clean", "autoattack",
  "chance", "n_examples"} and optionally "eps_quantiles" (the learned
  radii's 10/25/50/75/90th percentiles) and "train_eps".
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
    learned_flags = [learns(r) for r in group]
    learned = [r for r, ok in zip(group, learned_flags) if ok]
    row = {
      "setting": key,
      "method": group[0]["method"],
      "flags": list(group[0]["flags"]),
      "seeds": [r["seed"] for r in group],
      "learned_seeds": [r["seed"] for r in learned],
      "learns": f"{len(learned)}/{len(group)}",
      "reliability": len(learned) / len(group),
      "per_seed": [
        {"seed": r["seed"], "clean": r["clean"], "autoattack": r["autoattack"], "learned": ok}
        for r, ok in zip(group, learned_flags)
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


def _learned(setting: Mapping) -> bool:
  return setting["clean_mean"] is not None


def pareto_flags(settings: Sequence[Mapping]) -> list[bool]:
  """True where the setting learns on some seed and no other such setting
  has both higher mean clean and higher mean AutoAttack accuracy (ties do
  not dominate)."""
  ok = [s for s in settings if _learned(s)]
  flags = []
  for a in settings:
    if not _learned(a):
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


def _runs(setting: Mapping) -> list[dict]:
  return [p for p in setting["per_seed"] if p["learned"]]


def _radius(setting: Mapping) -> str:
  eps = setting.get("train_eps")
  return setting["setting"] if eps is None else f"{eps:.4g}"


def compare_to_frontier(
  setting: Mapping, frontier: Sequence[Mapping], level: float = stats.LEVEL
) -> dict:
  """The structured verdict of one adaptive setting against PGD-AT's frontier.

  {"verdict", "gap", "gap_ci" (at `level`), "gap_level", "gap_se", "gap_df",
  "frontier_autoattack", "frontier_basis" ("interpolated",
  "higher_clean_point" or None), "compared_with" (frontier settings),
  "reason" (for not_comparable)}.
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
    "reason": None,
  }
  if not _learned(setting):
    out["reason"] = "it learns on no seed"
    return out
  if not frontier:
    out["reason"] = "no PGD-AT radius learns on any seed"
    return out
  x = setting["clean_mean"]
  cleans = [f["clean_mean"] for f in frontier]
  if x > cleans[-1]:
    out["reason"] = (
      f"more clean accuracy than every PGD-AT radius reached; add "
      f"radii smaller than {_radius(frontier[-1])}"
    )
    return out
  if x < cleans[0] or len(frontier) == 1:
    lo = hi = frontier[0]
    basis = "higher_clean_point" if x < cleans[0] else "interpolated"
  else:
    i = max(j for j in range(len(cleans) - 1) if cleans[j] <= x)
    lo, hi = frontier[i], frontier[i + 1]
    if hi["clean_mean"] == lo["clean_mean"]:
      hi = lo
    basis = "interpolated"
  lo_runs = _runs(lo)
  hi_runs = lo_runs if hi is lo else _runs(hi)
  gap, w = stats.gap_to_segment(_runs(setting), lo_runs, hi_runs, level=level)
  reach = (1 - w) * lo["autoattack_mean"] + w * hi["autoattack_mean"]
  verdict = gap.side()
  out.update(
    {
      "gap": gap.value,
      "gap_ci": gap.ci,
      "gap_se": stats.finite(gap.se),
      "gap_df": stats.finite(gap.df),
      "frontier_autoattack": reach,
      "frontier_basis": basis,
      "compared_with": [lo["setting"]] + ([] if hi is lo else [hi["setting"]]),
    }
  )
  if basis == "higher_clean_point" and verdict != "below":
    # Against a point with more clean accuracy only "below" is a finding.
    verdict = "not_comparable"
    out["reason"] = (
      f"less clean accuracy than every PGD-AT frontier point "
      f"({lo['setting']} reaches {_pct(lo['clean_mean'])}); add radii "
      f"larger than {_radius(lo)}"
    )
  out["verdict"] = verdict
  return out


def analyse(runs: Sequence[Mapping], level: float = stats.LEVEL) -> dict:
  """Everything frontier.json holds: settings (with on_frontier and, for
  adaptive settings, the structured verdict with its gap interval at
  `level`) and the verdict in words."""
  settings = summarise(runs)
  for s, ok in zip(settings, pareto_flags(settings)):
    s["on_frontier"] = ok
  frontier = uniform_frontier(settings)
  for s in settings:
    if s["method"] not in UNIFORM:
      s.update(compare_to_frontier(s, frontier, level))
  return {
    "settings": settings,
    "uniform_frontier": [s["setting"] for s in frontier],
    "verdict": verdict(settings, frontier),
  }


def _pct(v: Optional[float]) -> str:
  return "n/a" if v is None else f"{100 * v:.1f}"


def _ci(ci) -> str:
  if not ci or ci[0] is None:
    return "no interval (one seed)"
  return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _point(s: Mapping) -> str:
  return (
    f"clean {_pct(s['clean_mean'])} +- {_pct(s['clean_std'])}, AutoAttack "
    f"{_pct(s['autoattack_mean'])} +- {_pct(s['autoattack_std'])}"
  )


_SAYS = {
  "above": "above uniform PGD-AT's frontier: the seeds tell",
  "below": "below uniform PGD-AT's frontier: the seeds tell",
  "cannot_tell": "the seeds cannot tell it from uniform PGD-AT's frontier",
}


def setting_line(s: Mapping, by_name: Mapping[str, Mapping]) -> str:
  """One adaptive setting's verdict in words, from its fields."""
  head = f"{s['setting']} (learns on {s['learns']} seeds)"
  if s["gap"] is None:
    stopped = f" ({s['stopped']})" if s.get("stopped") else ""
    return f"{head}: not comparable: {s['reason']}{stopped}."
  against = ", ".join(f"{n} (learns on {by_name[n]['learns']})" for n in s["compared_with"])
  where = (
    "at the same clean accuracy, between "
    if len(s["compared_with"]) > 1
    else "at the same clean accuracy, at "
    if s["frontier_basis"] == "interpolated"
    else "against the frontier point with more clean accuracy, "
  )
  words = (
    f"{head}: {_point(s)}; {where}{against}: gap {100 * s['gap']:+.1f} "
    f"AutoAttack points, {_level(s)} interval {_ci(s['gap_ci'])}"
  )
  stopped = f" ({s['stopped']})" if s.get("stopped") else ""
  if s["verdict"] == "not_comparable":
    return f"{words}: not comparable: {s['reason']}{stopped}."
  return f"{words}: {_SAYS[s['verdict']]}{stopped}."


def _level(s: Mapping) -> str:
  return f"{100 * s.get('gap_level', stats.LEVEL):.3g}%"


def verdict(settings: Sequence[Mapping], frontier: Sequence[Mapping]) -> list[str]:
  """Plain-words lines: reliability, which settings are on the frontier, and
  each adaptive setting's structured verdict."""
  seeds = sorted({len(s["seeds"]) for s in settings})
  lines = [
    f"Judged by AutoAttack over {'/'.join(map(str, seeds))} seeds per setting; "
    "accuracies are mean +- std over the seeds that learn; intervals are "
    "Student's t (paired by seed where the settings share their seeds), 95% "
    "for accuracies, each gap's at the level it states."
  ]
  lines.append(
    "Learns (clean accuracy above chance, the majority-class rate): "
    + ", ".join(f"{s['setting']} {s['learns']}" for s in settings)
    + "."
  )
  on = [s["setting"] for s in settings if s.get("on_frontier")]
  lines.append(
    "On the frontier (no other setting has both higher mean clean "
    f"and higher mean AutoAttack accuracy): {', '.join(on) or 'none'}."
  )
  by_name = {s["setting"]: s for s in settings}
  for s in settings:
    if s["method"] not in UNIFORM:
      lines.append(setting_line(s, by_name))
  return lines


def table_markdown(settings: Sequence[Mapping]) -> str:
  """The settings as a Markdown table (percent), per-seed values included
  (a seed that fails to learn is marked "failed")."""
  rows = [
    "| setting | learns | clean | AutoAttack | on frontier | gap to PGD-AT "
    "frontier (95% interval) | verdict | per seed (clean / AA) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for s in settings:
    gap = "" if s.get("gap") is None else f"{100 * s['gap']:+.1f} {_ci(s['gap_ci'])}"
    seeds = "; ".join(
      f"{p['seed']}: {_pct(p['clean'])} / {_pct(p['autoattack'])}"
      + ("" if p["learned"] else " failed")
      for p in s["per_seed"]
    )
    clean = aa = "fails on every seed"
    if _learned(s):
      clean = f"{_pct(s['clean_mean'])} +- {_pct(s['clean_std'])}"
      aa = f"{_pct(s['autoattack_mean'])} +- {_pct(s['autoattack_std'])}"
    rows.append(
      f"| {s['setting']} | {s['learns']} | {clean} | {aa} | "
      f"{'yes' if s['on_frontier'] else ''} | {gap} | "
      f"{s.get('verdict', '').replace('_', ' ')} | {seeds} |"
    )
  return "\n".join(rows) + "\n"


def plot_frontier(analysis: Mapping, path: str, *, aa_eps: float, norm: str = "linf") -> str:
  """Left: means over the seeds that learn, one-std error bars both ways,
  "k/n" beside a setting that fails on some seeds, PGD-AT's frontier drawn,
  the view on the adaptive settings and the frontier points they are
  compared with; the other settings (and those that never learn) named
  below the axes. Right: each setting's
  radii: PGD-AT's fixed radius, the adaptive settings' learned radii
  (10-90% whiskers, 25-75% box, median)."""
  settings = analysis["settings"]
  fig, (ax, rad) = plt.subplots(
    1, 2, figsize=(12, 6.4), layout="constrained", gridspec_kw={"width_ratios": [1.35, 1]}
  )
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  adaptive = [s for s in settings if s["method"] not in UNIFORM]
  colour_of = lambda s: (
    "tab:blue" if s["method"] in UNIFORM else colours[(adaptive.index(s) + 1) % len(colours)]
  )
  frontier = sorted(
    (s for s in settings if s["setting"] in analysis["uniform_frontier"]),
    key=lambda s: s["clean_mean"],
  )
  if frontier:
    ax.plot(
      [100 * s["clean_mean"] for s in frontier],
      [100 * s["autoattack_mean"] for s in frontier],
      "-",
      color="tab:blue",
      alpha=0.6,
      lw=2,
      label="PGD-AT frontier",
    )
  drawn = [s for s in settings if _learned(s)]
  for s in drawn:
    uniform, colour = s["method"] in UNIFORM, colour_of(s)
    x, y = 100 * s["clean_mean"], 100 * s["autoattack_mean"]
    ax.errorbar(
      x,
      y,
      xerr=100 * s["clean_std"],
      yerr=100 * s["autoattack_std"],
      fmt="s" if uniform else "o",
      color=colour,
      capsize=3,
      ms=6,
      mfc=colour if s["on_frontier"] else "white",
      label=None if uniform else f"{s['setting']} ({s.get('verdict', '')})",
    )
    partial = s["reliability"] < 1
    if uniform or partial:
      ax.annotate(
        (s["setting"] if uniform else "") + (f" learns on {s['learns']}" if partial else ""),
        (x, y),
        textcoords="offset points",
        xytext=(5, -10),
        fontsize=7,
        color=colour,
        fontweight="bold" if partial else "normal",
        annotation_clip=True,
      )
  # The view: the adaptive settings and the frontier points they are
  # compared with (all settings when there are none); the rest are named
  # below the axes with their means.
  by_name = {s["setting"]: s for s in settings}
  focus = [s for s in adaptive if _learned(s)]
  focus += [by_name[n] for s in focus for n in s.get("compared_with", [])]
  focus = focus or drawn
  notes = [f"{s['setting']} (never learns, {s['learns']})" for s in settings if not _learned(s)]
  if focus:
    xs = [100 * (s["clean_mean"] + k * s["clean_std"]) for s in focus for k in (-1, 1)]
    ys = [100 * (s["autoattack_mean"] + k * s["autoattack_std"]) for s in focus for k in (-1, 1)]
    x_lim = (min(xs) - 0.3, min(100.5, max(xs) + 0.3))
    y_lim = (max(0, min(ys) - 3), min(100, max(ys) + 3))
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    notes += [
      f"{s['setting']} ({_pct(s['clean_mean'])} / {_pct(s['autoattack_mean'])})"
      for s in drawn
      if not (
        x_lim[0] <= 100 * s["clean_mean"] <= x_lim[1]
        and y_lim[0] <= 100 * s["autoattack_mean"] <= y_lim[1]
      )
    ]
  legend = ax.legend(
    fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2, frameon=False
  )
  if notes:
    text = textwrap.fill("Outside the view (clean / AutoAttack): " + "; ".join(notes), 110)
    legend.set_title(text, prop={"size": 7})
    legend._legend_box.align = "left"  # pylint: disable=protected-access
  ax.set_xlabel("clean accuracy (%)")
  ax.set_ylabel(f"AutoAttack accuracy at {norm_label(norm)} eps {aa_eps:.4g} (%)")
  n = sorted({len(s["seeds"]) for s in settings})
  ax.set_title(
    f"Clean vs robust over the seeds that learn (of {'/'.join(map(str, n))}): "
    "mean +- std (filled: on the frontier)",
    fontsize=9,
  )
  ax.grid(alpha=0.3)
  names = [s["setting"] for s in settings]
  for i, s in enumerate(settings):
    if s["method"] in UNIFORM and s.get("train_eps") is not None:
      rad.plot(i, s["train_eps"], "s", color="tab:blue")
    elif s.get("eps_quantiles"):
      q10, q25, q50, q75, q90 = s["eps_quantiles"]
      colour = colour_of(s)
      rad.vlines(i, q10, q90, color=colour, lw=1)
      rad.vlines(i, q25, q75, color=colour, lw=7, alpha=0.6)
      rad.plot(i, q50, "_", color="black", ms=12)
  rad.axhline(aa_eps, color="tab:gray", ls="-.", lw=1, label=f"evaluation radius {aa_eps:.4g}")
  rad.set_xticks(range(len(names)))
  rad.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
  rad.set_ylabel(f"training radius ({norm_label(norm)})")
  rad.set_title("Radii: PGD-AT's fixed one; learned (10/25/50/75/90%, mean over seeds)", fontsize=9)
  rad.grid(alpha=0.3, axis="y")
  rad.legend(fontsize=7)
  return save_figure(fig, path)
