"""Square (Andriushchenko et al., 2020): the score-based attack, L-inf or L2.

Square uses only the model's outputs (no gradients), which makes it the
check against gradient masking in AutoAttack. Starting from vertical stripes
of +-eps, each query changes one random square window of the current best
point to x +- eps (one random sign per channel), and keeps the change when
the margin z_y - max_{j != y} z_j decreases (or the example becomes
misclassified). The window's area is a fraction p of the image, following
AutoAttack's schedule: p = p_init halved after queries 10, 50, 200, 500,
1000, 2000, 4000, 6000 and 8000. AutoAttack's standard: 5,000 queries,
p_init = 0.8, one run.

The L2 version (`norm="l2"`, the reference's): the start tiles the image
with the reference's 5x5 grid of "eta" patterns (two stacked rectangles of
opposite sign whose weights fall off as 1/r^2) with a random sign per
channel, scaled to norm eps. Each query picks two windows of side s (odd,
>= 3): it moves the first window's perturbation towards a fresh eta pattern
with random channel signs, zeroes the second, gives the pair the L2 budget
the image has left, and rescales the whole perturbation to norm eps before
clipping to [0, 1] (`l2_proposal`).

Randomness (stripes, windows, signs, the eta pattern's random transpose) is
keyed by the example id and the query number
(`noise.per_example_uniform`), so a batch's composition never changes an
example's result. Unlike the reference, each example draws its own windows,
signs and transposes (the reference draws them once per query for the
batch), and a window may start at the last position (the reference's
`random_int(0, h - s)` never picks it).
"""

from typing import NamedTuple

import tensorflow as tf

from iaat_tf.attacks import noise, norms, objectives, pgd
from iaat_tf.tensors import rows

LogitsFn = pgd.LogitsFn
SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class SquareResult(NamedTuple):
  """adversarial: the best point (lowest margin) in the ball; robust: [B] bool,
  True iff it is still classified correctly."""

  adversarial: tf.Tensor
  robust: tf.Tensor


def p_schedule(query: tf.Tensor, p_init: float) -> tf.Tensor:
  """The window's area fraction at (0-based) query `query`."""
  halvings = tf.reduce_sum(
    tf.cast(tf.cast(query, tf.int32) > tf.constant(SCHEDULE, tf.int32), tf.float32)
  )
  return p_init / tf.pow(2.0, halvings)


def margin(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """z_y - max_{j != y} z_j: positive iff correctly classified."""
  return -objectives.margin_loss(logits, labels)


def eta(side, size: int | None = None) -> tf.Tensor:
  """The reference's L2 pattern `eta(side)` (before its random transpose),
  norm 1, in the top-left corner of a [size, size] zero tensor (size: side).

  The reference stacks `eta_rectangles(side // 2, side)` over minus
  `eta_rectangles(side - side // 2, side)`, each normalised, then
  normalises. `eta_rectangles(x, y)` adds 1 / (k + 1)^2 on the centred
  rectangle of half-size k for k < K = max(x // 2, y // 2) + 1, so pixel
  (i, j) holds the tail sum of 1 / (k + 1)^2 from
  k = max(|i - x // 2|, |j - y // 2|) to K - 1: computed here in closed form
  from a cumulative sum, for a `side` known only in the graph.
  """
  side = tf.convert_to_tensor(side, tf.int32)
  size = side if size is None else size
  half = side // 2
  k_end = half + 1  # K for both blocks (x // 2 <= side // 2).
  terms = 1.0 / tf.square(tf.cast(tf.range(1, size + 2), tf.float32))
  partial = tf.concat([[0.0], tf.cumsum(terms)], 0)  # partial[n] = sum_{k<n}.
  r = tf.range(size)[:, None]
  c = tf.range(size)[None, :]

  def block(rows_in_block, row):  # An eta_rectangles block, normalised.
    m = tf.maximum(tf.abs(row - rows_in_block // 2), tf.abs(c - half))
    value = tf.gather(partial, tf.broadcast_to(k_end, tf.shape(m))) - tf.gather(
      partial, tf.minimum(m, k_end)
    )
    inside = (row >= 0) & (row < rows_in_block) & (c < side)
    value = tf.where(inside, value, 0.0)
    return value / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(value))), 1e-30)

  delta = block(half, r) - block(side - half, r - half)
  return delta / tf.sqrt(tf.reduce_sum(tf.square(delta)))


