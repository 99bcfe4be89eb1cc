"""APGD: the DLR loss, the checkpoint schedule, the ball and box, its strength."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from iaat_tf.attacks import apgd
from iaat_tf import attacks


@pytest.fixture(scope="module")
def digits():
  """(images [N, 8, 8, 1] in [0, 1], labels [N]) for the first 400 digits."""
  data = load_digits()
  x = (data.images[:400] / 16.0).astype(np.float32)[..., None]
  return x, data.target[:400].astype(np.int64)


@pytest.fixture(scope="module")
def linear_model(digits):
  """A Flatten + Dense(10) classifier with logistic-regression weights."""
  x, y = digits
  clf = LogisticRegression(max_iter=300, C=10.0).fit(x.reshape(len(x), -1), y)
  model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
  model.layers[-1].set_weights([clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)])
  return lambda z: model(z, training=False)


def _accuracy(logits_fn, x, y):
  return float(np.mean(attacks.is_correct(logits_fn(x), y).numpy()))


def _linf(a, b):
  return np.abs(np.asarray(a) - np.asarray(b)).reshape(len(a), -1).max(axis=1)


def test_checkpoint_schedule_matches_autoattack():
  # AutoAttack, n_iter=100: windows 22, then -3 each down to 6.
  assert apgd.checkpoint_schedule(100) == [
    (21, 22),
    (40, 19),
    (56, 16),
    (69, 13),
    (79, 10),
    (86, 7),
    (92, 6),
    (98, 6),
  ]
  assert apgd.checkpoint_schedule(1) == [(0, 1)]


@pytest.mark.parametrize("attack", ["apgd_ce", "apgd_dlr", "pgd_ce"])
@pytest.mark.parametrize("random_start", [True, False])
def test_attacks_stay_in_each_examples_ball_and_box(linear_model, digits, attack, random_start):
  x, y = digits[0][:24], digits[1][:24]
  eps = np.tile(np.float32([0.0, 0.03, 0.1, 0.0, 0.3, 0.6]), 4)
  if attack.startswith("apgd"):
    x_adv = apgd.apgd_attack(
      linear_model,
      x,
      y,
      eps,
      n_iter=10,
      loss=attack[5:],
      random_start=random_start,
      index=np.arange(24),
    ).adversarial.numpy()
  else:
    x_adv = attacks.pgd_attack(
      linear_model,
      x,
      y,
      eps,
      steps=10,
      step_size=eps / 4,
      random_start=random_start,
      index=np.arange(24),
    ).numpy()
  dist = _linf(x_adv, x)
  assert np.all(dist <= eps + 1e-6)
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert np.all(dist[eps == 0.0] == 0.0)  # eps = 0: untouched.
  assert np.all(dist[eps >= 0.3] > 0.1)  # Large eps: really moved.


def test_apgd_ce_raises_the_loss(linear_model, digits):
  x, y = digits
  eps = np.full([len(x)], 0.1, np.float32)
  result = apgd.apgd_attack(linear_model, x, y, eps, n_iter=15, random_start=False)
  clean = attacks.cross_entropy_loss(linear_model(x), y).numpy()
  adv = attacks.cross_entropy_loss(linear_model(result.adversarial), y).numpy()
  # Without a random start the clean point is visited, so the best loss is
  # at least the clean loss for every example.
  assert np.all(result.best_loss.numpy() >= clean - 1e-6)
  assert adv.mean() > clean.mean() + 0.3
  assert _accuracy(linear_model, result.adversarial, y) < _accuracy(linear_model, x, y)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_robust_flags_agree_with_the_returned_points(linear_model, digits, loss):
  x, y = digits
  eps = np.full([len(x)], 0.05, np.float32)
  result = apgd.apgd_attack(linear_model, x, y, eps, n_iter=15, loss=loss, index=np.arange(len(x)))
  robust = result.robust.numpy()
  final = attacks.is_correct(linear_model(result.adversarial), y).numpy()
  clean = attacks.is_correct(linear_model(x), y).numpy()
  assert np.array_equal(robust, final)  # Fooled rows return a fooling point.
  assert robust.mean() <= clean.mean()
  assert 0.0 < robust.mean() < clean.mean()  # Some broken, some not.


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_large_eps_breaks_a_linear_model(linear_model, digits, loss):
  x, y = digits
  eps = np.full([len(x)], 0.5, np.float32)
  x_adv = apgd.apgd_attack(linear_model, x, y, eps, n_iter=10, loss=loss).adversarial
  assert _accuracy(linear_model, x_adv, y) <= 0.02


def test_apgd_is_at_least_as_strong_as_pgd(linear_model, digits):
  x, y = digits
  eps = np.full([len(x)], 0.1, np.float32)
  x_pgd = attacks.pgd_attack(
    linear_model, x, y, eps, steps=10, step_size=eps / 4, index=np.arange(len(x))
  )
  x_apgd = apgd.apgd_attack(linear_model, x, y, eps, n_iter=20, index=np.arange(len(x))).adversarial
  clean = _accuracy(linear_model, x, y)
  assert _accuracy(linear_model, x_apgd, y) <= min(clean, _accuracy(linear_model, x_pgd, y) + 0.02)


def test_restarts_only_help_and_random_start_is_keyed_by_index(linear_model, digits):
  x, y = digits[0][:64], digits[1][:64]
  eps = np.full([64], 0.04, np.float32)
  one = apgd.apgd_attack(linear_model, x, y, eps, n_iter=5, index=np.arange(64))
  two = apgd.apgd_attack(linear_model, x, y, eps, n_iter=5, restarts=2, index=np.arange(64))
  assert np.all(two.robust.numpy() <= one.robust.numpy())
  assert np.all(two.best_loss.numpy() >= one.best_loss.numpy() - 1e-6)
  # Same ids, same start: the first restart is the single run.
  again = apgd.apgd_attack(linear_model, x, y, eps, n_iter=5, index=np.arange(64))
  np.testing.assert_array_equal(one.adversarial.numpy(), again.adversarial.numpy())


def test_runs_inside_tf_function_and_with_xla(linear_model, digits):
  x, y = digits[0][:32], digits[1][:32]
  eps = np.linspace(0.0, 0.2, 32).astype(np.float32)

  @tf.function
  def attack(images, labels, radii):
    return apgd.apgd_attack(linear_model, images, labels, radii, n_iter=8, loss="dlr").adversarial

  graph = attack(x, y, eps).numpy()
  options = apgd.ApgdOptions(n_iter=8, loss="dlr", jit_compile=True)
  xla = apgd.apgd_attack(
    linear_model, x, y, eps, options, index=tf.range(32, dtype=tf.int64)
  ).adversarial.numpy()
  for x_adv in (graph, xla):
    assert np.all(_linf(x_adv, x) <= eps + 1e-6)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert abs(_accuracy(linear_model, graph, y) - _accuracy(linear_model, xla, y)) <= 2 / 32
