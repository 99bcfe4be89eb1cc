"""Training plumbing: devices, distribution strategy, optimizer, checkpoints.

Callbacks that report a run (history, TensorBoard, console) are in
callbacks.py; the one here saves training state (checkpoints).

Checkpoints (`tf.train.CheckpointManager`) hold the classifier, the optimizer
(with its step counter, from which the trainer derives the epoch) and the eps
table, so a killed run restarted with the same flags resumes where it
stopped.
"""

import json
import os
import keras
import tensorflow as tf

from iaat_tf.training import optimizers
from iaat_tf.config import ConfigError, TrainConfig
from iaat_tf.options import first_line


def configure_devices(config: TrainConfig) -> None:
  """Splits the CPU into `num_virtual_devices` logical devices (for tests).

  Must run before TensorFlow initialises its devices; if it already has,
  enough logical CPUs must exist.
  """
  n = config.num_virtual_devices
  if n <= 0:
    return
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * n
    )
  except RuntimeError:
    have = len(tf.config.list_logical_devices("CPU"))
    if have < n:
      raise ConfigError(
        f"--num_virtual_devices={n}: TensorFlow already started with {have} CPU device(s)"
      ) from None


class _KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy whose `reduce` accepts what Keras 3 passes.

  Keras 3.15's `fit`/`evaluate` call `strategy.reduce("MEAN", v, axis=0)` on
  every scalar per-replica log value, and `strategy.reduce("MEAN", batch)` on
  the nested first batch (to build the model); the stock multi-worker
  strategy rejects both (a scalar has no axis 0; it reduces single tensors
  only). Here rank-0 values are reduced with `axis=None` (their mean over all
  replicas, as MirroredStrategy gives) and nested structures leaf by leaf.
  """

  def reduce(self, reduce_op, value, axis):
    def reduce_one(v):
      first = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
      rank = getattr(getattr(first, "shape", None), "rank", None)
      return super(_KerasMultiWorkerStrategy, self).reduce(
        reduce_op, v, None if rank == 0 else axis
      )

    return tf.nest.map_structure(reduce_one, value)


def _check_tf_config() -> None:
  """A malformed TF_CONFIG becomes a one-line ConfigError (before any TF setup)."""
  text = os.environ.get("TF_CONFIG", "")
  if not text:
    return
  try:
    spec = json.loads(text)
  except ValueError:
    raise ConfigError("TF_CONFIG is not valid JSON") from None
  if not isinstance(spec, dict):
    raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
  cluster, task = spec.get("cluster") or {}, spec.get("task") or {}
  if not cluster:
    return
  task_type, index = task.get("type"), task.get("index", 0)
  if (
    task_type not in cluster
    or not isinstance(index, int)
    or not 0 <= index < len(cluster[task_type])
  ):
    raise ConfigError(
      f"TF_CONFIG task {json.dumps(task)} is not in its cluster "
      f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())})"
    )


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
  """`default` (one device), `mirrored` (local GPUs or virtual CPUs), `multi_worker`.

  `multi_worker` reads the cluster from the TF_CONFIG environment variable
  (one process per worker, each with its own task; without TF_CONFIG it is a
  one-worker cluster). It must be created before other TensorFlow ops run.
  """
  if config.strategy == "default":
    return tf.distribute.get_strategy()
  if config.strategy == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(cpus)
  if config.strategy == "multi_worker":
    _check_tf_config()
    return _KerasMultiWorkerStrategy()
  raise ConfigError(f"unknown strategy {config.strategy!r}")


def set_precision(config: TrainConfig) -> None:
  """Global Keras dtype policy; attacks and eps stay float32 regardless."""
  keras.mixed_precision.set_global_policy(config.precision)


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


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
  """SGD+momentum (or Adam) with the learning rate of `learning_rate()`
  (and, for `--lr_schedule=cyclic`, the momentum of `momentum()`).

  `weight_decay_type=coupled` (default) is PyTorch's L2 decay, the authors'
  recipe (`optimizers.CoupledDecaySGD` / `CoupledDecayAdam`); `decoupled` is
  Keras' own `weight_decay` (AdamW with adam).
  """
  lr = learning_rate(config, steps_per_epoch)
  if config.weight_decay_type == "coupled":
    if config.optimizer == "sgd":
      return optimizers.CoupledDecaySGD(
        lr, momentum=momentum(config, steps_per_epoch), l2_decay=config.weight_decay
      )
    return optimizers.CoupledDecayAdam(lr, l2_decay=config.weight_decay)
  wd = config.weight_decay or None
  if config.optimizer == "sgd":
    return keras.optimizers.SGD(lr, momentum=config.momentum, weight_decay=wd)
  return keras.optimizers.Adam(lr, weight_decay=wd)


def make_checkpoint(trainer) -> tf.train.Checkpoint:
  """Everything needed to resume: weights, optimizer (its step count gives
  the epoch, `AdversarialTrainer.epoch`), eps table and weight average."""
  extra = {} if trainer.weight_average is None else {"weight_average": trainer.weight_average}
  return tf.train.Checkpoint(
    classifier=trainer.classifier,
    optimizer=trainer.optimizer,
    eps_table=trainer.eps_table.variable,
    **extra,
  )


def restore_latest(trainer, manager: tf.train.CheckpointManager, log=print) -> int:
  """Restores the newest readable checkpoint, if any; returns the finished epochs.

  Runs in the trainer's distribution strategy scope, so the optimizer's slot
  variables it builds are mirrored like the ones `fit` would create. A
  checkpoint that cannot be read (a data file cut short by a full disk or a
  copy) is skipped with one warning line naming it, and the one before it is
  restored (the manager keeps `--keep_checkpoints`); if none can be read, a
  one-line ConfigError says which file and what to do.
  """
  if not manager.latest_checkpoint:
    return 0
  with trainer.distribute_strategy.scope():
    trainer.optimizer.build(trainer.classifier.trainable_variables)
    failures = []
    for path in reversed(manager.checkpoints):
      try:
        manager.checkpoint.restore(path).assert_existing_objects_matched()
      except (tf.errors.OpError, ValueError, IndexError, AssertionError) as e:
        reason = first_line(e)
        failures.append((path, reason))
        continue
      for bad, why in failures:
        log(
          f"iaat_tf: WARNING: checkpoint {bad} is unreadable ({why[:200]}); "
          f"resuming from {path} instead"
        )
      # Not trainer.epoch: a step that dynamic loss scaling skipped does not
      # count there.
      return finished_epochs(path)
  bad, why = failures[0]
  raise ConfigError(
    f"no readable checkpoint in {os.path.dirname(bad)}: {bad} is unreadable "
    f"({why[:200]}); rerun with --overwrite to start over, or restore the "
    f"checkpoint files from a copy"
  )


def finished_epochs(checkpoint_path: str) -> int:
  """The finished epochs a checkpoint holds: callbacks.CheckpointCallback numbers
  checkpoints by them (".../ckpt-3" -> 3)."""
  return int(checkpoint_path.rsplit("-", 1)[1])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True unless this is a non-chief worker of a multi-worker strategy."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  return resolver.task_type in (None, "chief") or (
    resolver.task_type == "worker"
    and resolver.task_id == 0
    and "chief" not in resolver.cluster_spec().as_dict()
  )


def worker_dir(output_dir: str, strategy: tf.distribute.Strategy, name: str) -> str:
  """Chief: output_dir/name; any other task: output_dir/.TASKi/name (created).

  Under MultiWorkerMirroredStrategy every worker must take part in saving a
  checkpoint (variables may need collectives) and runs the same callbacks, so
  non-chief workers write to their own scratch directory, never to the
  chief's files. The scratch directory is created here, so callers can open
  files in it right away.
  """
  if is_chief(strategy):
    return os.path.join(output_dir, name)
  resolver = strategy.cluster_resolver
  scratch = os.path.join(output_dir, f".{resolver.task_type}{resolver.task_id}")
  os.makedirs(scratch, exist_ok=True)
  return os.path.join(scratch, name)
