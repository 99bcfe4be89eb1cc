"""attacks/norms.py: the L2 ball's projection, direction and random start."""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.attacks import norms


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


def test_size_is_each_examples_norm():
  delta = np.array([[[[0.3], [-0.4]]], [[[0.0], [-0.1]]]], np.float32)  # [2, 1, 2, 1]
  np.testing.assert_allclose(norms.size(delta, "linf"), [0.4, 0.1])
  np.testing.assert_allclose(norms.size(delta, "l2"), [0.5, 0.1], rtol=1e-6)
  assert norms.size(delta.astype(np.float64), "linf").dtype == tf.float32
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    norms.size(delta, "l1")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_take_is_the_ball_of_those_rows(norm):
  """A subset's ball projects its rows exactly as the whole ball does."""
  rng = np.random.RandomState(0)
  images = rng.uniform(0.2, 0.8, (4, 3, 3, 1)).astype(np.float32)
  eps = np.array([0.05, 0.1, 0.2, 0.3], np.float32)
  ball = norms.Ball(images, eps, norm)
  idx = tf.constant([3, 1])
  part = ball.take(idx)
  assert part.norm == norm
  np.testing.assert_array_equal(part.images, images[[3, 1]])
  x = images + rng.uniform(-0.5, 0.5, images.shape).astype(np.float32)
  np.testing.assert_allclose(part.project(x[[3, 1]]), tf.gather(ball.project(x), idx), atol=1e-6)
  np.testing.assert_allclose(
    norms.size(part.project(x[[3, 1]]) - images[[3, 1]], norm), [0.3, 0.1], rtol=1e-5
  )