def _place(pattern: tf.Tensor, top, left, side, transpose, height: int, width: int) -> tf.Tensor:
  """[n, H, W, 1]: each row's [side, side] `pattern` corner (transposed where
  `transpose`) placed at (top, left); 0 outside the window."""
  r = tf.range(height)[None, :, None] - tf.reshape(top, [-1, 1, 1])
  c = tf.range(width)[None, None, :] - tf.reshape(left, [-1, 1, 1])
  inside = (r >= 0) & (r < side) & (c >= 0) & (c < side)
  t = tf.reshape(transpose, [-1, 1, 1])
  i = tf.clip_by_value(tf.where(t, c, r), 0, tf.shape(pattern)[-1] - 1)
  j = tf.clip_by_value(tf.where(t, r, c), 0, tf.shape(pattern)[-1] - 1)
  values = tf.gather_nd(pattern, tf.stack([i, j], -1))
  return tf.where(inside, values, 0.0)[..., None]


def _signs(u):
  return tf.where(u < 0.5, -1.0, 1.0)


def _corner(u: tf.Tensor, size, side) -> tf.Tensor:
  """[n] a window's first row (or column) from uniform draws: any of the
  size - side + 1 positions."""
  return tf.minimum(tf.cast(u * tf.cast(size - side + 1, tf.float32), tf.int32), size - side)


def _window(top, left, side, height: int, width: int) -> tf.Tensor:
  """[n, H, W, 1] bool: the side x side window at (top, left) of each row."""
  r = tf.range(height)[None, :, None, None]
  c = tf.range(width)[None, None, :, None]
  top, left = tf.reshape(top, [-1, 1, 1, 1]), tf.reshape(left, [-1, 1, 1, 1])
  return (r >= top) & (r < top + side) & (c >= left) & (c < left + side)


def _rescaled(images, delta, eps_b) -> tf.Tensor:
  """images + delta rescaled to L2 norm eps, clipped to [0, 1] (the
  reference's `clamp(x + normalize(delta) * eps, 0, 1)`)."""
  unit = delta / (rows(norms.l2_norm(delta), delta) + 1e-12)
  return tf.clip_by_value(images + unit * eps_b, 0.0, 1.0)


