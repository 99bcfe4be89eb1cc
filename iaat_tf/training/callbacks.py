"""Every Keras callback of a training run: timing, history, TensorBoard, console, checkpoints.

* `EpochTimer`, `LearningRateLogger`, `EpsTableLogger` add values to each
  epoch's logs (epoch_seconds, images_per_second, learning_rate,
  eps_table_mean/zero_frac), so every later callback sees them.
* `HistoryWriter` keeps `history.csv` (epochs numbered from 1, rewritten
  atomically every epoch; after a resume, rows of epochs that are not in
  the checkpoint are dropped, so the file always matches the checkpoint).
* `TensorBoardLogger` writes every per-epoch value (train and validation,
  overlaid under the same tag), the eps-table histogram and the run's
  settings as text.
* `EpochSummary` prints one short line per epoch; `BatchProgressBar` is
  Keras' progress bar within an epoch, showing only the running loss.
* `AverageValidation` validates the weight average (--ema_decay) beside the
  raw weights (val_ema_clean_acc, val_ema_pgd_acc).
* `OverfittingWatch` flags catastrophic overfitting (training/overfitting.py)
  in the epoch's logs (`catastrophic_overfitting` 1 from the epoch it is
  found on), so the epoch line and history.csv say so.
* `BestCheckpoint` keeps the best-validation weights (robust early stopping,
  `early_stopping.py`); `CheckpointCallback` saves the resume checkpoint
  (weights, optimizer, eps table) at the end of every epoch
  (`runtime.make_checkpoint`).
"""

import contextlib
import json
import os
import time
from typing import Callable, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from iaat_tf import run_io
from iaat_tf.training import early_stopping, overfitting

SUMMARY_KEYS = (  # (log key, label) printed by EpochSummary when present.
  ("loss", "loss"),
  ("train_acc", "train_acc"),
  ("clean_acc", "clean_acc"),
  ("val_clean_acc", "val_clean_acc"),
  ("val_pgd_acc", "val_pgd_acc"),
  ("val_ema_clean_acc", "val_ema_clean_acc"),
  ("val_ema_pgd_acc", "val_ema_pgd_acc"),
  ("eps_mean", "eps_mean"),
)


def _numeric(logs: Optional[Mapping]) -> dict:
  out = {}
  for key, value in (logs or {}).items():
    try:
      out[key] = float(np.asarray(value))
    except (TypeError, ValueError):
      continue
  return out


