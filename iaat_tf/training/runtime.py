"""Training plumbing: the precision policy, checkpoints, and where each worker writes.

Callbacks that report a run (history, TensorBoard, console) are in
callbacks.py; the one here saves training state (checkpoints). Devices and
the distribution strategy are devices.py; the optimizer and its learning
rate optimizers.py and schedules.py.

Checkpoints (`tf.train.CheckpointManager`) hold the classifier, the optimizer
(with its step counter, from which the trainer derives the epoch) and the eps
table, so a killed run restarted with the same flags resumes where it
stopped.
"""

import os

import keras
import tensorflow as tf

from iaat_tf.config import ConfigError, TrainConfig
from iaat_tf.options import first_line


def set_precision(config: TrainConfig) -> None:
  """Global Keras dtype policy; attacks and eps stay float32 regardless."""
  keras.mixed_precision.set_global_policy(config.precision)


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
