"""AutoAttack "standard" (Croce & Hein, 2020), L-inf, native in TensorFlow.

    report = autoattack.run_standard(logits_fn, images, labels, eps=8 / 255)
    print(report.robust_accuracy, report.to_dict())

The standard sequence is APGD-CE, APGD-T (targeted DLR loss, the 9 most
likely wrong classes), FAB-T (9 targets) and Square (5,000 queries,
gradient-free). Each attack runs only on the examples that are still robust,
and an example is robust iff it is correctly classified when clean and
survived every attack; the report keeps these per-example masks. Iteration
and query counts are options (tests use small ones); the defaults are
AutoAttack's standard settings.

`logits_fn` is any images -> logits callable (a Keras model in inference mode,
a SavedModel's `serve`); images are float32 NHWC in [0, 1]. Attacks are
batched (`batch_size`), their random starts are keyed by the example id, so
an example's result does not depend on which batch it is in, and input
gradients are mixed-precision safe (`gradients.py`). Runs on one device: under
a MirroredStrategy, call it outside the strategy (attacks are evaluation
only; data-parallel sharding is not implemented).
"""

import dataclasses
import math
import platform
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from iaat_tf.attacks import apgd
from iaat_tf import attacks
from iaat_tf.attacks import fab
from iaat_tf.evaluation import robustness
from iaat_tf.attacks import square

LogitsFn = attacks.LogitsFn
APGD_CE, APGD_T, FAB_T, SQUARE = "apgd-ce", "apgd-t", "fab-t", "square"
STANDARD = (APGD_CE, APGD_T, FAB_T, SQUARE)
TARGETED = (APGD_T, FAB_T)


@dataclasses.dataclass(frozen=True)
class AutoAttackOptions:
  """Settings; the defaults are AutoAttack's "standard" version."""
  attacks: Sequence[str] = STANDARD
  apgd_iters: int = 100
  targets: int = 9  # Target classes of APGD-T and FAB-T (fewer if fewer classes).
  fab_iters: int = 100
  square_queries: int = 5000
  square_p_init: float = 0.8
  batch_size: int = 500
  seed: int = 0
  jit_compile: bool = False

  def __post_init__(self):
    unknown = [a for a in self.attacks if a not in STANDARD]
    if unknown or not self.attacks:
      raise ValueError(f"Unknown AutoAttack attack(s) {unknown or '(none)'}; "
                       f"choose from {', '.join(STANDARD)}.")
    for name in ("apgd_iters", "targets", "fab_iters", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"AutoAttack {name} must be >= 1.")
    if self.square_queries < 0 or not 0.0 < self.square_p_init <= 1.0:
      raise ValueError("square_queries must be >= 0 and square_p_init in (0, 1].")


@dataclasses.dataclass(frozen=True)
class AttackProgress:
  """What a progress callback receives after every batch of an attack."""
  attack: str
  pass_index: int  # 0-based target rank - 1 for targeted attacks, else 0.
  passes: int
  done: int  # Examples done in this pass.
  total: int  # Examples attacked in this pass.
  robust_left: int  # Examples still robust overall.
  elapsed: float  # Seconds since this attack started.
  eta: float  # Estimated seconds left for this attack.

  def line(self) -> str:
    target = (f" target {self.pass_index + 1}/{self.passes}"
              if self.passes > 1 else "")
    return (f"{self.attack}{target}: {self.done}/{self.total} attacked, "
            f"{self.robust_left} robust left, {self.elapsed:.0f}s elapsed, "
            f"ETA {self.eta:.0f}s")


ProgressFn = Callable[[AttackProgress], None]


