"""The learning-rate (and momentum) schedules of a run, per optimizer step.

`learning_rate(config, steps_per_epoch)` is `--lr_schedule` (step decay at
`--lr_boundaries`, cosine, fast_adversarial's one-cycle and cyclic
schedules) with `--lr_warmup_epochs` of linear warmup in front;
`momentum` is `--lr_schedule=cyclic`'s momentum cycle. The optimizers that
read them are optimizers.py (`make_optimizer`).
"""

import keras
import tensorflow as tf

from iaat_tf.config import TrainConfig


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
  """fast_adversarial's MNIST cycle (MNIST/train_mnist.py), per optimizer step.

  Their batch i of epoch e (0-based) trains at
  np.interp(e + (i + 1) / N, [0, epochs * 2 // 5, epochs], [0, lr_max, 0])
  (N batches per epoch; `epochs * 2 // 5` is integer division): linear from
  0 up to `peak` at 2/5 of the run, then down to 0 at its last step. Step s
  (0-based, Keras' iterations) is their (e, i) with s = e N + i.
  """

  def __init__(self, peak: float, epochs: int, steps_per_epoch: int):
    self.peak, self.epochs = float(peak), int(epochs)
    self.steps_per_epoch = max(1, int(steps_per_epoch))

  def __call__(self, step):
    t = (tf.cast(step, tf.float32) + 1.0) / self.steps_per_epoch  # In epochs.
    rise = float(self.epochs * 2 // 5)
    down = self.peak * (self.epochs - t) / (self.epochs - rise)
    if rise <= 0:
      return tf.maximum(down, 0.0)
    up = self.peak * t / rise
    return tf.maximum(tf.where(t <= rise, up, down), 0.0)

  def get_config(self):
    return {"peak": self.peak, "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch}


# PyTorch CyclicLR's momentum range (base_momentum, max_momentum defaults),
# which fast_adversarial's CIFAR script cycles with --momentum 0.9.
CYCLIC_BASE_MOMENTUM = 0.8


class Cyclic(keras.optimizers.schedules.LearningRateSchedule):
  """fast_adversarial's CIFAR cycle (CIFAR10/train_fgsm.py), per step.

  Theirs: torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0, max_lr=lr_max,
  step_size_up=T / 2, step_size_down=T / 2) over T = epochs x N steps,
  stepped after every batch. PyTorch's triangular formula at step s:
  x = frac(s / T), scale = 2x for x <= 1/2 else 2(1 - x); the learning rate
  is `low + (peak - low) * scale` (0 at the first step, the peak at T / 2).
  The same object with `low`/`peak` set to the momentum's range, and
  `inverse=True`, gives CyclicLR's momentum (cycle_momentum, on by default):
  `peak - (peak - low) * scale`, 0.9 -> 0.8 -> 0.9.
  """

  def __init__(self, peak: float, total_steps: int, low: float = 0.0, inverse: bool = False):
    self.peak, self.low = float(peak), float(low)
    self.total_steps, self.inverse = max(1, int(total_steps)), bool(inverse)

  def __call__(self, step):
    r = tf.cast(step, tf.float32) / self.total_steps
    x = r - tf.floor(r)
    scale = tf.where(x <= 0.5, 2.0 * x, 2.0 * (1.0 - x))
    if self.inverse:
      return self.peak - (self.peak - self.low) * scale
    return self.low + (self.peak - self.low) * scale

  def get_config(self):
    return {
      "peak": self.peak,
      "total_steps": self.total_steps,
      "low": self.low,
      "inverse": self.inverse,
    }


class Warmup(keras.optimizers.schedules.LearningRateSchedule):
  """`base` (a schedule or a float) x min(1, (step + 1) / warmup_steps)."""

  def __init__(self, base, warmup_steps: int):
    self.base, self.warmup_steps = base, max(1, int(warmup_steps))

  def __call__(self, step):
    base = self.base(step) if callable(self.base) else self.base
    ramp = tf.minimum(1.0, (tf.cast(step, tf.float32) + 1.0) / self.warmup_steps)
    return tf.cast(base, tf.float32) * ramp

  def get_config(self):
    return {"base": self.base, "warmup_steps": self.warmup_steps}


def learning_rate(config: TrainConfig, steps_per_epoch: int):
  """The learning rate (a float or a per-step schedule) of `config`,
  with `lr_warmup_epochs` of linear warmup in front when set."""
  schedule = _schedule(config, steps_per_epoch)
  if config.lr_warmup_epochs:
    return Warmup(schedule, config.lr_warmup_epochs * steps_per_epoch)
  return schedule


def _schedule(config: TrainConfig, steps_per_epoch: int):
  lr = config.learning_rate
  total = max(1, config.epochs * steps_per_epoch)
  if config.lr_schedule == "cosine":
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.0)
  if config.lr_schedule == "onecycle":
    return OneCycle(lr, config.epochs, steps_per_epoch)
  if config.lr_schedule == "cyclic":
    return Cyclic(lr, total)
  if config.lr_boundaries:
    # The schedule sees the 0-based step and keeps values[0] while step <=
    # boundary: the first step of epoch b (step b * steps_per_epoch) must
    # already use the decayed rate, as PyTorch's MultiStepLR does.
    boundaries = [int(b) * steps_per_epoch - 1 for b in config.lr_boundaries]
    values = [lr * config.lr_decay**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
  return lr


def momentum(config: TrainConfig, steps_per_epoch: int):
  """The momentum: a float, or `--lr_schedule=cyclic`'s per-step cycle."""
  if config.lr_schedule != "cyclic":
    return config.momentum
  return Cyclic(
    config.momentum, max(1, config.epochs * steps_per_epoch), low=CYCLIC_BASE_MOMENTUM, inverse=True
  )
