"""Robust early stopping: the best-validation epoch is kept, exported and survives resume."""

import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import data
from iaat_tf.runs import training, training_steps
from iaat_tf.reports import example_lookup
from iaat_tf.training import callbacks, early_stopping
from iaat_tf.config import (
  AttackConfig,
  Config,
  DataConfig,
  ValidationConfig,
  MethodConfig,
  TrainConfig,
)

# Validation PGD accuracy per epoch: the best is epoch 2 (1-based); epoch 4
# ties it and must not replace it; epoch 3 has no validation (skipped).
SCRIPT = [
  {"val_pgd_acc": 0.2, "val_clean_acc": 0.9},
  {"val_pgd_acc": 0.5, "val_clean_acc": 0.8},
  {"loss": 1.0},
  {"val_pgd_acc": 0.5, "val_clean_acc": 0.95},
  {"val_pgd_acc": 0.3, "val_clean_acc": 0.99},
]


def _run_script(callback, classifier, script, first_epoch=0):
  callback.set_model(types.SimpleNamespace(classifier=classifier))
  for k, logs in enumerate(script):
    epoch = first_epoch + k
    # Mark the weights with the epoch number to tell the saves apart.
    classifier.layers[0].kernel.assign(np.full((3, 2), epoch, np.float32))
    callback.on_epoch_end(epoch, dict(logs))


# This file's classifier (tiny_classifier, tests/conftest.py): one Dense(2) on 3 inputs.
DENSE = dict(shape=(3,), classes=2, hidden=0)


def test_best_checkpoint_keeps_the_highest_validation_pgd_epoch(tmp_path, tiny_classifier):
  classifier = tiny_classifier(**DENSE)
  callback = callbacks.BestCheckpoint(str(tmp_path))
  _run_script(callback, classifier, SCRIPT)
  state = early_stopping.read_state(str(tmp_path))
  assert state["epoch"] == 2 and state["value"] == 0.5
  assert state["metrics"] == {"val_pgd_acc": 0.5, "val_clean_acc": 0.8}
  fresh = tiny_classifier(**DENSE)
  early_stopping.restore_best_weights(fresh, str(tmp_path))
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 1.0)  # Epoch index 1.


def test_resumed_callback_compares_against_the_saved_best(tmp_path, tiny_classifier):
  classifier = tiny_classifier(**DENSE)
  _run_script(callbacks.BestCheckpoint(str(tmp_path)), classifier, SCRIPT[:2])
  # A new process: a new callback reads best.json, so a worse epoch after the
  # resume does not replace the best, and a better one does.
  resumed = callbacks.BestCheckpoint(str(tmp_path))
  assert resumed.best_value == 0.5
  _run_script(resumed, classifier, [{"val_pgd_acc": 0.45}], first_epoch=2)
  assert early_stopping.read_state(str(tmp_path))["epoch"] == 2
  _run_script(resumed, classifier, [{"val_pgd_acc": 0.7}], first_epoch=3)
  assert early_stopping.read_state(str(tmp_path))["epoch"] == 4
  fresh = tiny_classifier(**DENSE)
  early_stopping.restore_best_weights(fresh, str(tmp_path))
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 3.0)


def test_no_saved_state_restores_nothing(tmp_path, tiny_classifier):
  assert early_stopping.restore_best_weights(tiny_classifier(**DENSE), str(tmp_path)) is None


