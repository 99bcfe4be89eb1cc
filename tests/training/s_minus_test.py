"""The two S- rules of iaat against a NumPy re-statement, on a fixed batch.

S- examples (clean-misclassified) train on their clean image under
`s_minus="clean"` (the paper, Algorithm 1 line 10) and on the training attack
at the radius Algorithm 2 stored for them under `s_minus="adversarial"` (the
authors' code: their new radius is zeroed, the EMA keeps (1 - beta) p). One
frozen training step (learning rate 0) of a small dense classifier (no
convolution: per-example arithmetic does not depend on the batch) is checked
against NumPy: the table written, the radius reported as `eps_mean` (the one
actually trained at), and the loss, which tells what each example trained on.
The PGD examples themselves come from the trainer's attack (tested elsewhere).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import AttackConfig, ConfigError, Config, MethodConfig
from iaat_tf.validation import validate

N, SHAPE, CLASSES = 32, (4, 4, 1), 3
GAMMA, BETA, EPS_MAX = 0.03, 0.25, 0.5


def _numpy_logits(net, x):
  w1, b1, w2, b2 = [w.numpy().astype(np.float64) for w in net.weights]
  return np.maximum(x.reshape(len(x), -1) @ w1 + b1, 0.0) @ w2 + b2


def _numpy_ce(logits, y):
  z = logits - logits.max(-1, keepdims=True)
  return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(-1)))


def _run_one_step(tiny_classifier, rule):
  """One step of iaat under the S- `rule`, on tiny_classifier (tests/conftest.py)."""
  rng = np.random.RandomState(7)
  x = rng.rand(N, *SHAPE).astype(np.float32)
  y = rng.randint(0, CLASSES, N).astype(np.int64)
  stored = rng.uniform(0.02, 0.2, N).astype(np.float32)
  trainer = AdversarialTrainer(
    tiny_classifier(2, shape=SHAPE, classes=CLASSES),
    N,
    MethodConfig(
      method="iaat", eps=0.1, warmup_epochs=0, gamma=GAMMA, beta=BETA, eps_max=EPS_MAX, s_minus=rule
    ),
    AttackConfig(steps=3, step_ratio=0.5, min_step=0.01),
    seed=5,
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
  trainer.eps_table.assign(stored)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y)).batch(N)
  history = trainer.fit(ds, epochs=1, verbose=0).history
  return trainer, x, y, stored, history


def _numpy_rule(trainer, x, y, stored, rule):
  """(table, trained radii, trained-on images) re-stated in NumPy."""
  net = trainer.classifier
  index, step = tf.range(N, dtype=tf.int64), tf.constant(0, tf.int64)

  def survives(eps, salt):
    x_adv = trainer.recipe.craft(x, y, eps.astype(np.float32), index, step, salt).numpy()
    return _numpy_logits(net, x_adv).argmax(-1) == y

  clean_ok = _numpy_logits(net, x).argmax(-1) == y
  up = survives(stored + GAMMA, attacks.Salt.PROBE_UP)
  same = survives(stored, attacks.Salt.PROBE_SAME)
  new = np.where(up, stored + GAMMA, np.where(same, stored, stored - GAMMA))
  new = np.maximum(new * clean_ok, 0.0)
  table = np.clip(BETA * new + (1 - BETA) * stored, 0.0, EPS_MAX)
  x_adv = trainer.recipe.craft(
    x, y, table.astype(np.float32), index, step, attacks.Salt.TRAIN
  ).numpy()
  if rule == "clean":
    trained = table * clean_ok
    x_train = np.where(clean_ok[:, None, None, None], x_adv, x)
  else:
    trained = table
    x_train = x_adv
  return clean_ok, table, trained, x_train


@pytest.mark.parametrize("rule", ["clean", "adversarial"])
def test_s_minus_rule_matches_numpy(rule, tiny_classifier):
  trainer, x, y, stored, history = _run_one_step(tiny_classifier, rule)
  clean_ok, table, trained, x_train = _numpy_rule(trainer, x, y, stored, rule)
  assert 3 <= (~clean_ok).sum() <= N - 3  # A real mix of S+ and S-.
  np.testing.assert_allclose(trainer.eps_table.numpy(), table, atol=1e-6)
  # S- keep (1 - beta) of their radius in the table under both rules.
  np.testing.assert_allclose(table[~clean_ok], (1 - BETA) * stored[~clean_ok], atol=1e-6)
  np.testing.assert_allclose(history["eps_mean"][0], trained.mean(), atol=1e-6)
  loss = _numpy_ce(_numpy_logits(trainer.classifier, x_train), y).mean()
  np.testing.assert_allclose(history["loss"][0], loss, rtol=1e-5)


@pytest.mark.slow
def test_the_rules_train_s_minus_differently(tiny_classifier):
  _, x, y, _, clean = _run_one_step(tiny_classifier, "clean")
  _, _, _, _, adversarial = _run_one_step(tiny_classifier, "adversarial")
  assert adversarial["eps_mean"][0] > clean["eps_mean"][0] + 1e-3
  assert adversarial["loss"][0] > clean["loss"][0] + 1e-3  # S- attacked.


def test_adversarial_s_minus_is_only_for_iaat():
  bad = Config(output_dir="x", method=MethodConfig(method="iaat_cheap", s_minus="adversarial"))
  with pytest.raises(ConfigError, match="s_minus=adversarial"):
    validate(bad)
  with pytest.raises(ConfigError, match="unknown --s_minus"):
    validate(Config(output_dir="x", method=MethodConfig(s_minus="authors")))
