"""Keyed random numbers: the attacks' random starts, a pure function of ids.

`per_example_uniform` draws noise that depends only on (example id, training
step, salt, seed), so every replica and every batch composition draws the same
start for the same example (what a `keras.random.SeedGenerator` cannot give).
`Salt` lists every stream of the package.
"""

import enum

import tensorflow as tf


class Salt(enum.IntEnum):
  """Every random-start salt in the package, in one place.

  The salt separates the noise streams of different attacks on the same
  example and step (see `per_example_uniform`). Changing a value changes
  results, so values are never reused or renumbered.
  """

  TRAIN = 0  # Training PGD (pgd_at, iaat_cheap, Algorithm 2's final attack).
  PROBE_UP = 1  # Algorithm 2's probe at stored + gamma.
  PROBE_SAME = 2  # Algorithm 2's probe at the stored radius.
  VALIDATION = 7  # PGD in the trainer's test_step.
  EVAL_PGD = 101  # robustness.py's PGD curve.
  EVAL_APGD_CE = 211  # robustness.py's APGD-CE.
  EVAL_APGD_DLR = 307  # robustness.py's APGD-DLR.
  AA_APGD_CE = 401  # AutoAttack's APGD-CE.
  AA_APGD_T = 409  # AutoAttack's APGD-T (plus RESTART_STRIDE * target rank).
  AA_SQUARE = 503  # AutoAttack's Square.
  RESTART_STRIDE = 7919  # Restart r of an attack uses salt + r * stride.


_MASK32 = 0xFFFFFFFF


def _mix32(h: tf.Tensor) -> tf.Tensor:
  """Murmur3's 32-bit finaliser on int64 tensors (low 32 bits are used).

  Products are below 2**64 and are masked right away; int64 multiplication
  wraps (two's complement) on CPU, GPU and XLA, so the low bits are exact.
  """
  h = tf.bitwise.bitwise_and(h, _MASK32)
  h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
  h = tf.bitwise.bitwise_and(h * 0x85EBCA6B, _MASK32)
  h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
  h = tf.bitwise.bitwise_and(h * 0xC2B2AE35, _MASK32)
  h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
  return h


def per_example_uniform(
  shape: tf.Tensor, index: tf.Tensor, step: tf.Tensor, salt: int = 0, seed: int = 0
) -> tf.Tensor:
  """Uniform [0, 1) noise of `shape`, a pure function of (index, step, salt).

  Row b depends only on `index[b]` (the example's stable id), the training
  `step`, a per-call `salt` and a global `seed`, so every replica and every
  batch composition draws the same noise for the same example. This is what
  makes 1-replica and N-replica training identical, and what a
  `keras.random.SeedGenerator` (same draws on every replica) cannot give.
  """
  shape = tf.convert_to_tensor(shape, tf.int32)
  per_row = tf.reduce_prod(shape[1:])
  index = tf.bitwise.bitwise_and(tf.cast(index, tf.int64), _MASK32)
  step = tf.bitwise.bitwise_and(tf.cast(step, tf.int64), _MASK32)
  salt_seed = ((salt + 1) * 0x165667B1 + seed * 0x61C88647) & _MASK32
  key = _mix32(index * 0x27D4EB2F)
  key = _mix32(tf.bitwise.bitwise_xor(key, _mix32(step + salt_seed)))
  position = tf.range(tf.cast(per_row, tf.int64), dtype=tf.int64)
  h = tf.bitwise.bitwise_xor(key[:, None], _mix32(position * 0x2545F491 + 1))
  h = _mix32(_mix32(h))
  u = tf.cast(tf.bitwise.right_shift(h, 8), tf.float32) * (1.0 / (1 << 24))
  return tf.reshape(u, shape)


def per_example_normal(shape, index, step, salt: int = 0, seed: int = 0) -> tf.Tensor:
  """Standard normal noise of `shape`, a pure function of (index, step, salt, seed)."""
  u = per_example_uniform(shape, index, step, salt, seed)
  # u is a multiple of 2**-24 in [0, 1): shift half a bin to stay off 0.
  return tf.math.ndtri(u + 2.0**-25)
