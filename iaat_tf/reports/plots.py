"""Plots and summary statistics for IAAT runs (per-example radii, curves).

Everything here works on plain numpy arrays / dicts read from a run's output
directory (`eps_table.npy`, `train_labels.npy`, `results.json`), so it can be
used from the trainer, from notebooks or from report scripts alike.

Radii are shown in the units users type in the flags: fractions of the
[0, 1] pixel range, labelled `k/255` when all radii are small (CIFAR-style
8/255) and as decimals otherwise (e.g. the digits quick start's 0.3).

Every `plot_*` function writes one PNG (mode 0644) atomically through
`run_io` and returns its path, so a crash never leaves a half-written PNG.
"""

import io
import math
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from iaat_tf import run_io  # pylint: disable=g-import-not-at-top

SCALE = 255.0  # Radii up to PER_255_MAX are labelled in 1/255 steps.
PER_255_MAX = 48 / 255
RADIUS = "radius eps"
_QUANTILES = (0.1, 0.25, 0.75, 0.9)
_MAIN_ATTACKS = ("worst_case", "pgd_ce")


# -- helpers -------------------------------------------------------------------


def save_figure(fig: "plt.Figure", path: str, dpi: int = 100) -> str:
  """Saves `fig` atomically as a PNG at `path`, closes it, returns `path`."""
  buffer = io.BytesIO()
  try:
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
  finally:
    plt.close(fig)
  return run_io.atomic_write_bytes(path, buffer.getvalue())


def format_radius(value: float, per_255: bool) -> str:
  """A radius as users type it: `8/255` (per_255) or a short decimal."""
  if abs(value) < 1e-12:
    return "0"
  if per_255:
    k = value * SCALE
    return f"{k:.0f}/255" if abs(k - round(k)) < 1e-3 else f"{k:.1f}/255"
  return f"{value:.3g}"


def uses_per_255(*values: Any) -> bool:
  """True when every radius is small enough to read best as k/255."""
  finite = [float(v) for v in np.concatenate(
      [np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
            if np.isfinite(v)]
  return bool(finite) and max(finite) <= PER_255_MAX


def radius_axis(axis: Any, per_255: bool, span: float) -> None:
  """Ticks of a radius axis (data in [0, 1] units) in the chosen units."""
  if per_255:
    steps = [s for s in (1, 2, 4, 8, 16) if span * SCALE / s <= 8]
    axis.set_major_locator(MultipleLocator((steps[0] if steps else 16) / SCALE))
  else:
    axis.set_major_locator(MaxNLocator(nbins=8))
  axis.set_major_formatter(FuncFormatter(
      lambda v, _: format_radius(v, per_255)))


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
                       eps_reference: Optional[float] = None,
                       reference_label: str = "warmup radius",
                       per_255: Optional[bool] = None) -> str:
  """Histogram of radii; optional line at a reference radius.

  The reference is IAAT's warmup radius eps_w (`--eps`) by default; pass
  `reference_label` for another meaning (e.g. "PGD-AT radius").
  """
  eps = _as_eps(eps_table)
  if per_255 is None:
    per_255 = uses_per_255(eps, [] if eps_reference is None else [eps_reference])
  fmt = lambda v: format_radius(v, per_255)
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  bins = int(min(50, max(10, math.sqrt(eps.size))))
  ax.hist(eps, bins=bins, color="tab:blue", alpha=0.8, edgecolor="white")
  ax.axvline(eps.mean(), color="tab:orange", linestyle="-",
             label=f"mean {fmt(eps.mean())}")
  ax.axvline(np.median(eps), color="tab:green", linestyle=":",
             label=f"median {fmt(np.median(eps))}")
  top = eps.max()
  if eps_reference is not None:
    ref = float(eps_reference)
    top = max(top, ref)
    ax.axvline(ref, color="tab:red", linestyle="--",
               label=f"{reference_label} {fmt(ref)}")
  radius_axis(ax.xaxis, per_255, top)
  ax.set_xlabel(f"per-example {RADIUS} (fraction of the [0, 1] pixel range)")
  ax.set_ylabel("number of training examples")
  ax.set_title(title or f"Per-example radii (N={eps.size})")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
            frameon=False)
  return save_figure(fig, path)


def plot_eps_per_class(eps_table: Any,
                       labels: Any,
                       path: str,
                       class_names: Optional[Sequence[str]] = None,
                       per_255: Optional[bool] = None) -> str:
  """Bar chart of the mean radius per class."""
  eps = _as_eps(eps_table)
  labels = _as_labels(labels, eps.shape[0])
  num_classes = (len(class_names) if class_names is not None
                 else int(labels.max()) + 1)
  means = eps_per_class(eps, labels, num_classes)
  per_255 = uses_per_255(eps) if per_255 is None else per_255
  names = (list(class_names) if class_names is not None
           else [str(c) for c in range(num_classes)])
  fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * num_classes), 4.0))
  x = np.arange(num_classes)
  ax.bar(x, np.nan_to_num(means, nan=0.0), color="tab:blue")
  for c in np.flatnonzero(np.isnan(means)):
    ax.text(c, 0.0, "n/a", ha="center", va="bottom", fontsize=8)
  ax.axhline(eps.mean(), color="tab:orange", linestyle="--",
             label=f"overall mean {format_radius(eps.mean(), per_255)}")
  radius_axis(ax.yaxis, per_255, float(np.nanmax(means)) if np.isfinite(means).any()
              else float(eps.max()))
  ax.set_xticks(x)
  ax.set_xticklabels(names, rotation=45 if num_classes > 10 else 0,
                     ha="right" if num_classes > 10 else "center")
  ax.set_xlabel("class")
  ax.set_ylabel(f"mean {RADIUS}")
  ax.set_title("Mean per-example radius by class")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
            frameon=False)
  return save_figure(fig, path)


