"""The training job's steps (TensorFlow): devices, data, model, fit, then the results.

`run(config, changes)` is called by `runs/training.py` once the run is
prepared (checked, not finished): it sets up devices and precision, loads
the data (failing before anything is written), prepares the output folder
and config.json, builds the trainer, restores the newest checkpoint, fits
with the epoch callbacks (`epoch_callbacks`), then tests, exports and
reports (runs/training_results.py). A `TrainingRun` holds what the fit
needs, built once.
"""

import dataclasses
import math
import os
import shutil
from typing import Callable

import keras
import tensorflow as tf

from iaat_tf import data, models, provenance, run_io
from iaat_tf.config import ADAPTIVE_METHODS, Config, ConfigError
from iaat_tf.runs import training_results
from iaat_tf.runs.training_results import progress_mode
from iaat_tf.training import callbacks, devices, optimizers, radius, runtime
from iaat_tf.training.trainer import AdversarialTrainer

# What a run writes into output_dir (and --overwrite deletes).
OUTPUTS = (
  "config.json",
  "results.json",
  "history.csv",
  "eps_table.npy",
  "train_labels.npy",
  "checkpoints",
  "best_checkpoint",
  "tensorboard",
  "plots",
  "eval",
  "saved_model",
)


def _prepare_output_dir(path: str) -> None:
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot create --output_dir={path}: {e.strerror}") from e
  if not os.access(path, os.W_OK):
    raise ConfigError(f"--output_dir={path} is not writable")


def _clear_outputs(out: str, chief: bool, strategy) -> None:
  """--overwrite: deletes what a run writes (only those names)."""
  names = OUTPUTS if chief else ()
  for name in names:
    path = os.path.join(out, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
  if not chief:
    shutil.rmtree(os.path.dirname(runtime.worker_dir(out, strategy, "x")), ignore_errors=True)


def training_input(
  datasets: data.Datasets, config: Config, strategy: tf.distribute.Strategy, initial_epoch: int
):
  """The epochs to train, as `fit` takes them.

  Under --strategy=multi_worker each worker builds its own pipeline holding
  only its replicas' slices of every global batch, cut before decoding
  (`data.WorkerShard`); otherwise one pipeline of global batches, split over
  the local replicas by Keras.
  """
  if config.train.strategy != "multi_worker":
    return datasets.train_epochs(initial_epoch, config.train.epochs)

  def worker_pipeline(context: tf.distribute.InputContext):
    return datasets.train_epochs(
      initial_epoch,
      config.train.epochs,
      data.WorkerShard(
        context.num_input_pipelines,
        context.input_pipeline_id,
        context.get_per_replica_batch_size(config.data.batch_size),
      ),
    )

  return strategy.distribute_datasets_from_function(worker_pipeline)


def build_trainer(
  config: Config, info: data.DatasetInfo, steps_per_epoch: int, strategy: tf.distribute.Strategy
):
  """Classifier + AdversarialTrainer + optimizer, created in the strategy scope."""
  with strategy.scope():
    classifier = models.build_classifier(
      config.model, info.image_shape, info.num_classes, info.name
    )
    trainer = AdversarialTrainer(
      classifier,
      info.num_train,
      config.method,
      dataclasses.replace(
        config.attack,
        jit_compile=(config.attack.jit_compile or config.train.jit_compile == "attack"),
      ),
      validation=config.validation,
      seed=config.seed,
      steps_per_epoch=steps_per_epoch,
      ema_decay=config.train.ema_decay,
    )
    # jit_compile is always explicit: Keras' default "auto" would XLA-compile
    # the whole step on a single GPU.
    trainer.compile(
      optimizer=optimizers.make_optimizer(config.train, steps_per_epoch),
      steps_per_execution=config.train.steps_per_execution,
      jit_compile=config.train.jit_compile == "step",
    )
    # Built here, not by the first step: a first step that creates the
    # optimizer's variables makes Keras trace the train function twice.
    trainer.optimizer.build(classifier.trainable_variables)
  return trainer


@dataclasses.dataclass
class TrainingRun:
  """What fitting a run needs, built once by `run`."""

  config: Config
  trainer: AdversarialTrainer
  datasets: data.Datasets
  strategy: tf.distribute.Strategy
  manager: tf.train.CheckpointManager
  paths: dict  # This worker's history.csv and best_checkpoint/.
  initial_epoch: int
  steps_per_epoch: int
  chief: bool
  log: Callable[[str], None]


def run(config: Config, changes: list, log: Callable[[str], None] = print) -> dict:
  """Trains, tests and exports a prepared run; returns the results dict.

  The steps, each a function below: set up devices and precision; load the
  data (fails before anything is written); prepare the output folder and
  config.json (with the `changes` this resume makes); build the trainer and
  restore the newest checkpoint; fit with the epoch callbacks; then choose
  the final weights, test them and write results.json, the plots, the eps
  table and the SavedModel (runs/training_results.py).
  """
  strategy = _set_up_runtime(config)
  datasets, steps_per_epoch = _load_data(config)
  chief = _prepare_outputs(config, strategy, changes)
  for change in changes:
    log(
      f"iaat_tf: {change['setting']} changed from {change['was']} to {change['now']}; "
      f"config.json records it (changes)"
    )
  _log_start(config, datasets.info, strategy, steps_per_epoch, log)
  trainer = build_trainer(config, datasets.info, steps_per_epoch, strategy)
  manager, initial_epoch = _restore(trainer, config, strategy, log)
  fit = TrainingRun(
    config,
    trainer,
    datasets,
    strategy,
    manager,
    _worker_paths(config.output_dir, strategy),
    initial_epoch,
    steps_per_epoch,
    chief,
    log,
  )
  if initial_epoch < config.train.epochs:
    _fit(fit)
  return training_results.finish(fit)


def _set_up_runtime(config: Config) -> tf.distribute.Strategy:
  """Devices, strategy, precision and seeds, before any op is created."""
  devices.configure_devices(config.train)
  strategy = devices.make_strategy(config.train)
  replicas = strategy.num_replicas_in_sync
  if config.data.batch_size % replicas:
    raise ConfigError(
      f"--batch_size={config.data.batch_size} must be divisible by the {replicas} replicas"
    )
  runtime.set_precision(config.train)
  keras.utils.set_random_seed(config.seed)
  return strategy


def _load_data(config: Config) -> tuple[data.Datasets, int]:
  """The pipelines and the steps per epoch (fails before anything is written)."""
  datasets = data.load_datasets(config.data)
  steps_per_epoch = datasets.info.num_train // config.data.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(
      f"--batch_size={config.data.batch_size} is larger than the "
      f"{datasets.info.num_train} training examples"
    )
  return datasets, steps_per_epoch


