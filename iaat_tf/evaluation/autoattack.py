"""AutoAttack "standard" (Croce & Hein, 2020), L-inf or L2, native in TensorFlow.

    report = autoattack.run_autoattack(logits_fn, images, labels, eps=8 / 255)
    print(report.robust_accuracy, report.to_dict())
    l2 = autoattack.run_autoattack(logits_fn, images, labels,
                                   options=AutoAttackOptions(eps=0.5, norm="l2"))

The standard sequence is APGD-CE, APGD-T (targeted DLR loss, the 9 most
likely wrong classes), FAB-T (9 targets) and Square (5,000 queries,
gradient-free). Each attack runs only on the examples still robust; an
example is robust iff it is correct when clean and survived every attack.
`AutoAttackOptions` (settings.py: one class for this library and the
commands' `--aa_*` flags) holds the counts, AutoAttack's standard ones by
default for both norms (the reference's `set_version("standard")`); `norm`
selects every attack's L2 version.

`logits_fn` is any images -> logits callable (a Keras model in inference mode,
a SavedModel's `serve`); images are float32 NHWC in [0, 1]. Attacks are
batched (`batch_size` per replica), their random starts are keyed by the
example id, so an example's result does not depend on which batch, chunk or
replica it is in, and input gradients are mixed-precision safe
(`gradients.py`). The examples stream (host memory holds one chunk, not the
split) and each chunk is spread over the strategy's replicas
(`replicas.py`). The report keeps, per example, its id, label, clean
correctness and the attack that broke it (`example_rows`).
"""

import dataclasses
import math
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from iaat_tf.attacks import apgd, fab, noise, pgd, square
from iaat_tf.evaluation import masking, robustness
from iaat_tf.evaluation.replicas import Replicas

# The options are one class for the library and the commands (settings.py).
from iaat_tf.evaluation.settings import APGD_CE, APGD_T, DEFAULT_BATCH_SIZE, FAB_T, SQUARE
from iaat_tf.evaluation.settings import STANDARD as STANDARD
from iaat_tf.evaluation.settings import AutoAttackOptions as AutoAttackOptions

LogitsFn = pgd.LogitsFn
TARGETED = (APGD_T, FAB_T)
REPORT_NORMS = {"linf": "Linf", "l2": "L2"}  # RobustBench's spelling.


@dataclasses.dataclass(frozen=True)
class AttackProgress:
  """What a progress callback receives after every attack pass of a chunk."""

  attack: str
  pass_index: int  # 0-based target rank - 1 for targeted attacks, else 0.
  passes: int
  done: int  # Examples through the whole sequence so far.
  total: Optional[int]  # Examples in all (None: unknown).
  robust_left: int  # Examples read so far that are still robust.
  elapsed: float  # Seconds since the evaluation started.
  chunk: tuple[int, int] = (0, 0)  # The chunk's examples [start, end).

  @property
  def eta(self) -> float:
    """Estimated seconds left (nan: unknown)."""
    if not (self.total and self.done):
      return float("nan")
    return self.elapsed * (self.total - self.done) / self.done

  def line(self) -> str:
    target = f" target {self.pass_index + 1}/{self.passes}" if self.passes > 1 else ""
    of = f" of {self.total}" if self.total else ""
    eta = f", ETA {self.eta:.0f}s" if math.isfinite(self.eta) else ""
    return (
      f"{self.attack}{target} on examples {self.chunk[0]}-"
      f"{self.chunk[1]}{of}: {self.done} done, {self.robust_left} "
      f"robust so far, {self.elapsed:.0f}s elapsed{eta}"
    )


ProgressFn = Callable[[AttackProgress], None]


