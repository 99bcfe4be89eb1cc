"""training/eps_table.py: the radius table read and written by example id, on
one replica and on two (MirroredStrategy on the two logical CPUs)."""

import numpy as np
import tensorflow as tf

from iaat_tf.training.eps_table import EpsTable


def test_gather_assign_and_write_on_one_replica():
  table = EpsTable(6)
  assert table.num_examples == 6 and table.dtype == tf.float32
  np.testing.assert_array_equal(table.numpy(), np.zeros(6, np.float32))
  table.assign(np.arange(6, dtype=np.float32) / 10)
  np.testing.assert_allclose(table.gather(tf.constant([4, 1], tf.int32)), [0.4, 0.1])
  # Radii of any float type land as float32; the other entries are kept.
  table.write(tf.constant([5, 0]), tf.constant([0.55, 0.05], tf.float64))
  np.testing.assert_allclose(table.numpy(), [0.05, 0.1, 0.2, 0.3, 0.4, 0.55], rtol=1e-6)
  assert table.variable.name.startswith("eps_table") and not table.variable.trainable
  assert EpsTable(3, name="other").variable.name.startswith("other")


def test_two_replicas_write_every_pair_and_stay_equal():
  """Each replica writes its half of the global batch: the table holds both
  halves on every device, as one replica writing the whole batch would."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    table = EpsTable(8)
  index = np.array([6, 1, 3, 0], np.int64)
  radii = np.array([0.6, 0.1, 0.3, 0.05], np.float32)
  dataset = tf.data.Dataset.from_tensor_slices((index, radii)).batch(4)
  batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

  @tf.function
  def step(batch):
    strategy.run(lambda i, r: table.write(i, r), args=batch)

  step(batch)
  expected = np.zeros(8, np.float32)
  expected[index] = radii
  for copy in table.variable.values:  # Every device's copy.
    np.testing.assert_allclose(copy.numpy(), expected)
  single = EpsTable(8)
  single.write(index, radii)
  np.testing.assert_array_equal(single.numpy(), table.numpy())
  # Gathered inside a replica: each replica reads its own ids.
  got = strategy.run(tf.function(lambda i, r: table.gather(i)), args=batch)
  np.testing.assert_allclose(
    np.concatenate([v.numpy() for v in strategy.experimental_local_results(got)]), radii
  )
