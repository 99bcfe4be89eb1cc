"""One training run from a `Config`: data, model, fit, evaluate, export, report.

`run(config)` is what `python -m iaat_tf.main` calls after parsing flags. It
validates everything that can be checked before writing (config, data, the
output directory), resumes from the newest checkpoint in
`output_dir/checkpoints`, trains with `model.fit`, evaluates clean and PGD
accuracy on the test split, exports the classifier as a SavedModel and writes:

  output_dir/config.json      the run's settings
  output_dir/checkpoints/     classifier + optimizer + eps table + epoch
  output_dir/history.csv      per-epoch logs (appended across resumes)
  output_dir/tensorboard/     scalars and the eps-table histogram per epoch
  output_dir/eps_table.npy    final radius per training example id
  output_dir/train_labels.npy label per training example id
  output_dir/saved_model/     the exported classifier (`serve`: [0,1] -> logits)
  output_dir/results.json     summary (written last, atomically)
"""

import csv
import dataclasses
import json
import math
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from iaat_tf import adaptive_model, data, early_stopping, export, models, plots, training
from iaat_tf.config import Config, ConfigError, validate

RESUME_KEYS = ("data", "model", "method")


def write_json(path: str, payload: dict) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def _check_resume_compatible(config: Config, path: str) -> None:
  """A resumed run must train the same data, model and method."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  current = config.to_dict()
  for key in RESUME_KEYS:
    if key in saved and _jsonable(saved[key]) != _jsonable(current[key]):
      raise ConfigError(
          f"--output_dir={config.output_dir} holds a run with different "
          f"{key} settings; use a new --output_dir (or the original flags)")


def _jsonable(value):
  return json.loads(json.dumps(value))


def _prepare_output_dir(path: str) -> None:
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot create --output_dir={path}: {e.strerror}") from e
  if not os.access(path, os.W_OK):
    raise ConfigError(f"--output_dir={path} is not writable")


def build_trainer(config: Config, info: data.DatasetInfo, steps_per_epoch: int,
                  strategy: tf.distribute.Strategy):
  """Classifier + AdversarialTrainer + optimizer, created in the strategy scope."""
  with strategy.scope():
    classifier = models.build_classifier(config.model, info.image_shape,
                                         info.num_classes, info.name)
    trainer = adaptive_model.AdversarialTrainer(
        classifier, info.num_train, config.method,
        dataclasses.replace(config.attack, jit_compile=(
            config.attack.jit_compile or config.train.jit_compile == "attack")),
        evaluation=config.eval, seed=config.seed, steps_per_epoch=steps_per_epoch)
    # jit_compile is always explicit: Keras' default "auto" would XLA-compile
    # the whole step on a single GPU.
    trainer.compile(
        optimizer=training.make_optimizer(config.train, steps_per_epoch),
        steps_per_execution=config.train.steps_per_execution,
        jit_compile=config.train.jit_compile == "step")
  return trainer


def run(config: Config, log: Callable[[str], None] = print) -> dict:
  """Trains, evaluates and exports; returns the results dict (results.json)."""
  config = validate(config)
  training.configure_devices(config.train)
  strategy = training.make_strategy(config.train)
  replicas = strategy.num_replicas_in_sync
  if config.data.batch_size % replicas:
    raise ConfigError(f"--batch_size={config.data.batch_size} must be divisible "
                      f"by the {replicas} replicas")
  training.set_precision(config.train)
  keras.utils.set_random_seed(config.seed)

  datasets = data.load_datasets(config.data)  # Fails before anything is written.
  info = datasets.info
  steps_per_epoch = info.num_train // config.data.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(f"--batch_size={config.data.batch_size} is larger than the "
                      f"{info.num_train} training examples")
  out = config.output_dir
  _prepare_output_dir(out)
  _check_resume_compatible(config, os.path.join(out, "config.json"))
  chief = training.is_chief(strategy)
  if chief:
    write_json(os.path.join(out, "config.json"), config.to_dict())
  log(f"iaat_tf: {config.method.method} on {info.name} "
      f"({info.num_train} train / {info.num_test} test, {info.image_shape}), "
      f"{config.model.name}, {replicas} replica(s), {steps_per_epoch} steps/epoch")

  trainer = build_trainer(config, info, steps_per_epoch, strategy)
  checkpoint = training.make_checkpoint(trainer)
  manager = tf.train.CheckpointManager(
      checkpoint, training.worker_dir(out, strategy, "checkpoints"),
      max_to_keep=config.train.keep_checkpoints)
  initial_epoch = training.restore_latest(trainer, manager)
  if initial_epoch:
    log(f"iaat_tf: resumed from {manager.latest_checkpoint} "
        f"(epoch {initial_epoch}/{config.train.epochs})")

  eval_batches = max(1, math.ceil(config.eval.max_examples / config.data.eval_batch_size))
  callbacks = [
      training.EpochCallback(),
      training.EpochTimer(steps_per_epoch * config.data.batch_size),
      training.EpsTableLogger(os.path.join(out, "tensorboard") if chief else None),
      training.CheckpointCallback(manager),
      keras.callbacks.CSVLogger(training.worker_dir(out, strategy, "history.csv"),
                                append=True),
      keras.callbacks.TerminateOnNaN(),
  ]
  # Robust early stopping: validate on the held-out training examples and
  # keep the best weights (saved before the epoch's resume checkpoint).
  best_dir = training.worker_dir(out, strategy, "best_checkpoint")
  validation_data = datasets.test.take(eval_batches)
  if datasets.validation is not None:
    validation_data = datasets.validation
    callbacks.insert(3, early_stopping.BestCheckpoint(best_dir))
  start = time.perf_counter()
  history = {}
  if initial_epoch < config.train.epochs:
    fit = trainer.fit(
        datasets.train_epochs(initial_epoch, config.train.epochs),
        steps_per_epoch=steps_per_epoch,
        epochs=config.train.epochs, initial_epoch=initial_epoch,
        validation_data=validation_data,
        validation_freq=config.eval.every_epochs, callbacks=callbacks,
        verbose=config.train.verbose, shuffle=False)
    history = training.history_to_lists(fit.history)
  train_seconds = time.perf_counter() - start

  best = None
  if datasets.validation is not None:
    best = early_stopping.read_state(best_dir)
    if best is not None and config.export_model == "best":
      early_stopping.restore_best_weights(trainer.classifier, best_dir)
      log(f"iaat_tf: restored the best validation weights (epoch {best['epoch']}, "
          f"val PGD {best['value']:.4f})")
  log("iaat_tf: final evaluation on the test split "
      f"(clean + PGD-{config.eval.steps} at eps={config.eval.eps:.5f})")
  final = trainer.evaluate(datasets.test, verbose=config.train.verbose,
                           return_dict=True)
  eps_table = trainer.eps_table.numpy()
  results = {
      "method": config.method.method,
      "dataset": info.name,
      "model": config.model.name,
      "train_eps": config.method.eps,
      "num_train": info.num_train,
      "num_test": info.num_test,
      "replicas": replicas,
      "epochs": config.train.epochs,
      "resumed_from_epoch": initial_epoch,
      "train_seconds": train_seconds,
      "final": {"clean_accuracy": float(final["clean_acc"]),
                "pgd_accuracy": float(final["pgd_acc"]),
                "eval_eps": config.eval.eps,
                "eval_pgd_steps": config.eval.steps},
      "history": history,
  }
  if best is not None:
    results["early_stopping"] = {
        "best_epoch": best["epoch"], "monitor": best["monitor"],
        "best_value": best["value"], "best_metrics": best["metrics"],
        "num_validation": info.num_validation,
        "final_weights": config.export_model}
  if chief:
    labels = data.read_train_labels(config.data)[:info.num_train]
    np.save(os.path.join(out, "eps_table.npy"), eps_table)
    np.save(os.path.join(out, "train_labels.npy"), labels)
    results["eps"] = plots.eps_summary(eps_table, labels)
    results["plots"] = write_run_plots(config, out, eps_table, labels,
                                       _full_history(out, history))
    if config.export:
      path = export.export_classifier(trainer.classifier,
                                      os.path.join(out, "saved_model"),
                                      info.image_shape)
      results["saved_model"] = path
    write_json(os.path.join(out, "results.json"), results)
  log(f"iaat_tf: clean {results['final']['clean_accuracy']:.4f}, "
      f"PGD {results['final']['pgd_accuracy']:.4f}; wrote {out}")
  return results


def _full_history(out: str, history: dict) -> dict:
  """Per-epoch logs of the whole run (history.csv spans resumes)."""
  path = os.path.join(out, "history.csv")
  if not os.path.exists(path):
    return history
  with open(path) as f:
    rows = list(csv.DictReader(f))
  merged = {}
  for row in rows:
    for key, value in row.items():
      if key != "epoch" and value not in (None, ""):
        merged.setdefault(key, []).append(float(value))
  return merged or history


def write_run_plots(config: Config, out: str, eps_table: np.ndarray,
                    labels: np.ndarray, history: dict, k: int = 8) -> dict:
  """PNGs of the eps table and the training curves in output_dir/plots."""
  plot_dir = os.path.join(out, "plots")
  os.makedirs(plot_dir, exist_ok=True)
  written = {}
  if history:
    written["history"] = plots.plot_training_history(
        history, os.path.join(plot_dir, "training_history.png"))
  if config.method.method in ("iaat", "iaat_cheap") and eps_table.size:
    written["eps_histogram"] = plots.plot_eps_histogram(
        eps_table, os.path.join(plot_dir, "eps_histogram.png"),
        title=f"learned eps ({config.method.method}, {config.data.dataset})",
        eps_reference=config.method.eps)
    written["eps_per_class"] = plots.plot_eps_per_class(
        eps_table, labels, os.path.join(plot_dir, "eps_per_class.png"))
    smallest, largest = plots.extreme_indices(eps_table, k)
    ids = np.concatenate([smallest, largest])
    images, _ = data.train_examples_by_index(config.data, ids)
    written["eps_extremes"] = plots.plot_eps_extremes_grid(
        images, eps_table[ids], os.path.join(plot_dir, "eps_extremes.png"), k=k)
  return written