@dataclasses.dataclass
class AutoAttackReport:
  """The result of `run_autoattack`.

  accuracy_after: attack -> robust accuracy after it (and all before it),
    in sequence order. seconds: attack -> wall time. robust_after: attack ->
    [N] bool masks; clean_correct, robust, index (example ids), labels and
    broken_by ("" robust, "clean" misclassified, else the first attack that
    broke it) are [N] arrays in the order read.
  """

  eps: float
  num_examples: int
  clean_accuracy: float
  robust_accuracy: float
  accuracy_after: dict[str, float]
  seconds: dict[str, float]
  options: AutoAttackOptions
  dataset: str = ""
  clean_correct: Any = dataclasses.field(default=None, repr=False)  # [N] bool
  robust: Any = dataclasses.field(default=None, repr=False)  # [N] bool
  robust_after: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
  index: Any = dataclasses.field(default=None, repr=False)  # [N] int64 example ids
  labels: Any = dataclasses.field(default=None, repr=False)  # [N]
  broken_by: Any = dataclasses.field(default=None, repr=False)  # [N] str

  EXAMPLE_FIELDS = ("index", "label", "clean_correct", "robust", "broken_by")

  def example_rows(self) -> list[dict[str, Any]]:
    """One row per example (`EXAMPLE_FIELDS`), in the order read: two
    evaluations (or two methods) compare example by example on `index`."""
    return [
      {"index": int(i), "label": int(l), "clean_correct": int(c), "robust": int(r), "broken_by": b}
      for i, l, c, r, b in zip(
        self.index, self.labels, self.clean_correct, self.robust, self.broken_by
      )
    ]

  def masking_warnings(self) -> list[str]:
    return masking.sequence_masking_report(self.to_dict(versions=False))

  def to_dict(self, versions: bool = True) -> dict[str, Any]:
    """JSON-serialisable, in RobustBench's spirit."""
    out = {
      "dataset": self.dataset,
      "norm": REPORT_NORMS[self.options.norm],
      "eps": float(self.eps),
      "n_examples": int(self.num_examples),
      "clean_accuracy": float(self.clean_accuracy),
      "robust_accuracy": float(self.robust_accuracy),
      # Chance: the accuracy of always predicting the most frequent label.
      "majority_rate": majority_rate(self.labels),
      "attacks": list(self.accuracy_after),
      "accuracy_after_attack": {k: float(v) for k, v in self.accuracy_after.items()},
      "seconds_per_attack": {k: round(float(v), 3) for k, v in self.seconds.items()},
      "settings": self.options.to_dict(),
    }
    if versions:
      out["versions"] = package_versions()
    return out


def majority_rate(labels) -> Optional[float]:
  """The most frequent label's share: a constant prediction's best accuracy (or None)."""
  if labels is None or not len(labels):
    return None
  counts = np.unique(np.asarray(labels), return_counts=True)[1]
  return float(counts.max() / counts.sum())


def package_versions() -> dict:
  """Which code made the report (`iaat_tf.provenance`)."""
  from iaat_tf import provenance  # pylint: disable=g-import-not-at-top

  return provenance.provenance()