@dataclasses.dataclass
class AutoAttackReport:
  """The result of `run_standard`.

  accuracy_after: attack -> robust accuracy after it (and all before it),
    in sequence order. seconds: attack -> wall time. robust_after: attack ->
    [N] bool masks; clean_correct, robust and index are [N] arrays.
  """
  eps: float
  num_examples: int
  clean_accuracy: float
  robust_accuracy: float
  accuracy_after: dict[str, float]
  seconds: dict[str, float]
  options: AutoAttackOptions
  dataset: str = ""
  clean_correct: np.ndarray = dataclasses.field(default=None, repr=False)
  robust: np.ndarray = dataclasses.field(default=None, repr=False)
  robust_after: dict[str, np.ndarray] = dataclasses.field(
      default_factory=dict, repr=False)
  index: np.ndarray = dataclasses.field(default=None, repr=False)

  def masking_warnings(self) -> list[str]:
    return robustness.sequence_masking_report(self.to_dict(versions=False))

  def to_dict(self, versions: bool = True) -> dict[str, Any]:
    """JSON-serialisable, in RobustBench's spirit."""
    out = {
        "dataset": self.dataset, "norm": "Linf", "eps": float(self.eps),
        "n_examples": int(self.num_examples),
        "clean_accuracy": float(self.clean_accuracy),
        "robust_accuracy": float(self.robust_accuracy),
        "attacks": list(self.accuracy_after),
        "accuracy_after_attack": {k: float(v)
                                  for k, v in self.accuracy_after.items()},
        "seconds_per_attack": {k: round(float(v), 3)
                               for k, v in self.seconds.items()},
        "settings": {k: (list(v) if isinstance(v, (tuple, list)) else v)
                     for k, v in dataclasses.asdict(self.options).items()},
    }
    if versions:
      out["versions"] = package_versions()
    return out


def package_versions() -> dict[str, str]:
  import keras  # pylint: disable=g-import-not-at-top
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    iaat = metadata.version("iaat_tf")
  except Exception:  # Not installed as a package (a source checkout).
    iaat = "source"
  return {"iaat_tf": iaat, "tensorflow": tf.__version__,
          "keras": keras.__version__, "numpy": np.__version__,
          "python": platform.python_version()}


def _materialise(images, labels, index) -> tuple[np.ndarray, np.ndarray,
                                                 np.ndarray]:
  """(images, labels, index) as numpy arrays from arrays or a dataset."""
  if isinstance(images, tf.data.Dataset):
    if labels is not None:
      raise ValueError("Pass labels inside the dataset, not as `labels`.")
    xs, ys, ids, offset = [], [], [], 0
    for x, y in images:
      batch_images, batch_index = robustness.split_inputs(x, offset)
      xs.append(batch_images.numpy())
      ys.append(np.asarray(y))
      ids.append(batch_index.numpy())
      offset += len(ys[-1])
    if not xs:
      raise ValueError("The dataset is empty.")
    return (np.concatenate(xs).astype(np.float32), np.concatenate(ys),
            np.concatenate(ids).astype(np.int64))
  if labels is None:
    raise ValueError("`labels` is required with an image array.")
  x = np.asarray(images, np.float32)
  y = np.asarray(labels)
  if len(x) != len(y):
    raise ValueError(f"{len(x)} images but {len(y)} labels.")
  idx = (np.arange(len(x), dtype=np.int64) if index is None
         else np.asarray(index, np.int64))
  return x, y, idx


def _bucket(n: int, batch_size: int) -> int:
  """Pads partial batches to a power of two (bounded retracing and XLA shapes)."""
  return min(batch_size, max(8, 1 << (n - 1).bit_length()))


def _attack_functions(logits_fn: LogitsFn, options: AutoAttackOptions,
                      num_classes: int) -> dict[str, Callable[..., tf.Tensor]]:
  """attack -> tf.function (images, labels, eps, index, targets, rank) -> robust."""
  seed = options.seed
  ce = apgd.ApgdOptions(n_iter=options.apgd_iters, loss="ce",
                        salt=attacks.Salt.AA_APGD_CE, seed=seed)
  targeted = apgd.ApgdOptions(n_iter=options.apgd_iters,
                              loss=apgd.targeted_loss_for(num_classes),
                              salt=attacks.Salt.AA_APGD_T, seed=seed)
  fab_options = fab.FabOptions(n_iter=options.fab_iters)

  def final(x_adv, labels):
    return attacks.is_correct(logits_fn(x_adv), labels)

  def apgd_ce(images, labels, eps, index, targets, rank):
    del targets, rank
    result = apgd.apgd_attack(logits_fn, images, labels, eps, ce, index=index)
    return tf.logical_and(result.robust, final(result.adversarial, labels))

  def apgd_t(images, labels, eps, index, targets, rank):
    # The target rank keys the random start, like one restart per target.
    result = apgd.apgd_attack(logits_fn, images, labels, eps, targeted,
                              index=index, step=rank, targets=targets)
    return tf.logical_and(result.robust, final(result.adversarial, labels))

  def fab_t(images, labels, eps, index, targets, rank):
    del index, rank
    return fab.fab_robust(logits_fn, images, labels, eps, targets, fab_options)

  def square_(images, labels, eps, index, targets, rank):
    del targets, rank
    return square.square_attack(
        logits_fn, images, labels, eps, n_queries=options.square_queries,
        p_init=options.square_p_init, index=index, seed=seed,
        only_unbroken=not options.jit_compile).robust

  fns = {APGD_CE: apgd_ce, APGD_T: apgd_t, FAB_T: fab_t, SQUARE: square_}
  return {name: tf.function(fn, jit_compile=options.jit_compile,
                            reduce_retracing=True)
          for name, fn in fns.items()}