def _prepare_outputs(config: Config, strategy, changes: list) -> bool:
  """The output folder (cleared by --overwrite) and config.json (with the
  `changes` this resume makes); True on the chief."""
  out = config.output_dir
  _prepare_output_dir(out)
  chief = runtime.is_chief(strategy)
  if config.overwrite:
    _clear_outputs(out, chief, strategy)
  if chief:
    record = run_io.config_record(config, changes, provenance.provenance(config.train.precision))
    run_io.write_json(os.path.join(out, run_io.CONFIG), record)
  return chief


def _log_start(
  config: Config, info: data.DatasetInfo, strategy, steps_per_epoch: int, log: Callable[[str], None]
) -> None:
  """The run's first line, and notes on radius schedules that cannot adapt."""
  log(
    f"iaat_tf: {config.method.method} on {info.describe()}; "
    f"{config.model.name}, {strategy.num_replicas_in_sync} replica(s), "
    f"{steps_per_epoch} steps/epoch"
  )
  if config.method.method not in ADAPTIVE_METHODS:
    return
  if config.method.warmup_epochs >= config.train.epochs:
    log(
      f"iaat_tf: note: --warmup_epochs={config.method.warmup_epochs} >= "
      f"--epochs={config.train.epochs}: every epoch is warmup, so this run "
      f"trains at --eps like PGD-AT and no radius adapts"
    )
    return
  note = radius.recovery_note(
    config.method.method,
    eps=config.method.eps,
    gamma=config.method.gamma,
    beta=config.method.beta,
    warmup_epochs=config.method.warmup_epochs,
    epochs=config.train.epochs,
    cheap_beta=config.method.cheap_beta,
  )
  if not note:
    return
  left = config.train.epochs - config.method.warmup_epochs
  growth = radius.growth_per_epoch(
    config.method.method, config.method.gamma, config.method.beta, config.method.cheap_beta
  )
  if left * growth >= config.validation.eps:
    # E.g. the quick start: a warmup radius chosen too large for some
    # examples, which IAAT shrinks; what the run is judged at is reached.
    note += (
      f" (expected here: --eps is above the radius the run is judged at, which a "
      f"radius at 0 still reaches, --eval_eps={config.validation.eps:.4g})"
    )
  log(f"iaat_tf: note: {note}")