def test_validation_split_is_fixed_disjoint_and_training_ids_stay_dense():
  base = DataConfig(dataset="digits", batch_size=32)
  plain = data.load_datasets(base)
  a = data.load_datasets(
    DataConfig(dataset="digits", batch_size=32, validation_fraction=0.25, seed=1)
  )
  b = data.load_datasets(
    DataConfig(dataset="digits", batch_size=32, validation_fraction=0.25, seed=7)
  )
  n = plain.info.num_train
  assert a.info.num_validation == round(0.25 * n)
  assert a.info.num_train + a.info.num_validation == n
  images = lambda ds: np.concatenate([x["image"] for x, _ in ds.as_numpy_iterator()])
  val_a, val_b = images(a.validation), images(b.validation)
  np.testing.assert_array_equal(val_a, val_b)  # Independent of --seed.
  train_ids = np.concatenate([x["index"] for x, _ in a.train.as_numpy_iterator()])
  assert train_ids.max() < a.info.num_train  # Dense ids for the eps table.
  # Disjoint: no validation image is among the training images.
  train_set = {im.tobytes() for im in images(a.train_epochs(0, 1))}
  assert not any(im.tobytes() in train_set for im in val_a)
  # Labels by training id follow the split.
  labels = example_lookup.read_train_labels(
    a_config := DataConfig(dataset="digits", validation_fraction=0.25)
  )
  assert len(labels) == a.info.num_train
  x, y = example_lookup.train_examples_by_index(a_config, np.array([0, 5]))
  first = next(
    iter(
      data.load_datasets(
        DataConfig(dataset="digits", batch_size=1, shuffle_buffer=1, validation_fraction=0.25)
      ).train
    )
  )
  np.testing.assert_array_equal(x[0], first[0]["image"][0].numpy())
  assert y[0] == first[1][0].numpy() == labels[0]


def _config(out, export_model="best"):
  return Config(
    output_dir=out,
    export_model=export_model,
    data=DataConfig(
      dataset="digits", max_train_examples=320, batch_size=32, validation_fraction=0.25
    ),
    method=MethodConfig(method="pgd_at", eps=0.2, loss="trades"),
    attack=AttackConfig(steps=2, step_ratio=0.5, min_step=0.01),
    # The learning rate jumps x10 for the last epoch, which wrecks the
    # model (validation PGD accuracy 0.30 -> 0.11 here): the best validation
    # epoch is known to be an earlier one. x40 made the loss NaN on some CPUs.
    train=TrainConfig(learning_rate=0.05, epochs=4, lr_boundaries=(3,), lr_decay=10.0, verbose=0),
    validation=ValidationConfig(eps=0.2, steps=3, step_size=0.1),
  )


@pytest.mark.slow
def test_run_exports_the_best_validation_epoch(tmp_path):
  out = str(tmp_path / "run")
  results = training.train(_config(out), log=lambda _: None)
  history = results["history"]["val_pgd_acc"]
  best = results["early_stopping"]
  assert best["best_epoch"] == int(np.argmax(history)) + 1  # First maximum.
  assert best["best_epoch"] < 4 and history[-1] < best["best_value"]
  assert best["best_value"] == history[best["best_epoch"] - 1]
  assert best["num_validation"] == 80
  with open(os.path.join(out, "results.json")) as f:
    assert json.load(f)["early_stopping"]["best_epoch"] == best["best_epoch"]
  # The exported model is the best epoch's: its clean accuracy on the
  # validation split is that epoch's.
  served = tf.saved_model.load(os.path.join(out, "saved_model"))
  datasets = data.load_datasets(_config(out).data)
  correct = total = 0
  for x, y in datasets.validation:
    pred = np.argmax(served.serve(x["image"]).numpy(), axis=-1)
    correct += int((pred == y.numpy()).sum())
    total += len(pred)
  assert total == 80
  np.testing.assert_allclose(correct / total, best["best_metrics"]["val_clean_acc"], atol=1e-6)


def test_overwrite_clears_the_saved_best(tmp_path):
  # A stale best.json would otherwise survive --overwrite and be compared
  # against (and restored by) the new run.
  out = str(tmp_path)
  best_dir = os.path.join(out, "best_checkpoint")
  os.makedirs(best_dir)
  with open(os.path.join(best_dir, "best.json"), "w") as f:
    f.write("{}")
  training_steps._clear_outputs(out, chief=True, strategy=None)  # pylint: disable=protected-access
  assert not os.path.exists(best_dir)
