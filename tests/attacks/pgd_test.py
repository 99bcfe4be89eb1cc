"""attacks/pgd.py: PGD with per-example radii stays in the ball and the box, and raises the loss;
pgd_run's options (early stopping, rows, the outcome at the start) keep the full loop's examples."""

import dataclasses

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


# pgd_run's options against the full loop (pgd_from): the adversarial examples
# they keep must be the loop's (exactly on the same batch; to float rounding
# where a subset of rows runs as its own batch), and so must the outcomes.


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


def _options_case(norm, n=24, seed=2):
  model = _linear_model(num_classes=3, seed=seed)
  fn = lambda z: model(z, training=False)
  x, _ = _batch(n=n, num_classes=3, seed=seed)
  y = np.argmax(fn(x).numpy(), 1)  # Correct when clean: the attack decides.
  scale = 4.0 if norm == "l2" else 1.0
  eps = tf.constant(np.linspace(0.0, 0.3, n).astype(np.float32) * scale)
  spec = attacks.PGD(steps=4, step_ratio=0.3, min_step=0.01, norm=norm, seed=5)
  x0 = spec.start(x, eps, tf.range(n, dtype=tf.int64), 3, attacks.Salt.PROBE_UP)
  full = attacks.pgd_from(fn, x, y, x0, eps, spec.step_size(eps), spec.steps, norm=norm).numpy()
  full_correct = attacks.is_correct(fn(full), y).numpy()
  return fn, x, y, eps, spec, x0, full, full_correct


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_run_to_the_end_is_the_loop_and_its_outcome(norm):
  fn, x, y, eps, spec, x0, full, full_correct = _options_case(norm)
  out = spec.run(fn, x, y, eps, x0)
  np.testing.assert_array_equal(out.x_adv.numpy(), full)
  np.testing.assert_array_equal(out.correct.numpy(), full_correct)
  assert out.start_correct is None
  assert 0 < full_correct.sum() < len(y)  # Not vacuous: some break, some hold.


@pytest.mark.parametrize("early_stop", ["none", "batch", "example"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_rows_attack_only_those_rows_as_the_whole_batch_would(norm, early_stop):
  fn, x, y, eps, spec, x0, _, _ = _options_case(norm)
  spec = dataclasses.replace(spec, early_stop=early_stop)
  whole = spec.run(fn, x, y, eps, x0)
  rows = np.arange(len(y)) % 3 != 1
  part = spec.run(fn, x, y, eps, x0, rows=tf.constant(rows))
  _close(part.x_adv.numpy()[rows], whole.x_adv.numpy()[rows])
  np.testing.assert_array_equal(part.correct.numpy()[rows], whole.correct.numpy()[rows])
  np.testing.assert_array_equal(part.x_adv.numpy()[~rows], x0.numpy()[~rows])  # Not attacked.
  assert not part.correct.numpy()[~rows].any()
  none = spec.run(fn, x, y, eps, x0, rows=tf.zeros([len(y)], tf.bool))
  np.testing.assert_array_equal(none.x_adv.numpy(), x0.numpy())
  assert not none.correct.numpy().any()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_early_stop_keeps_the_loops_examples_until_an_iterate_breaks(norm):
  fn, x, y, eps, spec, x0, full, full_correct = _options_case(norm)
  runs = {}
  for mode in ("batch", "example"):
    runs[mode] = out = dataclasses.replace(spec, early_stop=mode).run(fn, x, y, eps, x0)
    held, x_adv = out.correct.numpy(), out.x_adv.numpy()
    # Never misclassified: the full loop's example and outcome.
    _close(x_adv[held], full[held])
    assert full_correct[held].all()
    # Broken at some iterate: it keeps that (misclassified) iterate, in the ball.
    assert not attacks.is_correct(fn(x_adv[~held]), y[~held]).numpy().any()
    broken_at_start = ~attacks.is_correct(fn(x0), y).numpy()
    np.testing.assert_array_equal(x_adv[broken_at_start], x0.numpy()[broken_at_start])
    # Any-iterate success includes final-iterate success.
    assert not (held & ~full_correct).any()
    assert 0 < held.sum() < len(y)  # Not vacuous.
  _close(runs["batch"].x_adv.numpy(), runs["example"].x_adv.numpy())
  np.testing.assert_array_equal(runs["batch"].correct.numpy(), runs["example"].correct.numpy())


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_judge_start_reads_the_start_from_the_first_step(norm, steps):
  fn, x, y, eps, spec, x0, _, _ = _options_case(norm)
  spec = dataclasses.replace(spec, steps=steps)
  out = spec.run(fn, x, y, eps, x0, judge_start=True)
  full = attacks.pgd_from(fn, x, y, x0, eps, spec.step_size(eps), steps, norm=norm).numpy()
  np.testing.assert_array_equal(out.x_adv.numpy(), full)
  np.testing.assert_array_equal(out.correct.numpy(), attacks.is_correct(fn(full), y).numpy())
  np.testing.assert_array_equal(out.start_correct.numpy(), attacks.is_correct(fn(x0), y).numpy())
  for bad in ({"rows": tf.ones([len(y)], tf.bool)}, {}):
    with pytest.raises(ValueError, match="judge_start"):
      dataclasses.replace(spec, early_stop="batch" if not bad else "none").run(
        fn, x, y, eps, x0, judge_start=True, **bad
      )
  with pytest.raises(ValueError, match="early_stop"):
    attacks.pgd_run(fn, x, y, x0, eps, 0.1, 2, early_stop="soon")


def test_the_spec_runs_pgd_attack_and_its_start():
  model = _linear_model()
  fn = lambda z: model(z, training=False)
  x, y = _batch()
  eps = tf.constant(np.linspace(0.05, 0.3, len(x)).astype(np.float32))
  index = tf.range(100, 100 + len(x), dtype=tf.int64)
  spec = attacks.PGD(steps=3, step_ratio=0.25, min_step=0.02, norm="l2", loss="margin", seed=7)
  expected = attacks.pgd_attack(
    fn,
    x,
    y,
    eps,
    steps=3,
    step_size=attacks.pgd_step_size(eps, 0.25, 0.02),
    index=index,
    step=4,
    salt=attacks.Salt.TRAIN,
    seed=7,
    loss="margin",
    norm="l2",
  )
  np.testing.assert_array_equal(spec.attack(fn, x, y, eps, index, 4, attacks.Salt.TRAIN), expected)
  start = attacks.uniform_start(x, eps, index, 4, attacks.Salt.TRAIN, 7, "l2")
  np.testing.assert_array_equal(spec.start(x, eps, index, 4, attacks.Salt.TRAIN), start)
  fixed = dataclasses.replace(spec, random_start=False)
  np.testing.assert_array_equal(fixed.start(x, eps, index, 4, attacks.Salt.TRAIN), x)
