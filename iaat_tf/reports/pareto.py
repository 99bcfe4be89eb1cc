"""Clean vs robust accuracy across run directories: the Pareto table and plot.

  runs = collect_runs(["runs/iaat", "runs/pgd_at_8"])
  csv_path, png_path = write_pareto(runs, "runs/report")

A run's robust accuracy is its AutoAttack robust accuracy at the final eval
eps (results.json "autoattack", from `iaat_tf.evaluate --attacks=autoattack`)
when *every* compared run has one; otherwise the `worst_case` accuracy of its
robustness curve at the final eval eps when results.json has one, else
`final.pgd_accuracy`, and the plot's axis says which. Every compared run
must have one threat model (results.json "norm", linf or l2): radii and
robust accuracies of different norms are not comparable, so mixing them is
refused, and an AutoAttack of another norm than the run's is not used.
Imports no TensorFlow. `iaat_tf.pareto` is the command around it.
"""

import math
import os
from typing import Any, Optional, Sequence

import numpy as np

from iaat_tf import run_io
from iaat_tf.reports import plots


METHOD_NAMES = {
  "iaat": "IAAT",
  "iaat_cheap": "cheap IAAT",
  "pgd_at": "PGD-AT",
  "standard": "standard training",
}
LOSS_NAMES = {"trades": "TRADES", "mart": "MART"}

SCALE = 255.0
CSV_FIELDS = (
  "name",
  "method",
  "norm",
  "train_eps",
  "clean_accuracy",
  "robust_accuracy",
  "on_front",
)
_AA_NORMS = {"Linf": "linf", "L2": "l2"}  # autoattack.json's spelling.
_STYLES = {  # method -> (marker, colour)
  "iaat": ("o", "tab:red"),
  "iaat_cheap": ("D", "tab:orange"),
  "pgd_at": ("s", "tab:blue"),
  "standard": ("^", "tab:gray"),
}
_EPS_MATCH_TOL = 1e-6


