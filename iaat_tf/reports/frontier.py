"""The clean-vs-robust frontier over seeds: summary, frontier, verdict, picture.

Pure functions of per-run numbers (no training, no attacks): `iaat_tf.frontier`
trains and evaluates the runs, then calls these.

* `summarise` groups runs by setting: mean and (sample) standard deviation of
  clean and AutoAttack accuracy over the seeds, the seeds' own values.
* `pareto_flags` marks the settings no other setting beats in both means.
* `compare_to_frontier` places each adaptive setting against uniform PGD-AT's
  frontier at the same clean accuracy: PGD-AT's non-dominated settings,
  linearly interpolated in clean accuracy, give the AutoAttack accuracy a
  uniform radius reaches there; the gap's standard error combines the
  setting's and the interpolated PGD-AT points' standard errors of the mean.
  Below PGD-AT's clean-accuracy range the frontier's lowest-clean point is a
  bound (it has more clean accuracy); above it nothing is compared (None).
* `verdict` says it in words, and says when the seeds cannot tell (|gap| <
  2 standard errors). A seed "fails to learn" when its model is a constant
  prediction (clean accuracy equals AutoAttack accuracy, below 50%); a
  uniform radius that fails on some seeds only is reported on the seeds it
  learns on too, and every adaptive setting is compared with it there: a
  uniform radius that trains only sometimes is no safe choice, but where it
  trains it is the frontier a lucky user meets.
* `plot_frontier` draws the means with error bars (one standard deviation)
  in both directions, PGD-AT's frontier as a line, and the learned radii of
  each adaptive setting next to PGD-AT's fixed radii.
"""

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from iaat_tf.reports.plots import norm_label, save_figure

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-order
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-order

UNIFORM = ("pgd_at",)
SETTING_FIELDS = ("setting", "method", "flags", "seeds", "clean_mean", "clean_std",
                  "autoattack_mean", "autoattack_std", "on_frontier")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  arr = np.asarray(values, dtype=np.float64)
  std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
  return float(arr.mean()), std


def learns(run: Mapping) -> bool:
  """False for a constant prediction: clean accuracy equals AutoAttack
  accuracy (no attack can lower it) and is below 50%."""
  return not (run["clean"] <= run["autoattack"] + 1e-9 and run["clean"] < 0.5)


def summarise(runs: Sequence[Mapping]) -> list[dict]:
  """Per setting (in first-seen order): method, flags, seeds, means, stds.

  Each run is {"setting", "method", "flags", "seed", "clean", "autoattack"}
  and optionally "eps_quantiles" (the learned radii's 10/25/50/75/90th
  percentiles) and "train_eps".
  """
  order, groups = [], {}
  for run in runs:
    key = run["setting"]
    if key not in groups:
      order.append(key)
      groups[key] = []
    groups[key].append(run)
  out = []
  for key in order:
    group = sorted(groups[key], key=lambda r: r["seed"])
    clean_mean, clean_std = _mean_std([r["clean"] for r in group])
    aa_mean, aa_std = _mean_std([r["autoattack"] for r in group])
    row = {"setting": key, "method": group[0]["method"],
           "flags": list(group[0]["flags"]), "seeds": [r["seed"] for r in group],
           "clean_mean": clean_mean, "clean_std": clean_std,
           "autoattack_mean": aa_mean, "autoattack_std": aa_std,
           "per_seed": [{"seed": r["seed"], "clean": r["clean"],
                         "autoattack": r["autoattack"]} for r in group]}
    learned = [r for r in group if learns(r)]
    row["learned_seeds"] = [r["seed"] for r in learned]
    if learned and len(learned) < len(group):
      row["clean_mean_learned"], row["clean_std_learned"] = _mean_std(
          [r["clean"] for r in learned])
      row["autoattack_mean_learned"], row["autoattack_std_learned"] = _mean_std(
          [r["autoattack"] for r in learned])
    if group[0].get("train_eps") is not None:
      row["train_eps"] = group[0]["train_eps"]
    quantiles = [r["eps_quantiles"] for r in group if r.get("eps_quantiles")]
    if quantiles:
      row["eps_quantiles"] = [float(v) for v in np.mean(quantiles, axis=0)]
    out.append(row)
  return out


def pareto_flags(settings: Sequence[Mapping]) -> list[bool]:
  """True where no other setting has both higher mean clean and higher
  mean AutoAttack accuracy (ties do not dominate)."""
  flags = []
  for a in settings:
    dominated = any(b is not a and b["clean_mean"] >= a["clean_mean"]
                    and b["autoattack_mean"] >= a["autoattack_mean"]
                    and (b["clean_mean"] > a["clean_mean"]
                         or b["autoattack_mean"] > a["autoattack_mean"])
                    for b in settings)
    flags.append(not dominated)
  return flags


