"""Robust early stopping (Rice et al. 2020): keep the best-validation weights.

`BestCheckpoint` is a Keras callback that watches a validation metric
(`val_pgd_acc`: PGD accuracy on the held-out part of the training split) and,
whenever an epoch beats every earlier one, writes the classifier's weights to
`<directory>/best` and the epoch and its validation metrics to
`<directory>/best.json`. Ties keep the EARLIER epoch (an epoch must be
strictly better to replace the best). Epochs without the metric (validation
every N epochs) are skipped.

The best-so-far state lives on disk, so a resumed run continues comparing
against it. Put this callback before the resume checkpoint callback: the
best weights of epoch e are then on disk before epoch e counts as finished.
"""

import contextlib
import json
import os
from typing import Optional

import keras
import tensorflow as tf

STATE_FILE = "best.json"
WEIGHTS_PREFIX = "best"


def read_state(directory: str) -> Optional[dict]:
  """The saved best-so-far record ({"epoch", "monitor", "value", ...}), or None."""
  path = os.path.join(directory, STATE_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_state(directory: str, state: dict) -> None:
  path = os.path.join(directory, STATE_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(state, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def is_improvement(value: float, best: Optional[float]) -> bool:
  """Strictly higher than the best so far (ties keep the earlier epoch)."""
  return best is None or value > best


def restore_best_weights(classifier: keras.Model, directory: str) -> Optional[dict]:
  """Loads the best weights into `classifier`; returns their record (None: none saved)."""
  state = read_state(directory)
  if state is None:
    return None
  tf.train.Checkpoint(classifier=classifier).read(
      os.path.join(directory, WEIGHTS_PREFIX)).assert_existing_objects_matched()
  return state


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
    state = read_state(directory)  # Resume: compare against the saved best.
    self.best = None if state is None else state
    self.best_value = None if state is None else float(state["value"])

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if self.monitor not in logs:
      return
    value = float(logs[self.monitor])
    if not is_improvement(value, self.best_value):
      return
    self.save(epoch, value, logs)

  def save(self, epoch: int, value: float, logs: dict) -> None:
    with (self.model.weight_average.swapped() if self.average
          else contextlib.nullcontext()):
      tf.train.Checkpoint(classifier=self.model.classifier).write(
          os.path.join(self.directory, WEIGHTS_PREFIX))
    state = {"epoch": int(epoch) + 1,  # 1-based, like history rows.
             "monitor": self.monitor, "value": value,
             "metrics": {k: float(v) for k, v in logs.items()
                         if k.startswith("val_")}}
    _write_state(self.directory, state)
    self.best, self.best_value = state, value
