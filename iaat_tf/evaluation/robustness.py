"""Robust-accuracy curves (PGD, APGD-CE, APGD-DLR, worst case).

`evaluate_robustness` attacks every example of a dataset at several radii
(L-inf or L2, `norm`) and accumulates per-example correctness masks, so the worst case (an
example survives *every* attack at that radius) is exact, not a bound.
Following AutoAttack's convention, an example counts as robust to an attack
only if it is also classified correctly when clean, so no attack accuracy can
exceed the clean accuracy. The signs of gradient masking in a report are
masking.py's (`gradient_masking_report`).
"""

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from iaat_tf.attacks import apgd, noise, objectives, pgd
from iaat_tf.evaluation.replicas import Replicas

LogitsFn = pgd.LogitsFn
ProgressFn = Callable[[int, Optional[int]], None]  # (batches done, total or None)

WORST_CASE = "worst_case"
_APGD_SALT = {"ce": noise.Salt.EVAL_APGD_CE, "dlr": noise.Salt.EVAL_APGD_DLR}


@dataclasses.dataclass
class RobustnessPoint:
  """Accuracies at one radius.

  accuracies: attack name ("pgd_ce", "pgd_margin", "apgd_ce", "apgd_dlr", ...)
    -> accuracy in [0, 1].
  worst_case: the fraction correct when clean and under every attack.
  correct: attack name (and "worst_case") -> [N] bool per-example masks, in
    dataset order; not part of `to_dict`.
  """

  eps: float
  accuracies: dict[str, float]
  worst_case: float
  correct: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

  def to_dict(self) -> dict[str, float]:
    return {
      "eps": float(self.eps),
      **{k: float(v) for k, v in self.accuracies.items()},
      WORST_CASE: float(self.worst_case),
    }


@dataclasses.dataclass
class RobustnessReport:
  """The result of `evaluate_robustness`.

  clean_correct and index are [N] per-example arrays in dataset order (index
  is the dataset's "index" feature, or the position in the stream); they are
  not part of `to_dict`.
  """

  clean_accuracy: float
  num_examples: int
  curve: list[RobustnessPoint]
  norm: str = "linf"
  clean_correct: np.ndarray = dataclasses.field(
    default_factory=lambda: np.zeros([0], bool), repr=False
  )
  index: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros([0], np.int64), repr=False)

  def to_dict(self) -> dict[str, Any]:
    """JSON-serialisable: {"norm", "clean_accuracy", "num_examples", "curve": [...]}."""
    return {
      "norm": self.norm,
      "clean_accuracy": float(self.clean_accuracy),
      "num_examples": int(self.num_examples),
      "curve": [point.to_dict() for point in self.curve],
    }


def split_inputs(x: Any, offset: int) -> tuple[tf.Tensor, tf.Tensor]:
  """(images, index) from an image batch or a {"image", "index"} dict."""
  if isinstance(x, Mapping):
    images = tf.convert_to_tensor(x["image"], tf.float32)
    index = x.get("index")
  else:
    images, index = tf.convert_to_tensor(x, tf.float32), None
  if index is None:
    index = tf.range(offset, offset + tf.shape(images)[0], dtype=tf.int64)
  return images, tf.cast(index, tf.int64)


def _total_batches(dataset: tf.data.Dataset, max_batches: Optional[int]) -> Optional[int]:
  """The number of batches to evaluate, or None when unknown."""
  cardinality = int(dataset.cardinality())
  if cardinality == int(tf.data.INFINITE_CARDINALITY) and max_batches is None:
    raise ValueError("The dataset is infinite (repeat()?): set max_batches.")
  known = cardinality if cardinality >= 0 else None
  if max_batches is None:
    return known
  return max_batches if known is None else min(known, max_batches)