def uniform_frontier(settings: Sequence[Mapping]) -> list[Mapping]:
  """PGD-AT's non-dominated settings (among PGD-AT alone), by clean accuracy."""
  uniform = [s for s in settings if s["method"] in UNIFORM]
  keep = [s for s, ok in zip(uniform, pareto_flags(uniform)) if ok]
  return sorted(keep, key=lambda s: s["clean_mean"])


def _sem(setting: Mapping) -> float:
  n = len(setting["seeds"])
  return setting["autoattack_std"] / math.sqrt(n) if n > 1 else float("nan")


def compare_to_frontier(setting: Mapping, frontier: Sequence[Mapping]) -> dict:
  """The setting's AutoAttack gap to PGD-AT's frontier at its clean accuracy.

  {"frontier_autoattack", "gap", "gap_se", "frontier_basis"}. Within the
  frontier's clean range the frontier is interpolated ("interpolated").
  Below it, the frontier's lowest-clean point reaches more clean accuracy
  with its AutoAttack accuracy, a value the frontier at least attains there
  ("bound": the gap is an upper bound on the setting's advantage). Above it
  nothing is known (all None): no extrapolation.
  """
  none = {"frontier_autoattack": None, "gap": None, "gap_se": None,
          "frontier_basis": None}
  if not frontier:
    return none
  x = setting["clean_mean"]
  cleans = [f["clean_mean"] for f in frontier]
  if x > cleans[-1]:
    return none
  basis = "interpolated"
  if x < cleans[0]:
    lo = hi = frontier[0]
    w, basis = 0.0, "bound"
  elif len(frontier) == 1 or x == cleans[-1]:
    lo = hi = frontier[-1]
    w = 0.0
  else:
    i = max(j for j in range(len(cleans) - 1) if cleans[j] <= x)
    lo, hi = frontier[i], frontier[i + 1]
    span = hi["clean_mean"] - lo["clean_mean"]
    w = 0.0 if span == 0 else (x - lo["clean_mean"]) / span
  reach = (1 - w) * lo["autoattack_mean"] + w * hi["autoattack_mean"]
  se = math.sqrt(_sem(setting) ** 2 + ((1 - w) * _sem(lo)) ** 2
                 + (w * _sem(hi)) ** 2)
  return {"frontier_autoattack": reach, "gap": setting["autoattack_mean"] - reach,
          "gap_se": se, "frontier_basis": basis}


def analyse(runs: Sequence[Mapping]) -> dict:
  """Everything frontier.json holds: settings (with on_frontier and, for
  adaptive settings, the gap to PGD-AT's frontier) and the verdict."""
  settings = summarise(runs)
  for s, ok in zip(settings, pareto_flags(settings)):
    s["on_frontier"] = ok
  frontier = uniform_frontier(settings)
  for s in settings:
    if s["method"] not in UNIFORM:
      s.update(compare_to_frontier(s, frontier))
  return {"settings": settings,
          "uniform_frontier": [s["setting"] for s in frontier],
          "verdict": verdict(settings, frontier)}


def _pct(v: float) -> str:
  return f"{100 * v:.1f}"


def verdict(settings: Sequence[Mapping], frontier: Sequence[Mapping]) -> list[str]:
  """Plain-words lines: which settings are on the frontier, and each adaptive
  setting's gap to PGD-AT's at matched clean accuracy with its uncertainty."""
  seeds = sorted({len(s["seeds"]) for s in settings})
  lines = [f"Judged by AutoAttack; mean +- std over {'/'.join(map(str, seeds))} "
           "seeds per setting."]
  on = [s["setting"] for s in settings if s.get("on_frontier")]
  lines.append("On the frontier (no other setting has both higher mean clean "
               f"and higher mean AutoAttack accuracy): {', '.join(on)}.")
  for s in settings:
    if s["method"] in UNIFORM:
      continue
    head = (f"{s['setting']}: clean {_pct(s['clean_mean'])} +- {_pct(s['clean_std'])}, "
            f"AutoAttack {_pct(s['autoattack_mean'])} +- {_pct(s['autoattack_std'])}")
    if s.get("gap") is None:
      hi = max((f["clean_mean"] for f in frontier), default=float("nan"))
      lines.append(f"{head}: more clean accuracy than any PGD-AT radius reached "
                   f"(at most {_pct(hi)}), so it is not compared with the "
                   "frontier there; add smaller PGD-AT radii.")
      continue
    gap, se = s["gap"], s["gap_se"]
    side = "above" if gap > 0 else "below"
    if s["frontier_basis"] == "bound":
      lead = frontier[0]
      head += (f"; less clean accuracy than every PGD-AT frontier point: "
               f"{lead['setting']} reaches {_pct(lead['clean_mean'])} clean")
    tell = _tell(gap, se)
    where = ("at the same clean accuracy" if s["frontier_basis"] == "interpolated"
             else "at that higher clean accuracy")
    lines.append(f"{head}: {_pct(abs(gap))} AutoAttack points {side} uniform "
                 f"PGD-AT's frontier {where} ({_pct(s['frontier_autoattack'])}); "
                 f"{tell}.")
  lines += _unreliable_lines(settings)
  return lines


