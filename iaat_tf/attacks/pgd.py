"""PGD with a per-example radius (L-inf or L2): the one PGD core of the package.

Everything here is pure TensorFlow math on a `logits_fn(images) -> logits`
callable, so the same code serves training (inside `train_step`), evaluation
and tests. Images are float32 in [0, 1], NHWC; `eps` is one radius per example.
The classifier is expected to be called in inference mode by `logits_fn`
(BatchNorm uses moving statistics), on logits (never softmax outputs).
`norm` ("linf" or "l2") picks the threat model; its geometry (step
direction, projection, random start) is `norms.py`; the random start's
keyed noise is `noise.py`. `pgd_step` is the one step, `pgd_from` its loop,
`pgd_attack` the loop from a keyed random start; `pgd_run` adds the outcome
(still correct?) and its options (early stopping, a subset of rows, the
outcome at the start); `PGD` holds one attack's settings as one spec.
"""

import dataclasses
from typing import Callable, NamedTuple

import tensorflow as tf

from iaat_tf.attacks import gradients, noise, norms
from iaat_tf.attacks.objectives import UNTARGETED
from iaat_tf.tensors import rows as rows_of

LogitsFn = Callable[[tf.Tensor], tf.Tensor]
# pgd_run's early stopping: none (every example runs every step), batch (the
# whole batch runs until every example is decided), example (only the
# undecided examples run each step).
EARLY_STOPS = ("none", "batch", "example")


