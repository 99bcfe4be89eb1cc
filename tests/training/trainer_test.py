"""AdversarialTrainer: eps-table bookkeeping and 1 vs 2 replicas.

The table tests freeze the classifier (learning rate 0) and switch off the
random start, so the expected radius of every example can be computed
independently of batching; shuffling then checks that each update lands at
its example's index.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import attacks, models
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.training.recipe import Judged, Plan
from iaat_tf.config import AttackConfig, MethodConfig, alg2_preset

N, SHAPE, CLASSES = 48, (6, 6, 1), 3


def _arrays(seed=0):
  rng = np.random.RandomState(seed)
  x = rng.rand(N, *SHAPE).astype(np.float32)
  y = rng.randint(0, CLASSES, N).astype(np.int64)
  return x, y


def _dataset(x, y, batch, shuffle_seed):
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y))
  return ds.shuffle(N, seed=shuffle_seed).batch(batch, drop_remainder=True)


# This file's classifier (tiny_classifier, tests/conftest.py): linear in the image.
LINEAR = dict(shape=SHAPE, classes=CLASSES, hidden=0)


def _frozen_trainer(classifier, method, warmup=1):
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(method=method, eps=0.05, warmup_epochs=warmup, gamma=0.02, beta=0.5, eps_max=0.5),
    AttackConfig(steps=3, step_ratio=0.25, min_step=0.01, random_start=False),
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.0))
  return trainer


def _clean_correct(trainer, x, y):
  return attacks.is_correct(trainer.classifier(x, training=False), y).numpy()


def test_warmup_writes_eps_w_for_clean_correct_at_the_right_index(tiny_classifier):
  x, y = _arrays()
  trainer = _frozen_trainer(tiny_classifier(**LINEAR), "iaat", warmup=1)
  trainer.fit(_dataset(x, y, 8, shuffle_seed=3), epochs=1, verbose=0)
  expected = 0.05 * _clean_correct(trainer, x, y)
  np.testing.assert_allclose(trainer.eps_table.numpy(), expected, atol=1e-7)
  assert 0 < expected.sum() < 0.05 * N  # A mix of S+ and S-.


@pytest.mark.parametrize("method", ["iaat", "iaat_cheap"])
def test_adaptive_epoch_updates_land_at_shuffled_indices(method, tiny_classifier):
  x, y = _arrays()
  trainer = _frozen_trainer(tiny_classifier(**LINEAR), method, warmup=1)
  trainer.fit(_dataset(x, y, 8, shuffle_seed=5), epochs=2, verbose=0)
  clean_ok = _clean_correct(trainer, x, y)
  stored = tf.constant(0.05 * clean_ok, tf.float32)  # Table after warmup.
  index = tf.range(N, dtype=tf.int64)
  recipe = trainer.recipe
  # The second epoch's plan, at the weights of the first (lr 0).
  plan = recipe.radii_before_attack(
    x, tf.constant(y, tf.int32), index, stored, step=tf.constant(0, tf.int64), epoch=1
  )
  if method == "iaat":
    expected = plan.eps  # Algorithm 2's choice, trained at and stored.
  else:
    np.testing.assert_allclose(plan.eps.numpy(), stored.numpy() * clean_ok)
    x_adv = recipe.craft(x, y, plan.eps, index, tf.constant(0, tf.int64), 0)
    x_train = np.where(clean_ok[:, None, None, None], x_adv.numpy(), x)
    # With lr 0, the training forward equals the classifier (no BatchNorm).
    failed = attacks.is_correct(trainer.classifier(x_train, training=True), y)
    expected = recipe.radii_after_update(plan, Judged(failed, None))
  table = trainer.eps_table.numpy()
  np.testing.assert_allclose(table, expected.numpy(), atol=1e-6)
  # The rule moved radii both ways from the warmup value, per example.
  moved = table - stored.numpy()
  assert (moved > 1e-6).any() and (moved < -1e-6).any()
  assert np.all(table[~clean_ok] == 0.0)  # S-: radius 0 (with beta smoothing of 0).


class _TrainModeCalls(keras.layers.Layer):
  """Counts the forward passes that run in training mode (BatchNorm's mode)."""

  def build(self, input_shape):
    self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

  def call(self, x, training=False):
    if training:
      self.calls.assign_add(1.0)
    return x


@pytest.mark.parametrize("signal", ["inference", "train_forward"])
def test_cheap_outcome_is_an_inference_mode_pass_under_train_mode_attacks(signal):
  """--cheap_signal=inference under --attack_bn_mode=train: the outcome is a
  true inference-mode pass (no running-statistics update), so a step has the
  clean check, k attack steps and the training forward in train mode."""
  keras.utils.set_random_seed(0)
  counter = _TrainModeCalls()
  classifier = keras.Sequential(
    [keras.Input(SHAPE), counter, keras.layers.Flatten(), keras.layers.Dense(CLASSES)]
  )
  steps = 3
  trainer = AdversarialTrainer(
    classifier,
    N,
    MethodConfig(
      method="iaat_cheap", eps=0.05, warmup_epochs=0, gamma=0.02, eps_max=0.5, cheap_signal=signal
    ),
    AttackConfig(steps=steps, step_ratio=0.25, min_step=0.01, bn_mode="train"),
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
  x, y = _arrays()
  trainer.fit(_dataset(x, y, N, shuffle_seed=0), epochs=1, verbose=0)
  assert float(counter.calls.numpy()) == 1 + steps + 1


def _cheap_radii_to_store(trainer, stored, failed, clean_ok):
  """The radii the cheap rule stores after the warmup, from the attack's outcome."""
  plan = Plan(
    step=tf.constant(0, tf.int64),
    in_warmup=False,
    clean_ok=clean_ok,
    stored=stored,
    eps=stored,
    attacked_rows=clean_ok,
  )
  return trainer.recipe.radii_after_update(plan, Judged(failed, None)).numpy()


def test_cheap_rule_and_clipping(tiny_classifier):
  trainer = _frozen_trainer(tiny_classifier(**LINEAR), "iaat_cheap")
  stored = tf.constant([0.1, 0.1, 0.49, 0.0])
  failed = tf.constant([True, False, True, False])
  clean_ok = tf.constant([True, True, True, False])
  got = _cheap_radii_to_store(trainer, stored, failed, clean_ok)
  # The paper's rule: stored +/- gamma (0.02), no smoothing; clipped at
  # eps_max = 0.5; clean-misclassified -> 0.
  np.testing.assert_allclose(got, [0.12, 0.08, 0.5, 0.0], atol=1e-6)


def test_cheap_rule_with_explicit_smoothing(tiny_classifier):
  trainer = AdversarialTrainer(
    tiny_classifier(**LINEAR),
    N,
    MethodConfig(method="iaat_cheap", eps=0.05, gamma=0.02, eps_max=0.5, cheap_beta=0.5),
    AttackConfig(steps=1),
  )
  got = _cheap_radii_to_store(
    trainer, tf.constant([0.1, 0.1]), tf.constant([True, False]), tf.constant([True, True])
  )
  # cheap_beta = 0.5: halfway between stored and stored +/- gamma.
  np.testing.assert_allclose(got, [0.11, 0.09], atol=1e-6)


def test_call_ignores_the_index_and_accepts_plain_images(tiny_classifier):
  trainer = _frozen_trainer(tiny_classifier(**LINEAR), "iaat")
  x, _ = _arrays()
  a = trainer({"image": x, "index": np.arange(N)}).numpy()
  b = trainer(x).numpy()
  np.testing.assert_allclose(a, b)


PGD3 = AttackConfig(steps=3, step_ratio=0.25, min_step=0.01, random_start=True)
PGD3_L2 = AttackConfig(steps=3, step_ratio=0.25, min_step=0.01, random_start=True, norm="l2")


def _trainer_on(strategy, method, loss, ramp, s_minus="clean", attack=PGD3, ema_decay=0.0):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    classifier = models.small_cnn(SHAPE, CLASSES, (0.5,), (0.25,))
    # "iaat_reuse": iaat with --alg2_preset=reuse (probes from the training attack).
    reuse = alg2_preset("reuse", attack.steps, attack.ratio) if method == "iaat_reuse" else {}
    trainer = AdversarialTrainer(
      classifier,
      N,
      MethodConfig(
        method="iaat" if reuse else method,
        eps=0.1,
        warmup_epochs=1,
        gamma=0.03,
        beta=0.5,
        eps_max=0.3,
        loss=loss,
        eps_ramp_epochs=ramp,
        s_minus=s_minus,
        **reuse,
      ),
      attack,
      seed=3,
      steps_per_epoch=N // 16,
      ema_decay=ema_decay,
    )
    trainer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
    trainer.optimizer.build(classifier.trainable_variables)
  return trainer


def _train_on_strategy(strategy, method, x, y, loss="ce", ramp=0):
  trainer = _trainer_on(strategy, method, loss, ramp)
  trainer.fit(_dataset(x, y, 16, shuffle_seed=11), epochs=3, verbose=0)
  return trainer.eps_table.numpy(), [w.numpy() for w in trainer.classifier.weights]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["iaat", "iaat_cheap", "pgd_at", "iaat_reuse"])
def test_one_and_two_replicas_give_the_same_eps_table_and_weights(method):
  devices = tf.config.list_logical_devices("CPU")
  assert len(devices) >= 2, "conftest.py should configure 2 logical CPUs"
  x, y = _arrays(seed=4)
  one = tf.distribute.OneDeviceStrategy(devices[0].name)
  two = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
  assert two.num_replicas_in_sync == 2
  table1, weights1 = _train_on_strategy(one, method, x, y)
  table2, weights2 = _train_on_strategy(two, method, x, y)
  np.testing.assert_allclose(table1, table2, atol=1e-6)
  for w1, w2 in zip(weights1, weights2):
    np.testing.assert_allclose(w1, w2, atol=1e-5)
  if method != "pgd_at":
    assert (table1 > 0).any()  # The table really was written.
  # The weights really moved (the comparison is not vacuous).
  with one.scope():
    keras.utils.set_random_seed(0)
    init = models.small_cnn(SHAPE, CLASSES, (0.5,), (0.25,)).weights
  assert max(np.abs(a.numpy() - b).max() for a, b in zip(init, weights1)) > 1e-3


def _copy_state(source, target):
  """Weights, optimizer slots and step, and eps table of `source` into `target`."""
  for dst, src in zip(target.classifier.weights, source.classifier.weights):
    dst.assign(src.numpy())
  for dst, src in zip(target.optimizer.variables, source.optimizer.variables):
    dst.assign(src.numpy())
  target.eps_table.assign(source.eps_table.numpy())
  if source.weight_average is not None:
    for dst, src in zip(target.weight_average.average, source.weight_average.average):
      dst.assign(src.numpy())


def _epochs_of_batches(x, y, epochs):
  ds = _dataset(x, y, 16, shuffle_seed=11)
  return [list(ds) for _ in range(epochs)]


@pytest.mark.slow
@pytest.mark.parametrize(
  "method,loss,ramp,s_minus,attack",
  [
    ("iaat", "trades", 1, "clean", PGD3),
    ("pgd_at", "trades", 1, "clean", PGD3),
    ("iaat_cheap", "mart", 0, "clean", PGD3),
    ("iaat", "ce", 0, "adversarial", PGD3),
    ("iaat", "trades", 0, "adversarial", PGD3),
    ("iaat_cheap", "ce", 1, "clean", AttackConfig.fgsm_rs()),
    # The L2 threat model: every method and loss once more.
    ("iaat", "trades", 0, "adversarial", PGD3_L2),
    ("iaat_cheap", "mart", 0, "clean", PGD3_L2),
    ("pgd_at", "ce", 1, "clean", AttackConfig.fgsm_rs(norm="l2")),
    # Algorithm 2 from the training attack (--alg2_preset=reuse).
    ("iaat_reuse", "mart", 1, "adversarial", PGD3),
    ("iaat_reuse", "ce", 0, "clean", PGD3_L2),
  ],
  ids=[
    "iaat-trades-ramp",
    "pgd_at-trades-ramp",
    "cheap-mart",
    "iaat-sminus_adv",
    "iaat-trades-sminus_adv",
    "cheap-fgsm_rs-ramp",
    "l2-iaat-trades-sminus_adv",
    "l2-cheap-mart",
    "l2-pgd_at-fgsm_rs-ramp",
    "reuse-mart-ramp-sminus_adv",
    "l2-reuse",
  ],
)
def test_one_and_two_replicas_agree_step_by_step(method, loss, ramp, s_minus, attack):
  """Every step (warmup, ramp, adaptation, KL attack, table write) computes
  the same on 1 and 2 replicas, each step started from the same state.

  Why step by step: the two runs cannot be bit-identical. The 2-replica
  weight gradient is the sum of two 8-example sums, the 1-replica one a
  16-example sum, so the weights differ in the last bit (~3e-8) after one
  step. TRADES' KL attack starts 0.001 from the clean image, where its
  gradient softmax(z_adv) - softmax(z_clean) is a cancellation that
  magnifies such differences ~1e3-fold, and its sign() turns a flipped
  near-zero component into a full step. Over many steps one flip can move
  the weights by 1e-3 (seen on another CPU: 4.6e-3 after 9 steps). Carrying
  the 1-replica state into the 2-replica trainer before each step keeps the
  check exact about what the mirrored path computes (no loss reduced per
  replica, no per-replica statistic, no random draw not keyed by example)
  without comparing chaotic trajectories.
  """
  devices = tf.config.list_logical_devices("CPU")
  x, y = _arrays(seed=4)
  # With a weight average (--ema_decay), compared like the weights.
  one = _trainer_on(
    tf.distribute.OneDeviceStrategy(devices[0].name),
    method,
    loss,
    ramp,
    s_minus,
    attack,
    ema_decay=0.9,
  )
  two = _trainer_on(
    tf.distribute.MirroredStrategy([d.name for d in devices[:2]]),
    method,
    loss,
    ramp,
    s_minus,
    attack,
    ema_decay=0.9,
  )
  start = [w.numpy() for w in one.classifier.weights]
  for epoch, batches in enumerate(_epochs_of_batches(x, y, 3)):
    for batch in batches:
      _copy_state(one, two)
      step_ds = tf.data.Dataset.from_tensors(batch)
      for trainer in (one, two):
        trainer.fit(step_ds, initial_epoch=epoch, epochs=epoch + 1, verbose=0)
      np.testing.assert_allclose(one.eps_table.numpy(), two.eps_table.numpy(), atol=1e-6)
      for w1, w2 in zip(one.classifier.weights, two.classifier.weights):
        np.testing.assert_allclose(w1.numpy(), w2.numpy(), atol=1e-5)
      for a1, a2 in zip(one.weight_average.average, two.weight_average.average):
        np.testing.assert_allclose(a1.numpy(), a2.numpy(), atol=1e-5)
  assert int(one.optimizer.iterations.numpy()) == 9
  if method != "pgd_at":
    assert (one.eps_table.numpy() > 0).any()
  # Training really moved the weights (the comparison is not vacuous).
  assert max(np.abs(w.numpy() - s).max() for w, s in zip(one.classifier.weights, start)) > 1e-3
