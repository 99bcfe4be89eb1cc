"""Plots and summary statistics for IAAT runs (per-example radii, curves).

Everything here works on plain numpy arrays / dicts read from a run's output
directory (`eps_table.npy`, `train_labels.npy`, `results.json`), so it can be
used from the trainer, from notebooks or from report scripts alike.

Radii are stored in [0, 1] pixel units; plots show them in units of 1/255
("eps x 255"), the convention of the adversarial-training literature.

Every `plot_*` function writes one PNG and returns its path. The figure is
first saved to a temporary file in the destination directory and then moved
into place with `os.replace`, so a crash never leaves a half-written PNG.
"""

import math
import os
import tempfile
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

SCALE = 255.0  # Radii are plotted as eps * 255.
_QUANTILES = (0.1, 0.25, 0.75, 0.9)
_MAIN_ATTACKS = ("worst_case", "pgd_ce")


# -- helpers -------------------------------------------------------------------


def save_figure(fig: "plt.Figure", path: str, dpi: int = 100) -> str:
  """Saves `fig` atomically as a PNG at `path`, closes it, returns `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  finally:
    plt.close(fig)
  return path


def _as_eps(eps_table: Any) -> np.ndarray:
  eps = np.asarray(eps_table, dtype=np.float64).reshape(-1)
  if eps.size == 0:
    raise ValueError("eps_table is empty")
  return eps


def _as_labels(labels: Any, n: int) -> np.ndarray:
  labels = np.asarray(labels).reshape(-1)
  if labels.shape[0] != n:
    raise ValueError(f"labels has {labels.shape[0]} entries, eps_table has {n}")
  if labels.size and labels.min() < 0:
    raise ValueError("labels must be non-negative class ids")
  return labels.astype(np.int64)


# -- statistics ----------------------------------------------------------------


def eps_per_class(eps_table: Any, labels: Any, num_classes: int) -> np.ndarray:
  """Mean radius per class, float64 [num_classes]; NaN for absent classes."""
  eps = _as_eps(eps_table)
  labels = _as_labels(labels, eps.shape[0])
  if labels.size and labels.max() >= num_classes:
    raise ValueError(
        f"label {labels.max()} out of range for num_classes={num_classes}")
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  sums = np.bincount(labels, weights=eps, minlength=num_classes)
  means = np.full(num_classes, np.nan)
  present = counts > 0
  means[present] = sums[present] / counts[present]
  return means


def eps_summary(eps_table: Any, labels: Any = None) -> dict:
  """JSON-able statistics of the radii (in [0, 1] units, not x255).

  Keys: count, mean, median, std, min, max, quantiles ({"0.1": ..., ...}),
  zero_fraction; with `labels` also per_class_mean and per_class_count
  ({"<class id>": value}, only for classes that occur).
  """
  eps = _as_eps(eps_table)
  summary = {
      "count": int(eps.size),
      "mean": float(eps.mean()),
      "median": float(np.median(eps)),
      "std": float(eps.std()),
      "min": float(eps.min()),
      "max": float(eps.max()),
      "quantiles": {str(q): float(np.quantile(eps, q)) for q in _QUANTILES},
      "zero_fraction": float(np.mean(eps <= 0.0)),
  }
  if labels is not None:
    labels = _as_labels(labels, eps.shape[0])
    num_classes = int(labels.max()) + 1
    means = eps_per_class(eps, labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    present = [c for c in range(num_classes) if counts[c] > 0]
    summary["per_class_mean"] = {str(c): float(means[c]) for c in present}
    summary["per_class_count"] = {str(c): int(counts[c]) for c in present}
  return summary


def extreme_indices(eps: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices of the k smallest (ascending) and k largest (descending) radii.

  When there are fewer than 2k examples the two sets are kept disjoint: the
  smallest half (rounded up, at most k) and the rest (at most k). Ties are
  broken by index (stable sort).
  """
  eps = np.asarray(eps, dtype=np.float64).reshape(-1)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  m = eps.shape[0]
  order = np.argsort(eps, kind="stable")
  n_small = min(k, (m + 1) // 2)
  n_large = min(k, m - n_small)
  smallest = order[:n_small]
  largest = order[::-1][:n_large] if n_large else order[:0]
  return smallest.astype(np.int64), largest.astype(np.int64)


# -- plots ---------------------------------------------------------------------


def plot_eps_histogram(eps_table: Any,
                       path: str,
                       title: Optional[str] = None,
                       eps_reference: Optional[float] = None) -> str:
  """Histogram of radii (x255); optional line at the uniform PGD-AT radius."""
  eps = _as_eps(eps_table) * SCALE
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  bins = int(min(50, max(10, math.sqrt(eps.size))))
  ax.hist(eps, bins=bins, color="tab:blue", alpha=0.8, edgecolor="white")
  ax.axvline(eps.mean(), color="tab:orange", linestyle="-",
             label=f"mean {eps.mean():.2f}")
  ax.axvline(np.median(eps), color="tab:green", linestyle=":",
             label=f"median {np.median(eps):.2f}")
  if eps_reference is not None:
    ref = float(eps_reference) * SCALE
    ax.axvline(ref, color="tab:red", linestyle="--",
               label=f"PGD-AT eps {ref:.2f}")
  ax.set_xlabel("eps x 255")
  ax.set_ylabel("number of training examples")
  ax.set_title(title or f"Per-example radii (N={eps.size})")
  ax.legend()
  return save_figure(fig, path)


def plot_eps_per_class(eps_table: Any,
                       labels: Any,
                       path: str,
                       class_names: Optional[Sequence[str]] = None) -> str:
  """Bar chart of the mean radius (x255) per class."""
  eps = _as_eps(eps_table)
  labels = _as_labels(labels, eps.shape[0])
  num_classes = (len(class_names) if class_names is not None
                 else int(labels.max()) + 1)
  means = eps_per_class(eps, labels, num_classes) * SCALE
  names = (list(class_names) if class_names is not None
           else [str(c) for c in range(num_classes)])
  fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * num_classes), 4.0))
  x = np.arange(num_classes)
  ax.bar(x, np.nan_to_num(means, nan=0.0), color="tab:blue")
  for c in np.flatnonzero(np.isnan(means)):
    ax.text(c, 0.0, "n/a", ha="center", va="bottom", fontsize=8)
  ax.axhline(eps.mean() * SCALE, color="tab:orange", linestyle="--",
             label=f"overall mean {eps.mean() * SCALE:.2f}")
  ax.set_xticks(x)
  ax.set_xticklabels(names, rotation=45 if num_classes > 10 else 0,
                     ha="right" if num_classes > 10 else "center")
  ax.set_xlabel("class")
  ax.set_ylabel("mean eps x 255")
  ax.set_title("Mean per-example radius by class")
  ax.legend()
  return save_figure(fig, path)


