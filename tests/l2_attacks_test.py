"""The L2 threat model: the ball's geometry, L2 PGD and TRADES' attack, and
Square's L2 pattern against the reference. (AutoAttack's L2 sequence and
single attacks: autoattack_test.py; FAB-T's L2 steps: fab_test.py.)"""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.attacks import kl_attack, norms, square


def _l2(a, b):
  return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).reshape(len(a), -1).sum(-1))


def test_l2_ball_projection_step_and_start_stay_feasible():
  rng = np.random.RandomState(0)
  x0 = rng.rand(6, 4, 4, 3).astype(np.float32)
  eps = np.float32([0.0, 0.1, 0.5, 1.0, 2.0, 50.0])
  ball = norms.Ball(x0, eps, "l2")
  far = x0 + rng.randn(*x0.shape).astype(np.float32)
  p = ball.project(far).numpy()
  assert np.all(_l2(p, x0) <= eps + 1e-5) and p.min() >= 0 and p.max() <= 1
  np.testing.assert_array_equal(p[0], x0[0])  # Radius 0 never moves.
  inside = x0 + 1e-3 * rng.randn(*x0.shape).astype(np.float32)
  inside = np.clip(inside, 0, 1)
  np.testing.assert_allclose(ball.project(inside).numpy()[2:], inside[2:], atol=1e-6)
  # The L2 direction has norm 1; the L-inf one is the sign.
  g = rng.randn(6, 4, 4, 3).astype(np.float32)
  np.testing.assert_allclose(norms.l2_norm(norms.direction(g, "l2")), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(norms.direction(g, "linf"), np.sign(g))
  # The start is on the sphere (up to clipping), keyed by the example id.
  start = attacks.uniform_start(x0 * 0 + 0.5, eps, tf.range(6), 3, 0, 0, "l2").numpy()
  np.testing.assert_allclose(_l2(start, x0 * 0 + 0.5)[:4], eps[:4], rtol=1e-4)
  again = attacks.uniform_start(x0 * 0 + 0.5, eps, tf.range(6), 3, 0, 0, "l2").numpy()
  np.testing.assert_array_equal(start, again)
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    norms.Ball(x0, eps, "l1")


def test_l2_pgd_and_trades_attacks_stay_in_the_ball_and_raise_the_loss(digits_mlp, digits):
  x, y = digits[0][1400:1464], digits[1][1400:1464]
  fn = lambda z: digits_mlp(z, training=False)
  eps = np.full(len(y), 1.0, np.float32)
  x_adv = attacks.pgd_attack(fn, x, y, eps, steps=10, step_size=0.25, index=tf.range(64),
                             norm="l2").numpy()
  assert np.all(_l2(x_adv, x) <= eps + 1e-4) and x_adv.min() >= 0 and x_adv.max() <= 1
  # An L-inf attack at the same number would leave the L2 ball.
  x_inf = attacks.pgd_attack(fn, x, y, eps * 0.3, steps=10, step_size=0.075).numpy()
  assert np.any(_l2(x_inf, x) > 1.0)
  ce = lambda z: attacks.cross_entropy_loss(fn(z), y).numpy().mean()
  assert ce(x_adv) > ce(x) + 1.0
  acc = lambda z: attacks.is_correct(fn(z), y).numpy().mean()
  assert acc(x) > 0.9 and acc(x_adv) < 0.5
  x_kl = kl_attack.kl_attack(fn, x, eps, steps=10, step_size=0.2, index=tf.range(64),
                             norm="l2").numpy()
  assert np.all(_l2(x_kl, x) <= eps + 1e-4) and acc(x_kl) < acc(x)


def _reference_eta(s):
  """fra31/auto-attack's square.py `eta(s)` (without its random transpose),
  translated line by line to numpy."""
  def eta_rectangles(x, y):
    delta = np.zeros([x, y])
    x_c, y_c = x // 2 + 1, y // 2 + 1
    counter2 = [x_c - 1, y_c - 1]
    for counter in range(0, max(x_c, y_c)):
      delta[max(counter2[0], 0):min(counter2[0] + (2 * counter + 1), x),
            max(0, counter2[1]):min(counter2[1] + (2 * counter + 1), y)
            ] += 1.0 / (counter + 1) ** 2
      counter2[0] -= 1
      counter2[1] -= 1
    return delta / np.sqrt((delta ** 2).sum())

  delta = np.zeros([s, s])
  delta[:s // 2] = eta_rectangles(s // 2, s) if s // 2 else 0.0
  delta[s // 2:] = -1.0 * eta_rectangles(s - s // 2, s)
  return delta / np.sqrt((delta ** 2).sum())


def test_square_l2_eta_pattern_and_proposals(digits_mlp, digits):
  for s in range(1, 14):
    np.testing.assert_allclose(square.eta(s).numpy(), _reference_eta(s), atol=1e-6)
    padded = square.eta(tf.constant(s), 15).numpy()  # A side known in the graph.
    np.testing.assert_allclose(padded[:s, :s], _reference_eta(s), atol=1e-6)
    assert not padded[s:].any() and not padded[:, s:].any()
  # Every point Square keeps is in the ball, and lowers the margin.
  x, y = digits[0][1400:1432], digits[1][1400:1432]
  fn = lambda z: digits_mlp(z, training=False)
  eps = np.linspace(0.0, 1.5, 32).astype(np.float32)
  result = square.square_attack(fn, x, y, eps, n_queries=100, index=tf.range(32),
                                norm="l2")
  adv = result.adversarial.numpy()
  assert np.all(_l2(adv, x) <= eps + 1e-4) and adv.min() >= 0 and adv.max() <= 1
  np.testing.assert_array_equal(adv[0], x[0])
  margin = lambda z: square.margin(fn(z), y).numpy()
  assert np.all(margin(adv) <= margin(x) + 1e-5)
  assert (~result.robust.numpy()).sum() >= 5
