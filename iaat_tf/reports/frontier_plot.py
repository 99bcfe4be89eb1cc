"""The frontier's picture: clean vs AutoAttack over seeds, and each setting's radii.

Drawn from the analysis `reports/frontier.py` computes (frontier.json);
matplotlib is loaded here only, so the verdict's statistics import without it.
"""

import textwrap
from typing import Mapping

from iaat_tf.reports.plots import norm_label, save_figure
from iaat_tf.reports.frontier_words import pct
from iaat_tf.reports.seed_summary import UNIFORM, learned

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-order

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-order


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
  drawn = [s for s in settings if learned(s)]
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
  focus = [s for s in adaptive if learned(s)]
  focus += [by_name[n] for s in focus for n in s.get("compared_with", [])]
  focus = focus or drawn
  notes = [f"{s['setting']} (never learns, {s['learns']})" for s in settings if not learned(s)]
  if focus:
    xs = [100 * (s["clean_mean"] + k * s["clean_std"]) for s in focus for k in (-1, 1)]
    ys = [100 * (s["autoattack_mean"] + k * s["autoattack_std"]) for s in focus for k in (-1, 1)]
    x_lim = (min(xs) - 0.3, min(100.5, max(xs) + 0.3))
    y_lim = (max(0, min(ys) - 3), min(100, max(ys) + 3))
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    notes += [
      f"{s['setting']} ({pct(s['clean_mean'])} / {pct(s['autoattack_mean'])})"
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