def _show_image(ax: Any, image: np.ndarray) -> None:
  image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
  else:
    ax.imshow(image)


def plot_eps_extremes_grid(images: Any, eps: Any, path: str, k: int = 8) -> str:
  """2-row grid: top the k smallest-eps examples, bottom the k largest.

  `images` float [M, H, W, C] in [0, 1] with C in {1, 3} (or [M, H, W]);
  `eps` [M]. Each panel is titled with its eps x255. See `extreme_indices`
  for the selection when M < 2k.
  """
  images = np.asarray(images)
  eps = np.asarray(eps, dtype=np.float64).reshape(-1)
  if images.ndim not in (3, 4) or (images.ndim == 4
                                   and images.shape[-1] not in (1, 3)):
    raise ValueError(f"images must be [M,H,W] or [M,H,W,1|3], got "
                     f"{images.shape}")
  if images.shape[0] != eps.shape[0]:
    raise ValueError(f"{images.shape[0]} images but {eps.shape[0]} radii")
  if eps.size == 0:
    raise ValueError("no examples to plot")
  smallest, largest = extreme_indices(eps, k)
  cols = max(len(smallest), len(largest))
  fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols + 0.8, 4.0),
                           squeeze=False)
  for row, (indices, name) in enumerate(((smallest, "smallest"),
                                         (largest, "largest"))):
    for col in range(cols):
      ax = axes[row, col]
      ax.set_xticks([])
      ax.set_yticks([])
      if col < len(indices):
        i = indices[col]
        _show_image(ax, images[i])
        ax.set_title(f"{eps[i] * SCALE:.1f}", fontsize=9)
      else:
        ax.axis("off")
    axes[row, 0].set_ylabel(f"{name} eps", fontsize=9)
  fig.suptitle("Examples with the smallest / largest radius (eps x 255)")
  return save_figure(fig, path)


