"""One training run from a `Config`: data, model, fit, evaluate, export, report.

`run(config)` is what `python -m iaat_tf.main` calls after parsing flags. It
validates everything that can be checked before writing (config, data, the
output directory), resumes from the newest checkpoint in
`output_dir/checkpoints`, trains with `model.fit`, evaluates clean and PGD
accuracy on the test split, exports the classifier as a SavedModel and writes:

  output_dir/config.json      the run's settings
  output_dir/checkpoints/     classifier + optimizer (its step gives the epoch) + eps table
  output_dir/history.csv      per-epoch logs, epochs from 1 (kept across resumes)
  output_dir/tensorboard/     every per-epoch value (train/, validation/), the
                              learning rate, images/s, the eps-table histogram
                              and the settings (text)
  output_dir/eps_table.npy    final radius per training example id (IAAT runs)
  output_dir/train_labels.npy label per training example id
  output_dir/plots/           eps pictures and training curves
  output_dir/saved_model/     the exported classifier (`serve`: [0,1] -> logits)
  output_dir/results.json     summary (written last, atomically)

A finished run (results.json present, all epochs trained) is left untouched
by a rerun: `run` says so and returns its results. A run made with other
settings that change its result is refused, naming them; more `--epochs`
resume it, and config.json records the change ("changes").
`Config.overwrite` (`--overwrite`) deletes the run's outputs first and
trains from scratch.
"""

import dataclasses
import math
import os
import shutil
import sys
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from iaat_tf import data, models, provenance, run_io
from iaat_tf.models import export
from iaat_tf.reports import curves, example_lookup, plots
from iaat_tf.training import (
  callbacks,
  devices,
  early_stopping,
  optimizers,
  overfitting,
  radius,
  runtime,
)
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import ADAPTIVE_METHODS, Config, ConfigError
from iaat_tf.validation import check_paths, validate

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


def _progress_mode(verbose: int):
  """(fit verbosity, print a summary line per epoch, show a batch bar)."""
  if verbose <= 0:
    return 0, False, False
  if verbose >= 2:
    return 2, False, False
  return 0, True, sys.stdout.isatty()


def run(config: Config, log: Callable[[str], None] = print) -> dict:
  """Trains, evaluates and exports; returns the results dict (results.json).

  The steps, each a function below: validate and look for a finished run;
  set up devices and precision; load the data (fails before anything is
  written); prepare the output folder and config.json; build the trainer
  and restore the newest checkpoint; fit with the epoch callbacks; pick the
  final weights (best, last or ema); test them; write results.json, the
  plots, the eps table and the SavedModel.
  """
  config = check_paths(validate(config))
  changes = []
  if not config.overwrite:
    changes = run_io.check_resume_compatible(config)
    done = run_io.finished_results(config)
    if done is not None:
      log(run_io.finished_message(config, done))
      return done
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
  paths = _worker_paths(config.output_dir, strategy)
  if initial_epoch < config.train.epochs:
    _fit(
      trainer,
      config,
      datasets,
      strategy,
      manager,
      paths,
      initial_epoch,
      steps_per_epoch,
      chief,
      log,
    )
  history_rows = run_io.read_history(paths["history"])
  best = _choose_final_weights(trainer, config, datasets, paths["best"], log)
  results = _test_and_summarise(
    trainer, config, datasets, strategy, initial_epoch, history_rows, best, log
  )
  if chief:
    _write_outputs(trainer, config, datasets.info, results)
  log(
    f"iaat_tf: clean {results['final']['clean_accuracy']:.4f}, "
    f"PGD {results['final']['pgd_accuracy']:.4f}; wrote {config.output_dir}"
  )
  return results


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