def _number(value: Any, what: str, run_dir: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{run_dir}: results.json field {what} is not a number: {value!r}")
  return float(value)


def _robust_accuracy(results: dict, eval_eps: float, run_dir: str) -> tuple[float, str]:
  """(robust accuracy, source) for one run; see the module docstring."""
  robustness = results.get("robustness")
  if isinstance(robustness, dict):
    for point in robustness.get("curve") or []:
      if (
        isinstance(point, dict)
        and "worst_case" in point
        and abs(float(point.get("eps", math.nan)) - eval_eps) <= _EPS_MATCH_TOL
      ):
        return _number(point["worst_case"], "robustness.curve.worst_case", run_dir), "worst_case"
  return _number(results["final"]["pgd_accuracy"], "final.pgd_accuracy", run_dir), "pgd_accuracy"


def read_run(run_dir: str, name: Optional[str] = None) -> dict:
  """One run's summary from `<run_dir>/results.json` (see `collect_runs`)."""
  path = os.path.join(run_dir, run_io.RESULTS)
  if not os.path.isfile(path):
    raise ValueError(f"{run_dir}: no results.json")
  try:
    results = run_io.read_json(path)
  except run_io.RunDirError as e:
    raise ValueError(f"{run_dir}: malformed results.json: {e}") from None
  try:
    final = results["final"]
    clean = _number(final["clean_accuracy"], "final.clean_accuracy", run_dir)
    eval_eps = _number(final.get("eval_eps", math.nan), "final.eval_eps", run_dir)
    robust, source = _robust_accuracy(results, eval_eps, run_dir)
    norm = str(results.get("norm") or _config_value(run_dir, "attack", "norm", "linf"))
    return {
      "name": name or os.path.basename(os.path.normpath(run_dir)),
      "method": str(results["method"]),
      "loss": str(results.get("loss") or _config_value(run_dir, "method", "loss", "ce")),
      "norm": norm,
      "train_eps": _number(results.get("train_eps", 0.0), "train_eps", run_dir),
      "clean_accuracy": clean,
      "robust_accuracy": robust,
      "robust_source": source,
      "eval_eps": eval_eps,
      "run_dir": run_dir,
      "autoattack_accuracy": _autoattack_accuracy(results, eval_eps, norm),
    }
  except (KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{run_dir}: malformed results.json (missing or bad field {e})") from None


def _config_value(run_dir: str, section: str, key: str, default: str) -> str:
  """A setting from config.json (for runs whose results.json predate it)."""
  try:
    return str(run_io.read_config_dict(run_dir).get(section, {}).get(key, default))
  except run_io.RunDirError:
    return default


def _autoattack_accuracy(results: dict, eval_eps: float, norm: str) -> Optional[float]:
  """AutoAttack robust accuracy at the eval eps and the run's norm, or None."""
  aa = results.get("autoattack")
  if (
    isinstance(aa, dict)
    and isinstance(aa.get("robust_accuracy"), (int, float))
    and _AA_NORMS.get(aa.get("norm", "Linf")) == norm
    and abs(float(aa.get("eps", math.nan)) - eval_eps) <= _EPS_MATCH_TOL
  ):
    return float(aa["robust_accuracy"])
  return None


def choose_metric(runs: Sequence[dict]) -> tuple[list[dict], str]:
  """(runs, x-axis label): AutoAttack when every run has it, else the fallback.

  With AutoAttack everywhere, each run's robust_accuracy becomes its
  AutoAttack accuracy (robust_source "autoattack"); otherwise the runs are
  unchanged and the label names the runs without AutoAttack.
  """
  missing = [r["name"] for r in runs if r.get("autoattack_accuracy") is None]
  if runs and not missing:
    runs = [
      {**r, "robust_accuracy": r["autoattack_accuracy"], "robust_source": "autoattack"}
      for r in runs
    ]
    return runs, robust_axis_label(runs)
  label = robust_axis_label(runs)
  if 0 < len(missing) < len(runs):
    label += f"; no AutoAttack for {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}"
  return list(runs), label


def collect_runs(run_dirs: Sequence[str]) -> list[dict]:
  """Reads each run directory's results.json.

  Returns one dict per run: name (directory basename; the normalised path
  when two runs share a basename), method, train_eps, clean_accuracy,
  robust_accuracy, robust_source ("worst_case" | "pgd_accuracy"), eval_eps,
  run_dir. Raises ValueError naming the directory when results.json is
  missing or malformed.
  """
  if not run_dirs:
    raise ValueError("no run directories given")
  basenames = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
  runs = []
  for run_dir, base in zip(run_dirs, basenames):
    name = base if basenames.count(base) == 1 else os.path.normpath(run_dir)
    runs.append(read_run(run_dir, name))
  by_norm: dict[str, list[str]] = {}
  for run in runs:
    by_norm.setdefault(run["norm"], []).append(run["name"])
  if len(by_norm) > 1:
    parts = " and ".join(
      f"{n} ({', '.join(names[:3])}{'...' if len(names) > 3 else ''})"
      for n, names in sorted(by_norm.items())
    )
    raise ValueError(f"the runs use different threat models, {parts}: compare one --norm at a time")
  return runs


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
  """Indices of the non-dominated points, maximising both coordinates.

  `points` is a sequence of (x, y) pairs. A point is dominated when another
  is >= in both coordinates and > in at least one; equal points are all kept.
  Points with NaN are never on the front. Indices are sorted by x, then y.
  """
  pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
  front = []
  for i, (x, y) in enumerate(pts):
    if np.isnan(x) or np.isnan(y):
      continue
    others = np.delete(pts, i, axis=0)
    dominated = np.any(
      (others[:, 0] >= x) & (others[:, 1] >= y) & ((others[:, 0] > x) | (others[:, 1] > y))
    )
    if not dominated:
      front.append(i)
  return sorted(front, key=lambda i: (pts[i, 0], pts[i, 1]))


def point_label(run: dict, per_255: bool = True) -> str:
  """Plot label of a run in words: 'PGD-AT at 8/255', 'IAAT, warmup 8/255'."""
  method = run["method"]
  name = METHOD_NAMES.get(method, method)
  loss = run.get("loss", "ce")
  if loss in LOSS_NAMES:  # PGD-AT's radius with another loss is that method.
    name = LOSS_NAMES[loss] if method == "pgd_at" else f"{name} + {LOSS_NAMES[loss]} loss"
  if method == "standard":
    return name
  radius = plots.format_radius(run["train_eps"], per_255)
  if method in ("iaat", "iaat_cheap"):
    return f"{name}, warmup {radius}"
  return f"{name} at {radius}"


def _norm(runs: Sequence[dict]) -> str:
  """The runs' one threat model (`collect_runs` refuses a mix)."""
  return runs[0].get("norm", "linf") if runs else "linf"


def robust_axis_label(runs: Sequence[dict]) -> str:
  """Which robustness number the x axis shows, and at which radius."""
  sources = {r["robust_source"] for r in runs}
  radii = sorted({r["eval_eps"] for r in runs if not math.isnan(r["eval_eps"])})
  norm = _norm(runs)
  per_255 = bool(radii) and plots.uses_per_255(radii, norm=norm)
  unit = plots.norm_label(norm)
  at = (
    f" at {unit} eps {plots.format_radius(radii[0], per_255)}"
    if len(radii) == 1
    else f" at each run's {unit} eval eps"
  )
  if sources == {"autoattack"}:
    what = "AutoAttack robust accuracy (standard)"
  elif sources == {"worst_case"}:
    what = "worst-case robust accuracy (PGD + APGD)"
  elif sources == {"pgd_accuracy"}:
    what = "PGD robust accuracy (training's final evaluation)"
  else:
    what = "robust accuracy (worst case where evaluated, else PGD)"
  return what + at


def _write_csv(runs: Sequence[dict], front: set, path: str) -> str:
  rows = [
    {
      "name": run["name"],
      "method": run["method"],
      "norm": run.get("norm", "linf"),
      "train_eps": repr(run["train_eps"]),
      "clean_accuracy": repr(run["clean_accuracy"]),
      "robust_accuracy": repr(run["robust_accuracy"]),
      "on_front": int(i in front),
    }
    for i, run in enumerate(runs)
  ]
  return run_io.write_csv(path, CSV_FIELDS, rows)


def _plot(runs: Sequence[dict], front: list[int], path: str, xlabel: str) -> str:
  plt = plots.plt
  fig, ax = plt.subplots(figsize=(7.0, 5.0))
  per_255 = plots.uses_per_255([r["train_eps"] for r in runs], norm=_norm(runs))
  # Each point carries a short number; the legend says in words what it is
  # (numbers stay readable when runs lie close together).
  order = sorted(
    range(len(runs)), key=lambda i: (-runs[i]["clean_accuracy"], runs[i]["robust_accuracy"])
  )
  for n, i in enumerate(order, start=1):
    run = runs[i]
    marker, color = _STYLES.get(run["method"], ("x", "black"))
    ax.scatter(
      run["robust_accuracy"],
      run["clean_accuracy"],
      marker=marker,
      color=color,
      s=50,
      zorder=3,
      label=f"{n}: {point_label(run, per_255)} ({run['name']})",
    )
    ax.annotate(
      str(n),
      (run["robust_accuracy"], run["clean_accuracy"]),
      textcoords="offset points",
      xytext=(5, 3),
      fontsize=8,
    )
  if front:
    ax.plot(
      [runs[i]["robust_accuracy"] for i in front],
      [runs[i]["clean_accuracy"] for i in front],
      "-",
      color="black",
      alpha=0.5,
      linewidth=1.2,
      label="Pareto front",
      zorder=2,
    )
  ax.set_xlabel(xlabel)
  ax.set_ylabel("clean accuracy (test split)")
  ax.set_xlim(0.0, 1.0)
  ax.set_ylim(0.0, 1.0)
  ax.grid(alpha=0.3)
  ax.set_title("Clean vs robust accuracy", pad=10)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  return plots.save_figure(fig, path)


def write_pareto(runs: Sequence[dict], out_dir: str) -> tuple[str, str]:
  """Writes `pareto.csv` and `pareto.png` to `out_dir`; returns both paths."""
  if not runs:
    raise ValueError("no runs to compare")
  os.makedirs(out_dir, exist_ok=True)
  runs, xlabel = choose_metric(runs)
  front = pareto_front([(r["robust_accuracy"], r["clean_accuracy"]) for r in runs])
  csv_path = _write_csv(runs, set(front), os.path.join(out_dir, "pareto.csv"))
  png_path = _plot(runs, front, os.path.join(out_dir, "pareto.png"), xlabel)
  return csv_path, png_path
