"""FAB-T (Croce & Hein, 2020): targeted Fast Adaptive Boundary attack, L-inf or L2.

FAB looks for the *smallest* perturbation (in `norm`) that changes the
decision. At each iteration it linearises the boundary between the true
class y and a target class t at the current point x1 (z_y - z_t and its
input gradient), computes the minimal step onto that hyperplane inside the
[0, 1] box
from x1 (d1) and from the clean image x0 (d2), and moves to a convex
combination of the two (weight alpha = |d1| / (|d1| + |d2|) in the norm, at most
alpha_max) with overshoot eta. When the new point is misclassified it is
recorded if it is the closest so far, and pulled back towards x0 by beta.
An example is broken at radius eps when the closest misclassified point
found is within eps (AutoAttack's success rule).

AutoAttack's standard FAB-T: 100 iterations, targets = the 9 classes with
the highest clean logits after the top one, alpha_max 0.1, eta 1.05,
beta 0.9, one run per target starting at the clean image (no randomness),
for both norms. The minimal steps are exact solves (`minimal_linf_step`,
`minimal_l2_step`), as the reference's projections are.
Everything is graph math on a `logits_fn(images) -> logits` callable;
gradients come from `gradients.value_and_gradient` (mixed-precision safe).
"""

import dataclasses
from typing import NamedTuple

import tensorflow as tf

from iaat_tf.attacks import gradients, norms, pgd

LogitsFn = pgd.LogitsFn
NOT_FOUND = 1e10  # The distance reported when no misclassified point was found.


@dataclasses.dataclass(frozen=True)
class FabOptions:
  """FAB-T settings (AutoAttack's standard values by default)."""

  n_iter: int = 100
  alpha_max: float = 0.1
  eta: float = 1.05
  beta: float = 0.9
  norm: str = "linf"  # "linf" or "l2" (norms.NORMS).

  def __post_init__(self):
    norms.check_norm(self.norm)
    if self.n_iter < 1:
      raise ValueError(f"FAB n_iter must be >= 1, got {self.n_iter}.")


class FabResult(NamedTuple):
  """adversarial: the closest misclassified point found (the clean image where
  none was found); distance: its distance in the options' norm (NOT_FOUND
  where none)."""

  adversarial: tf.Tensor
  distance: tf.Tensor


def _minimal_step(points: tf.Tensor, w: tf.Tensor, change: tf.Tensor, l2: bool) -> tf.Tensor:
  """The smallest d (L-inf, or L2 when `l2`) with w . d = change and
  points + d in [0, 1] (points, w [B, N]; change [B]).

  Moving along each pixel's helpful direction (the sign of w_i * change),
  pixel i goes min(lam s_i, room_i), room_i being its distance to the box
  edge and s_i its speed: 1 (L-inf: a cube of radius lam) or |w_i| (L2: the
  minimiser is the clipped multiple of w). The reachable change
  g(lam) = sum_i |w_i| min(lam s_i, room_i) is piecewise linear and
  nondecreasing with breakpoints room_i / s_i, so the exact lam solves
  g(lam) = |change| on one segment between sorted breakpoints. When no lam
  works (the box is in the way) d goes to the box corner.
  """
  w = w * tf.sign(change)[:, None]
  target = tf.abs(change)
  room = tf.where(w > 0, 1.0 - points, tf.where(w < 0, points, tf.zeros_like(points)))
  weight = tf.abs(w)
  speed = weight if l2 else tf.ones_like(weight)
  # A pixel that cannot move has its breakpoint beyond every other one.
  breaks = tf.where(speed > 0, room / tf.maximum(speed, 1e-30), tf.fill(tf.shape(room), 3e38))
  order = tf.argsort(breaks, axis=-1)
  breaks_sorted, weight_sorted, room_sorted, speed_sorted = (
    tf.gather(t, order, batch_dims=1) for t in (breaks, weight, room, speed)
  )
  saturated = tf.math.cumsum(weight_sorted * room_sorted, axis=-1, exclusive=True)
  rate = weight_sorted * speed_sorted
  free = tf.reduce_sum(rate, -1, keepdims=True) - tf.math.cumsum(rate, axis=-1, exclusive=True)
  free = tf.maximum(free, 0.0)  # Rounding of the running sums.
  # g at each sorted breakpoint; nondecreasing.
  reach = saturated + tf.where(free > 0, breaks_sorted * free, 0.0)
  k = tf.searchsorted(reach, target[:, None], side="left")[:, 0]
  n = tf.shape(points)[1]
  feasible = k < n
  k = tf.minimum(k, n - 1)
  lam = (target - tf.gather(saturated, k[:, None], batch_dims=1)[:, 0]) / (
    tf.maximum(tf.gather(free, k[:, None], batch_dims=1)[:, 0], 1e-30)
  )
  lam = tf.where(feasible, tf.maximum(lam, 0.0), tf.fill(tf.shape(lam), 3e38))
  return tf.sign(w) * tf.minimum(lam[:, None] * speed, room)