def _make_pgd_fn(
  logits_fn: LogitsFn,
  *,
  loss: str,
  steps: int,
  step_size: Optional[float],
  seed: int,
  jit_compile: bool,
  norm: str,
) -> Callable[..., tf.Tensor]:
  """tf.function (images, labels, eps, index, restart) -> [B] bool correct.

  The step is `step_size`, or 2.5 * eps / steps per example when None.
  """

  def run(images, labels, eps, index, restart):
    size = (
      eps * (2.5 / steps)
      if step_size is None
      else tf.fill(tf.shape(eps), tf.cast(step_size, tf.float32))
    )
    x_adv = pgd.pgd_attack(
      logits_fn,
      images,
      labels,
      eps,
      steps=steps,
      step_size=size,
      random_start=True,
      index=index,
      step=restart,
      salt=noise.Salt.EVAL_PGD,
      seed=seed,
      loss=loss,
      norm=norm,
    )
    return pgd.is_correct(logits_fn(x_adv), labels)

  return tf.function(run, jit_compile=jit_compile, reduce_retracing=True)


def _make_apgd_fn(
  logits_fn: LogitsFn, *, loss: str, n_iter: int, seed: int, jit_compile: bool, norm: str
) -> Callable[..., tf.Tensor]:
  """tf.function (images, labels, eps, index) -> [B] bool correct."""
  options = apgd.ApgdOptions(n_iter=n_iter, loss=loss, salt=_APGD_SALT[loss], seed=seed, norm=norm)

  def run(images, labels, eps, index):
    result = apgd.apgd_attack(logits_fn, images, labels, eps, options, index=index)
    # Robust only if APGD never saw a mistake and its returned point agrees.
    final = pgd.is_correct(logits_fn(result.adversarial), labels)
    return tf.logical_and(result.robust, final)

  return tf.function(run, jit_compile=jit_compile, reduce_retracing=True)


def _accuracy(mask: np.ndarray) -> float:
  return float(mask.mean()) if mask.size else 0.0