def _restore(trainer, config: Config, strategy, log: Callable[[str], None]):
  """(checkpoint manager, finished epochs restored from its newest checkpoint)."""
  manager = tf.train.CheckpointManager(
    runtime.make_checkpoint(trainer),
    runtime.worker_dir(config.output_dir, strategy, "checkpoints"),
    max_to_keep=config.train.keep_checkpoints,
  )
  initial_epoch = runtime.restore_latest(trainer, manager, log)
  if initial_epoch:
    restored = [p for p in manager.checkpoints if runtime.finished_epochs(p) == initial_epoch][-1]
    log(f"iaat_tf: resumed from {restored} (epoch {initial_epoch}/{config.train.epochs})")
  return manager, initial_epoch


def _worker_paths(out: str, strategy) -> dict:
  """This worker's history.csv and best_checkpoint/ (runtime.worker_dir)."""
  return {
    "history": runtime.worker_dir(out, strategy, run_io.HISTORY),
    # Robust early stopping keeps the best weights here (saved before
    # the epoch's resume checkpoint).
    "best": runtime.worker_dir(out, strategy, "best_checkpoint"),
  }


def _validation_data(config: Config, datasets: data.Datasets):
  """The held-out training examples, or the first test batches."""
  if datasets.validation is not None:
    return datasets.validation
  return datasets.test.take(
    max(1, math.ceil(config.validation.max_examples / config.data.eval_batch_size))
  )


def epoch_callbacks(fit: TrainingRun, validation) -> list:
  """The callbacks of `fit`, in the order they must run (see each comment);
  `validation` is the data `fit` validates on (the weight average too)."""
  config, paths = fit.config, fit.paths
  adaptive = config.method.method in ADAPTIVE_METHODS
  _, summary, bar = progress_mode(config.train.verbose)
  return [
    callbacks.StopOnNaN(),  # Before history and checkpoint: see its doc.
    callbacks.EpochTimer(fit.steps_per_epoch * config.data.batch_size),
    callbacks.LearningRateLogger(),
    *([callbacks.EpsTableLogger()] if adaptive else []),
    # The weight average's validation (val_ema_*), before every reader.
    *([callbacks.AverageValidation(validation)] if fit.trainer.weight_average is not None else []),
    callbacks.OverfittingWatch(
      paths["history"], fit.initial_epoch, fit.log, method=config.method.method
    ),
    # history.csv before the checkpoint: rows past the checkpoint are
    # dropped on resume, so history and checkpoint always agree.
    callbacks.HistoryWriter(paths["history"], fit.initial_epoch),
    *(
      [
        callbacks.TensorBoardLogger(
          os.path.join(config.output_dir, "tensorboard"), config.to_dict(), eps_histogram=adaptive
        )
      ]
      if fit.chief
      else []
    ),
    # The bar ends its line before the epoch's summary line is printed.
    *([callbacks.BatchProgressBar()] if bar else []),
    *([callbacks.EpochSummary(config.train.epochs, fit.log)] if summary else []),
    *(
      [callbacks.BestCheckpoint(paths["best"], average=config.early_stopping_weights == "ema")]
      if fit.datasets.validation is not None
      else []
    ),
    callbacks.CheckpointCallback(fit.manager),
  ]


def _fit(fit: TrainingRun) -> None:
  """Trains from the restored epoch to the last epoch."""
  config = fit.config
  fit_verbose, _, _ = progress_mode(config.train.verbose)
  validation = _validation_data(config, fit.datasets)  # fit's and the average's.
  fit.trainer.fit(
    training_input(fit.datasets, config, fit.strategy, fit.initial_epoch),
    steps_per_epoch=fit.steps_per_epoch,
    epochs=config.train.epochs,
    initial_epoch=fit.initial_epoch,
    validation_data=validation,
    validation_freq=config.validation.every_epochs,
    callbacks=epoch_callbacks(fit, validation),
    verbose=fit_verbose,
    shuffle=False,
  )
