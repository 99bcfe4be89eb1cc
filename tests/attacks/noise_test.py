"""attacks/noise.py: keyed random starts depend on the example, not its place."""

import numpy as np
import tensorflow as tf

from iaat_tf.attacks import noise


def test_random_start_noise_is_keyed_by_example_not_by_batch_position():
  shape = [4, 5, 5, 3]
  index = tf.constant([10, 11, 12, 13], tf.int64)
  a = noise.per_example_uniform(shape, index, step=7, salt=0).numpy()
  perm = [2, 0, 3, 1]
  b = noise.per_example_uniform(shape, tf.gather(index, perm), step=7, salt=0).numpy()
  np.testing.assert_array_equal(a[perm], b)
  c = noise.per_example_uniform(shape, index, step=8, salt=0).numpy()
  d = noise.per_example_uniform(shape, index, step=7, salt=1).numpy()
  assert not np.allclose(a, c) and not np.allclose(a, d)
  assert np.all(a >= 0) and np.all(a < 1)
  assert abs(a.mean() - 0.5) < 0.05  # Roughly uniform.
  assert len(np.unique(a)) > 0.99 * a.size


def test_per_example_normal_is_standard_normal_and_finite():
  z = noise.per_example_normal([64, 32, 32, 1], tf.range(64), 5).numpy()
  assert np.isfinite(z).all()
  assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
