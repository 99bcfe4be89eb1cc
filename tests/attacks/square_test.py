"""attacks/square.py: Square (L-inf and L2) against the reference's pattern,
through masked gradients, and keyed so that stopping early changes nothing."""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.attacks import square
from iaat_tf.evaluation import autoattack, masking

SMALL = dict(apgd_iters=20, fab_iters=20, square_queries=300, targets=3, batch_size=64)


def _run(logits_fn, x, y, eps, **kwargs):
  options = autoattack.AutoAttackOptions(**{**SMALL, **kwargs})
  return autoattack.run_autoattack(
    logits_fn, x, y, eps, options=options, index=np.arange(1400, 1400 + len(x))
  )


def _l2(a, b):
  return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).reshape(len(a), -1).sum(-1))


def _reference_eta(s):
  """fra31/auto-attack's square.py `eta(s)` (without its random transpose),
  translated line by line to numpy."""

  def eta_rectangles(x, y):
    delta = np.zeros([x, y])
    x_c, y_c = x // 2 + 1, y // 2 + 1
    counter2 = [x_c - 1, y_c - 1]
    for counter in range(0, max(x_c, y_c)):
      delta[
        max(counter2[0], 0) : min(counter2[0] + (2 * counter + 1), x),
        max(0, counter2[1]) : min(counter2[1] + (2 * counter + 1), y),
      ] += 1.0 / (counter + 1) ** 2
      counter2[0] -= 1
      counter2[1] -= 1
    return delta / np.sqrt((delta**2).sum())

  delta = np.zeros([s, s])
  delta[: s // 2] = eta_rectangles(s // 2, s) if s // 2 else 0.0
  delta[s // 2 :] = -1.0 * eta_rectangles(s - s // 2, s)
  return delta / np.sqrt((delta**2).sum())


@pytest.mark.slow
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
  result = square.square_attack(fn, x, y, eps, n_queries=100, index=tf.range(32), norm="l2")
  adv = result.adversarial.numpy()
  assert np.all(_l2(adv, x) <= eps + 1e-4) and adv.min() >= 0 and adv.max() <= 1
  np.testing.assert_array_equal(adv[0], x[0])
  margin = lambda z: square.margin(fn(z), y).numpy()
  assert np.all(margin(adv) <= margin(x) + 1e-5)
  assert (~result.robust.numpy()).sum() >= 5


@pytest.mark.slow
def test_square_sees_through_masked_gradients(digits_mlp, digits):
  """Inputs rounded to a grid (zero gradient): gradient attacks are blind."""
  x, y = digits[0][1400:1480], digits[1][1400:1480]
  masked = lambda z: digits_mlp(tf.round(z * 4.0) / 4.0, training=False)
  eps = 0.16
  gradient_only = _run(masked, x, y, eps, attacks=("apgd-ce", "apgd-t", "fab-t"))
  with_square = _run(masked, x, y, eps, square_queries=1000)
  plain = _run(lambda z: digits_mlp(z, training=False), x, y, eps)
  assert gradient_only.robust_accuracy > plain.robust_accuracy + 0.2
  assert with_square.robust_accuracy < gradient_only.robust_accuracy - 0.15
  warnings = masking.gradient_masking_report(with_square.to_dict())
  assert any("square" in w and "masked" in w for w in warnings), warnings
  assert not masking.gradient_masking_report(plain.to_dict())


def test_square_queries_only_unbroken_examples_with_the_same_result(digits_mlp, digits):
  """Like the reference, Square stops querying broken examples; every draw is
  keyed by (example id, query), so the results do not change."""
  x, y = digits[0][1400:1480], digits[1][1400:1480]
  fn = lambda z: tf.cast(digits_mlp(z, training=False), tf.float32)
  run = lambda only: tf.function(
    lambda: square.square_attack(
      fn, x, y, 0.12, n_queries=200, index=np.arange(1400, 1480), only_unbroken=only
    )
  )()
  subset, full = run(True), run(False)
  robust = subset.robust.numpy()
  assert 5 <= robust.sum() <= len(y) - 5  # Some broke early, some held.
  np.testing.assert_array_equal(robust, full.robust.numpy())
  np.testing.assert_array_equal(subset.adversarial.numpy(), full.adversarial.numpy())
