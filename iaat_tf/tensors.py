"""Two tensor helpers every layer of the package shares (nothing else here).

* `f32`: cast to float32.
* `rows`: per-example values [B] reshaped to [B, 1, ..., 1] with the rank of
  a batch tensor, so they broadcast against it (radii, step sizes, masks).
"""

import tensorflow as tf


def f32(x) -> tf.Tensor:
  return tf.cast(x, tf.float32)


def rows(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
  """Reshapes [B] `values` to [B, 1, ..., 1] with the rank of `like` ([B, ...])."""
  like = tf.convert_to_tensor(like)
  rank = like.shape.rank if like.shape.rank is not None else tf.rank(like)
  return tf.reshape(values, tf.concat([[-1], tf.ones([rank - 1], tf.int32)], 0))
