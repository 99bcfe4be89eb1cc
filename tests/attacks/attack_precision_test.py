"""Attacks keep full strength under mixed_float16 (the float16 underflow fix).

A small conv net is trained on digits in float32 and made confident (logit
margins of tens, so dL/dlogits ~ 1e-10 and below float16's range), then
copied into a mixed_float16 net with the same weights. With
`gradients.value_and_gradient` PGD and APGD break as many examples under
float16 as under float32; the naive tape gradient is zero for the confident
examples, and the float16 attacks are clearly weaker with it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from iaat_tf import attacks
from iaat_tf.attacks import apgd, gradients
from iaat_tf.training import probes
from iaat_tf.config import AttackConfig, MethodConfig

EPS = 0.12


def _net():
  return keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      keras.layers.Conv2D(8, 3, activation="relu"),
      keras.layers.Flatten(),
      keras.layers.Dense(10, dtype="float32"),
    ]
  )  # float32 logits, as ours.


@pytest.fixture(scope="module")
def nets():
  data = load_digits()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  y = data.target.astype(np.int64)
  keras.utils.set_random_seed(0)
  full = _net()
  full.compile(
    keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  )
  full.fit(x[:1400], y[:1400], batch_size=128, epochs=10, verbose=0)
  kernel, bias = full.layers[-1].get_weights()
  full.layers[-1].set_weights([6.0 * kernel, 6.0 * bias])  # Confident.
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    half = _net()
  finally:
    keras.mixed_precision.set_global_policy("float32")
  half.set_weights(full.get_weights())
  assert half.layers[0].compute_dtype == "float16"
  xs, ys = x[1400:1480], y[1400:1480]
  # Inference mode, marked so (as the package's own functions are): each
  # example gets its own float16 protection.
  f32 = gradients.mark_independent(lambda z: tf.cast(full(z, training=False), tf.float32))
  f16 = gradients.mark_independent(lambda z: tf.cast(half(z, training=False), tf.float32))
  return f32, f16, xs, ys


def _pgd(fn, x, y):
  x_adv = attacks.pgd_attack(
    fn,
    x,
    y,
    np.full([len(x)], EPS, np.float32),
    steps=10,
    step_size=EPS / 4,
    index=np.arange(len(x)),
  )
  return attacks.is_correct(fn(x_adv), y).numpy()


def _apgd(fn, x, y):
  result = apgd.apgd_attack(
    fn, x, y, np.full([len(x)], EPS, np.float32), n_iter=20, index=np.arange(len(x))
  )
  return result.robust.numpy()


L2_EPS = 1.0  # On 64 pixels, an L2 ball of similar strength.


def _pgd_l2(fn, x, y):
  x_adv = attacks.pgd_attack(
    fn,
    x,
    y,
    np.full([len(x)], L2_EPS, np.float32),
    steps=10,
    step_size=L2_EPS / 4,
    index=np.arange(len(x)),
    norm="l2",
  )
  return attacks.is_correct(fn(x_adv), y).numpy()


def _apgd_l2(fn, x, y):
  result = apgd.apgd_attack(
    fn, x, y, np.full([len(x)], L2_EPS, np.float32), n_iter=20, index=np.arange(len(x)), norm="l2"
  )
  return result.robust.numpy()


def test_the_examples_are_confident(nets):
  f32, _, x, y = nets
  logits = f32(x).numpy()
  top2 = np.sort(logits, -1)[:, -2:]
  assert (logits.argmax(-1) == y).mean() > 0.9
  assert np.mean(top2[:, 1] - top2[:, 0] > 20.0) > 0.5  # p_other < 2e-9.


@pytest.mark.parametrize(
  "attack", [_pgd, _apgd, _pgd_l2, _apgd_l2], ids=["pgd", "apgd", "pgd_l2", "apgd_l2"]
)
def test_float16_attacks_match_float32(nets, attack):
  f32, f16, x, y = nets
  clean = attacks.is_correct(f32(x), y).numpy().sum()
  robust32 = attack(f32, x, y).sum()
  robust16 = attack(f16, x, y).sum()
  assert robust32 < clean - 10  # The attack does break examples...
  assert abs(int(robust16) - int(robust32)) <= 2  # ...equally in float16.


def test_without_the_fix_float16_gradients_vanish(nets, monkeypatch):
  f32, f16, x, y = nets
  objective = lambda logits: attacks.cross_entropy_loss(logits, y)
  _, _, naive = gradients.unscaled_value_and_gradient(f16, x, objective)
  _, _, safe = gradients.value_and_gradient(f16, x, objective)
  _, _, reference = gradients.value_and_gradient(f32, x, objective)
  zero_naive = np.abs(naive.numpy()).reshape(len(x), -1).max(1) == 0
  zero_safe = np.abs(safe.numpy()).reshape(len(x), -1).max(1) == 0
  assert zero_naive.mean() > 0.3 and not zero_safe.any()
  agree = np.mean(np.sign(safe.numpy()) == np.sign(reference.numpy()))
  assert agree > 0.95

  fixed = _pgd(f16, x, y).sum() + _apgd(f16, x, y).sum()
  monkeypatch.setattr(gradients, "value_and_gradient", gradients.unscaled_value_and_gradient)
  broken = _pgd(f16, x, y).sum() + _apgd(f16, x, y).sum()
  assert broken >= fixed + 10  # The float16 attack stalls without the fix.


def _fast_probe(fn, x, y, early_stop="example"):
  """Algorithm 2's fast probe (--alg2_preset=fast's kind): True = still correct."""
  x, y = tf.constant(x), tf.constant(y, tf.int32)
  eps = tf.fill([len(x)], EPS)
  index = tf.range(len(x), dtype=tf.int64)
  method = MethodConfig(
    method="iaat",
    probe_steps=10,
    probe_step_ratio=0.25,
    probe_early_stop=early_stop,
    probe_only_needed=True,
  )
  probe = probes.ProbeSpec.of(method, AttackConfig(steps=10)).probe
  x0 = probe.start(x, eps, index, 0, attacks.Salt.PROBE_UP)
  return probe.run(fn, x, y, eps, x0).correct.numpy()


@pytest.mark.parametrize("early_stop", ["example", "batch"])
def test_fast_probes_keep_their_strength_in_float16(nets, early_stop, monkeypatch):
  f32, f16, x, y = nets
  clean = attacks.is_correct(f32(x), y).numpy().sum()
  fails32 = _fast_probe(f32, x, y, early_stop).sum()
  fails16 = _fast_probe(f16, x, y, early_stop).sum()
  assert fails32 < clean - 10  # The probe breaks examples...
  assert abs(int(fails16) - int(fails32)) <= 2  # ...equally in float16.
  # A probe loop with the naive tape gradient stalls on confident examples:
  # they "survive" the probe, so Algorithm 2 would grow their radii.
  monkeypatch.setattr(gradients, "value_and_gradient", gradients.unscaled_value_and_gradient)
  assert _fast_probe(f16, x, y, early_stop).sum() >= fails16 + 10


def _reuse_probe(fn, x, y):
  """--alg2_preset=reuse's probes from a PGD example at EPS: (up, same) fails."""
  x, y = tf.constant(x), tf.constant(y, tf.int32)
  eps = tf.fill([len(x)], EPS)
  x_adv = attacks.pgd_attack(
    fn,
    x,
    y,
    eps,
    steps=10,
    step_size=EPS / 4,
    random_start=True,
    index=tf.range(len(x), dtype=tf.int64),
  )
  method = MethodConfig(method="iaat", gamma=0.05, probe_source="training", probe_extra_steps=2)
  attack = AttackConfig(steps=10, step_ratio=0.25, min_step=0.0)
  up, same = probes.ProbeSpec.of(method, attack).from_training_attack(fn, x, y, x_adv, eps)
  return up.numpy(), same.numpy()


def test_reuse_probes_keep_their_strength_in_float16(nets, monkeypatch):
  f32, f16, x, y = nets
  clean = attacks.is_correct(f32(x), y).numpy().sum()
  up32, _ = _reuse_probe(f32, x, y)
  up16, _ = _reuse_probe(f16, x, y)
  assert up32.sum() < clean - 10  # The extension breaks examples...
  assert abs(int(up16.sum()) - int(up32.sum())) <= 2  # ...equally in float16.
  monkeypatch.setattr(gradients, "value_and_gradient", gradients.unscaled_value_and_gradient)
  assert _reuse_probe(f16, x, y)[0].sum() >= up16.sum() + 10
