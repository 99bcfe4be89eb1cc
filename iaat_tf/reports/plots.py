"""Plots and summary statistics of the per-example radii (the eps table).

Curves over radii and epochs are in `curves.py`, which shares the helpers
here (`save_figure`, radius formatting).

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
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from iaat_tf import run_io  # pylint: disable=g-import-not-at-top

SCALE = 255.0  # Radii up to PER_255_MAX are labelled in 1/255 steps.
PER_255_MAX = 48 / 255
RADIUS = "radius eps"


def norm_label(norm: str = "linf") -> str:
  """A norm ("linf" or "l2") as labels write it: L-inf or L2."""
  return "L2" if norm == "l2" else "L-inf"


def radius_units(norm: str = "linf") -> str:
  """What a radius measures under `norm`, for axis labels."""
  return "L2 norm" if norm == "l2" else "L-inf, fraction of the [0, 1] pixel range"


_QUANTILES = (0.1, 0.25, 0.75, 0.9)


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


def uses_per_255(*values: Any, norm: str = "linf") -> bool:
  """True when every radius is small enough to read best as k/255 (L-inf
  radii only: an L2 radius is no fraction of the pixel range)."""
  if norm != "linf":
    return False
  finite = [
    float(v)
    for v in np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
    if np.isfinite(v)
  ]
  return bool(finite) and max(finite) <= PER_255_MAX


def radius_axis(axis: Any, per_255: bool, span: float) -> None:
  """Ticks of a radius axis (data in [0, 1] units) in the chosen units."""
  if per_255:
    steps = [s for s in (1, 2, 4, 8, 16) if span * SCALE / s <= 8]
    axis.set_major_locator(MultipleLocator((steps[0] if steps else 16) / SCALE))
  else:
    axis.set_major_locator(MaxNLocator(nbins=8))
  axis.set_major_formatter(FuncFormatter(lambda v, _: format_radius(v, per_255)))


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
    raise ValueError(f"label {labels.max()} out of range for num_classes={num_classes}")
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


def plot_eps_histogram(
  eps_table: Any,
  path: str,
  title: Optional[str] = None,
  eps_reference: Optional[float] = None,
  reference_label: str = "warmup radius",
  per_255: Optional[bool] = None,
  norm: str = "linf",
) -> str:
  """Histogram of radii; optional line at a reference radius.

  The reference is IAAT's warmup radius eps_w (`--eps`) by default; pass
  `reference_label` for another meaning (e.g. "PGD-AT radius").
  """
  eps = _as_eps(eps_table)
  if per_255 is None:
    per_255 = uses_per_255(eps, [] if eps_reference is None else [eps_reference], norm=norm)
  fmt = lambda v: format_radius(v, per_255)
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  bins = int(min(50, max(10, math.sqrt(eps.size))))
  ax.hist(eps, bins=bins, color="tab:blue", alpha=0.8, edgecolor="white")
  ax.axvline(eps.mean(), color="tab:orange", linestyle="-", label=f"mean {fmt(eps.mean())}")
  ax.axvline(
    np.median(eps), color="tab:green", linestyle=":", label=f"median {fmt(np.median(eps))}"
  )
  top = eps.max()
  if eps_reference is not None:
    ref = float(eps_reference)
    top = max(top, ref)
    ax.axvline(ref, color="tab:red", linestyle="--", label=f"{reference_label} {fmt(ref)}")
  radius_axis(ax.xaxis, per_255, top)
  ax.set_xlabel(f"per-example {RADIUS} ({radius_units(norm)})")
  ax.set_ylabel("number of training examples")
  ax.set_title(title or f"Per-example radii (N={eps.size})")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
  return save_figure(fig, path)


def plot_eps_per_class(
  eps_table: Any,
  labels: Any,
  path: str,
  class_names: Optional[Sequence[str]] = None,
  per_255: Optional[bool] = None,
  norm: str = "linf",
) -> str:
  """Bar chart of the mean radius per class."""
  eps = _as_eps(eps_table)
  labels = _as_labels(labels, eps.shape[0])
  num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
  means = eps_per_class(eps, labels, num_classes)
  per_255 = uses_per_255(eps, norm=norm) if per_255 is None else per_255
  names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
  fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * num_classes), 4.0))
  x = np.arange(num_classes)
  ax.bar(x, np.nan_to_num(means, nan=0.0), color="tab:blue")
  for c in np.flatnonzero(np.isnan(means)):
    ax.text(float(c), 0.0, "n/a", ha="center", va="bottom", fontsize=8)
  ax.axhline(
    eps.mean(),
    color="tab:orange",
    linestyle="--",
    label=f"overall mean {format_radius(eps.mean(), per_255)}",
  )
  radius_axis(
    ax.yaxis, per_255, float(np.nanmax(means)) if np.isfinite(means).any() else float(eps.max())
  )
  ax.set_xticks(x)
  ax.set_xticklabels(
    names, rotation=45 if num_classes > 10 else 0, ha="right" if num_classes > 10 else "center"
  )
  ax.set_xlabel("class")
  ax.set_ylabel(f"mean {RADIUS} ({norm_label(norm)})")
  ax.set_title("Mean per-example radius by class")
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
  return save_figure(fig, path)


def _show_image(ax: Any, image: np.ndarray) -> None:
  image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
  else:
    ax.imshow(image)


def plot_eps_extremes_grid(
  images: Any,
  eps: Any,
  path: str,
  k: int = 8,
  labels: Any = None,
  class_names: Optional[Sequence[str]] = None,
  per_255: Optional[bool] = None,
) -> str:
  """2-row grid: top the k smallest-eps examples, bottom the k largest.

  `images` float [M, H, W, C] in [0, 1] with C in {1, 3} (or [M, H, W]);
  `eps` [M]; `labels` [M] class ids (optional, shown with `class_names` when
  given). Each panel is titled with its label and radius. See
  `extreme_indices` for the selection when M < 2k.
  """
  images = np.asarray(images)
  eps = np.asarray(eps, dtype=np.float64).reshape(-1)
  if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
    raise ValueError(f"images must be [M,H,W] or [M,H,W,1|3], got {images.shape}")
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
  fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols + 0.8, 4.6), squeeze=False)
  for row, (indices, name) in enumerate(((smallest, "smallest"), (largest, "largest"))):
    for col in range(cols):
      ax = axes[row, col]
      ax.set_xticks([])
      ax.set_yticks([])
      if col < len(indices):
        i = indices[col]
        _show_image(ax, images[i])
        title = f"eps {format_radius(eps[i], per_255)}"
        if labels is not None:
          shown = class_names[int(labels[i])] if class_names is not None else str(int(labels[i]))
          title = f"label {shown}\n{title}"
        ax.set_title(title, fontsize=9)
      else:
        ax.axis("off")
    axes[row, 0].set_ylabel(f"{name}\nradius", fontsize=9)
  fig.suptitle("Training examples with the smallest (top) and largest (bottom) radius")
  return save_figure(fig, path)