def run_standard(logits_fn: LogitsFn,
                 images,
                 labels=None,
                 eps: float = 8 / 255,
                 *,
                 options: AutoAttackOptions = AutoAttackOptions(),
                 index=None,
                 dataset: str = "",
                 progress: Optional[ProgressFn] = None) -> AutoAttackReport:
  """Runs the AutoAttack sequence at L-inf radius `eps`.

  Args:
    logits_fn: images -> logits (inference mode), e.g. a Keras model or
      `tf.saved_model.load(path).serve`.
    images: [N, H, W, C] float32 in [0, 1], or a tf.data.Dataset of
      (images or {"image", "index"}, labels) batches (labels then None). The
      examples are held in host memory.
    labels: [N] int class ids (with an image array).
    eps: the L-inf radius.
    options: an `AutoAttackOptions` (attacks, counts, batch size, seed).
    index: [N] stable example ids keying the random starts (default
      0..N-1, or the dataset's "index" feature).
    dataset: a name for the report.
    progress: called with an `AttackProgress` after every batch.

  Returns:
    An `AutoAttackReport` with per-example masks.
  """
  if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
    raise ValueError(f"eps must be in [0, 1], got {eps}.")
  x, y, idx = _materialise(images, labels, index)
  n = len(x)
  bs = options.batch_size
  logits_call = tf.function(lambda z: tf.cast(logits_fn(z), tf.float32),
                            reduce_retracing=True)
  logit_parts = [logits_call(tf.constant(x[i:i + bs])).numpy()
                 for i in range(0, n, bs)]
  clean_logits = np.concatenate(logit_parts) if logit_parts else np.zeros([0, 1])
  num_classes = clean_logits.shape[-1]
  clean = clean_logits.argmax(-1) == y
  n_targets = max(1, min(options.targets, num_classes - 1))
  order = np.argsort(-clean_logits, axis=-1, kind="stable")
  fns = _attack_functions(logits_fn, options, num_classes)

  robust = clean.copy()
  accuracy_after, seconds, robust_after = {}, {}, {}
  for name in options.attacks:
    passes = n_targets if name in TARGETED else 1
    start = time.time()
    for p in range(passes):
      todo = np.flatnonzero(robust)
      for b in range(0, len(todo), bs):
        rows = todo[b:b + bs]
        padded = np.concatenate(
            [rows, np.repeat(rows[:1], _bucket(len(rows), bs) - len(rows))])
        ok = fns[name](
            tf.constant(x[padded]), tf.constant(y[padded], tf.int64),
            tf.fill([len(padded)], tf.constant(eps, tf.float32)),
            tf.constant(idx[padded]),
            tf.constant(order[padded, p + 1], tf.int32),
            tf.constant(p + 1, tf.int64)).numpy()[:len(rows)]
        robust[rows] &= ok
        if progress is not None:
          elapsed = time.time() - start
          fraction = (p + (b + len(rows)) / len(todo)) / passes
          progress(AttackProgress(
              attack=name, pass_index=p, passes=passes, done=b + len(rows),
              total=len(todo), robust_left=int(robust.sum()),
              elapsed=elapsed, eta=elapsed * (1 - fraction) / fraction))
    seconds[name] = time.time() - start
    accuracy_after[name] = float(robust.mean()) if n else 0.0
    robust_after[name] = robust.copy()
  return AutoAttackReport(
      eps=float(eps), num_examples=n,
      clean_accuracy=float(clean.mean()) if n else 0.0,
      robust_accuracy=float(robust.mean()) if n else 0.0,
      accuracy_after=accuracy_after, seconds=seconds, options=options,
      dataset=dataset, clean_correct=clean, robust=robust,
      robust_after=robust_after, index=idx)
