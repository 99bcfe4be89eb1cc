"""Optimizers with PyTorch's coupled L2 weight decay (the authors' recipe).

Keras 3's `weight_decay` is decoupled: before each step it shrinks every
variable by `lr * wd * w`, outside the momentum. PyTorch's `weight_decay`
(which the IAAT authors' code uses) is an L2 term added to the gradient
before momentum, `d = g + wd * w`, so with momentum m its steady-state pull
on a weight is about `lr * wd * w / (1 - m)`: 10x the decoupled pull at
m = 0.9. These classes give PyTorch's update:

* `CoupledDecaySGD` is `torch.optim.SGD(lr, momentum, weight_decay)`
  (dampening 0, no Nesterov): `buf = m * buf + (g + wd * w); w -= lr * buf`.
  The learning rate multiplies the whole buffer, as in PyTorch, so a
  learning-rate drop takes effect at once (Keras' SGD folds lr into its
  velocity instead; the two agree only while lr is constant).
* `CoupledDecayAdam` is `torch.optim.Adam(weight_decay=wd)`: Keras' Adam on
  `g + wd * w`.

Decay applies to every trainable variable (biases, BatchNorm scales too), as
in the authors' code. Both only change `update_step`, which Keras calls per
variable after `LossScaleOptimizer` has unscaled the gradients and after
MirroredStrategy has summed them over replicas, so the decay is added to the
true gradient once per step; the momentum slots are Keras' own (same names),
so checkpoints hold them as before.

`make_optimizer(config, steps_per_epoch)` builds a run's optimizer with its
learning rate and momentum (schedules.py).
"""

import keras
from keras import ops

from iaat_tf.config import TrainConfig
from iaat_tf.training import schedules


class CoupledDecaySGD(keras.optimizers.SGD):
  """SGD with momentum and coupled L2 decay, exactly as torch.optim.SGD."""

  def __init__(
    self,
    learning_rate=0.01,
    momentum=0.0,
    l2_decay: float = 0.0,
    name: str = "coupled_decay_sgd",
    **kwargs,
  ):
    # `momentum` may be a per-step schedule (callable of the step, as
    # PyTorch's CyclicLR cycles it): PyTorch's SGD reads the group's
    # momentum at every step.
    super().__init__(
      learning_rate=learning_rate,
      momentum=1.0 if callable(momentum) else momentum,
      nesterov=False,
      weight_decay=None,
      name=name,
      **kwargs,
    )
    self.momentum_schedule = momentum if callable(momentum) else None
    self.l2_decay = float(l2_decay)

  def _momentum(self, dtype):
    if self.momentum_schedule is None:
      return ops.cast(self.momentum, dtype)
    return ops.cast(self.momentum_schedule(self.iterations), dtype)

  def update_step(self, gradient, variable, learning_rate):
    learning_rate = ops.cast(learning_rate, variable.dtype)
    direction = ops.cast(gradient, variable.dtype)
    if self.l2_decay:
      direction = ops.add(
        direction, ops.multiply(ops.cast(self.l2_decay, variable.dtype), variable)
      )
    if self.momentum:
      buf = self.momentums[self._get_variable_index(variable)]
      self.assign(buf, ops.add(ops.multiply(buf, self._momentum(variable.dtype)), direction))
      direction = buf
    self.assign_sub(variable, ops.multiply(direction, learning_rate))

  def get_config(self):
    config = super().get_config()
    config.pop("nesterov", None)
    config["l2_decay"] = self.l2_decay
    if self.momentum_schedule is not None:
      config["momentum"] = keras.optimizers.schedules.serialize(self.momentum_schedule)
    return config


class CoupledDecayAdam(keras.optimizers.Adam):
  """Adam on `g + l2_decay * w`, as torch.optim.Adam(weight_decay=...)."""

  def __init__(
    self, learning_rate=0.001, l2_decay: float = 0.0, name: str = "coupled_decay_adam", **kwargs
  ):
    super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
    self.l2_decay = float(l2_decay)

  def update_step(self, gradient, variable, learning_rate):
    if self.l2_decay:
      gradient = ops.add(
        ops.cast(gradient, variable.dtype),
        ops.multiply(ops.cast(self.l2_decay, variable.dtype), variable),
      )
    super().update_step(gradient, variable, learning_rate)

  def get_config(self):
    config = super().get_config()
    config["l2_decay"] = self.l2_decay
    return config


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
  """SGD+momentum (or Adam) with the learning rate of `schedules.learning_rate`
  (and, for `--lr_schedule=cyclic`, the momentum of `schedules.momentum`).

  `weight_decay_type=coupled` (default) is PyTorch's L2 decay, the authors'
  recipe (`CoupledDecaySGD` / `CoupledDecayAdam`); `decoupled` is
  Keras' own `weight_decay` (AdamW with adam).
  """
  lr = schedules.learning_rate(config, steps_per_epoch)
  if config.weight_decay_type == "coupled":
    if config.optimizer == "sgd":
      return CoupledDecaySGD(
        lr, momentum=schedules.momentum(config, steps_per_epoch), l2_decay=config.weight_decay
      )
    return CoupledDecayAdam(lr, l2_decay=config.weight_decay)
  wd = config.weight_decay or None
  if config.optimizer == "sgd":
    return keras.optimizers.SGD(lr, momentum=config.momentum, weight_decay=wd)
  return keras.optimizers.Adam(lr, weight_decay=wd)
