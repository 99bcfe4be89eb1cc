"""The per-example radius table: one float32 per training example id.

`EpsTable` owns the `tf.Variable`, reads the radii of a batch (`gather`) and
writes new ones (`write`) so that 1 and N replicas end with the same table.

Distributed writes: in a replica context, the (index, radius) pairs of all
replicas are collected in a cross-replica `merge_call` and scatter-updated
into the ONLY_FIRST_REPLICA variable, which mirrors the update to every
local device, so no replica's updates are lost and the copies never diverge.
On one worker the local replicas' values are concatenated
(`experimental_local_results`, no collective); with several workers
(MultiWorkerMirroredStrategy) they are all-gathered with `strategy.gather`, a
cross-replica collective every worker issues at the same point of the step.
(An all_gather inside the replica context clashed with Keras' gradient
all-reduce: the collectives were ordered differently per device.) Indices
are unique within a global batch, so the order of the pairs does not matter.

Create it inside `strategy.scope()` when training distributed. The variable
is what checkpoints hold (`EpsTable.variable`).
"""

import tensorflow as tf


class EpsTable:
  """A [num_examples] float32 table of radii, indexed by stable example id."""

  def __init__(self, num_examples: int, name: str = "eps_table"):
    self.num_examples = int(num_examples)
    self.variable = tf.Variable(
      tf.zeros([self.num_examples], tf.float32),
      trainable=False,
      name=name,
      synchronization=tf.VariableSynchronization.ON_WRITE,
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )

  def gather(self, index: tf.Tensor) -> tf.Tensor:
    """[B] float32 radii of the examples `index` ([B] int ids)."""
    return tf.gather(self.variable, tf.cast(index, tf.int64))

  @property
  def dtype(self) -> tf.DType:
    return self.variable.dtype

  def numpy(self):
    """The whole table as a NumPy array."""
    return self.variable.numpy()

  def assign(self, values) -> None:
    """Overwrites the whole table (tests, benchmarks, custom set-ups)."""
    self.variable.assign(values)

  def write(self, index: tf.Tensor, new_eps: tf.Tensor) -> None:
    """Scatters this step's radii into the table, the same on every replica."""
    ctx = tf.distribute.get_replica_context()
    index = tf.cast(index, tf.int64)
    new_eps = tf.cast(new_eps, tf.float32)
    if ctx is None or ctx.num_replicas_in_sync == 1:
      self.variable.scatter_update(tf.IndexedSlices(new_eps, index))
      return

    def merge_fn(strategy, per_replica_index, per_replica_eps):
      local_replicas = len(strategy.extended.worker_devices)
      if local_replicas < strategy.num_replicas_in_sync:  # Several workers.
        all_index = strategy.gather(per_replica_index, axis=0)
        all_eps = strategy.gather(per_replica_eps, axis=0)
      else:
        all_index = tf.concat(strategy.experimental_local_results(per_replica_index), 0)
        all_eps = tf.concat(strategy.experimental_local_results(per_replica_eps), 0)
      self.variable.scatter_update(tf.IndexedSlices(all_eps, all_index))

    ctx.merge_call(merge_fn, args=(index, new_eps))