def _chunks(
  images, labels, index, size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(images, labels, ids) in chunks of `size` examples, from arrays or a
  dataset read lazily (at most one chunk plus one batch in host memory)."""
  if not isinstance(images, tf.data.Dataset):
    if labels is None:
      raise ValueError("`labels` is required with an image array.")
    x, y = np.asarray(images), np.asarray(labels)
    if len(x) != len(y):
      raise ValueError(f"{len(x)} images but {len(y)} labels.")
    idx = np.arange(len(x), dtype=np.int64) if index is None else np.asarray(index, np.int64)
    for i in range(0, len(x), size):
      yield (np.asarray(x[i : i + size], np.float32), y[i : i + size], idx[i : i + size])
    return
  if labels is not None:
    raise ValueError("Pass labels inside the dataset, not as `labels`.")
  parts: list[tuple] = []
  held, offset = 0, 0
  for x, y in images:
    batch_images, batch_index = robustness.split_inputs(x, offset)
    part = (batch_images.numpy(), np.asarray(y), batch_index.numpy())
    offset += len(part[1])
    parts.append(part)
    held += len(part[1])
    while held >= size:
      joined = [np.concatenate(a) for a in zip(*parts)]
      yield joined[0][:size], joined[1][:size], joined[2][:size]
      parts = [tuple(a[size:] for a in joined)]
      held -= size
  if held:
    joined = [np.concatenate(a) for a in zip(*parts)]
    yield joined[0], joined[1], joined[2]


def _first(chunks: Iterator, limit: Optional[int]) -> Iterator:
  """The chunks of the first `limit` examples (None or 0: all)."""
  if not limit:
    yield from chunks
    return
  for x, y, idx in chunks:
    yield x[:limit], y[:limit], idx[:limit]
    limit -= len(y)
    if limit <= 0:
      return


def _attack_functions(
  logits_fn: LogitsFn, options: AutoAttackOptions, num_classes: int
) -> dict[str, Callable[..., tf.Tensor]]:
  """attack -> tf.function (images, labels, eps, index, targets, rank) -> robust."""
  seed = options.seed
  norm = options.norm
  ce = apgd.ApgdOptions(
    n_iter=options.apgd_iters, loss="ce", salt=noise.Salt.AA_APGD_CE, seed=seed, norm=norm
  )
  targeted = apgd.ApgdOptions(
    n_iter=options.apgd_iters,
    loss=apgd.targeted_loss_for(num_classes),
    salt=noise.Salt.AA_APGD_T,
    seed=seed,
    norm=norm,
  )
  fab_options = fab.FabOptions(n_iter=options.fab_iters, norm=norm)

  def final(x_adv, labels):
    return pgd.is_correct(logits_fn(x_adv), labels)

  def apgd_ce(images, labels, eps, index, targets, rank):
    del targets, rank
    result = apgd.apgd_attack(logits_fn, images, labels, eps, ce, index=index)
    return tf.logical_and(result.robust, final(result.adversarial, labels))

  def apgd_t(images, labels, eps, index, targets, rank):
    # The target rank keys the random start, like one restart per target.
    result = apgd.apgd_attack(
      logits_fn, images, labels, eps, targeted, index=index, step=rank, targets=targets
    )
    return tf.logical_and(result.robust, final(result.adversarial, labels))

  def fab_t(images, labels, eps, index, targets, rank):
    del index, rank
    return fab.fab_robust(logits_fn, images, labels, eps, targets, fab_options)

  def square_(images, labels, eps, index, targets, rank):
    del targets, rank
    return square.square_attack(
      logits_fn,
      images,
      labels,
      eps,
      n_queries=options.square_queries,
      p_init=options.square_p_init,
      index=index,
      seed=seed,
      only_unbroken=not options.jit_compile,
      norm=norm,
    ).robust

  fns = {APGD_CE: apgd_ce, APGD_T: apgd_t, FAB_T: fab_t, SQUARE: square_}
  return {
    name: tf.function(fn, jit_compile=options.jit_compile, reduce_retracing=True)
    for name, fn in fns.items()
  }


def run_autoattack(
  logits_fn: LogitsFn,
  images,
  labels=None,
  eps: Optional[float] = None,
  *,
  options: AutoAttackOptions = AutoAttackOptions(),
  index=None,
  dataset: str = "",
  progress: Optional[ProgressFn] = None,
  strategy: Optional[tf.distribute.Strategy] = None,
  num_examples: Optional[int] = None,
) -> AutoAttackReport:
  """Runs the AutoAttack sequence at radius `eps` in `options.norm` on the
  first `options.max_examples` examples (None or 0: all).

  The examples stream: a chunk of `batch_size` x replicas examples is read,
  attacked by the whole sequence (each attack on the chunk's examples still
  robust) and dropped; only per-example results are kept. An example's
  result does not depend on its chunk, its batch or its replica (random
  starts keyed by its id), so this equals running each attack over the
  whole split, as the reference does.

  Args:
    logits_fn: images -> logits (inference mode), e.g. a Keras model or
      `tf.saved_model.load(path).serve`.
    images: [N, H, W, C] float32 in [0, 1], or a tf.data.Dataset of
      (images or {"image", "index"}, labels) batches (labels then None).
    labels: [N] int class ids (with an image array).
    eps: the radius (in `options.norm`: L-inf on [0, 1], or L2); None:
      `options.eps`, else 8/255. The report's options hold the one used.
    options: an `AutoAttackOptions` (norm, attacks, counts, seed; batch size
      per replica, 0: 500).
    index: [N] stable example ids keying the random starts (default
      0..N-1, or the dataset's "index" feature).
    dataset: a name for the report.
    progress: called with an `AttackProgress` after every attack of a chunk.
    strategy: spread each chunk over its replicas (default: the current
      strategy). Build `logits_fn`'s model in its scope.
    num_examples: the number of examples (a dataset's), for progress.

  Returns:
    An `AutoAttackReport` with per-example results.
  """
  eps = float(next(e for e in (eps, options.eps, 8 / 255) if e is not None))
  if not (math.isfinite(eps) and 0.0 <= eps and (options.norm == "l2" or eps <= 1.0)):
    raise ValueError(
      f"eps must be in [0, 1] (linf) or finite and >= 0 (l2), got {eps} under {options.norm}."
    )
  options = dataclasses.replace(options, eps=eps)
  replicas = Replicas(strategy)
  if num_examples is None and not isinstance(images, tf.data.Dataset):
    num_examples = len(images)
  if num_examples is not None and options.max_examples:
    num_examples = min(num_examples, options.max_examples)
  logits_call = tf.function(lambda z: tf.cast(logits_fn(z), tf.float32), reduce_retracing=True)
  fns = None
  seconds = {name: 0.0 for name in options.attacks}
  parts = []  # Per chunk: (ids, labels, clean, robust after each attack).
  done, robust_so_far, start = 0, 0, time.time()
  chunk = (options.batch_size or DEFAULT_BATCH_SIZE) * replicas.count
  for x, y, idx in _first(_chunks(images, labels, index, chunk), options.max_examples):
    clean_logits = replicas.map(logits_call, [x], cap=chunk)
    num_classes = clean_logits.shape[-1]
    if fns is None:
      fns = _attack_functions(logits_fn, options, num_classes)
      n_targets = max(1, min(options.targets, num_classes - 1))
    clean = clean_logits.argmax(-1) == y
    order = np.argsort(-clean_logits, axis=-1, kind="stable")
    robust = clean.copy()
    after = {}
    # Per example: image, label, radius, id, then the target of each rank.
    inputs = (x, y.astype(np.int64), np.full(len(y), eps, np.float32), idx)
    for name in options.attacks:
      passes = n_targets if name in TARGETED else 1
      attack_start = time.time()
      for p in range(passes):
        rows = np.flatnonzero(robust)
        if len(rows):
          targets = order[rows, p + 1].astype(np.int32)
          args = [a[rows] for a in inputs] + [targets]
          robust[rows] &= replicas.map(fns[name], args, shared=[np.int64(p + 1)], cap=chunk)
        if progress is not None:
          last = name == options.attacks[-1] and p == passes - 1
          progress(
            AttackProgress(
              attack=name,
              pass_index=p,
              passes=passes,
              done=done + (len(y) if last else 0),
              total=num_examples,
              robust_left=robust_so_far + int(robust.sum()),
              elapsed=time.time() - start,
              chunk=(done, done + len(y)),
            )
          )
      seconds[name] += time.time() - attack_start
      after[name] = robust.copy()
    del x  # Only per-example results outlive the chunk.
    parts.append((idx, y, clean, after))
    done += len(y)
    robust_so_far += int(robust.sum())
  return _report(parts, options, dataset, seconds)


def _report(parts, options, dataset, seconds) -> AutoAttackReport:
  """The report from per-chunk (ids, labels, clean, {attack: robust})."""
  if not parts:
    raise ValueError("The dataset is empty.")
  idx, y, clean = (np.concatenate([p[i] for p in parts]) for i in range(3))
  robust_after = {name: np.concatenate([p[3][name] for p in parts]) for name in options.attacks}
  robust = robust_after[options.attacks[-1]]
  broken_by = np.where(clean, "", "clean").astype(object)
  still = clean.copy()
  for name in options.attacks:
    broken_by[still & ~robust_after[name]] = name
    still &= robust_after[name]
  return AutoAttackReport(
    eps=options.eps,
    num_examples=len(y),
    clean_accuracy=float(clean.mean()),
    robust_accuracy=float(robust.mean()),
    accuracy_after={k: float(v.mean()) for k, v in robust_after.items()},
    seconds=seconds,
    options=options,
    dataset=dataset,
    clean_correct=clean,
    robust=robust,
    robust_after=robust_after,
    index=idx.astype(np.int64),
    labels=y,
    broken_by=broken_by,
  )
