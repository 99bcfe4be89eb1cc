"""attacks/gradients.py: the one input gradient, in both BatchNorm modes.

With inference-mode BatchNorm the per-example rescaling is exact. With
train-mode BatchNorm (`--attack_bn_mode=train`, the authors' attacks) batch
statistics couple the examples: the attack must take the gradient of the
batch loss, as the authors' sign(d batch-mean CE / dx) does, not one whose
cross-example terms per-row factors re-weighted.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.attacks import gradients
from iaat_tf.training import recipe


@pytest.fixture(scope="module")
def confident_bn_cnn(digits):
  """A small BatchNorm conv net trained on digits, its logits scaled up: a
  confident model, whose per-example logit-gradient scales differ by orders
  of magnitude (the lowest-loss examples have the smallest)."""
  x, y = digits
  keras.utils.set_random_seed(3)
  model = keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      keras.layers.Conv2D(8, 3, padding="same"),
      keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
      keras.layers.ReLU(),
      keras.layers.Flatten(),
      keras.layers.Dense(10),
    ]
  )
  model.compile(
    keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  )
  model.fit(x[:1024], y[:1024], batch_size=128, epochs=3, verbose=0)
  dense = model.layers[-1]
  dense.kernel.assign(dense.kernel * 4.0)
  return model


def _reference_gradient(model, x, y, training):
  """A plain float32 tape gradient of the summed cross-entropy."""
  x = tf.convert_to_tensor(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(
      attacks.cross_entropy_loss(tf.cast(model(x, training=training), tf.float32), y)
    )
  return tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_attack_gradient_signs_are_the_batch_loss(digits, confident_bn_cnn, mode):
  x, y = digits
  x, y = x[1100:1164], y[1100:1164]
  model = confident_bn_cnn
  logits_fn = recipe.attack_logits_fn(model, mode)
  assert gradients.independent_examples(logits_fn) == (mode == "inference")
  # Per-example scales span orders of magnitude (what made the old
  # per-row rescaling wrong in train mode).
  probs = tf.nn.softmax(model(x, training=mode == "train")).numpy()
  p_true = probs[np.arange(64), y]
  assert (1 - p_true).max() / max((1 - p_true).min(), 1e-30) > 1e3
  _, _, grad = gradients.value_and_gradient(
    logits_fn, x, lambda z: attacks.cross_entropy_loss(z, y)
  )
  ref = _reference_gradient(model, x, y, training=mode == "train")
  # Signs equal wherever the reference is above float32 noise (relative to
  # its own example: confident examples have tiny gradients).
  scale = np.abs(ref).reshape(64, -1).max(1)[:, None, None, None]
  clear = np.abs(ref) > 1e-4 * scale
  assert clear.mean() > 0.8
  np.testing.assert_array_equal(np.sign(grad)[clear], np.sign(ref)[clear])
  np.testing.assert_allclose(grad, ref, atol=0, rtol=1e-2)


def test_train_mode_pgd_step_follows_the_batch_loss(digits, confident_bn_cnn):
  """One PGD step in train mode moves every pixel by the batch loss's sign."""
  x, y = digits
  x, y = x[1100:1164], y[1100:1164]
  model = confident_bn_cnn
  logits_fn = recipe.attack_logits_fn(model, "train")
  ref = _reference_gradient(model, x, y, training=True)
  ball = attacks.norms.Ball(tf.constant(x), tf.fill([64], 1.0), "linf")
  x_new, _ = attacks.pgd_step(logits_fn, tf.constant(x), tf.constant(y), tf.constant(0.01), ball)
  moved = np.sign(x_new.numpy() - x)
  scale = np.abs(ref).reshape(64, -1).max(1)[:, None, None, None]
  clear = (np.abs(ref) > 1e-4 * scale) & (x > 0.02) & (x < 0.98)
  np.testing.assert_array_equal(moved[clear], np.sign(ref)[clear])


@pytest.mark.parametrize("training", [True, False])
def test_any_function_gets_the_exact_gradient(digits, confident_bn_cnn, training):
  """A user's plain lambda (no mark) gets d(batch loss)/dx: under train-mode
  BatchNorm its signs agree with the batch loss's (they agreed only 0.962
  with per-example factors); `pgd_attack` steps along them."""
  x, y = digits
  x, y = x[1100:1164], y[1100:1164]
  model = confident_bn_cnn
  plain = lambda z: model(z, training=training)
  assert not gradients.independent_examples(plain)
  ref = _reference_gradient(model, x, y, training=training)
  _, _, grad = gradients.value_and_gradient(plain, x, lambda z: attacks.cross_entropy_loss(z, y))
  scale = np.abs(ref).reshape(64, -1).max(1)[:, None, None, None]
  clear = np.abs(ref) > 1e-4 * scale
  assert (np.sign(grad)[clear] == np.sign(ref)[clear]).mean() >= 0.999
  x_adv = attacks.pgd_attack(
    plain, x, y, np.full([64], 0.01, np.float32), steps=1, step_size=0.01, random_start=False
  )
  moved = np.sign(x_adv.numpy() - x)
  inside = clear & (x > 0.02) & (x < 0.98)
  assert (moved[inside] == np.sign(ref)[inside]).mean() >= 0.999


def test_per_example_scales_are_an_opt_in(digits, confident_bn_cnn):
  """Marked independent, a train-mode function would get per-example factors:
  the cross-example terms re-weighted, signs no longer the batch loss's. So
  only inference-mode functions carry the mark."""
  x, y = digits
  x, y = x[1100:1164], y[1100:1164]
  model = confident_bn_cnn
  marked = gradients.mark_independent(lambda z: model(z, training=True))
  assert gradients.independent_examples(marked)
  ref = _reference_gradient(model, x, y, training=True)
  _, _, grad = gradients.value_and_gradient(marked, x, lambda z: attacks.cross_entropy_loss(z, y))
  scale = np.abs(ref).reshape(64, -1).max(1)[:, None, None, None]
  clear = np.abs(ref) > 1e-4 * scale
  assert (np.sign(grad)[clear] == np.sign(ref)[clear]).mean() < 0.99
