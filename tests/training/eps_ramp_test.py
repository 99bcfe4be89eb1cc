"""--eps_ramp_epochs: the per-step radius schedule, and that it cures PGD-AT at a large radius."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.runs import training
from iaat_tf.training import radius
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import (
  AttackConfig,
  Config,
  ConfigError,
  DataConfig,
  ValidationConfig,
  MethodConfig,
  TrainConfig,
)
from iaat_tf.validation import validate

N, BATCH = 48, 16  # 3 steps per epoch.


def test_ramp_factor_is_linear_per_step_then_one():
  got = [float(radius.ramp_factor(s, 6)) for s in range(9)]
  np.testing.assert_allclose(got, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1], atol=1e-7)
  assert float(radius.ramp_factor(5, 0)) == 1.0  # No ramp.


def _fit(method, ramp, epochs, warmup=10):
  keras.utils.set_random_seed(0)
  x = np.random.RandomState(0).rand(N, 4, 4, 1).astype(np.float32)
  y = np.arange(N) % 3
  classifier = keras.Sequential(
    [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
  )
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(method=method, eps=0.3, warmup_epochs=warmup, eps_ramp_epochs=ramp),
    AttackConfig(steps=1),
    steps_per_epoch=N // BATCH,
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y))
  history = trainer.fit(
    ds.batch(BATCH).repeat(), steps_per_epoch=N // BATCH, epochs=epochs, verbose=0
  )
  return trainer, history.history


def test_pgd_at_trains_at_the_ramped_radius_per_step():
  _, history = _fit("pgd_at", ramp=2, epochs=3)
  # Steps 0..5 ramp over 2 epochs of 3 steps: radii 0.3 * s / 6; then 0.3.
  want = [0.3 * np.mean([0, 1, 2]) / 6, 0.3 * np.mean([3, 4, 5]) / 6, 0.3]
  np.testing.assert_allclose(history["eps_mean"], want, atol=1e-6)


def test_iaat_warmup_radius_is_ramped_and_stored():
  trainer, _ = _fit("iaat", ramp=1, epochs=1, warmup=2)
  # One epoch of 3 steps, lr 0: each batch stores 0.3 * step / 3 for its
  # clean-correct examples, so every stored radius is one of those values.
  table = trainer.eps_table.numpy()
  allowed = np.array([0.0, 0.1, 0.2])
  assert np.all(np.abs(table[:, None] - allowed).min(axis=1) < 1e-6)
  assert np.isclose(table, 0.1).any() and np.isclose(table, 0.2).any()


def test_ramp_longer_than_iaat_warmup_is_refused():
  with pytest.raises(ConfigError, match="eps_ramp_epochs"):
    validate(
      Config(output_dir="x", method=MethodConfig(method="iaat", warmup_epochs=2, eps_ramp_epochs=3))
    )


def _digits_pgd_at(out, ramp):
  return Config(
    output_dir=out,
    export=False,
    data=DataConfig(dataset="digits", max_train_examples=640, batch_size=64),
    method=MethodConfig(method="pgd_at", eps=0.3, eps_ramp_epochs=ramp),
    attack=AttackConfig(steps=5, step_ratio=0.25, min_step=0.01),
    train=TrainConfig(epochs=4, learning_rate=0.05, momentum=0.9, weight_decay=5e-4, verbose=0),
    validation=ValidationConfig(eps=0.3, steps=1, step_size=0.1, max_examples=256),
  )


@pytest.mark.slow
def test_ramp_cures_pgd_at_at_a_large_radius(tmp_path):
  """The quick start's digits and SGD settings, PGD-AT at eps 0.3 for 4 epochs.

  Without a ramp the model stays at chance (it predicts one class); ramping
  the radius over the first 2 epochs lets it learn the clean task first.
  """
  plain = training.train(_digits_pgd_at(str(tmp_path / "plain"), 0), log=lambda _: None)
  ramped = training.train(_digits_pgd_at(str(tmp_path / "ramp"), 2), log=lambda _: None)
  assert plain["final"]["clean_accuracy"] < 0.2
  assert ramped["final"]["clean_accuracy"] > 0.5