def _show_image(ax: Any, image: np.ndarray) -> None:
  image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
  else:
    ax.imshow(image)


def plot_eps_extremes_grid(images: Any, eps: Any, path: str, k: int = 8,
                           labels: Any = None,
                           class_names: Optional[Sequence[str]] = None,
                           per_255: Optional[bool] = None) -> str:
  """2-row grid: top the k smallest-eps examples, bottom the k largest.

  `images` float [M, H, W, C] in [0, 1] with C in {1, 3} (or [M, H, W]);
  `eps` [M]; `labels` [M] class ids (optional, shown with `class_names` when
  given). Each panel is titled with its label and radius. See
  `extreme_indices` for the selection when M < 2k.
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
  if labels is not None:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != eps.shape[0]:
      raise ValueError(f"{labels.shape[0]} labels but {eps.shape[0]} radii")
  per_255 = uses_per_255(eps) if per_255 is None else per_255
  smallest, largest = extreme_indices(eps, k)
  cols = max(len(smallest), len(largest))
  fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols + 0.8, 4.6),
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
        title = f"eps {format_radius(eps[i], per_255)}"
        if labels is not None:
          shown = (class_names[int(labels[i])] if class_names is not None
                   else str(int(labels[i])))
          title = f"label {shown}\n{title}"
        ax.set_title(title, fontsize=9)
      else:
        ax.axis("off")
    axes[row, 0].set_ylabel(f"{name}\nradius", fontsize=9)
  fig.suptitle("Training examples with the smallest (top) and largest "
               "(bottom) radius")
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
  return (np.array([p["eps"] for p in pts], dtype=np.float64),
          np.array([p[key] for p in pts], dtype=np.float64))


def plot_robustness_curve(curves: Mapping[str, Sequence[Mapping[str, Any]]],
                          path: str,
                          detail_run: Optional[str] = None,
                          per_255: Optional[bool] = None,
                          autoattack: Optional[Mapping[str, Any]] = None
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
        ax.plot(x, y, linestyle=styles[j % len(styles)], marker=".",
                color=colors[(n + j + 1) % len(colors)], alpha=0.8,
                label=f"{name} {key}")
    if autoattack and name in autoattack:
      aa_eps, aa_acc = autoattack[name]
      ax.plot([aa_eps], [aa_acc], "*", color=color, markersize=12,
              markeredgecolor="black", label=f"{name} AutoAttack")
  all_eps = [p["eps"] for points in curves.values() for p in points]
  per_255 = uses_per_255(all_eps) if per_255 is None else per_255
  radius_axis(ax.xaxis, per_255, max(all_eps) if all_eps else 1.0)
  if all_eps and len(set(all_eps)) == 1:  # One radius: show it from 0.
    ax.set_xlim(0.0, 1.25 * all_eps[0] if all_eps[0] > 0 else 1.0)
  ax.set_xlabel(f"attack {RADIUS} (L-inf)")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title("Robust accuracy vs attack radius")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
            frameon=False)
  return save_figure(fig, path)


_PANELS = (  # (title, y label, test on the key)
    ("Loss", "cross-entropy", lambda k: "loss" in k),
    ("Accuracy", "accuracy", lambda k: k.endswith("acc")),
    ("Radius", f"mean {RADIUS}", lambda k: k in ("eps_mean", "eps_table_mean")),
    ("Examples at radius 0", "fraction of training examples",
     lambda k: k.endswith("zero_frac")),
    ("Learning rate", "learning rate", lambda k: k == "learning_rate"),
    ("Speed", "training images / s", lambda k: k == "images_per_second"),
)
_LEGEND = {  # Curve names readers understand (keys are history.csv columns).
    "loss": "train (on trained inputs)", "val_loss": "validation (clean)",
    "train_acc": "train_acc: trained inputs",
    "clean_acc": "clean_acc: train batch, clean",
    "val_clean_acc": "val_clean_acc: validation, clean",
    "val_pgd_acc": "val_pgd_acc: validation, PGD",
    "eps_mean": "eps_mean: radius trained at",
    "eps_table_mean": "eps_table_mean: stored table",
}


def plot_training_history(history: Mapping[str, Sequence[float]],
                          path: str, per_255: Optional[bool] = None) -> str:
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
      arr = np.asarray([np.nan if v is None else v for v in values],
                       dtype=np.float64).reshape(-1)
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
  radii = [columns[k] for _, _, keys in panels for k in keys
           if k in ("eps_mean", "eps_table_mean")]
  if per_255 is None:
    per_255 = bool(radii) and uses_per_255(*radii)
  cols = min(3, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows),
                           squeeze=False, layout="constrained")
  for ax in axes.flat[len(panels):]:
    ax.axis("off")
  for ax, (title, ylabel, keys) in zip(axes.flat, panels):
    for key in keys:
      arr = columns[key]
      x = (epochs if epochs is not None and len(epochs) == arr.size
           else np.arange(1, arr.size + 1))
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
    if title == "Radius":
      top = max(float(np.nanmax(columns[k])) for k in keys)
      radius_axis(ax.yaxis, per_255, top)
    ax.grid(alpha=0.3)
    if len(keys) > 1:  # Below the panel, never over the curves.
      ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                ncol=1, frameon=False)
    else:
      ax.set_title(f"{title}: {_LEGEND.get(keys[0], keys[0])}"
                   if keys[0] not in ("learning_rate", "images_per_second")
                   and title != keys[0] else title, fontsize=10)
  fig.suptitle("Training history")
  return save_figure(fig, path)
