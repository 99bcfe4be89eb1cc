"""The weight average (--ema_decay): its arithmetic, per-epoch validation,
early stopping on it, export, resume, and 1 vs 2 replicas."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from iaat_tf.cli import train
from iaat_tf.config import AttackConfig, MethodConfig
from iaat_tf.training import runtime, weight_average
from iaat_tf.training.trainer import AdversarialTrainer

N, SHAPE = 32, (6, 6, 1)


def _data():
  rng = np.random.RandomState(0)
  x, y = rng.rand(N, *SHAPE).astype(np.float32), rng.randint(0, 3, N)
  return tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y)).batch(8)


def _trainer(decay=0.9):
  keras.utils.set_random_seed(0)
  classifier = keras.Sequential(
    [
      keras.Input(SHAPE),
      keras.layers.Flatten(),
      keras.layers.Dense(8),
      keras.layers.BatchNormalization(),
      keras.layers.Dense(3),
    ]
  )
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(method="pgd_at", eps=0.1),
    AttackConfig(steps=2, step_ratio=0.5, min_step=0.01),
    ema_decay=decay,
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
  return trainer


def test_an_unbuilt_classifier_is_refused():
  """An unbuilt classifier has no weights yet: the average would be empty
  and "EMA" evaluation and export would silently use the raw weights."""
  unbuilt = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
  with pytest.raises(ValueError, match="needs a built classifier"):
    AdversarialTrainer(
      unbuilt, N, MethodConfig(method="pgd_at", eps=0.1), AttackConfig(steps=2), ema_decay=0.9
    )
  assert _trainer().weight_average.average  # Built: every weight averaged.


class _Record(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.weights = []

  def on_train_begin(self, logs=None):
    self.weights.append([w.numpy().copy() for w in self.model.classifier.weights])

  def on_train_batch_end(self, batch, logs=None):
    self.weights.append([w.numpy().copy() for w in self.model.classifier.weights])


def test_the_average_follows_its_formula_over_every_weight_and_swaps_exactly():
  trainer = _trainer(decay=0.9)
  record = _Record()
  trainer.fit(_data(), epochs=2, verbose=0, callbacks=[record])
  expected = [w.copy() for w in record.weights[0]]  # The initial weights.
  for t, weights in enumerate(record.weights[1:], 1):
    d = min(0.9, (1 + t) / (10 + t))
    expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
  average = trainer.weight_average.average
  assert len(average) == len(trainer.classifier.weights) == 8  # BN stats too.
  for a, e in zip(average, expected):
    np.testing.assert_allclose(a.numpy(), e, atol=1e-6)
  raw = [w.numpy().copy() for w in trainer.classifier.weights]
  trainer.weight_average.swap()
  for w, e in zip(trainer.classifier.weights, expected):
    np.testing.assert_allclose(w.numpy(), e, atol=1e-6)
  trainer.weight_average.swap()
  for w, r in zip(trainer.classifier.weights, raw):
    np.testing.assert_array_equal(w.numpy(), r)
  with pytest.raises(ValueError, match="in \\(0, 1\\)"):
    weight_average.WeightAverage(trainer.classifier, 1.0)


def test_the_average_is_checkpointed_and_restored(tmp_path):
  trainer = _trainer()
  trainer.fit(_data(), epochs=1, verbose=0)
  manager = tf.train.CheckpointManager(runtime.make_checkpoint(trainer), str(tmp_path), 1)
  manager.save(checkpoint_number=1)
  fresh = _trainer()
  for v in fresh.weight_average.average:
    v.assign(tf.zeros_like(v))
  fresh_manager = tf.train.CheckpointManager(runtime.make_checkpoint(fresh), str(tmp_path), 1)
  assert runtime.restore_latest(fresh, fresh_manager) == 1
  for a, b in zip(fresh.weight_average.average, trainer.weight_average.average):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_validated_beside_the_raw_weights_early_stopped_on_and_exported(
  tmp_path, tiny_digits_flags
):
  out = tmp_path / "ema"
  with flagsaver.flagsaver(
    **tiny_digits_flags(
      out,
      method="pgd_at",
      eps="0.1",
      epochs=3,
      pgd_steps=2,
      validation_fraction=0.25,
      ema_decay=0.9,
      early_stopping_weights="ema",
      export_model="best",
    )
  ):
    train.run(["iaat_tf.main"])
  results = json.load(open(out / "results.json"))
  history = results["history"]
  assert len(history["val_ema_pgd_acc"]) == 3 and len(history["val_pgd_acc"]) == 3
  assert history["val_ema_clean_acc"] != history["val_clean_acc"]  # Not the raw.
  best = results["early_stopping"]
  assert best["monitor"] == "val_ema_pgd_acc"
  assert best["best_value"] == max(history["val_ema_pgd_acc"])
  assert results["weights"] == "best" and results["ema_decay"] == 0.9


def test_ema_options_need_a_decay_and_a_validation_split(tmp_path):
  from iaat_tf.cli import flags_config  # pylint: disable=g-import-not-at-top
  from iaat_tf.config import ConfigError  # pylint: disable=g-import-not-at-top
  from iaat_tf.validation import validate  # pylint: disable=g-import-not-at-top

  for flags, message in [
    (dict(export_model="ema"), "need a weight average"),
    (dict(ema_decay=0.99, early_stopping_weights="ema"), "set --validation_fraction"),
    (dict(ema_decay=1.0), "must be in \\[0, 1\\)"),
  ]:
    with flagsaver.flagsaver(output_dir=str(tmp_path), **flags):
      with pytest.raises(ConfigError, match=message):
        validate(flags_config.config_from_flags())


def _cli_run(out, *extra):
  import subprocess
  import sys  # pylint: disable=g-import-not-at-top,multiple-import

  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "iaat_tf.main",
      "--flagfile=flags/quickstart.flags",
      "--method=iaat_cheap",
      "--warmup_epochs=1",
      "--epochs=2",
      "--max_train_examples=256",
      "--pgd_steps=2",
      "--val_examples=64",
      "--ema_decay=0.9",
      "--export_model=ema",
      "--export=false",
      "--verbose=0",
      f"--output_dir={out}",
      *extra,
    ],
    cwd=repo,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(out, "checkpoints")))
  state = {
    k: reader.get_tensor(k)
    for k in reader.get_variable_to_shape_map()
    if k.startswith(("weight_average/", "classifier/", "eps_table/"))
    and not k.endswith("OBJECT_CONFIG_JSON")
  }
  return state, json.load(open(os.path.join(out, "results.json")))


@pytest.mark.slow
def test_one_and_two_replicas_give_the_same_average_through_the_command(tmp_path):
  one, results_one = _cli_run(str(tmp_path / "one"))
  two, results_two = _cli_run(
    str(tmp_path / "two"), "--strategy=mirrored", "--num_virtual_devices=2"
  )
  assert sorted(one) == sorted(two)
  assert sum(k.startswith("weight_average/") for k in one) >= 4
  for key in one:
    np.testing.assert_allclose(one[key], two[key], atol=1e-5, err_msg=key)
  assert results_one["weights"] == "ema"
  for key in ("val_ema_pgd_acc", "val_ema_clean_acc"):
    np.testing.assert_allclose(results_one["history"][key], results_two["history"][key], atol=1e-6)
  assert results_one["final"] == results_two["final"]
