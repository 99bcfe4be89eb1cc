"""The threat model's geometry: L-inf and L2 balls, in one place.

Every training attack (PGD, FGSM-RS, TRADES' KL attack, Algorithm 2's
probes) and the validation PGD take their step direction, projection and
random start from here, so `norm` means the same thing everywhere:

* linf: |x - x0|_inf <= eps. The step is eps-free sign(grad); projection
  clips each pixel to [x0 - eps, x0 + eps] and [0, 1]; the random start is
  uniform in the cube (Madry et al.).
* l2: |x - x0|_2 <= eps (over all pixels and channels of one example). The
  step is the gradient divided by its L2 norm; projection scales the
  perturbation back onto the ball if it is outside, then clips to [0, 1]
  (clipping only shortens it, so the result lies in both sets): the formula
  of AutoAttack's L2 APGD, x0 + d / (|d| + 1e-12) * min(eps, |d|), and the
  order of the `robustness` library's L2 PGD (TRADES' L2 code clips first).
  The random start is a uniformly random direction on the sphere of radius
  eps, clipped to [0, 1] (the start of AutoAttack's L2 APGD and of the
  `robustness` library's L2 PGD).

Radii are per example ([B]); an example of radius 0 never moves.
"""

import tensorflow as tf

from iaat_tf.config import NORMS  # The one list of norms ("linf", "l2").
from iaat_tf.tensors import rows

_TINY = 1e-12


def check_norm(norm: str) -> str:
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
  return norm


def l2_norm(x: tf.Tensor) -> tf.Tensor:
  """[B] L2 norm of each example of [B, ...] `x`."""
  x = tf.convert_to_tensor(x, tf.float32)
  flat = tf.reshape(x, [tf.shape(x)[0], -1])
  return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=-1))


def size(delta: tf.Tensor, norm: str) -> tf.Tensor:
  """[B] the `norm` of each example of [B, ...] `delta` (e.g. x - x0)."""
  if check_norm(norm) == "l2":
    return l2_norm(delta)
  delta = tf.convert_to_tensor(delta, tf.float32)
  return tf.reduce_max(tf.abs(tf.reshape(delta, [tf.shape(delta)[0], -1])), axis=-1)


def direction(grad: tf.Tensor, norm: str) -> tf.Tensor:
  """The steepest-ascent unit step: sign(grad) (linf) or grad / |grad|_2 (l2).

  A zero gradient gives a zero step in both norms.
  """
  if check_norm(norm) == "l2":
    return grad / rows(l2_norm(grad) + _TINY, grad)
  return tf.sign(grad)


class Ball:
  """Each example's feasible set: its `norm` ball of radius eps, inside [0, 1].

  Built once per attack (the bounds are computed once); `take(idx)` is the
  ball of a subset of the rows (for attacks that run only undecided rows).
  """

  def __init__(
    self, images: tf.Tensor, eps: tf.Tensor, norm: str = "linf", _eps_b: tf.Tensor | None = None
  ):
    self.norm = check_norm(norm)
    self.images = tf.convert_to_tensor(images, tf.float32)
    self.eps_b = rows(tf.cast(eps, tf.float32), self.images) if _eps_b is None else _eps_b
    if self.norm == "linf":
      self.lower = tf.maximum(self.images - self.eps_b, 0.0)
      self.upper = tf.minimum(self.images + self.eps_b, 1.0)

  def take(self, idx: tf.Tensor) -> "Ball":
    return Ball(tf.gather(self.images, idx), None, self.norm, _eps_b=tf.gather(self.eps_b, idx))

  def project(self, x: tf.Tensor) -> tf.Tensor:
    """The point of the set nearest `x` (linf), or `x` scaled then clipped (l2)."""
    if self.norm == "linf":
      return tf.clip_by_value(x, self.lower, self.upper)
    delta = x - self.images
    size = rows(l2_norm(delta), delta)
    inside = delta / (size + _TINY) * tf.minimum(self.eps_b, size)
    return tf.clip_by_value(self.images + inside, 0.0, 1.0)

  def step(self, x: tf.Tensor, grad: tf.Tensor, step_b: tf.Tensor) -> tf.Tensor:
    """One projected steepest-ascent step of per-example length `step_b`."""
    return self.project(x + step_b * direction(grad, self.norm))

  def start(self, noise: tf.Tensor) -> tf.Tensor:
    """A random start from `noise` like the images: uniform [0, 1) draws u
    under linf (x0 + (2u - 1) eps), standard normal draws n under l2
    (x0 + eps n / |n|_2); projected. `attacks.uniform_start` draws the
    right kind."""
    if self.norm == "linf":
      return self.project(self.images + (2.0 * noise - 1.0) * self.eps_b)
    unit = noise / rows(l2_norm(noise) + _TINY, noise)
    return self.project(self.images + self.eps_b * unit)