def epoch_callbacks(
  config: Config,
  trainer,
  datasets: data.Datasets,
  validation,
  manager,
  paths: dict,
  initial_epoch: int,
  steps_per_epoch: int,
  chief: bool,
  log: Callable[[str], None],
) -> list:
  """The callbacks of `fit`, in the order they must run (see each comment);
  `validation` is the data `fit` validates on (the weight average too)."""
  adaptive = config.method.method in ADAPTIVE_METHODS
  _, summary, bar = _progress_mode(config.train.verbose)
  return [
    callbacks.StopOnNaN(),  # Before history and checkpoint: see its doc.
    callbacks.EpochTimer(steps_per_epoch * config.data.batch_size),
    callbacks.LearningRateLogger(),
    *([callbacks.EpsTableLogger()] if adaptive else []),
    # The weight average's validation (val_ema_*), before every reader.
    *([callbacks.AverageValidation(validation)] if trainer.weight_average is not None else []),
    callbacks.OverfittingWatch(paths["history"], initial_epoch, log, method=config.method.method),
    # history.csv before the checkpoint: rows past the checkpoint are
    # dropped on resume, so history and checkpoint always agree.
    callbacks.HistoryWriter(paths["history"], initial_epoch),
    *(
      [
        callbacks.TensorBoardLogger(
          os.path.join(config.output_dir, "tensorboard"), config.to_dict(), eps_histogram=adaptive
        )
      ]
      if chief
      else []
    ),
    # The bar ends its line before the epoch's summary line is printed.
    *([callbacks.BatchProgressBar()] if bar else []),
    *([callbacks.EpochSummary(config.train.epochs, log)] if summary else []),
    *(
      [callbacks.BestCheckpoint(paths["best"], average=config.early_stopping_weights == "ema")]
      if datasets.validation is not None
      else []
    ),
    callbacks.CheckpointCallback(manager),
  ]


def _fit(
  trainer,
  config: Config,
  datasets: data.Datasets,
  strategy,
  manager,
  paths: dict,
  initial_epoch: int,
  steps_per_epoch: int,
  chief: bool,
  log: Callable[[str], None],
) -> None:
  """Trains from `initial_epoch` to the last epoch."""
  fit_verbose, _, _ = _progress_mode(config.train.verbose)
  validation = _validation_data(config, datasets)  # fit's and the average's.
  trainer.fit(
    training_input(datasets, config, strategy, initial_epoch),
    steps_per_epoch=steps_per_epoch,
    epochs=config.train.epochs,
    initial_epoch=initial_epoch,
    validation_data=validation,
    validation_freq=config.validation.every_epochs,
    callbacks=epoch_callbacks(
      config,
      trainer,
      datasets,
      validation,
      manager,
      paths,
      initial_epoch,
      steps_per_epoch,
      chief,
      log,
    ),
    verbose=fit_verbose,
    shuffle=False,
  )


def _choose_final_weights(
  trainer, config: Config, datasets: data.Datasets, best_dir: str, log: Callable[[str], None]
):
  """Loads the weights --export_model names; the best-epoch state or None."""
  best = None
  if datasets.validation is not None:
    best = early_stopping.read_state(best_dir)
    if best is not None and config.export_model == "best":
      early_stopping.restore_best_weights(trainer.classifier, best_dir)
      log(
        f"iaat_tf: restored the best validation weights (epoch {best['epoch']}, "
        f"{best['monitor']} {best['value']:.4f})"
      )
  if config.export_model == "ema":  # The final weight average replaces the raw.
    trainer.weight_average.swap()
    log(f"iaat_tf: testing and exporting the weight average (decay {config.train.ema_decay})")
  return best


def _test_and_summarise(
  trainer,
  config: Config,
  datasets: data.Datasets,
  strategy,
  initial_epoch: int,
  history_rows: list,
  best,
  log: Callable[[str], None],
) -> dict:
  """Tests the final weights; the results.json payload (without outputs)."""
  info = datasets.info
  fit_verbose, _, bar = _progress_mode(config.train.verbose)
  log(
    "iaat_tf: final evaluation on the test split "
    f"(clean + {config.attack.norm} PGD-{config.validation.steps} at eps={config.validation.eps:.5f})"
  )
  final = trainer.evaluate(datasets.test, verbose=1 if bar else fit_verbose, return_dict=True)
  history = run_io.history_columns(history_rows)
  results = {
    "provenance": provenance.provenance(config.train.precision),
    "method": config.method.method,
    "loss": config.method.loss,
    "dataset": info.name,
    "model": config.model.name,
    "train_eps": config.method.eps,
    "norm": config.attack.norm,  # The units of every radius here.
    "num_train": info.num_train,
    "num_test": info.num_test,
    "replicas": strategy.num_replicas_in_sync,
    "epochs": config.train.epochs,
    "resumed_from_epoch": initial_epoch,
    "train_seconds": float(sum(s for s in history.get("epoch_seconds", []) if s)),
    "final": {
      "clean_accuracy": float(final["clean_acc"]),
      "pgd_accuracy": float(final["pgd_acc"]),
      "eval_eps": config.validation.eps,
      "eval_pgd_steps": config.validation.steps,
    },
    "history": history,
    # The first collapse of validation PGD accuracy with clean accuracy
    # held (training/overfitting.py), or None.
    "catastrophic_overfitting": overfitting.detect(history_rows, config.method.method),
    "train_attack": config.attack.name,
    # The weights `final` measured and the SavedModel holds.
    "weights": (
      "best"
      if best is not None and config.export_model == "best"
      else "ema"
      if config.export_model == "ema"
      else "last"
    ),
    "ema_decay": config.train.ema_decay,
  }
  if best is not None:
    results["early_stopping"] = {
      "best_epoch": best["epoch"],
      "monitor": best["monitor"],
      "best_value": best["value"],
      "best_metrics": best["metrics"],
      "num_validation": info.num_validation,
      "final_weights": config.export_model,
    }
  return results