def _attack_keys(points: Sequence[Mapping[str, Any]]) -> list[str]:
  keys = []
  for point in points:
    for key, value in point.items():
      if key != "eps" and isinstance(value, (int, float)) and key not in keys:
        keys.append(key)
  return keys


def _series(points: Sequence[Mapping[str, Any]],
            key: str) -> tuple[np.ndarray, np.ndarray]:
  pts = sorted((p for p in points if key in p), key=lambda p: p["eps"])
  return (np.array([p["eps"] for p in pts], dtype=np.float64) * SCALE,
          np.array([p[key] for p in pts], dtype=np.float64))


def plot_robustness_curve(curves: Mapping[str, Sequence[Mapping[str, Any]]],
                          path: str,
                          detail_run: Optional[str] = None,
                          autoattack: Optional[Mapping[str, Any]] = None
                          ) -> str:
  """Accuracy vs eps (x255): one solid line per run, dashed per-attack lines.

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
        ax.plot(x, y, linestyle=styles[j % len(styles)], marker=".",
                color=colors[(n + j + 1) % len(colors)], alpha=0.8,
                label=f"{name} {key}")
    if autoattack and name in autoattack:
      aa_eps, aa_acc = autoattack[name]
      ax.plot([aa_eps * 255.0], [aa_acc], "*", color=color, markersize=12,
              markeredgecolor="black", label=f"{name} AutoAttack")
  ax.set_xlabel("eval eps x 255")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title("Robust accuracy vs attack radius")
  ax.legend(fontsize=8)
  return save_figure(fig, path)


def _history_group(key: str) -> str:
  if "loss" in key:
    return "loss"
  if "acc" in key or "frac" in key:
    return "accuracy / fraction"
  if "eps" in key:
    return "eps x 255"
  return key  # Anything else (seconds, images/s...) gets its own panel.


def plot_training_history(history: Mapping[str, Sequence[float]],
                          path: str) -> str:
  """Per-epoch curves of every numeric key in `history`, grouped in panels.

  Keys are grouped by name: *loss*, *acc*/*frac* (accuracy / fraction),
  *eps* (radii, shown x255); any other key (e.g. epoch_seconds) gets a
  panel of its own.
  """
  groups: dict[str, list[tuple[str, np.ndarray]]] = {}
  for key, values in history.items():
    try:
      arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
      continue
    if arr.size == 0:
      continue
    group = _history_group(key)
    if group == "eps x 255":
      arr = arr * SCALE
    groups.setdefault(group, []).append((key, arr))
  if not groups:
    raise ValueError("history has no numeric per-epoch values")
  order = ["loss", "accuracy / fraction", "eps x 255"]
  names = ([g for g in order if g in groups]
           + [g for g in groups if g not in order])
  cols = min(3, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows),
                           squeeze=False)
  for ax in axes.flat[len(names):]:
    ax.axis("off")
  for ax, group in zip(axes.flat, names):
    for key, arr in groups[group]:
      ax.plot(np.arange(1, arr.size + 1), arr, "-o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(group)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("Training history")
  return save_figure(fig, path)