def _tell(gap: float, se: float) -> str:
  if math.isnan(se):
    return "one seed: no uncertainty can be given"
  if abs(gap) >= 2 * se:
    return f"more than 2 standard errors ({_pct(se)}): the seeds tell"
  return f"within 2 standard errors ({_pct(se)}): the seeds cannot tell"


def _unreliable_lines(settings: Sequence[Mapping]) -> list[str]:
  """Uniform radii that learn on some seeds only, and each adaptive setting
  against them on the seeds they learn on."""
  lines = []
  for u in settings:
    if u["method"] not in UNIFORM or "clean_mean_learned" not in u:
      continue
    n, k = len(u["seeds"]), len(u["learned_seeds"])
    lines.append(
        f"{u['setting']} fails to learn on {n - k} of {n} seeds (a constant "
        f"prediction); on the {k} it learns on: clean {_pct(u['clean_mean_learned'])} "
        f"+- {_pct(u['clean_std_learned'])}, AutoAttack "
        f"{_pct(u['autoattack_mean_learned'])} +- {_pct(u['autoattack_std_learned'])}.")
    u_sem = u["autoattack_std_learned"] / math.sqrt(k) if k > 1 else float("nan")
    for s in settings:
      if s["method"] in UNIFORM:
        continue
      gap = s["autoattack_mean"] - u["autoattack_mean_learned"]
      se = math.sqrt(_sem(s) ** 2 + u_sem ** 2)
      lines.append(
          f"  {s['setting']} against {u['setting']} where it learns: "
          f"{_pct(abs(gap))} AutoAttack points {'above' if gap > 0 else 'below'} at "
          f"{_pct(abs(s['clean_mean'] - u['clean_mean_learned']))} "
          f"{'more' if s['clean_mean'] >= u['clean_mean_learned'] else 'less'} clean "
          f"accuracy; {_tell(gap, se)}.")
  return lines