def minimal_linf_step(points: tf.Tensor, w: tf.Tensor, change: tf.Tensor) -> tf.Tensor:
  """The smallest-L-inf d with w . d = change and points + d in [0, 1]."""
  return _minimal_step(points, w, change, l2=False)


def minimal_l2_step(points: tf.Tensor, w: tf.Tensor, change: tf.Tensor) -> tf.Tensor:
  """The smallest-L2 d with w . d = change and points + d in [0, 1]."""
  return _minimal_step(points, w, change, l2=True)


MINIMAL_STEP = {"linf": minimal_linf_step, "l2": minimal_l2_step}


def _flat(x: tf.Tensor) -> tf.Tensor:
  return tf.reshape(x, [tf.shape(x)[0], -1])


def fab_targeted(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  targets: tf.Tensor,
  options: FabOptions = FabOptions(),
) -> FabResult:
  """One FAB run towards `targets` ([B] classes); graph math, no tf.function."""
  x0 = tf.convert_to_tensor(images, tf.float32)
  labels = tf.cast(labels, tf.int32)
  targets = tf.cast(targets, tf.int32)
  x0_flat = _flat(x0)
  shape = tf.shape(x0)

  def objective(logits):
    true = tf.gather(logits, labels[:, None], batch_dims=1)[:, 0]
    target = tf.gather(logits, targets[:, None], batch_dims=1)[:, 0]
    return true - target

  minimal_step = MINIMAL_STEP[options.norm]

  def body(i, x1, adv, best):
    _, df, dg = gradients.value_and_gradient(logits_fn, x1, objective)
    w = _flat(dg)
    x1_flat = _flat(x1)
    d1 = minimal_step(x1_flat, w, -df)
    d2 = minimal_step(x0_flat, w, -df + tf.reduce_sum(w * (x1_flat - x0_flat), -1))
    a1 = tf.maximum(norms.size(d1, options.norm), 1e-8)[:, None]
    a2 = tf.maximum(norms.size(d2, options.norm), 1e-8)[:, None]
    alpha = tf.clip_by_value(a1 / (a1 + a2), 0.0, options.alpha_max)
    x_new = tf.clip_by_value(
      (x1_flat + options.eta * d1) * (1.0 - alpha) + (x0_flat + options.eta * d2) * alpha, 0.0, 1.0
    )
    x_new = tf.reshape(x_new, shape)
    fooled = tf.logical_not(pgd.is_correct(logits_fn(x_new), labels))
    dist = norms.size(_flat(x_new) - x0_flat, options.norm)
    better = tf.logical_and(fooled, dist < best)
    rows = pgd.broadcast_eps(tf.cast(better, tf.float32), x0) > 0
    adv = tf.where(rows, x_new, adv)
    best = tf.where(better, dist, best)
    back = pgd.broadcast_eps(tf.cast(fooled, tf.float32), x0) > 0
    x_new = tf.where(back, x0 + (x_new - x0) * options.beta, x_new)
    return i + 1, x_new, adv, best

  best0 = tf.fill([shape[0]], tf.constant(NOT_FOUND, tf.float32))
  _, _, adv, best = tf.while_loop(
    lambda i, *_: i < options.n_iter,
    body,
    (tf.constant(0), x0, x0, best0),
    maximum_iterations=options.n_iter,
  )
  return FabResult(tf.stop_gradient(adv), best)


def fab_robust(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  targets: tf.Tensor,
  options: FabOptions = FabOptions(),
) -> tf.Tensor:
  """[B] bool: True unless FAB-T found a misclassified point within eps."""
  result = fab_targeted(logits_fn, images, labels, targets, options)
  fooled = tf.logical_not(pgd.is_correct(logits_fn(result.adversarial), labels))
  within = result.distance <= tf.cast(eps, tf.float32)
  return tf.logical_not(tf.logical_and(fooled, within))
