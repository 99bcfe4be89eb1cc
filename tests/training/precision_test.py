"""Mixed precision (`--precision=mixed_bfloat16|mixed_float16`).

The classifier computes in bfloat16/float16, but everything IAAT adds stays
float32: attack deltas and input gradients (the attack runs on float32
images and casts the logits), per-example radii and the eps table, and the
loss (float32 logits). mixed_float16 also gets Keras' LossScaleOptimizer.
float16 convolutions are very slow on CPUs, so its training run is tiny.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import models
from iaat_tf.runs import training
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import (
  AttackConfig,
  Config,
  DataConfig,
  ValidationConfig,
  MethodConfig,
  TrainConfig,
)

HALF = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
N, SHAPE, CLASSES = 16, (8, 8, 1), 3


@pytest.fixture(autouse=True)
def _float32_afterwards():
  yield
  keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", sorted(HALF))
def test_attack_gradients_deltas_and_eps_stay_float32(policy):
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(0)
  classifier = models.small_cnn(SHAPE, CLASSES, (0.5,), (0.25,))
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(method="iaat", eps=0.1, gamma=0.02),
    AttackConfig(steps=3, step_ratio=0.25, min_step=0.01),
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.1))
  convs = [l for l in classifier.layers if isinstance(l, keras.layers.Conv2D)]
  assert convs and all(l.compute_dtype == HALF[policy] for l in convs)
  assert all(w.dtype == "float32" for w in classifier.weights)  # Master weights.
  assert trainer.eps_table.dtype == tf.float32
  if policy == "mixed_float16":
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)

  rng = np.random.RandomState(0)
  images = tf.constant(rng.rand(N, *SHAPE).astype(np.float32))
  labels = tf.constant(rng.randint(0, CLASSES, N), tf.int64)
  eps = tf.constant(np.linspace(0.0, 0.2, N).astype(np.float32))
  index = tf.range(N, dtype=tf.int64)

  raw = classifier(images)
  assert raw.dtype == tf.float32  # The logits layer is float32.
  with tf.GradientTape() as tape:
    tape.watch(images)
    logits = trainer.recipe.logits_fn(images)
    loss = tf.reduce_sum(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits
      )
    )
  grad = tape.gradient(loss, images)
  assert logits.dtype == tf.float32 and grad.dtype == tf.float32
  assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 0

  x_adv = trainer.recipe.craft(images, labels, eps, index, tf.constant(0, tf.int64), 0)
  delta = (x_adv - images).numpy()
  assert x_adv.dtype == tf.float32
  per_example = np.abs(delta).reshape(N, -1).max(axis=1)
  assert np.all(per_example <= eps.numpy() + 1e-7)  # Exact float32 projection.
  assert per_example[-1] > 0.5 * eps.numpy()[-1]  # The attack moved.
  assert x_adv.numpy().min() >= 0.0 and x_adv.numpy().max() <= 1.0

  trainer.eps_table.write(index, tf.cast(eps, HALF[policy]))
  assert trainer.eps_table.dtype == tf.float32
  np.testing.assert_allclose(trainer.eps_table.numpy(), eps.numpy(), atol=1e-3)


def _config(output_dir: str, precision: str, tiny: bool) -> Config:
  n = 64 if tiny else 256
  return Config(
    output_dir=output_dir,
    export=not tiny,
    seed=0,
    data=DataConfig(
      dataset="digits",
      max_train_examples=n,
      batch_size=32,
      max_eval_examples=64,
      eval_batch_size=64,
    ),
    method=MethodConfig(method="iaat", eps=0.1, warmup_epochs=1, gamma=0.02, beta=0.3, eps_max=0.3),
    attack=AttackConfig(steps=1 if tiny else 3, step_ratio=0.25, min_step=0.01),
    train=TrainConfig(epochs=2 if tiny else 3, learning_rate=0.05, precision=precision, verbose=0),
    validation=ValidationConfig(eps=0.1, steps=1 if tiny else 3, step_size=0.03, max_examples=64),
  )


@pytest.mark.slow
@pytest.mark.parametrize("precision", sorted(HALF))
def test_short_training_run_is_finite_with_a_float32_eps_table(tmp_path, precision):
  tiny = precision == "mixed_float16"  # float16 convolutions crawl on CPUs.
  config = _config(str(tmp_path), precision, tiny)
  results = training.train(config, log=lambda _: None)
  assert keras.mixed_precision.global_policy().name == precision

  losses = results["history"]["loss"]
  assert len(losses) == config.train.epochs and np.isfinite(losses).all()
  assert np.isfinite(results["final"]["clean_accuracy"])
  table = np.load(os.path.join(str(tmp_path), "eps_table.npy"))
  assert table.dtype == np.float32 and table.shape == (config.data.max_train_examples,)
  assert np.isfinite(table).all() and table.max() <= config.method.eps_max
  assert (table > 0).any()
  with open(os.path.join(str(tmp_path), "results.json")) as f:
    assert json.load(f)["eps"]["max"] <= config.method.eps_max
  if not tiny:
    # The exported classifier serves float32 logits from float32 images.
    loaded = tf.saved_model.load(os.path.join(str(tmp_path), "saved_model"))
    logits = loaded.serve(tf.zeros([2, *SHAPE]))
    assert logits.dtype == tf.float32 and logits.shape == (2, 10)
