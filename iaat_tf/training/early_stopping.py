"""Robust early stopping (Rice et al. 2020): keep the best-validation weights.

`callbacks.BestCheckpoint` is the Keras callback that watches a validation metric
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


def write_state(directory: str, state: dict) -> None:
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
    os.path.join(directory, WEIGHTS_PREFIX)
  ).assert_existing_objects_matched()
  return state