def l2_start(
  images: tf.Tensor, eps_b: tf.Tensor, index: tf.Tensor, salt: int, seed: int
) -> tf.Tensor:
  """The reference's L2 start: a grid of eta(h // 5) tiles, random channel
  signs, rescaled to norm eps and clipped to [0, 1]. Static H, W needed."""
  height, width, channels = images.shape[1], images.shape[2], images.shape[3]
  s = max(height // 5, 1)
  pad = (height - 5 * s) // 2
  tiles = [(pad + i * s, pad + j * s) for i in range(height // s) for j in range(width // s)]
  u = noise.per_example_uniform(
    tf.stack([tf.shape(images)[0], len(tiles), channels + 1]), index, 0, salt, seed
  )
  pattern = eta(s)
  delta = tf.zeros_like(images)
  for k, (top, left) in enumerate(tiles):
    ones = tf.ones_like(u[:, k, 0], tf.int32)
    tile = _place(pattern, top * ones, left * ones, s, u[:, k, 0] > 0.5, height, width)
    delta += tile * _signs(u[:, k, 1:])[:, None, None, :]
  return _rescaled(images, delta, eps_b)


def l2_proposal(images, x_best, eps_b, side, u) -> tf.Tensor:
  """One L2 query's candidate (the reference's update, per-example draws).

  u: [n, 5 + C] uniform draws: window 1 (top, left), window 2 (top, left),
  the eta transpose, and the C channel signs.
  """
  height, width = images.shape[1], images.shape[2]
  channels = tf.shape(images)[3]
  top1, left1 = _corner(u[:, 0], height, side), _corner(u[:, 1], width, side)
  w1 = _window(top1, left1, side, height, width)
  w2 = _window(_corner(u[:, 2], height, side), _corner(u[:, 3], width, side), side, height, width)
  delta = x_best - images
  per_channel = lambda t: tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True))
  in_w1 = tf.where(w1, delta, 0.0)
  budget = tf.maximum(
    tf.square(eps_b) - tf.square(rows(norms.l2_norm(delta), delta)), 0.0
  ) / tf.cast(channels, tf.float32)
  budget += tf.square(per_channel(tf.where(w1 | w2, delta, 0.0)))
  fresh = _place(eta(side, min(height, width)), top1, left1, side, u[:, 4] > 0.5, height, width)
  new = fresh * _signs(u[:, 5:])[:, None, None, :] + in_w1 / (1e-12 + per_channel(in_w1))
  new = new / (1e-12 + per_channel(new)) * tf.sqrt(budget)
  return _rescaled(images, tf.where(w1, new, tf.where(w2, 0.0, delta)), eps_b)


def square_attack(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  *,
  n_queries: int = 5000,
  p_init: float = 0.8,
  index=None,
  salt: int = noise.Salt.AA_SQUARE,
  seed: int = 0,
  only_unbroken: bool = True,
  norm: str = "linf",
) -> SquareResult:
  """Square attack in each example's `norm` ball; graph math (wrap it in a tf.function).

  `only_unbroken` (the default) queries only the examples still correctly
  classified, as the reference does. Results are the same, because every
  draw is keyed by example id and query. It saves the forward passes of
  broken examples at the cost of a gather and scatter per query: 1.37x
  faster on a WideResNet-10-4 at 32x32 and 1.30x on the 8x8 quick-start CNN
  in one run on a busy 2-core machine (bench/square_cost/SQUARE_COST.md, L-inf); on
  models that tiny the bookkeeping can cost as much as it saves. Its shapes
  depend on the data, so XLA (`jit_compile=True`) needs False.
  """
  if n_queries < 0:
    raise ValueError(f"n_queries must be >= 0, got {n_queries}.")
  norms.check_norm(norm)
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.cast(labels, tf.int32)
  shape = tf.shape(images)
  batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
  if index is None:
    index = tf.range(batch, dtype=tf.int64)
  index = tf.cast(index, tf.int64)
  eps = tf.broadcast_to(tf.cast(eps, tf.float32), [batch])
  eps_b = pgd.broadcast_eps(eps, images)
  area = tf.cast(height * width, tf.float32)
  side_max = tf.minimum(height, width)
  if norm == "l2":
    if None in images.shape[1:]:
      raise ValueError("the L2 Square attack needs a static image shape")
    x_best = l2_start(images, eps_b, index, salt, seed)
  else:
    stripes = _signs(
      noise.per_example_uniform(tf.stack([batch, 1, width, channels]), index, 0, salt, seed)
    )
    x_best = tf.clip_by_value(
      images + eps_b * stripes, tf.maximum(images - eps_b, 0.0), tf.minimum(images + eps_b, 1.0)
    )
  best = margin(logits_fn(x_best), labels)

  def linf_proposal(x0, x_best, eps_b, i, index):
    n = tf.shape(x_best)[0]
    side = tf.cast(tf.round(tf.sqrt(p_schedule(i, p_init) * area)), tf.int32)
    side = tf.clip_by_value(side, 1, side_max)
    u = noise.per_example_uniform(tf.stack([n, 2 + channels]), index, i + 1, salt, seed)
    window = _window(
      _corner(u[:, 0], height, side), _corner(u[:, 1], width, side), side, height, width
    )
    sign = tf.reshape(_signs(u[:, 2:]), [n, 1, 1, channels])
    x_new = tf.where(window, x_best + 2.0 * eps_b * sign, x_best)
    return tf.clip_by_value(x_new, tf.maximum(x0 - eps_b, 0.0), tf.minimum(x0 + eps_b, 1.0))

  def l2_query_proposal(x0, x_best, eps_b, i, index):
    side = tf.cast(tf.round(tf.sqrt(p_schedule(i, p_init) * area)), tf.int32)
    side = tf.maximum(side, 3)
    side = tf.minimum(side + 1 - side % 2, side_max)  # Odd, as the reference.
    u = noise.per_example_uniform(
      tf.stack([tf.shape(x_best)[0], 5 + channels]), index, i + 1, salt, seed
    )
    return l2_proposal(x0, x_best, eps_b, side, u)

  propose = l2_query_proposal if norm == "l2" else linf_proposal

  def query(i, x_best, best, x0, eps_b, labels, index):
    """One query on these rows: (x_best, best) after keeping improvements."""
    x_new = tf.ensure_shape(propose(x0, x_best, eps_b, i, index), [None, *images.shape[1:]])
    new = margin(logits_fn(x_new), labels)
    take = tf.logical_and(best > 0.0, new < best)
    x_best = tf.where(pgd.broadcast_eps(tf.cast(take, tf.float32), x_best) > 0, x_new, x_best)
    return x_best, tf.where(take, new, best)

  def body(i, x_best, best):
    if not only_unbroken:
      x_best, best = query(i, x_best, best, images, eps_b, labels, index)
      return i + 1, x_best, best
    idx = tf.where(best > 0.0)[:, 0]
    take = lambda t: tf.gather(t, idx)
    x_sub, best_sub = query(
      i, take(x_best), take(best), take(images), take(eps_b), take(labels), take(index)
    )
    x_best = tf.tensor_scatter_nd_update(x_best, idx[:, None], x_sub)
    best = tf.tensor_scatter_nd_update(best, idx[:, None], best_sub)
    return i + 1, x_best, best

  _, x_best, best = tf.while_loop(
    lambda i, x, b: tf.logical_and(i < n_queries, tf.reduce_any(b > 0.0)),
    body,
    (tf.constant(0), x_best, best),
    maximum_iterations=n_queries,
  )
  robust = tf.logical_and(best > 0.0, pgd.is_correct(logits_fn(x_best), labels))
  return SquareResult(tf.stop_gradient(x_best), robust)
