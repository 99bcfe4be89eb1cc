"""How IAAT's learned radii move, per setting of the digits frontier.

    python -m experiments.frontier_digits.radius_dynamics [--out_dir=experiments/frontier_digits]

Reads the IAAT runs the frontier command trained (OUT_DIR/runs/iaat_*_seedN:
history.csv's per-epoch quantiles of the radius table, eps_table.npy, the
run's config) and writes, beside frontier.json:

* radius_dynamics.json: per setting and epoch, the seeds' mean of the
  table's 10/50/90th percentiles and of the share at exactly 0; at the end,
  the share of radii at 0, below the evaluation radius and at or above the
  warmup radius, and the table's mean;
* radius_dynamics.md: that table, in words;
* radius_dynamics.png: one panel per setting, the 10-90% band and the
  median over epochs, the warmup's end, the evaluation radius.

No TensorFlow; seconds.
"""

import argparse
import csv
import glob
import json
import os
import re
import sys

import numpy as np


from iaat_tf.reports.plots import save_figure

import matplotlib  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-order

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-order

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

QUANTILES = ("q10", "q25", "q50", "q75", "q90")


def _history(path):
  with open(path) as f:
    return [
      {k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)
    ]


def read_setting(run_dirs):
  """Per-epoch seed means and end-of-training shares for one setting's runs."""
  config = json.load(open(os.path.join(run_dirs[0], "config.json")))
  # "eval": the section's name in config.json before 0.6.0.
  method, evaluation = config["method"], config.get("validation") or config["eval"]
  per_seed, finals = [], []
  for run in run_dirs:
    rows = _history(os.path.join(run, "history.csv"))
    per_seed.append(rows)
    table = np.load(os.path.join(run, "eps_table.npy"))
    finals.append(
      {
        "at_zero": float(np.mean(table == 0)),
        "below_eval_eps": float(np.mean(table < evaluation["eps"] - 1e-6)),
        "at_least_warmup_eps": float(np.mean(table >= method["eps"] - 1e-6)),
        "mean": float(table.mean()),
      }
    )
  epochs = min(len(r) for r in per_seed)
  curve = []
  for e in range(epochs):
    point = {"epoch": e + 1}
    for q in QUANTILES:
      point[q] = float(np.mean([r[e][f"eps_table_{q}"] for r in per_seed]))
    point["zero_frac"] = float(np.mean([r[e]["eps_table_zero_frac"] for r in per_seed]))
    curve.append(point)
  end = {k: float(np.mean([f[k] for f in finals])) for k in finals[0]}
  end_std = {
    k: float(np.std([f[k] for f in finals], ddof=1)) if len(finals) > 1 else 0.0 for k in finals[0]
  }
  return {
    "warmup_eps": method["eps"],
    "warmup_epochs": method["warmup_epochs"],
    "gamma": method["gamma"],
    "beta": method["beta"],
    "s_minus": method["s_minus"],
    "eval_eps": evaluation["eps"],
    "seeds": len(run_dirs),
    "curve": curve,
    "end": end,
    "end_std": end_std,
  }


def collect(out_dir):
  settings = {}
  for run in sorted(glob.glob(os.path.join(out_dir, "runs", "iaat*_seed*"))):
    if not os.path.isfile(os.path.join(run, "eps_table.npy")):
      continue  # Not finished.
    name = re.sub(r"_seed\d+$", "", os.path.basename(run))
    settings.setdefault(name, []).append(run)
  # The quick start's setting first, then the others in name order.
  order = sorted(settings, key=lambda n: (n != "iaat_eps0.3", n))
  return {name: read_setting(settings[name]) for name in order}


def table_markdown(result) -> str:
  lines = [
    "| setting | seeds | share at 0 after warmup | end: at 0 | end: below eval radius | "
    "end: at or above warmup radius | end: mean radius |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ]
  for name, s in result.items():
    after_warmup = s["curve"][s["warmup_epochs"] - 1]["zero_frac"] if s["warmup_epochs"] else 0
    e, sd = s["end"], s["end_std"]
    lines.append(
      f"| {name} | {s['seeds']} | {100 * after_warmup:.1f}% | "
      f"{100 * e['at_zero']:.1f} +- {100 * sd['at_zero']:.1f}% | "
      f"{100 * e['below_eval_eps']:.1f} +- {100 * sd['below_eval_eps']:.1f}% | "
      f"{100 * e['at_least_warmup_eps']:.1f} +- {100 * sd['at_least_warmup_eps']:.1f}% | "
      f"{e['mean']:.3f} +- {sd['mean']:.3f} |"
    )
  return "\n".join(lines)


def plot(result, path):
  names = list(result)
  cols = min(3, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(
    rows,
    cols,
    figsize=(4.4 * cols, 3.6 * rows),
    squeeze=False,
    sharey=True,
    constrained_layout=True,
  )
  for ax, name in zip(axes.flat, names):
    s = result[name]
    epochs = [p["epoch"] for p in s["curve"]]
    ax.fill_between(
      epochs,
      [p["q10"] for p in s["curve"]],
      [p["q90"] for p in s["curve"]],
      alpha=0.25,
      color="tab:blue",
      label="10-90%",
    )
    ax.fill_between(
      epochs,
      [p["q25"] for p in s["curve"]],
      [p["q75"] for p in s["curve"]],
      alpha=0.35,
      color="tab:blue",
      label="25-75%",
    )
    ax.plot(epochs, [p["q50"] for p in s["curve"]], color="tab:blue", label="median")
    ax.axhline(s["eval_eps"], color="k", lw=0.8, ls="--", label="evaluation radius")
    ax.axvline(s["warmup_epochs"] + 0.5, color="gray", lw=0.8, label="warmup ends")
    ax.set_title(f"{name} ({s['seeds']} seeds)", fontsize=9)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    share = ax.twinx()  # The share of the table at exactly 0, right axis.
    share.plot(epochs, [100 * p["zero_frac"] for p in s["curve"]], ":", color="tab:red")
    share.set_ylim(0, 100)
    share.tick_params(axis="y", colors="tab:red", labelsize=7)
    if ax is axes[0, -1] or name == names[-1]:
      share.set_ylabel("radii at exactly 0 (%, dotted)", color="tab:red", fontsize=8)
  for ax in axes[:, 0]:
    ax.set_ylabel("radius (L-inf, [0, 1] pixels)")
  for ax in list(axes.flat)[len(names) :]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7, loc="lower right")
  fig.suptitle("IAAT's radius table over epochs (seed means of the per-epoch quantiles)")
  return save_figure(fig, path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", default=HERE)
  args = parser.parse_args(argv)
  result = collect(args.out_dir)
  if not result:
    print(f"radius_dynamics: no finished IAAT runs under {args.out_dir}/runs", file=sys.stderr)
    return 2
  with open(os.path.join(args.out_dir, "radius_dynamics.json"), "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
  with open(os.path.join(args.out_dir, "radius_dynamics.md"), "w") as f:
    f.write(
      "# IAAT's radii on the digits frontier runs\n\n"
      "Made by `python -m experiments.frontier_digits.radius_dynamics` from the "
      "frontier's IAAT runs; mean +- std over seeds. The picture: "
      "radius_dynamics.png.\n\n" + table_markdown(result) + "\n"
    )
  plot(result, os.path.join(args.out_dir, "radius_dynamics.png"))
  print(table_markdown(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
