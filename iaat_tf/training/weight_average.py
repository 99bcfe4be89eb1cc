"""An exponential moving average (EMA) of the classifier's weights (--ema_decay).

`WeightAverage` keeps one shadow variable per classifier weight: trainable
weights and BatchNorm's running statistics alike (as PyTorch codebases that
average the whole state dict do). After every optimizer step,

    average <- d_t * average + (1 - d_t) * weight,
    d_t = min(decay, (1 + t) / (10 + t)),   t = the optimizer step (from 1),

the warmup of `tf.train.ExponentialMovingAverage(num_updates=t)`, so the
average does not stay near the initialisation early in training. Under a
distribution strategy the update is one cross-replica step (`merge_call`)
and the average is mirrored like the weights, so 1 and N replicas keep the
same average. `swap()` exchanges the classifier's weights with the average
(exactly; twice restores both), which is how the average is exported;
`with average.swapped():` holds it in the classifier for a block (to
evaluate or save it) and puts the raw weights back, also on an error.
"""

import contextlib

import tensorflow as tf


def decay_at(decay: float, step) -> tf.Tensor:
  """The decay applied at optimizer step `step` (1-based)."""
  t = tf.cast(step, tf.float32)
  return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (10.0 + t))


class WeightAverage(tf.Module):
  """The moving average of `classifier.weights` (a checkpointable module)."""

  def __init__(self, classifier, decay: float):
    super().__init__(name="weight_average")
    if not 0.0 < decay < 1.0:
      raise ValueError(f"the weight-average decay must be in (0, 1), got {decay}")
    if not classifier.weights:
      raise ValueError(
        "the weight average needs a built classifier: an unbuilt one has no "
        "weights to average yet (build it with keras.Input, or call it once "
        "on a batch, before creating the trainer)"
      )
    self.decay = float(decay)
    self._weights = lambda: classifier.weights  # Not tracked twice.
    self.average = [
      tf.Variable(
        tf.convert_to_tensor(w),
        trainable=False,
        name=f"ema_{i}",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
      )
      for i, w in enumerate(classifier.weights)
    ]

  def update(self, step) -> None:
    """Moves the average towards the current weights (in a train step)."""
    d = decay_at(self.decay, step)
    values = [tf.convert_to_tensor(w) for w in self._weights()]

    def merge(strategy, values, d):
      for average, value in zip(self.average, values):
        strategy.extended.update(
          average,
          lambda a, v, d: a.assign(d * a + (1.0 - d) * tf.cast(v, a.dtype)),
          args=(value, d),
        )

    tf.distribute.get_replica_context().merge_call(merge, args=(values, d))

  def swap(self) -> None:
    """Exchanges the classifier's weights and the average (cross-replica)."""
    for average, weight in zip(self.average, self._weights()):
      held = tf.identity(tf.convert_to_tensor(weight))
      weight.assign(tf.cast(tf.convert_to_tensor(average), weight.dtype))
      average.assign(tf.cast(held, average.dtype))

  @contextlib.contextmanager
  def swapped(self):
    """The average in the classifier for the block, the raw weights after."""
    self.swap()
    try:
      yield
    finally:
      self.swap()
