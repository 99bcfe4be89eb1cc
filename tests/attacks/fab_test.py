"""FAB-T: the exact L-inf and L2 minimal steps, and minimal perturbations of a
linear model in both norms (within 1% of the analytic minimum, never below)."""

import numpy as np
import tensorflow as tf
import pytest
from scipy.optimize import linprog, minimize

from iaat_tf.attacks import fab


def test_minimal_linf_step_matches_a_linear_program():
  rng = np.random.RandomState(0)
  n = 12
  for _ in range(6):
    x = rng.rand(1, n).astype(np.float32)
    w = rng.randn(1, n).astype(np.float32)
    w[0, :2] = 0.0  # Zero weights never move.
    change = np.float32([rng.randn() * 0.5])
    d = fab.minimal_linf_step(tf.constant(x), tf.constant(w), tf.constant(change)).numpy()
    # LP: minimise s, -s <= d_i <= s, w.d = change, 0 <= x + d <= 1.
    cost = np.r_[np.zeros(n), 1.0]
    a_ub = np.r_[np.c_[np.eye(n), -np.ones(n)], np.c_[-np.eye(n), -np.ones(n)]]
    lp = linprog(
      cost,
      A_ub=a_ub,
      b_ub=np.zeros(2 * n),
      A_eq=np.r_[w[0], 0.0][None],
      b_eq=change,
      bounds=[(-xi, 1 - xi) for xi in x[0]] + [(0, None)],
    )
    if lp.status == 0:
      np.testing.assert_allclose(np.abs(d).max(), lp.fun, rtol=1e-4, atol=1e-6)
      np.testing.assert_allclose(w[0] @ d[0], change[0], rtol=1e-4, atol=1e-5)
    else:  # Infeasible: the box corner in the helpful direction.
      assert np.all(np.sign(d[0]) * np.sign(w[0]) * np.sign(change) >= 0)
    assert np.all(x + d >= -1e-6) and np.all(x + d <= 1 + 1e-6)
    assert np.all(d[0, :2] == 0.0)


def test_minimal_l2_step_matches_a_solver():
  rng = np.random.RandomState(0)
  n, checked = 10, 0
  for _ in range(8):
    x = rng.rand(1, n).astype(np.float32)
    w = rng.randn(1, n).astype(np.float32)
    w[0, :2] = 0.0
    change = np.float32([rng.randn() * 0.6])
    d = fab.minimal_l2_step(tf.constant(x), tf.constant(w), tf.constant(change)).numpy()
    assert np.all(x + d >= -1e-6) and np.all(x + d <= 1 + 1e-6)
    assert np.all(d[0, :2] == 0.0)
    reach = np.sum(np.abs(w[0]) * np.where(w[0] * np.sign(change) > 0, 1 - x[0], x[0]))
    if reach < abs(change[0]):  # Infeasible: the box corner.
      continue
    sol = minimize(
      lambda z: z @ z,
      np.zeros(n),
      jac=lambda z: 2 * z,
      method="SLSQP",
      constraints=[{"type": "eq", "fun": lambda z, w=w, change=change: w[0] @ z - change[0]}],
      bounds=[(-xi, 1 - xi) for xi in x[0]],
      options={"ftol": 1e-12},
    )
    assert sol.success
    np.testing.assert_allclose(np.sqrt(d[0] @ d[0]), np.sqrt(sol.fun), rtol=1e-3)
    np.testing.assert_allclose(w[0] @ d[0], change[0], rtol=1e-4, atol=1e-5)
    checked += 1
  assert checked >= 4


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_finds_the_analytic_minimum_on_a_linear_classifier(norm):
  rng = np.random.RandomState(1)
  n, dims, classes = 64, 16, 5
  w = rng.randn(dims, classes).astype(np.float32)
  b = rng.randn(classes).astype(np.float32)
  x = (0.3 + 0.4 * rng.rand(n, 4, 4, 1)).astype(np.float32)
  logits_fn = lambda z: tf.matmul(tf.reshape(z, [-1, dims]), w) + b
  logits = logits_fn(x).numpy()
  y = logits.argmax(-1)
  # Closest boundary: margin_t / ||w_y - w_t||_dual (L1 for an L-inf
  # perturbation, L2 for L2), minimised over t != y.
  dual = (lambda v: np.abs(v).sum(0)) if norm == "linf" else (lambda v: np.sqrt((v**2).sum(0)))
  dist = np.full([n, classes], np.inf)
  for t in range(classes):
    margin = logits[np.arange(n), y] - logits[:, t]
    size = dual(w[:, y] - w[:, [t]])
    with np.errstate(divide="ignore", invalid="ignore"):
      dist[:, t] = np.where(y == t, np.inf, margin / size)
  target = dist.argmin(-1)
  analytic = dist.min(-1)
  inside = analytic < 0.25  # No pixel moves more than 0.25: the box is inactive.
  assert inside.sum() >= 20
  result = fab.fab_targeted(
    logits_fn, x[inside], y[inside], target[inside], fab.FabOptions(n_iter=30, norm=norm)
  )
  found = result.distance.numpy()
  assert np.all(found >= analytic[inside] * (1 - 1e-4))  # Never below the minimum.
  np.testing.assert_array_less(found, analytic[inside] * 1.01)
  adv = result.adversarial.numpy()
  assert np.all(logits_fn(adv).numpy().argmax(-1) != y[inside])
  moved = (adv - x[inside]).reshape(len(adv), -1)
  measured = np.abs(moved).max(-1) if norm == "linf" else np.sqrt((moved**2).sum(-1))
  np.testing.assert_allclose(measured, found, rtol=1e-4)
