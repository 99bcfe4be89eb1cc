"""XLA is decided by the project: `--jit_compile=none|attack|step`.

The whole train step (attacks, radius rules, eps-table write, optimizer
update) XLA-compiled on the default strategy must train every method to the
same eps table and weights as the plain run.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import config as cfg
from iaat_tf import validation
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import AttackConfig, MethodConfig

N, SHAPE, CLASSES, BATCH = 32, (6, 6, 1), 3, 8


def _train(method: str, jit_compile: bool):
  keras.utils.set_random_seed(0)  # Before the dataset: fixes its shuffle order.
  rng = np.random.RandomState(0)
  x = rng.rand(N, *SHAPE).astype(np.float32)
  y = rng.randint(0, CLASSES, N).astype(np.int64)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y))
  ds = ds.shuffle(N, seed=1).batch(BATCH, drop_remainder=True)
  classifier = keras.Sequential(
    [
      keras.Input(SHAPE),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation="relu"),
      keras.layers.Dense(CLASSES),
    ]
  )
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(method=method, eps=0.1, warmup_epochs=1, gamma=0.03, beta=0.5, eps_max=0.3),
    AttackConfig(steps=3, step_ratio=0.25, min_step=0.01),
    seed=2,
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=jit_compile)
  history = trainer.fit(ds, epochs=3, verbose=0)
  return (trainer.eps_table.numpy(), [w.numpy() for w in classifier.weights], history.history)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["standard", "pgd_at", "iaat", "iaat_cheap"])
def test_whole_step_xla_matches_the_plain_step(method):
  table_plain, weights_plain, history = _train(method, jit_compile=False)
  table_xla, weights_xla, _ = _train(method, jit_compile=True)
  np.testing.assert_allclose(table_xla, table_plain, atol=1e-5)
  for a, b in zip(weights_xla, weights_plain):
    np.testing.assert_allclose(a, b, atol=1e-4)
  assert np.isfinite(history["loss"]).all()
  if method in ("iaat", "iaat_cheap"):
    assert (table_plain > 0).any()
  # clean_acc is measured wherever there is an attack, and absent otherwise.
  assert ("clean_acc" in history) == (method != "standard")


def test_step_xla_is_refused_under_a_distribution_strategy():
  config = cfg.Config(
    output_dir="/tmp/x", train=cfg.TrainConfig(jit_compile="step", strategy="mirrored")
  )
  with pytest.raises(cfg.ConfigError, match="jit_compile=step"):
    validation.validate(config)
  with pytest.raises(cfg.ConfigError, match="unknown --jit_compile"):
    validation.validate(
      cfg.Config(output_dir="/tmp/x", train=cfg.TrainConfig(jit_compile="everything"))
    )
