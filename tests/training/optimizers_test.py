"""Weight decay semantics: coupled (PyTorch, the authors' recipe) and decoupled (Keras).

A linear least-squares model has an analytic gradient, so NumPy can replay
PyTorch's SGD (`v = m*v + g + wd*w; w -= lr*v`) and Keras' decoupled rule in
float64 and the project's optimizer must follow them step by step, across a
learning-rate boundary and under mixed-precision loss scaling.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.training import optimizers, schedules
from iaat_tf.config import Config, ConfigError, TrainConfig
from iaat_tf.validation import validate

LR, MOMENTUM, WD, DECAY = 0.1, 0.9, 0.05, 0.2
STEPS = 3  # lr = LR for steps 0, 1 and LR * DECAY from step 2 (epoch 2) on.


def _problem():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 4))
  y = rng.normal(size=(8, 3))
  w0 = rng.normal(size=(4, 3)) * 0.5
  b0 = rng.normal(size=(3,)) * 0.5
  return x, y, [w0, b0]


def _grads(x, y, params):
  w, b = params
  residual = (x @ w + b - y) / len(x)  # loss = 0.5 * sum(r^2) / n
  return [x.T @ residual, residual.sum(0)]


def _lr(step):
  return LR if step < 2 else LR * DECAY


def _pytorch_sgd(x, y, params):
  params = [p.copy() for p in params]
  bufs = [np.zeros_like(p) for p in params]
  for step in range(STEPS):
    for p, g, v in zip(params, _grads(x, y, params), bufs):
      v *= MOMENTUM
      v += g + WD * p
      p -= _lr(step) * v
  return params


def _keras_decoupled_sgd(x, y, params):
  params = [p.copy() for p in params]
  vel = [np.zeros_like(p) for p in params]
  for step in range(STEPS):
    grads = _grads(x, y, params)
    for p, g, v in zip(params, grads, vel):
      p -= _lr(step) * WD * p  # Decoupled: shrink, outside the momentum.
      v *= MOMENTUM
      v -= _lr(step) * g
      p += v
  return params


def _run(optimizer, x, y, params, loss_scale=False):
  variables = [tf.Variable(p.astype(np.float32)) for p in params]
  xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
  for _ in range(STEPS):
    with tf.GradientTape() as tape:
      residual = tf.matmul(xt, variables[0]) + variables[1] - yt
      loss = 0.5 * tf.reduce_sum(residual**2) / len(x)
      if loss_scale:
        loss = optimizer.scale_loss(loss)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
  return [v.numpy() for v in variables]


def _config(**kwargs):
  return TrainConfig(
    optimizer="sgd",
    learning_rate=LR,
    momentum=MOMENTUM,
    weight_decay=WD,
    lr_boundaries=(2,),
    lr_decay=DECAY,
    **kwargs,
  )


def test_default_sgd_is_pytorchs_coupled_l2_across_an_lr_boundary():
  x, y, params = _problem()
  optimizer = optimizers.make_optimizer(_config(), steps_per_epoch=1)
  assert isinstance(optimizer, optimizers.CoupledDecaySGD)
  got = _run(optimizer, x, y, params)
  want = _pytorch_sgd(x, y, params)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)
  # The decoupled rule gives a clearly different trajectory (the test can tell).
  other = _keras_decoupled_sgd(x, y, params)
  assert np.abs(other[0] - want[0]).max() > 1e-3


def test_coupled_decay_is_added_to_the_unscaled_gradient_under_loss_scaling():
  x, y, params = _problem()
  optimizer = keras.optimizers.LossScaleOptimizer(
    optimizers.make_optimizer(_config(), steps_per_epoch=1), initial_scale=2.0**12
  )
  got = _run(optimizer, x, y, params, loss_scale=True)
  for g, w in zip(got, _pytorch_sgd(x, y, params)):
    np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)


def test_decoupled_option_is_keras_weight_decay():
  x, y, params = _problem()
  optimizer = optimizers.make_optimizer(_config(weight_decay_type="decoupled"), steps_per_epoch=1)
  assert type(optimizer) is keras.optimizers.SGD
  got = _run(optimizer, x, y, params)
  for g, w in zip(got, _keras_decoupled_sgd(x, y, params)):
    np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)


def test_coupled_adam_is_adam_on_the_l2_gradient():
  x, y, params = _problem()
  config = TrainConfig(optimizer="adam", learning_rate=0.01, weight_decay=WD)
  optimizer = optimizers.make_optimizer(config, steps_per_epoch=1)
  assert isinstance(optimizer, optimizers.CoupledDecayAdam)
  got = _run(optimizer, x, y, params)
  # NumPy Adam (Keras' epsilon placement) on g + wd * w.
  p = [q.copy() for q in params]
  m = [np.zeros_like(q) for q in p]
  v = [np.zeros_like(q) for q in p]
  b1, b2, eps = 0.9, 0.999, 1e-7
  for t in range(1, STEPS + 1):
    for q, g, mq, vq in zip(p, _grads(x, y, p), m, v):
      g = g + WD * q
      mq += (1 - b1) * (g - mq)
      vq += (1 - b2) * (g * g - vq)
      lr_t = 0.01 * np.sqrt(1 - b2**t) / (1 - b1**t)
      q -= lr_t * mq / (np.sqrt(vq) + eps)
  for g, w in zip(got, p):
    np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)


def test_unknown_weight_decay_type_is_a_config_error():
  with pytest.raises(ConfigError, match="weight_decay_type"):
    validate(Config(output_dir="x", train=TrainConfig(weight_decay_type="l1")))


def test_negative_weight_decay_is_a_config_error():
  with pytest.raises(ConfigError, match="--weight_decay=-0.1 must be >= 0"):
    validate(Config(output_dir="x", train=TrainConfig(weight_decay=-0.1)))


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_cosine_and_onecycle_schedules_per_step(schedule):
  config = TrainConfig(learning_rate=0.2, epochs=5, lr_schedule=schedule)
  steps_per_epoch = 4
  total = 20
  lr = schedules.learning_rate(config, steps_per_epoch)
  t = np.arange(total + 1)
  if schedule == "cosine":  # CosineAnnealingLR stepped per iteration, eta_min 0.
    expected = 0.1 * (1 + np.cos(np.pi * t / total))
  else:  # fast_adversarial's MNIST script: batch i of epoch e trains at
    # np.interp(e + (i + 1) / N, [0, epochs * 2 // 5, epochs], [0, lr_max, 0]).
    expected = np.interp((t + 1) / steps_per_epoch, [0, 5 * 2 // 5, 5], [0, 0.2, 0])
  got = np.array([float(lr(step)) for step in t])
  np.testing.assert_allclose(got, expected, atol=1e-6)
  optimizer = optimizers.make_optimizer(config, steps_per_epoch)
  assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(expected[0], abs=1e-7)


def test_lr_boundaries_only_with_the_step_schedule():
  with pytest.raises(ConfigError, match="--lr_boundaries applies to --lr_schedule=step"):
    validate(Config(output_dir="x", train=TrainConfig(lr_boundaries=(3,), lr_schedule="cosine")))
  with pytest.raises(ConfigError, match="unknown --lr_schedule"):
    validate(Config(output_dir="x", train=TrainConfig(lr_schedule="linear")))


def test_lr_warmup_ramps_linearly_into_the_schedule():
  """--lr_warmup_epochs=2 at 4 steps per epoch: steps 0-7 at lr x (s+1)/8, then
  the step schedule (x 0.2 from epoch 3), as Goyal et al.'s gradual warmup."""
  config = TrainConfig(learning_rate=0.4, epochs=5, lr_boundaries=(3,), lr_warmup_epochs=2)
  lr = schedules.learning_rate(config, 4)
  got = np.array([float(lr(step)) for step in range(20)])
  expected = np.array([0.4 * min(1.0, (s + 1) / 8) * (0.2 if s >= 12 else 1.0) for s in range(20)])
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  with pytest.raises(ConfigError, match="--lr_warmup_epochs=-1 must be >= 0"):
    validate(Config(output_dir="x", train=TrainConfig(lr_warmup_epochs=-1)))


def test_lr_warmup_is_a_flag_from_the_dataclass_field():
  """The flag exists only through TrainConfig's field (options.option)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from iaat_tf.cli import flags_config  # pylint: disable=g-import-not-at-top

  flag = flags.FLAGS["lr_warmup_epochs"]
  assert flag.default == 0 and "Goyal" in flag.help
  assert any("lr_warmup_epochs" in names for _, names in flags_config.HELP_GROUPS)