class StopOnNaN(keras.callbacks.Callback):
  """Ends the run when an epoch's loss is NaN or Inf, checked once per epoch.

  Keras' `TerminateOnNaN` reads the loss on the host after every batch, which
  makes `fit` synchronise at every step; the epoch's mean loss is already
  NaN/Inf once one batch was. Put it before the history writer and the
  checkpoint: it raises `run_io.TrainingDiverged` before either records the
  epoch, so the last checkpoint is the last finite epoch.
  """

  def on_epoch_end(self, epoch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.isfinite(float(loss)):
      raise run_io.TrainingDiverged(
        f"training diverged: the loss of epoch {epoch + 1} is {float(loss)}; "
        f"the checkpoint of epoch {epoch} is kept (lower --learning_rate, or "
        "raise --warmup_epochs / --eps_ramp_epochs)"
      )


class EpochTimer(keras.callbacks.Callback):
  """Adds the epoch's wall time and training images/s to the logs."""

  def __init__(self, examples_per_epoch: int):
    super().__init__()
    self.examples_per_epoch = examples_per_epoch
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    seconds = time.perf_counter() - self._start
    if logs is not None:
      logs["epoch_seconds"] = seconds
      logs["images_per_second"] = self.examples_per_epoch / max(seconds, 1e-9)


class LearningRateLogger(keras.callbacks.Callback):
  """Adds the optimizer's learning rate at the end of the epoch to the logs."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))


class EpsTableLogger(keras.callbacks.Callback):
  """Adds the eps table's mean, zero fraction and quantiles to the logs
  (IAAT runs): `eps_table_q10`, `_q25`, `_q50`, `_q75`, `_q90`, so
  history.csv shows how the radius distribution moves epoch by epoch."""

  QUANTILES = (10, 25, 50, 75, 90)

  def on_epoch_end(self, epoch, logs=None):
    table = self.model.eps_table.numpy()
    if logs is not None:
      logs["eps_table_mean"] = float(table.mean())
      logs["eps_table_zero_frac"] = float((table == 0).mean())
      for q, value in zip(self.QUANTILES, np.percentile(table, self.QUANTILES)):
        logs[f"eps_table_q{q}"] = float(value)


class HistoryWriter(keras.callbacks.Callback):
  """history.csv: one row per finished epoch, `epoch` from 1, all log values."""

  def __init__(self, path: str, initial_epoch: int = 0):
    super().__init__()
    self.path = path
    self.initial_epoch = initial_epoch
    self.rows: list[dict] = []

  def on_train_begin(self, logs=None):
    self.rows = [
      r for r in run_io.read_history(self.path) if 1 <= r.get("epoch", 0) <= self.initial_epoch
    ]

  def on_epoch_end(self, epoch, logs=None):
    self.rows = [r for r in self.rows if r["epoch"] < epoch + 1]
    self.rows.append({"epoch": epoch + 1, **_numeric(logs)})
    keys = sorted({k for r in self.rows for k in r} - {"epoch"})
    rows = [{**r, "epoch": int(r["epoch"])} for r in self.rows]
    run_io.write_csv(self.path, ["epoch", *keys], rows)


class AverageValidation(keras.callbacks.Callback):
  """After each validated epoch, validates the weight average too.

  Evaluates `validation_data` with the average in the classifier
  (`WeightAverage.swapped`), adding `val_ema_clean_acc` and `val_ema_pgd_acc` to the
  epoch's logs (next to the raw weights' `val_*`).
  """

  def __init__(self, validation_data):
    super().__init__()
    self.validation_data = validation_data

  def on_epoch_end(self, epoch, logs=None):
    if logs is None or "val_pgd_acc" not in logs:
      return
    with self.model.weight_average.swapped():
      result = self.model.evaluate(self.validation_data, verbose=0, return_dict=True)
    logs["val_ema_clean_acc"] = float(result["clean_acc"])
    logs["val_ema_pgd_acc"] = float(result["pgd_acc"])


class OverfittingWatch(keras.callbacks.Callback):
  """Checks each validated epoch for catastrophic overfitting (once found,
  logs it and marks every later epoch). Place it before the writers."""

  KEY = "catastrophic_overfitting"

  def __init__(
    self,
    history_path: str,
    initial_epoch: int = 0,
    log: Callable[[str], None] = print,
    method: str = "pgd_at",
  ):
    super().__init__()
    self.method = method  # `standard` runs are never flagged.
    self.history_path = history_path
    self.initial_epoch = initial_epoch
    self.log = log
    self.rows: list[dict] = []
    self.found = None

  def on_train_begin(self, logs=None):
    self.rows = [
      r
      for r in run_io.read_history(self.history_path)
      if 1 <= r.get("epoch", 0) <= self.initial_epoch
    ]
    self.found = overfitting.detect(self.rows, self.method)

  def on_epoch_end(self, epoch, logs=None):
    if logs is None:
      return
    self.rows.append({"epoch": epoch + 1, **_numeric(logs)})
    if self.found is None:
      self.found = overfitting.detect(self.rows, self.method)
      if self.found is not None:
        self.log(f"iaat_tf: WARNING: {overfitting.message(self.found)}")
    logs[self.KEY] = float(self.found is not None)


class TensorBoardLogger(keras.callbacks.Callback):
  """Per-epoch scalars (train/ and validation/), eps histogram, settings text."""

  def __init__(self, logdir: str, settings: Optional[Mapping] = None, eps_histogram: bool = True):
    super().__init__()
    self.train_writer = tf.summary.create_file_writer(f"{logdir}/train")
    self.val_writer = tf.summary.create_file_writer(f"{logdir}/validation")
    self.settings = settings
    self.eps_histogram = eps_histogram

  def on_train_begin(self, logs=None):
    if self.settings is None:
      return
    text = json.dumps(self.settings, indent=2, sort_keys=True)
    with self.train_writer.as_default(step=0):
      tf.summary.text("settings", "```\n" + text + "\n```")
    self.train_writer.flush()

  def on_epoch_end(self, epoch, logs=None):
    step = epoch + 1  # Epochs from 1, as history.csv and the console.
    values = _numeric(logs)
    with self.train_writer.as_default(step=step):
      for key, value in values.items():
        if not key.startswith("val_"):
          tf.summary.scalar(key, value)
      if self.eps_histogram:
        tf.summary.histogram("eps_table", self.model.eps_table.numpy())
    with self.val_writer.as_default(step=step):
      for key, value in values.items():
        if key.startswith("val_"):
          tf.summary.scalar(key[len("val_") :], value)
    self.train_writer.flush()
    self.val_writer.flush()


class EpochSummary(keras.callbacks.Callback):
  """One short line per epoch: loss, accuracies, mean radius, time."""

  def __init__(self, epochs: int, log: Callable[[str], None] = print):
    super().__init__()
    self.epochs = epochs
    self.log = log

  def on_epoch_end(self, epoch, logs=None):
    values = _numeric(logs)
    parts = [f"epoch {epoch + 1}/{self.epochs}"]
    parts += [f"{label} {values[key]:.4f}" for key, label in SUMMARY_KEYS if key in values]
    if "epoch_seconds" in values:
      parts.append(f"{values['epoch_seconds']:.1f}s")
    if "images_per_second" in values:
      parts.append(f"{values['images_per_second']:.0f} img/s")
    if values.get(OverfittingWatch.KEY):
      parts.append("CATASTROPHIC OVERFITTING")
    self.log(" - ".join(parts))


class BatchProgressBar(keras.callbacks.ProgbarLogger):
  """Keras' progress bar within an epoch, with the running loss only.

  Used with fit(verbose=0) on a terminal; the epoch's numbers are printed
  by `EpochSummary` instead of on the bar.
  """

  SHOWN = ("loss",)

  def set_params(self, params):
    super().set_params(dict(params, verbose=1))
    self.epochs = 1  # No "Epoch i/n" header: EpochSummary numbers epochs.

  def _shown(self, logs):
    return {k: v for k, v in (logs or {}).items() if k in self.SHOWN}

  def on_train_batch_end(self, batch, logs=None):
    super().on_train_batch_end(batch, self._shown(logs))

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, self._shown(logs))


class BestCheckpoint(keras.callbacks.Callback):
  """Saves the classifier whenever `monitor` reaches a new maximum.

  `average=True` watches the weight average (`val_ema_pgd_acc`, from the
  AverageValidation callback before this one) and saves the average.
  """

  def __init__(self, directory: str, monitor: str = "", average: bool = False):
    super().__init__()
    self.directory = directory
    self.average = average
    self.monitor = monitor or ("val_ema_pgd_acc" if average else "val_pgd_acc")
    os.makedirs(directory, exist_ok=True)
    state = early_stopping.read_state(directory)  # Resume: compare against the saved best.
    self.best = None if state is None else state
    self.best_value = None if state is None else float(state["value"])

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if self.monitor not in logs:
      return
    value = float(logs[self.monitor])
    if not early_stopping.is_improvement(value, self.best_value):
      return
    self.save(epoch, value, logs)

  def save(self, epoch: int, value: float, logs: dict) -> None:
    with self.model.weight_average.swapped() if self.average else contextlib.nullcontext():
      tf.train.Checkpoint(classifier=self.model.classifier).write(
        os.path.join(self.directory, early_stopping.WEIGHTS_PREFIX)
      )
    state = {
      "epoch": int(epoch) + 1,  # 1-based, like history rows.
      "monitor": self.monitor,
      "value": value,
      "metrics": {k: float(v) for k, v in logs.items() if k.startswith("val_")},
    }
    early_stopping.write_state(self.directory, state)
    self.best, self.best_value = state, value


class CheckpointCallback(keras.callbacks.Callback):
  """Saves a checkpoint (with the eps table) at the end of every epoch."""

  def __init__(self, manager: tf.train.CheckpointManager):
    super().__init__()
    self.manager = manager

  def on_epoch_end(self, epoch, logs=None):
    self.manager.save(checkpoint_number=epoch + 1)