def evaluate_robustness(
  logits_fn: LogitsFn,
  dataset: tf.data.Dataset,
  eps_list: Sequence[float],
  *,
  pgd_steps: int = 10,
  pgd_step_size: Optional[float] = None,
  restarts: int = 1,
  losses: Iterable[str] = ("ce", "margin"),
  apgd: bool = True,
  apgd_iters: int = 100,
  max_batches: Optional[int] = None,
  seed: int = 0,
  progress: Optional[ProgressFn] = None,
  jit_compile: bool = False,
  strategy: Optional[tf.distribute.Strategy] = None,
  norm: str = "linf",
) -> RobustnessReport:
  """Clean, PGD, APGD and worst-case accuracy at every radius of `eps_list`.

  Args:
    logits_fn: images -> logits (run the classifier in inference mode).
    dataset: batches of (x, label), x an image batch or {"image", "index"}.
    eps_list: radii in `norm` (images in [0, 1]), e.g. [0, 2/255, 4/255,
      8/255] (linf) or [0, 0.25, 0.5] (l2).
    pgd_steps: PGD iterations.
    pgd_step_size: PGD step; default 2.5 * eps / pgd_steps per radius.
    restarts: PGD random restarts; an example must survive all of them.
    losses: PGD objectives, among objectives.UNTARGETED ("ce", "margin", "dlr"); each gives a
      "pgd_<loss>" column.
    apgd: also run APGD-CE and APGD-DLR ("apgd_ce", "apgd_dlr" columns; DLR
      is skipped for fewer than 3 classes).
    apgd_iters: APGD iterations per attack.
    max_batches: evaluate at most this many batches (None: all).
    seed: seeds the attacks' random starts (keyed per example index).
    progress: called as progress(batches_done, total_or_None) after each
      batch.
    jit_compile: XLA-compile the attacks.
    strategy: spread each batch over its replicas (default: the current
      strategy; `replicas.py`). Build `logits_fn`'s model in its scope.
    norm: "linf" or "l2": every attack's ball.

  Returns:
    A `RobustnessReport`, with the per-example masks.
  """
  losses = tuple(losses)
  for loss in losses:
    if loss not in objectives.UNTARGETED:
      raise ValueError(
        f"Unknown PGD loss {loss!r}; expected one of {sorted(objectives.UNTARGETED)}."
      )
  if pgd_steps < 1 or restarts < 1 or apgd_iters < 1:
    raise ValueError("pgd_steps, restarts and apgd_iters must be >= 1.")
  eps_values = [float(e) for e in eps_list]
  if any(e < 0 or not math.isfinite(e) for e in eps_values):
    raise ValueError(f"eps must be finite and >= 0, got {eps_values}.")

  pgd_fns = {
    loss: _make_pgd_fn(
      logits_fn,
      loss=loss,
      steps=pgd_steps,
      step_size=pgd_step_size,
      seed=seed,
      jit_compile=jit_compile,
      norm=norm,
    )
    for loss in losses
  }
  clean_fn = tf.function(
    lambda images, labels: pgd.is_correct(logits_fn(images), labels), reduce_retracing=True
  )
  apgd_fns: dict[str, Callable[..., tf.Tensor]] = {}

  total = _total_batches(dataset, max_batches)
  replicas = Replicas(strategy)
  clean_masks, index_parts = [], []
  masks: list[dict[str, list[np.ndarray]]] = [{} for _ in eps_values]
  offset = done = cap = 0
  for x, labels in dataset:
    if max_batches is not None and done >= max_batches:
      break
    images, index = split_inputs(x, offset)
    images, index = images.numpy(), index.numpy()
    labels = np.asarray(labels).astype(np.int64)
    batch = len(labels)
    offset += batch
    if not batch:
      continue
    cap = max(cap, batch)  # Pad a partial last batch to the full size.
    clean = replicas.map(clean_fn, [images, labels], cap=cap)
    clean_masks.append(clean)
    index_parts.append(index)
    if apgd and not apgd_fns:
      num_classes = int(logits_fn(images[:1]).shape[-1])
      apgd_losses = ("ce", "dlr") if num_classes >= 3 else ("ce",)
      apgd_fns = {
        loss: _make_apgd_fn(
          logits_fn, loss=loss, n_iter=apgd_iters, seed=seed, jit_compile=jit_compile, norm=norm
        )
        for loss in apgd_losses
      }
    for j, eps in enumerate(eps_values):
      rows = [images, labels, np.full([batch], eps, np.float32), index]
      for loss, fn in pgd_fns.items():
        ok = clean.copy()
        for r in range(restarts):
          ok &= replicas.map(fn, rows, shared=[np.int64(r)], cap=cap)
        masks[j].setdefault(f"pgd_{loss}", []).append(ok)
      for loss, fn in apgd_fns.items():
        ok = clean & replicas.map(fn, rows, cap=cap)
        masks[j].setdefault(f"apgd_{loss}", []).append(ok)
    done += 1
    if progress is not None:
      progress(done, total)

  clean_correct = np.concatenate(clean_masks) if clean_masks else np.zeros([0], bool)
  curve = []
  for eps, parts in zip(eps_values, masks):
    correct = {name: np.concatenate(p) for name, p in parts.items()}
    worst = clean_correct.copy()
    for mask in correct.values():
      worst &= mask
    correct[WORST_CASE] = worst
    curve.append(
      RobustnessPoint(
        eps=eps,
        accuracies={name: _accuracy(m) for name, m in correct.items() if name != WORST_CASE},
        worst_case=_accuracy(worst),
        correct=correct,
      )
    )
  return RobustnessReport(
    clean_accuracy=_accuracy(clean_correct),
    num_examples=int(clean_correct.size),
    curve=curve,
    norm=norm,
    clean_correct=clean_correct,
    index=(np.concatenate(index_parts) if index_parts else np.zeros([0], np.int64)),
  )
