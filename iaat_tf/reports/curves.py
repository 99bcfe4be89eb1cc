"""Curves of a run: accuracy vs radius (robustness, AutoAttack) and per epoch.

Like `plots.py` (whose radius formatting it shares), every `plot_*` writes one
PNG atomically through `run_io` and returns its path.
"""

from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from iaat_tf.reports.plots import (
  save_figure,
  uses_per_255,
  radius_axis,
  RADIUS,
  radius_units,
  norm_label,
)  # pylint: disable=g-import-not-at-top


_MAIN_ATTACKS = ("worst_case", "pgd_ce")


def _attack_keys(points: Sequence[Mapping[str, Any]]) -> list[str]:
  keys = []
  for point in points:
    for key, value in point.items():
      if key != "eps" and isinstance(value, (int, float)) and key not in keys:
        keys.append(key)
  return keys


def _series(points: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
  pts = sorted((p for p in points if key in p), key=lambda p: p["eps"])
  return (
    np.array([p["eps"] for p in pts], dtype=np.float64),
    np.array([p[key] for p in pts], dtype=np.float64),
  )


def plot_robustness_curve(
  curves: Mapping[str, Sequence[Mapping[str, Any]]],
  path: str,
  detail_run: Optional[str] = None,
  per_255: Optional[bool] = None,
  autoattack: Optional[Mapping[str, Any]] = None,
  norm: str = "linf",
) -> str:
  """Accuracy vs radius: one solid line per run, dashed per-attack lines.

  `autoattack` optionally maps run name -> (eps, AutoAttack robust accuracy),
  drawn as a star in the run's colour.

  `curves` maps run name -> [{"eps": e, "<attack>": acc, ...}, ...] (the
  `robustness.curve` list of results.json). Each run's solid line is
  `worst_case` when present, else `pgd_ce`. The individual attacks are drawn
  dashed for `detail_run` (default: the run, when there is only one).
  """
  if not curves:
    raise ValueError("no curves to plot")
  if detail_run is None and len(curves) == 1:
    detail_run = next(iter(curves))
  if detail_run is not None and detail_run not in curves:
    raise ValueError(f"detail_run {detail_run!r} not in curves")
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for n, (name, points) in enumerate(curves.items()):
    keys = _attack_keys(points)
    main = next((k for k in _MAIN_ATTACKS if k in keys), None)
    if main is None:
      raise ValueError(f"run {name!r}: curve has neither worst_case nor pgd_ce")
    color = colors[n % len(colors)]
    x, y = _series(points, main)
    ax.plot(x, y, "-o", color=color, markersize=4, label=f"{name} ({main})")
    if name == detail_run:
      styles = ("--", "-.", ":", (0, (5, 1)))
      for j, key in enumerate(k for k in keys if k != main):
        x, y = _series(points, key)
        ax.plot(
          x,
          y,
          linestyle=styles[j % len(styles)],
          marker=".",
          color=colors[(n + j + 1) % len(colors)],
          alpha=0.8,
          label=f"{name} {key}",
        )
    if autoattack and name in autoattack:
      aa_eps, aa_acc = autoattack[name]
      ax.plot(
        [aa_eps],
        [aa_acc],
        "*",
        color=color,
        markersize=12,
        markeredgecolor="black",
        label=f"{name} AutoAttack",
      )
  all_eps = [p["eps"] for points in curves.values() for p in points]
  per_255 = uses_per_255(all_eps, norm=norm) if per_255 is None else per_255
  radius_axis(ax.xaxis, per_255, max(all_eps) if all_eps else 1.0)
  if all_eps and len(set(all_eps)) == 1:  # One radius: show it from 0.
    ax.set_xlim(0.0, 1.25 * all_eps[0] if all_eps[0] > 0 else 1.0)
  ax.set_xlabel(f"attack {RADIUS} ({radius_units(norm)})")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title("Robust accuracy vs attack radius")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
  return save_figure(fig, path)


_PANELS = (  # (title, y label, test on the key)
  ("Loss", "cross-entropy", lambda k: "loss" in k),
  ("Accuracy", "accuracy", lambda k: k.endswith("acc")),
  ("Radius", f"mean {RADIUS}", lambda k: k in ("eps_mean", "eps_table_mean")),
  ("Radius quantiles", RADIUS, lambda k: k.startswith("eps_table_q")),
  ("Examples at radius 0", "fraction of training examples", lambda k: k.endswith("zero_frac")),
  ("Learning rate", "learning rate", lambda k: k == "learning_rate"),
  ("Speed", "training images / s", lambda k: k == "images_per_second"),
)
_LEGEND = {  # Curve names readers understand (keys are history.csv columns).
  "loss": "train (on trained inputs)",
  "val_loss": "validation (clean)",
  "train_acc": "train_acc: trained inputs",
  "clean_acc": "clean_acc: train batch, clean",
  "val_clean_acc": "val_clean_acc: validation, clean",
  "val_pgd_acc": "val_pgd_acc: validation, PGD",
  "eps_mean": "eps_mean: radius trained at",
  "eps_table_mean": "eps_table_mean: stored table",
  **{f"eps_table_q{q}": f"{q}th percentile of the table" for q in (10, 25, 50, 75, 90)},
}


def plot_training_history(
  history: Mapping[str, Sequence[float]],
  path: str,
  per_255: Optional[bool] = None,
  norm: str = "linf",
) -> str:
  """Per-epoch curves from history.csv columns, one panel per quantity.

  Panels: loss, accuracy (every *acc key), radius (eps_mean,
  eps_table_mean), fraction of examples at radius 0, learning rate and
  images/s; any other numeric key (except `epoch` and `epoch_seconds`)
  gets a panel of its own. `epoch` (from 1) is the x axis when given;
  missing values (None/NaN, e.g. epochs without validation) leave gaps.
  """
  columns = {}
  for key, values in history.items():
    try:
      arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
      continue
    if arr.size and not np.all(np.isnan(arr)):
      columns[key] = arr
  epochs = columns.pop("epoch", None)
  columns.pop("epoch_seconds", None)  # images_per_second says the same.
  if not columns:
    raise ValueError("history has no numeric per-epoch values")
  panels, used = [], set()
  for title, ylabel, test in _PANELS:
    keys = [k for k in columns if test(k) and k not in used]
    if keys:
      panels.append((title, ylabel, keys))
      used.update(keys)
  panels += [(k, k, [k]) for k in columns if k not in used]
  radii = [columns[k] for _, _, keys in panels for k in keys if k in ("eps_mean", "eps_table_mean")]
  if per_255 is None:
    per_255 = bool(radii) and uses_per_255(*radii, norm=norm)
  cols = min(3, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = plt.subplots(
    rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False, layout="constrained"
  )
  for ax in axes.flat[len(panels) :]:
    ax.axis("off")
  for ax, (title, ylabel, keys) in zip(axes.flat, panels):
    for key in keys:
      arr = columns[key]
      x = epochs if epochs is not None and len(epochs) == arr.size else np.arange(1, arr.size + 1)
      ok = ~np.isnan(arr)
      ax.plot(x[ok], arr[ok], "-o", markersize=3, label=_LEGEND.get(key, key))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    if title == "Accuracy" or title == "Examples at radius 0":
      ax.set_ylim(-0.02, 1.02)
    if title == "Learning rate":
      ax.set_ylim(0.0, 1.15 * max(float(np.nanmax(columns[k])) for k in keys))
    if title in ("Radius", "Radius quantiles"):
      top = max(float(np.nanmax(columns[k])) for k in keys)
      radius_axis(ax.yaxis, per_255, top)
      ax.set_ylabel(f"{ylabel} ({norm_label(norm)})")
    ax.grid(alpha=0.3)
    if len(keys) > 1:  # Below the panel, never over the curves.
      ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    else:
      ax.set_title(
        f"{title}: {_LEGEND.get(keys[0], keys[0])}"
        if keys[0] not in ("learning_rate", "images_per_second") and title != keys[0]
        else title,
        fontsize=10,
      )
  fig.suptitle("Training history")
  return save_figure(fig, path)


def plot_eps_over_epochs(
  history: Mapping[str, Sequence[float]],
  path: str,
  *,
  warmup_eps: float,
  eval_eps: float,
  warmup_epochs: int,
  per_255: Optional[bool] = None,
  norm: str = "linf",
) -> str:
  """The learned radius distribution per epoch: 10-90% and 25-75% bands, the
  median and the mean of the eps table, with the warmup radius, the
  evaluation radius and the end of the warmup marked (history.csv's
  eps_table_q* columns)."""
  get = lambda k: np.asarray([np.nan if v is None else v for v in history[k]], dtype=np.float64)
  q = {p: get(f"eps_table_q{p}") for p in (10, 25, 50, 75, 90)}
  epochs = get("epoch") if "epoch" in history else np.arange(1, q[50].size + 1, dtype=np.float64)
  if per_255 is None:
    per_255 = uses_per_255([warmup_eps, eval_eps], norm=norm)
  fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
  ax.fill_between(epochs, q[10], q[90], alpha=0.18, color="tab:red", label="10-90% of examples")
  ax.fill_between(epochs, q[25], q[75], alpha=0.35, color="tab:red", label="25-75%")
  ax.plot(epochs, q[50], "-", color="tab:red", label="median")
  if "eps_table_mean" in history:
    ax.plot(epochs, get("eps_table_mean"), "--", color="tab:red", alpha=0.7, label="mean")
  ax.axhline(warmup_eps, color="tab:gray", lw=1, ls=":", label=f"warmup radius {warmup_eps:.4g}")
  ax.axhline(eval_eps, color="tab:blue", lw=1.2, ls="-.", label=f"evaluation radius {eval_eps:.4g}")
  if 0 < warmup_epochs < epochs.max():
    ax.axvline(warmup_epochs + 0.5, color="black", lw=0.8, alpha=0.5)
    ax.text(warmup_epochs + 0.6, ax.get_ylim()[1] * 0.97, "warmup ends", fontsize=7, va="top")
  top = float(np.nanmax([np.nanmax(q[90]), warmup_eps, eval_eps]))
  radius_axis(ax.yaxis, per_255, top)
  ax.set_ylabel(f"stored {RADIUS} ({norm_label(norm)})")
  ax.set_xlabel("epoch")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  ax.set_title("Learned radii over training", fontsize=10)
  return save_figure(fig, path)
