"""losses.py against hand-computed values, and TRADES' KL attack (kl_attack.py)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.attacks import kl_attack
from iaat_tf.training import losses
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.training.recipe import Plan
from iaat_tf.config import AttackConfig, MethodConfig

# Two examples, three classes, given as probabilities (logits = log p).
P_CLEAN = np.array([[0.5, 0.25, 0.25], [0.2, 0.7, 0.1]])
P_ADV = np.array([[0.2, 0.5, 0.3], [0.1, 0.3, 0.6]])
LABELS = np.array([0, 1])


def _logits(p):
  return tf.constant(np.log(p), tf.float32)


def _kl(p, q):
  return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_kl_and_ce_match_hand_computed_values():
  kl = losses.kl_divergence(_logits(P_CLEAN), _logits(P_ADV)).numpy()
  # Example 0: .5 ln(.5/.2) + .25 ln(.25/.5) + .25 ln(.25/.3).
  hand0 = 0.5 * math.log(2.5) + 0.25 * math.log(0.5) + 0.25 * math.log(0.25 / 0.3)
  np.testing.assert_allclose(kl, [hand0, _kl(P_CLEAN[1], P_ADV[1])], rtol=1e-5)
  ce = losses.ce_loss(_logits(P_CLEAN), _logits(P_ADV), LABELS).numpy()
  np.testing.assert_allclose(ce, [-math.log(0.2), -math.log(0.3)], rtol=1e-5)


def test_trades_is_clean_ce_plus_beta_kl():
  got = losses.trades_loss(_logits(P_CLEAN), _logits(P_ADV), LABELS, 6.0).numpy()
  hand = [
    -math.log(0.5) + 6.0 * _kl(P_CLEAN[0], P_ADV[0]),
    -math.log(0.7) + 6.0 * _kl(P_CLEAN[1], P_ADV[1]),
  ]
  np.testing.assert_allclose(got, hand, rtol=1e-5)
  # Identical predictions: the KL term vanishes, only the clean CE is left.
  same = losses.trades_loss(_logits(P_CLEAN), _logits(P_CLEAN), LABELS, 6.0).numpy()
  np.testing.assert_allclose(same, [-math.log(0.5), -math.log(0.7)], rtol=1e-5)


def test_mart_is_boosted_ce_plus_weighted_kl():
  got = losses.mart_loss(_logits(P_CLEAN), _logits(P_ADV), LABELS, 6.0).numpy()
  # Example 0 (label 0): top wrong adversarial class is 1 (p 0.5);
  # example 1 (label 1): it is class 2 (p 0.6), not the label's 0.3.
  bce = [-math.log(0.2) - math.log(1.0001 - 0.5), -math.log(0.3) - math.log(1.0001 - 0.6)]
  weight = [1.0000001 - 0.5, 1.0000001 - 0.7]  # 1 - p_clean[y].
  hand = [bce[i] + 6.0 * _kl(P_CLEAN[i], P_ADV[i]) * weight[i] for i in range(2)]
  np.testing.assert_allclose(got, hand, rtol=1e-5)
  np.testing.assert_allclose(
    losses.boosted_cross_entropy(_logits(P_ADV), LABELS).numpy(), bce, rtol=1e-5
  )


def test_per_example_loss_dispatch_and_unknown_name():
  for name, fn in losses.PER_EXAMPLE.items():
    np.testing.assert_allclose(
      losses.per_example_loss(name, _logits(P_CLEAN), _logits(P_ADV), LABELS, 2.0),
      fn(_logits(P_CLEAN), _logits(P_ADV), LABELS, 2.0),
    )
  with pytest.raises(ValueError, match="unknown loss"):
    losses.per_example_loss("hinge", None, _logits(P_ADV), LABELS, 1.0)


def _tiny_trainer(loss):
  keras.utils.set_random_seed(0)
  classifier = keras.Sequential(
    [keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
  )
  return AdversarialTrainer(
    classifier,
    4,
    MethodConfig(method="pgd_at", eps=0.1, loss=loss, trades_beta=2.0, mart_beta=3.0),
    AttackConfig(steps=2),
  )


def _plan(attacked_rows):
  """A plan whose S- rows (not `attacked_rows`) train on their clean image."""
  return Plan(
    step=tf.constant(0, tf.int64),
    in_warmup=False,
    clean_ok=attacked_rows,
    stored=None,
    eps=tf.zeros([0]),
    attacked_rows=attacked_rows,
  )


@pytest.mark.parametrize("loss,beta", [("ce", 0.0), ("trades", 2.0), ("mart", 3.0)])
def test_recipe_loss_applies_the_configured_loss(loss, beta):
  trainer = _tiny_trainer(loss)
  rng = np.random.RandomState(0)
  images = tf.constant(rng.rand(4, 2, 2, 1), tf.float32)
  x_adv = tf.clip_by_value(images + 0.1, 0.0, 1.0)
  labels = tf.constant([0, 1, 2, 1])
  got, logits = trainer.recipe.loss(images, x_adv, labels, _plan(None))
  clean = trainer.classifier(images).numpy().astype(np.float64)
  adv = trainer.classifier(x_adv).numpy().astype(np.float64)
  np.testing.assert_allclose(logits.numpy(), adv, rtol=1e-6)
  softmax = lambda z: (
    np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
  )
  pc, pa, y = softmax(clean), softmax(adv), labels.numpy()
  ce_adv = -np.log(pa[np.arange(4), y])
  kl = (pc * np.log(pc / pa)).sum(1)
  if loss == "ce":
    want = ce_adv
  elif loss == "trades":
    want = -np.log(pc[np.arange(4), y]) + beta * kl
  else:
    wrong = np.where(np.eye(3)[y] > 0, -1.0, pa).max(1)
    want = ce_adv - np.log(1.0001 - wrong) + beta * kl * (1.0000001 - pc[np.arange(4), y])
  np.testing.assert_allclose(got.numpy(), want.mean(), rtol=1e-4)


@pytest.mark.parametrize("loss", ["trades", "mart"])
def test_kl_term_is_masked_for_s_minus_under_the_clean_rule(loss):
  """S- examples train on their clean image, but the two training-mode
  forwards see different batches (BatchNorm statistics): without the mask
  their KL term would be beta * KL(clean batch || mixed batch) > 0."""
  keras.utils.set_random_seed(0)
  classifier = keras.Sequential(
    [
      keras.Input((2, 2, 1)),
      keras.layers.Flatten(),
      keras.layers.Dense(6),
      keras.layers.BatchNormalization(),
      keras.layers.Dense(3),
    ]
  )
  trainer = AdversarialTrainer(
    classifier,
    8,
    MethodConfig(method="iaat", loss=loss, trades_beta=6.0, mart_beta=6.0, s_minus="clean"),
    AttackConfig(steps=2),
  )
  rng = np.random.RandomState(1)
  images = tf.constant(rng.rand(8, 2, 2, 1), tf.float32)
  clean_ok = tf.constant([True, False] * 4)
  # S+ rows adversarial, S- rows their clean image (training_images).
  x_train = tf.where(
    tf.reshape(clean_ok, [-1, 1, 1, 1]), tf.clip_by_value(images + 0.3, 0.0, 1.0), images
  )
  labels = tf.constant([0, 1, 2, 1, 0, 2, 1, 0])
  got, _ = trainer.recipe.loss(images, x_train, labels, _plan(clean_ok))
  clean = classifier(images, training=True).numpy().astype(np.float64)
  adv = classifier(x_train, training=True).numpy().astype(np.float64)
  softmax = lambda z: (
    np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
  )
  pc, pa, y = softmax(clean), softmax(adv), labels.numpy()
  kl = (pc * np.log(pc / pa)).sum(1)
  s_minus = ~clean_ok.numpy()
  assert kl[s_minus].min() > 1e-6  # What the mask removes is not 0.
  if loss == "trades":
    per_example = -np.log(pc[np.arange(8), y]) + 6.0 * kl * ~s_minus
  else:
    wrong = np.where(np.eye(3)[y] > 0, -1.0, pa).max(1)
    per_example = (
      -np.log(pa[np.arange(8), y])
      - np.log(1.0001 - wrong)
      + 6.0 * kl * (1.0000001 - pc[np.arange(8), y]) * ~s_minus
    )
  np.testing.assert_allclose(got.numpy(), per_example.mean(), rtol=1e-4)


def _linear_logits():
  w = tf.constant(np.random.RandomState(1).randn(16, 4), tf.float32)
  return lambda x: tf.matmul(tf.reshape(x, [-1, 16]), w)


def test_kl_attack_stays_in_ball_raises_kl_and_radius_zero_is_clean():
  logits_fn = _linear_logits()
  images = tf.constant(np.random.RandomState(2).rand(6, 4, 4, 1), tf.float32)
  eps = tf.constant([0.0, 0.05, 0.1, 0.2, 0.0, 0.3])
  index = tf.range(6, dtype=tf.int64)
  x_adv = kl_attack.kl_attack(
    logits_fn, images, eps, steps=5, step_size=eps / 4 + 1e-3, index=index, step=3
  )
  delta = np.abs((x_adv - images).numpy()).reshape(6, -1).max(1)
  assert np.all(delta <= eps.numpy() + 1e-6)
  assert np.all(delta[[0, 4]] == 0.0)  # Radius 0: the clean image.
  assert np.all((x_adv.numpy() >= 0) & (x_adv.numpy() <= 1))
  kl = losses.kl_divergence(logits_fn(images), logits_fn(x_adv)).numpy()
  assert np.all(kl[[1, 2, 3, 5]] > 1e-3) and np.all(kl[[0, 4]] < 1e-6)
  # Larger radius, larger KL (same direction of a linear model).
  assert kl[1] < kl[2] < kl[3] < kl[5]


def test_kl_attack_start_is_keyed_by_example_not_batch_position():
  logits_fn = _linear_logits()
  images = tf.constant(np.random.RandomState(3).rand(4, 4, 4, 1), tf.float32)
  eps = tf.constant([0.1, 0.1, 0.1, 0.1])
  index = tf.constant([10, 11, 12, 13], tf.int64)
  a = kl_attack.kl_attack(
    logits_fn, images, eps, steps=2, step_size=0.02, index=index, step=7, seed=1
  ).numpy()
  order = [2, 0, 3, 1]
  b = kl_attack.kl_attack(
    logits_fn,
    tf.gather(images, order),
    eps,
    steps=2,
    step_size=0.02,
    index=tf.gather(index, order),
    step=7,
    seed=1,
  ).numpy()
  np.testing.assert_allclose(a[order], b, atol=1e-7)


@pytest.mark.slow
def test_trades_and_mart_train_under_mixed_bfloat16():
  """Half-precision classifier: logits are cast to float32 before every loss."""
  from iaat_tf import models  # pylint: disable=g-import-not-at-top

  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    rng = np.random.RandomState(0)
    x = rng.rand(16, 8, 8, 1).astype(np.float32)
    y = rng.randint(0, 3, 16)
    ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(16)}, y)).batch(8)
    for loss in ("trades", "mart"):
      keras.utils.set_random_seed(0)
      classifier = models.small_cnn((8, 8, 1), 3, (0.5,), (0.25,))
      trainer = AdversarialTrainer(
        classifier,
        16,
        MethodConfig(method="iaat", eps=0.1, warmup_epochs=0, loss=loss),
        AttackConfig(steps=2, step_ratio=0.25, min_step=0.01),
      )
      trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
      before = [w.numpy() for w in classifier.trainable_weights]
      history = trainer.fit(ds, epochs=1, verbose=0).history
      assert np.isfinite(history["loss"][0]) and history["loss"][0] > 0
      assert trainer.eps_table.dtype == tf.float32
      assert any(
        np.abs(a - b.numpy()).max() > 0 for a, b in zip(before, classifier.trainable_weights)
      )
  finally:
    keras.mixed_precision.set_global_policy("float32")