def table_markdown(settings: Sequence[Mapping]) -> str:
  """The settings as a Markdown table (percent), per-seed values included."""
  rows = ["| setting | seeds | clean | AutoAttack | on frontier | gap to PGD-AT frontier | per seed (clean / AA) |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
  for s in settings:
    gap = ("" if s.get("gap") is None else
           f"{100 * s['gap']:+.1f} +- {100 * s['gap_se']:.1f}")
    seeds = "; ".join(f"{p['seed']}: {_pct(p['clean'])} / {_pct(p['autoattack'])}"
                      for p in s["per_seed"])
    name = s["setting"]
    if "clean_mean_learned" in s:
      name += (f" (learns on {len(s['learned_seeds'])} of {len(s['seeds'])} seeds: "
               f"{_pct(s['clean_mean_learned'])} / {_pct(s['autoattack_mean_learned'])})")
    rows.append(f"| {name} | {len(s['seeds'])} | {_pct(s['clean_mean'])} +- "
                f"{_pct(s['clean_std'])} | {_pct(s['autoattack_mean'])} +- "
                f"{_pct(s['autoattack_std'])} | {'yes' if s['on_frontier'] else ''} "
                f"| {gap} | {seeds} |")
  return "\n".join(rows) + "\n"


def plot_frontier(analysis: Mapping, path: str, *, aa_eps: float,
                  norm: str = "linf") -> str:
  """Left: means with one-std error bars both ways, PGD-AT's frontier drawn.
  Right: each setting's radii: PGD-AT's fixed radius, the adaptive settings'
  learned radii (10-90% whiskers, 25-75% box, median)."""
  settings = analysis["settings"]
  fig, (ax, rad) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained",
                                gridspec_kw={"width_ratios": [1.35, 1]})
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  adaptive = [s for s in settings if s["method"] not in UNIFORM]
  frontier = [s for s in settings if s["setting"] in analysis["uniform_frontier"]]
  frontier.sort(key=lambda s: s["clean_mean"])
  if frontier:
    ax.plot([100 * s["clean_mean"] for s in frontier],
            [100 * s["autoattack_mean"] for s in frontier], "-", color="tab:blue",
            alpha=0.6, lw=2, label="PGD-AT frontier")
  # The axes hold the settings that learn on every seed (and the learned-seed
  # means of the others); the rest are named below the axes.
  reliable = [s for s in settings if len(s.get("learned_seeds", s["seeds"])) == len(s["seeds"])]
  for s in settings:
    uniform = s["method"] in UNIFORM
    colour = "tab:blue" if uniform else colours[(adaptive.index(s) + 1) % len(colours)]
    if uniform and "clean_mean_learned" in s:  # On the seeds it learns on.
      k, n_seeds = len(s["learned_seeds"]), len(s["seeds"])
      ax.errorbar(100 * s["clean_mean_learned"], 100 * s["autoattack_mean_learned"],
                  xerr=100 * s["clean_std_learned"], yerr=100 * s["autoattack_std_learned"],
                  fmt="D", color="tab:blue", mfc="white", capsize=3, ms=6, alpha=0.8)
      ax.annotate(f"{s['setting']}, the {k} of {n_seeds} seeds it learns on",
                  (100 * s["clean_mean_learned"], 100 * s["autoattack_mean_learned"]),
                  textcoords="offset points", xytext=(5, 5), fontsize=7, color="tab:blue")
    if reliable and s not in reliable and len(reliable) < len(settings):
      continue  # Off the axes: named below them.
    ax.errorbar(100 * s["clean_mean"], 100 * s["autoattack_mean"],
                xerr=100 * s["clean_std"], yerr=100 * s["autoattack_std"],
                fmt="s" if uniform else "o", color=colour, capsize=3, ms=6,
                mfc=colour if s["on_frontier"] else "white",
                label=None if uniform else s["setting"])
    if uniform:
      ax.annotate(s["setting"], (100 * s["clean_mean"], 100 * s["autoattack_mean"]),
                  textcoords="offset points", xytext=(5, -10), fontsize=7,
                  color="tab:blue")
  if reliable and len(reliable) < len(settings):
    xs = [s["clean_mean"] - s["clean_std"] for s in reliable] + [
        s["clean_mean_learned"] - s["clean_std_learned"] for s in settings
        if "clean_mean_learned" in s]
    ys = [v for s in reliable for v in (s["autoattack_mean"] - s["autoattack_std"],
                                        s["autoattack_mean"] + s["autoattack_std"])] + [
        s["autoattack_mean_learned"] + s["autoattack_std_learned"] for s in settings
        if "clean_mean_learned" in s]
    ax.set_xlim(100 * min(xs) - 0.3, min(100.5, 100 * max(s["clean_mean"] + s["clean_std"]
                                                          for s in reliable) + 0.3))
    ax.set_ylim(max(0, 100 * min(ys) - 3), 100 * max(ys) + 3)
    off = [s for s in settings if s not in reliable]
    ax.text(0.0, -0.16, "Off the axes (fail to learn on some seeds; means over all "
            "seeds): " + "; ".join(
                f"{s['setting']} {_pct(s['clean_mean'])} / {_pct(s['autoattack_mean'])}, "
                f"learns on {len(s['learned_seeds'])} of {len(s['seeds'])}" for s in off),
            transform=ax.transAxes, fontsize=7, va="top", wrap=True)
  ax.set_xlabel("clean accuracy (%)")
  ax.set_ylabel(f"AutoAttack accuracy at {norm_label(norm)} eps {aa_eps:.4g} (%)")
  n = sorted({len(s["seeds"]) for s in settings})
  ax.set_title(f"Clean vs robust: mean +- std over {'/'.join(map(str, n))} seeds "
               "(filled: on the frontier)", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower left")
  names = [s["setting"] for s in settings]
  for i, s in enumerate(settings):
    if s["method"] in UNIFORM and s.get("train_eps") is not None:
      rad.plot(i, s["train_eps"], "s", color="tab:blue")
    elif s.get("eps_quantiles"):
      q10, q25, q50, q75, q90 = s["eps_quantiles"]
      colour = colours[(adaptive.index(s) + 1) % len(colours)]
      rad.vlines(i, q10, q90, color=colour, lw=1)
      rad.vlines(i, q25, q75, color=colour, lw=7, alpha=0.6)
      rad.plot(i, q50, "_", color="black", ms=12)
  rad.axhline(aa_eps, color="tab:gray", ls="-.", lw=1, label=f"evaluation radius {aa_eps:.4g}")
  rad.set_xticks(range(len(names)))
  rad.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
  rad.set_ylabel(f"training radius ({norm_label(norm)})")
  rad.set_title("Radii: PGD-AT's fixed one; learned (10/25/50/75/90%, mean over seeds)",
                fontsize=9)
  rad.grid(alpha=0.3, axis="y")
  rad.legend(fontsize=7)
  return save_figure(fig, path)
