"""attacks/pgd.py: PGD with per-example radii stays in the ball and the box, and raises the loss."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from iaat_tf import attacks


def _linear_model(num_classes=4, shape=(6, 6, 1), seed=0):
  keras.utils.set_random_seed(seed)
  return keras.Sequential(
    [
      keras.Input(shape),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation="tanh"),
      keras.layers.Dense(num_classes),
    ]
  )


def _batch(n=12, shape=(6, 6, 1), num_classes=4, seed=1):
  rng = np.random.RandomState(seed)
  return (rng.rand(n, *shape).astype(np.float32), rng.randint(0, num_classes, n).astype(np.int64))


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_stays_in_each_examples_ball_and_box(random_start, loss):
  model = _linear_model()
  x, y = _batch()
  eps = np.linspace(0.0, 0.3, len(x)).astype(np.float32)  # includes eps = 0
  x_adv = attacks.pgd_attack(
    lambda z: model(z, training=False),
    x,
    y,
    eps,
    steps=5,
    step_size=0.05,
    random_start=random_start,
    index=np.arange(len(x)),
    loss=loss,
  ).numpy()
  dist = np.abs(x_adv - x).reshape(len(x), -1).max(axis=1)
  assert np.all(dist <= eps + 1e-6)
  assert np.all(x_adv >= 0.0) and np.all(x_adv <= 1.0)
  assert dist[0] == 0.0  # eps = 0: untouched.
  assert dist[-1] > 0.1  # large eps: really moved.


def test_pgd_raises_the_loss_of_every_example():
  model = _linear_model()
  x, y = _batch(n=32)
  eps = np.full([32], 0.1, np.float32)
  fn = lambda z: model(z, training=False)
  x_adv = attacks.pgd_attack(fn, x, y, eps, steps=10, step_size=0.02, random_start=False)
  clean = attacks.cross_entropy_loss(fn(x), y).numpy()
  adv = attacks.cross_entropy_loss(fn(x_adv), y).numpy()
  assert np.all(adv >= clean - 1e-6)
  assert adv.mean() > clean.mean() + 0.05


def test_broadcast_eps_reshapes_for_nhwc():
  images = tf.zeros([3, 4, 4, 2])
  out = attacks.broadcast_eps(tf.constant([0.1, 0.2, 0.3]), images)
  assert out.shape == (3, 1, 1, 1)
  assert np.allclose((images + out).numpy()[:, 0, 0, 0], [0.1, 0.2, 0.3])


def test_pgd_step_size_is_ratio_times_radius_floored_per_example():
  # The authors' rule max(eps / (0.5 k), 2/255) at k = 10: ratio 0.2.
  eps = tf.constant([0.0, 4 / 255, 16 / 255, 0.5])
  got = attacks.pgd_step_size(eps, 0.2, 2 / 255).numpy()
  assert np.allclose(got, [2 / 255, 2 / 255, 3.2 / 255, 0.1])
