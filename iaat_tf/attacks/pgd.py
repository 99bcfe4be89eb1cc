"""PGD with a per-example radius (L-inf or L2): the one PGD core of the package.

Everything here is pure TensorFlow math on a `logits_fn(images) -> logits`
callable, so the same code serves training (inside `train_step`), evaluation
and tests. Images are float32 in [0, 1], NHWC; `eps` is one radius per example.
The classifier is expected to be called in inference mode by `logits_fn`
(BatchNorm uses moving statistics), on logits (never softmax outputs).
`norm` ("linf" or "l2") picks the threat model; its geometry (step
direction, projection, random start) is `norms.py`; the random start's
keyed noise is `noise.py`.
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.attacks import gradients, noise, norms
from iaat_tf.attacks.objectives import UNTARGETED
from iaat_tf.tensors import rows

LogitsFn = Callable[[tf.Tensor], tf.Tensor]


def broadcast_eps(eps: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
  """Per-example radii [B] as [B, 1, 1, 1] (any rank) in `images`' dtype."""
  return rows(tf.cast(eps, images.dtype), images)


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