def broadcast_eps(eps: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
  """Per-example radii [B] as [B, 1, 1, 1] (any rank) in `images`' dtype."""
  return rows_of(tf.cast(eps, images.dtype), images)


def pgd_step_size(eps: tf.Tensor, step_ratio: float, min_step: float) -> tf.Tensor:
  """max(eps * ratio, min_step) per example.

  With ratio = 2 / k (`AttackConfig.ratio` when `step_ratio` is 0) this is
  the IAAT authors' max(eps / (0.5 k), 2/255) at min_step = 2/255.
  """
  return tf.maximum(eps * step_ratio, min_step)


def pgd_attack(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  *,
  steps: int,
  step_size: tf.Tensor,
  random_start: bool = True,
  index: tf.Tensor | None = None,
  step: tf.Tensor | int = 0,
  salt: int = 0,
  seed: int = 0,
  loss: str = "ce",
  norm: str = "linf",
) -> tf.Tensor:
  """Projected gradient ascent on `loss` inside each example's `norm` ball.

  Args:
    logits_fn: images -> logits (run the classifier in inference mode).
    images: [B, H, W, C] float32 in [0, 1].
    labels: [B] int class ids.
    eps: [B] per-example radii (a scalar is broadcast).
    steps: number of steps (k): signed gradient (linf) or L2-normalised
      gradient (l2).
    step_size: [B] or scalar step size (the step's length in `norm`).
    random_start: start at a random point of the ball (`norms.Ball.start`;
      noise keyed by `index`).
    index: [B] stable example ids; required for `random_start` (defaults to
      the position in the batch, which is only stable for fixed batches).
    step, salt, seed: mixed into the random start (see `per_example_uniform`).
    loss: "ce" (cross-entropy) or "margin" (CW margin).
    norm: "linf" or "l2" (`norms.NORMS`).

  The input gradient is `gradients.value_and_gradient`, so the attack keeps
  its strength under mixed_float16.

  Returns:
    Adversarial images, with |x_adv - x| <= eps (in `norm`) per example and
    in [0, 1].
    Gradients do not flow back through the attack.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  batch = tf.shape(images)[0]
  eps = tf.broadcast_to(tf.cast(eps, tf.float32), [batch])
  step_size = tf.broadcast_to(tf.cast(step_size, tf.float32), [batch])
  if random_start:
    if index is None:
      index = tf.range(batch, dtype=tf.int64)
    x_adv = uniform_start(images, eps, index, step, salt, seed, norm)
  else:
    x_adv = images
  return pgd_from(logits_fn, images, labels, x_adv, eps, step_size, steps, loss=loss, norm=norm)


def uniform_start(
  images: tf.Tensor,
  eps: tf.Tensor,
  index: tf.Tensor,
  step,
  salt: int,
  seed: int,
  norm: str = "linf",
) -> tf.Tensor:
  """PGD's random start in each example's ball (keyed noise), in [0, 1].

  linf: uniform in the cube; l2: uniform on the sphere (`norms.Ball.start`).
  """
  images = tf.convert_to_tensor(images, tf.float32)
  draw = noise.per_example_normal if norm == "l2" else noise.per_example_uniform
  return norms.Ball(images, eps, norm).start(draw(tf.shape(images), index, step, salt, seed))


def pgd_step(
  logits_fn: LogitsFn,
  x: tf.Tensor,
  labels: tf.Tensor,
  step_b: tf.Tensor,
  ball: norms.Ball,
  loss: str = "ce",
) -> tuple[tf.Tensor, tf.Tensor]:
  """One steepest-ascent step, projected to `ball`: (x_new, logits at x).

  The one PGD step of the package: every PGD loop (training attack,
  Algorithm 2's probes and their early-stopping variants, evaluation) takes
  it, so the input gradient is always `gradients.value_and_gradient` (safe
  under mixed_float16). `step_b` broadcasts against `x`; the ball's norm
  sets the direction (sign or L2-normalised gradient).
  """
  loss_fn = UNTARGETED[loss]
  # The L2 direction needs the gradient's true direction: the per-example
  # rescaling of `exact_scale=False` is a positive factor, so it is kept.
  logits, _, grad = gradients.value_and_gradient(
    logits_fn, x, lambda z: loss_fn(z, labels), exact_scale=False
  )
  return ball.step(x, grad, step_b), logits


def pgd_from(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  x_start: tf.Tensor,
  eps: tf.Tensor,
  step_size: tf.Tensor,
  steps: int,
  loss: str = "ce",
  norm: str = "linf",
) -> tf.Tensor:
  """`steps` PGD steps (`pgd_step`) from `x_start` inside each example's ball."""
  images = tf.convert_to_tensor(images, tf.float32)
  ball = norms.Ball(images, eps, norm)
  step_b = broadcast_eps(step_size, images)

  def body(i, x):
    x, _ = pgd_step(logits_fn, x, labels, step_b, ball, loss)
    return i + 1, x

  _, x_adv = tf.while_loop(
    lambda i, _: i < steps,
    body,
    (tf.constant(0), tf.convert_to_tensor(x_start, tf.float32)),
    maximum_iterations=steps,
  )
  return tf.stop_gradient(x_adv)


def is_correct(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """[B] bool: argmax(logits) == label."""
  return tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32))


class Outcome(NamedTuple):
  """How a `pgd_run` ended: x_adv, the last iterate (an early-stopped
  example keeps the one that broke it, a row outside `rows` its start);
  correct, [B] bool, still classified correctly at the last iterate (early
  stopping: at every one, the start included; False outside `rows`);
  start_correct, correct at the start (`judge_start`; else None)."""

  x_adv: tf.Tensor
  correct: tf.Tensor
  start_correct: tf.Tensor | None = None


def pgd_run(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  x_start: tf.Tensor,
  eps: tf.Tensor,
  step_size: tf.Tensor,
  steps: int,
  *,
  early_stop: str = "none",
  rows: tf.Tensor | None = None,
  judge_start: bool = False,
  loss: str = "ce",
  norm: str = "linf",
) -> Outcome:
  """`steps` PGD steps from `x_start` (`pgd_from`'s arguments) and their `Outcome`.

  The options keep the full loop's adversarial examples wherever they run
  and no early stop has decided:
    early_stop: "batch" / "example": an example is decided once an iterate
      (the start included) is misclassified, keeps that iterate, and the run
      ends when all are decided; "batch" runs the whole batch each step
      (static shapes, XLA-friendly), "example" the undecided rows only.
    rows: [B] bool: attack only these rows (as their own batch).
    judge_start: the outcome at `x_start` from the first step's logits (no
      extra forward pass); whole batch, no early stop, `steps` >= 1.
  """
  if early_stop not in EARLY_STOPS:
    raise ValueError(f"early_stop={early_stop!r}; expected one of {EARLY_STOPS}")
  images = tf.convert_to_tensor(images, tf.float32)
  batch = tf.shape(images)[0]
  eps = tf.broadcast_to(tf.cast(eps, tf.float32), [batch])
  step_size = tf.broadcast_to(tf.cast(step_size, tf.float32), [batch])
  x_start = tf.convert_to_tensor(x_start, tf.float32)
  if judge_start:
    if early_stop != "none" or rows is not None or steps < 1:
      raise ValueError("judge_start runs at least one step on the whole batch, no early stop")
    return _judged_from_start(logits_fn, images, labels, x_start, eps, step_size, steps, loss, norm)
  if early_stop != "none":
    return _early_stopped(
      logits_fn, images, labels, x_start, eps, step_size, steps, rows, early_stop, loss, norm
    )
  return _to_the_end(logits_fn, images, labels, x_start, eps, step_size, steps, rows, loss, norm)


def _to_the_end(logits_fn, images, labels, x_start, eps, step_size, steps, rows, loss, norm):
  """Every step, then the outcome at the last iterate; only `rows` run."""

  def run(images, labels, x_start, eps, step_size):
    x = pgd_from(logits_fn, images, labels, x_start, eps, step_size, steps, loss=loss, norm=norm)
    return x, is_correct(logits_fn(x), labels)

  if rows is None:
    return Outcome(*run(images, labels, x_start, eps, step_size))
  idx = tf.where(rows)[:, 0]
  batch = tf.shape(labels, out_type=tf.int64)[:1]

  def subset():
    x, correct = run(*[tf.gather(t, idx) for t in (images, labels, x_start, eps, step_size)])
    return (
      tf.tensor_scatter_nd_update(x_start, idx[:, None], x),
      tf.scatter_nd(idx[:, None], correct, batch),
    )

  x_adv, correct = tf.cond(tf.size(idx) > 0, subset, lambda: (x_start, tf.zeros(batch, tf.bool)))
  return Outcome(x_adv, correct)


def _early_stopped(
  logits_fn, images, labels, x_start, eps, step_size, steps, rows, mode, loss, norm
):
  """PGD in which an example is decided (broken) once an iterate is misclassified."""
  per_example = mode == "example"
  ball = norms.Ball(images, eps, norm)
  step_b = broadcast_eps(step_size, images)
  batch = tf.shape(labels, out_type=tf.int64)
  decided = tf.zeros(batch, tf.bool) if rows is None else ~rows  # Rows outside never run.
  broken = tf.zeros(batch, tf.bool)

  def body(i, x, decided, broken):
    # One PGD step; its logits (at the iterate before the step) decide which
    # examples are already broken.
    if per_example:
      idx = tf.where(~decided)[:, 0]
      x_a = tf.gather(x, idx)
      y_a = tf.gather(labels, idx)
      x_new, logits = pgd_step(logits_fn, x_a, y_a, tf.gather(step_b, idx), ball.take(idx), loss)
      wrong = ~is_correct(logits, y_a)
      # Broken rows keep the iterate that broke them.
      x_new = tf.where(rows_of(wrong, x_a), x_a, x_new)
      x = tf.tensor_scatter_nd_update(x, idx[:, None], x_new)
      wrong_full = tf.scatter_nd(idx[:, None], wrong, batch)
    else:
      x_new, logits = pgd_step(logits_fn, x, labels, step_b, ball, loss)
      wrong_full = ~is_correct(logits, labels) & ~decided
      x = tf.where(rows_of(decided | wrong_full, x), x, x_new)
    return i + 1, x, decided | wrong_full, broken | wrong_full

  cond = lambda i, x, decided, broken: (i < steps) & ~tf.reduce_all(decided)
  _, x, decided, broken = tf.while_loop(
    cond, body, (tf.constant(0), x_start, decided, broken), maximum_iterations=steps
  )

  def last_check():  # The final iterate of the undecided examples.
    idx = tf.where(~decided)[:, 0]
    wrong = ~is_correct(logits_fn(tf.gather(x, idx)), tf.gather(labels, idx))
    return broken | tf.scatter_nd(idx[:, None], wrong, batch)

  if per_example:
    broken = tf.cond(tf.reduce_all(decided), lambda: broken, last_check)
  else:
    broken = tf.cond(
      tf.reduce_all(decided),
      lambda: broken,
      lambda: broken | (~decided & ~is_correct(logits_fn(x), labels)),
    )
  correct = ~broken if rows is None else ~broken & rows
  return Outcome(tf.stop_gradient(x), correct)


def _judged_from_start(logits_fn, images, labels, x_start, eps, step_size, steps, loss, norm):
  """The first step by hand, whose logits (at `x_start`) give the outcome
  there, then the others (`pgd_from`)."""
  ball = norms.Ball(images, eps, norm)
  x, logits = pgd_step(logits_fn, x_start, labels, broadcast_eps(step_size, images), ball, loss)
  if steps > 1:
    x = pgd_from(logits_fn, images, labels, x, eps, step_size, steps - 1, loss=loss, norm=norm)
  return Outcome(x, is_correct(logits_fn(x), labels), is_correct(logits, labels))


@dataclasses.dataclass(frozen=True)
class PGD:
  """One PGD attack's settings: `steps` steps of max(eps * step_ratio,
  min_step) per example in the `norm` ball, on `loss`, from a random start
  keyed by (example id, step, salt, `seed`) or from the image; `early_stop`
  as `pgd_run`'s.

  The spec every training-time PGD is built from (the training attack,
  Algorithm 2's probes: training/probes.py); evaluation calls the functions.
  """

  steps: int
  step_ratio: float
  min_step: float = 0.0
  random_start: bool = True
  norm: str = "linf"
  loss: str = "ce"
  seed: int = 0
  early_stop: str = "none"

  def step_size(self, eps) -> tf.Tensor:
    """[B] max(eps * step_ratio, min_step) (`pgd_step_size`)."""
    return pgd_step_size(eps, self.step_ratio, self.min_step)

  def start(self, images, eps, index, step, salt: int) -> tf.Tensor:
    """The first iterate: the keyed random start (`uniform_start`), or the images."""
    images = tf.convert_to_tensor(images, tf.float32)
    if not self.random_start:
      return images
    return uniform_start(images, eps, index, step, salt, self.seed, self.norm)

  def attack(self, logits_fn: LogitsFn, images, labels, eps, index, step, salt: int) -> tf.Tensor:
    """The adversarial images of every step from `start` (`pgd_attack`)."""
    return pgd_attack(
      logits_fn,
      images,
      labels,
      eps,
      steps=self.steps,
      step_size=self.step_size(eps),
      random_start=self.random_start,
      index=index,
      step=step,
      salt=salt,
      seed=self.seed,
      loss=self.loss,
      norm=self.norm,
    )

  def run(
    self,
    logits_fn: LogitsFn,
    images,
    labels,
    eps,
    x_start,
    *,
    rows: tf.Tensor | None = None,
    judge_start: bool = False,
  ) -> Outcome:
    """`pgd_run` from `x_start` with these settings (`rows`, `judge_start`: its options)."""
    eps = tf.cast(eps, tf.float32)
    return pgd_run(
      logits_fn,
      images,
      labels,
      x_start,
      eps,
      self.step_size(eps),
      self.steps,
      early_stop=self.early_stop,
      rows=rows,
      judge_start=judge_start,
      loss=self.loss,
      norm=self.norm,
    )