def _write_outputs(trainer, config: Config, info: data.DatasetInfo, results: dict) -> None:
  """The chief's files: labels, eps table, plots, SavedModel, results.json."""
  out = config.output_dir
  labels = example_lookup.read_train_labels(config.data)[: info.num_train]
  np.save(os.path.join(out, "train_labels.npy"), labels)
  eps_table = trainer.eps_table.numpy()
  if config.method.method in ADAPTIVE_METHODS:
    np.save(os.path.join(out, "eps_table.npy"), eps_table)
    results["eps"] = plots.eps_summary(eps_table, labels)
  elif config.method.method == "pgd_at":  # Every example at --eps.
    results["eps"] = {
      **plots.eps_summary(np.full(info.num_train, config.method.eps), labels),
      "uniform": True,
    }
  results["plots"] = write_run_plots(config, out, eps_table, labels, results["history"])
  if config.export:
    results["saved_model"] = export.export_classifier(
      trainer.classifier, os.path.join(out, "saved_model"), info.image_shape
    )
  run_io.write_json(os.path.join(out, run_io.RESULTS), results)


def write_run_plots(
  config: Config, out: str, eps_table: np.ndarray, labels: np.ndarray, history: dict, k: int = 8
) -> dict:
  """PNGs of the eps table and the training curves in output_dir/plots."""
  plot_dir = os.path.join(out, "plots")
  os.makedirs(plot_dir, exist_ok=True)
  written = {}
  norm = config.attack.norm  # The units of --eps.
  per_255 = plots.uses_per_255([config.method.eps], norm=norm)
  if history:
    written["history"] = curves.plot_training_history(
      history, os.path.join(plot_dir, "training_history.png"), per_255=per_255, norm=norm
    )
    if any(k.startswith("eps_table_q") for k in history):
      written["eps_over_epochs"] = curves.plot_eps_over_epochs(
        history,
        os.path.join(plot_dir, "eps_over_epochs.png"),
        warmup_eps=config.method.eps,
        eval_eps=config.validation.eps,
        warmup_epochs=config.method.warmup_epochs,
        per_255=per_255,
        norm=norm,
      )
  if config.method.method in ADAPTIVE_METHODS and eps_table.size:
    written["eps_histogram"] = plots.plot_eps_histogram(
      eps_table,
      os.path.join(plot_dir, "eps_histogram.png"),
      title=f"Learned radii ({config.method.method}, {config.data.dataset})",
      eps_reference=config.method.eps,
      per_255=per_255,
      norm=norm,
    )
    written["eps_per_class"] = plots.plot_eps_per_class(
      eps_table, labels, os.path.join(plot_dir, "eps_per_class.png"), per_255=per_255, norm=norm
    )
    smallest, largest = plots.extreme_indices(eps_table, k)
    ids = np.concatenate([smallest, largest])
    images, image_labels = example_lookup.train_examples_by_index(config.data, ids)
    written["eps_extremes"] = plots.plot_eps_extremes_grid(
      images,
      eps_table[ids],
      os.path.join(plot_dir, "eps_extremes.png"),
      k=k,
      labels=image_labels,
      per_255=per_255,
    )
  return written
