"""The L2 threat model end to end: L2 PGD and TRADES' attack stay in the ball
and raise the loss. (The ball: norms_test.py; Square's L2 pattern:
square_test.py; AutoAttack's L2 sequence: autoattack_test.py; FAB-T's L2
steps: fab_test.py.)"""

import numpy as np
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.attacks import kl_attack


def _l2(a, b):
  return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).reshape(len(a), -1).sum(-1))


def test_l2_pgd_and_trades_attacks_stay_in_the_ball_and_raise_the_loss(digits_mlp, digits):
  x, y = digits[0][1400:1464], digits[1][1400:1464]
  fn = lambda z: digits_mlp(z, training=False)
  eps = np.full(len(y), 1.0, np.float32)
  x_adv = attacks.pgd_attack(
    fn, x, y, eps, steps=10, step_size=0.25, index=tf.range(64), norm="l2"
  ).numpy()
  assert np.all(_l2(x_adv, x) <= eps + 1e-4) and x_adv.min() >= 0 and x_adv.max() <= 1
  # An L-inf attack at the same number would leave the L2 ball.
  x_inf = attacks.pgd_attack(fn, x, y, eps * 0.3, steps=10, step_size=0.075).numpy()
  assert np.any(_l2(x_inf, x) > 1.0)
  ce = lambda z: attacks.cross_entropy_loss(fn(z), y).numpy().mean()
  assert ce(x_adv) > ce(x) + 1.0
  acc = lambda z: attacks.is_correct(fn(z), y).numpy().mean()
  assert acc(x) > 0.9 and acc(x_adv) < 0.5
  x_kl = kl_attack.kl_attack(
    fn, x, eps, steps=10, step_size=0.2, index=tf.range(64), norm="l2"
  ).numpy()
  assert np.all(_l2(x_kl, x) <= eps + 1e-4) and acc(x_kl) < acc(x)
